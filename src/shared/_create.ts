// Making and unmaking a shared heap's memory: the options checked, the six mappings made and their
// addresses written in the header (see _layout.ts), and the teardown the last attachment to go
// makes (every mapping but the header page, which stays so that a late attachment can still read
// "closed" instead of touching unmapped memory: 4 KiB per heap ever made).

import type { Os } from "../../ffi/os.ts";
import { checkArenaGeometry, DEFAULT_ARENA_SIZE, DEFAULT_MIN_BLOCK_SIZE } from "../buddy/buddy.ts";
import { isPowerOfTwo, roundUp } from "../_size.ts";
import {
  F_BITMAPS,
  F_BITMAPS_BYTES,
  F_BYTE,
  F_LARGE,
  F_LARGE_BYTES,
  F_REGION,
  F_REGION_BYTES,
  F_SLOTS,
  F_SLOTS_BYTES,
  F_TAGS,
  F_TAGS_BYTES,
  HEADER_BYTES,
  LARGE_RECORD,
  MAGIC,
  MAX_ORDERS,
  NIL,
  slotBytes,
  W_ARENA_SHIFT,
  W_HEADS,
  W_LARGE_CAPACITY,
  W_LOW,
  W_MAGIC,
  W_MAX_ARENAS,
  W_MAX_ATTACHMENTS,
  W_MIN_SHIFT,
  W_PAGE_SIZE,
  W_THRESHOLD,
} from "./_layout.ts";

/** Options of a {@linkcode SharedPseudoMalloc}; every field is optional. */
export interface SharedPseudoMallocOptions {
  /** Bytes per buddy arena: a power of two, at least a page (default 1 MiB). */
  arenaSize?: number;
  /** Smallest block and alignment of small blocks: a power of two >= 8 (default 16). */
  minBlockSize?: number;
  /** Requests of at least this size get their own mapping (default a quarter page). */
  mmapThreshold?: number;
  /** Arenas at most; `maxArenas * arenaSize` is reserved at once, at most 2 GiB (default 256). */
  maxArenas?: number;
  /** Attachments at once, the creator included (default 64). */
  maxAttachments?: number;
  /** Large blocks live at once, at most (default 16,383). */
  largeCapacity?: number;
  /** Map the arenas below 2^31 where the OS takes the hint (default true). */
  lowAddresses?: boolean;
  /** The system calls of the creator (default `libcOs`). */
  os?: Os;
}

function expectNumber(name: string, value: unknown): void {
  if (value !== undefined && typeof value !== "number") {
    throw new TypeError(
      `Cannot use ${name} ${typeof value === "string" ? JSON.stringify(value) : String(value)}: ` +
        `it must be a number, got ${typeof value}`,
    );
  }
}

function expectRange(name: string, value: number, low: number, high: number): void {
  if (!Number.isInteger(value) || value < low || value > high) {
    throw new RangeError(
      `Cannot use ${name} ${value}: it must be an integer from ${low} to ${high}`,
    );
  }
}

/**
 * Checks the options, maps the heap's memory and writes its header; returns the header's address.
 * Every mapping made is unmapped again when a later one fails.
 */
export function createHeap(os: Os, options: SharedPseudoMallocOptions): number {
  for (
    const name of [
      "arenaSize",
      "minBlockSize",
      "mmapThreshold",
      "maxArenas",
      "maxAttachments",
      "largeCapacity",
    ] as const
  ) expectNumber(name, options[name]);
  if (options.lowAddresses !== undefined && typeof options.lowAddresses !== "boolean") {
    throw new TypeError(`Cannot use lowAddresses ${String(options.lowAddresses)}: not a boolean`);
  }
  const pageSize = os.pageSize();
  const arenaSize = options.arenaSize ?? DEFAULT_ARENA_SIZE;
  const minBlockSize = options.minBlockSize ?? DEFAULT_MIN_BLOCK_SIZE;
  if (!isPowerOfTwo(arenaSize) || arenaSize < pageSize) {
    throw new RangeError(
      `Cannot use arenaSize ${arenaSize}: it must be a power of two of at least the page size (${pageSize})`,
    );
  }
  checkArenaGeometry(arenaSize, minBlockSize);
  const threshold = options.mmapThreshold ?? pageSize / 4;
  expectRange("mmapThreshold", threshold, 0, Math.min(arenaSize, 1 << 30));
  const maxArenas = options.maxArenas ?? 256;
  expectRange("maxArenas", maxArenas, 1, Math.floor(2 ** 31 / arenaSize));
  if (maxArenas * arenaSize > 2 ** 31 - arenaSize && maxArenas > 1) {
    throw new RangeError(
      `Cannot use maxArenas ${maxArenas}: maxArenas * arenaSize must stay below 2 GiB`,
    );
  }
  const maxAttachments = options.maxAttachments ?? 64;
  expectRange("maxAttachments", maxAttachments, 1, 4096);
  const largeCapacity = 2 ** Math.ceil(Math.log2((options.largeCapacity ?? 16383) + 1));
  expectRange("largeCapacity", options.largeCapacity ?? 16383, 1, 2 ** 24);
  const arenaShift = Math.log2(arenaSize);
  const minShift = Math.log2(minBlockSize);
  if (arenaShift - minShift >= MAX_ORDERS) {
    throw new RangeError(`Cannot use arenaSize ${arenaSize}: more than ${MAX_ORDERS} orders`);
  }

  const regionBytes = maxArenas * arenaSize;
  const made: [number, number][] = [];
  const map = (length: number, reserve: boolean) => {
    const address = reserve ? os.reserve(length) : os.map(length);
    made.push([address, length]);
    return address;
  };
  try {
    const header = map(Math.max(HEADER_BYTES, pageSize), false);
    let region = 0;
    if (options.lowAddresses ?? true) region = mapLow(os, regionBytes, arenaSize);
    if (region !== 0) made.push([region, regionBytes]);
    else {
      region = os.map(regionBytes, arenaSize);
      made.push([region, regionBytes]);
    }
    const tagsBytes = roundUp((regionBytes >>> minShift) * 4, pageSize);
    const tags = map(tagsBytes, true);
    const bitmapBytes = Math.max(8, 2 ** (arenaShift - minShift + 1) / 8);
    const bitmapsBytes = roundUp(bitmapBytes * maxArenas, pageSize);
    const bitmaps = map(bitmapsBytes, true);
    const slotsBytes = roundUp(slotBytes(minShift) * maxAttachments, pageSize);
    const slots = map(slotsBytes, true);
    const largeBytes = roundUp(largeCapacity * LARGE_RECORD * 8, pageSize);
    const large = map(largeBytes, true);

    const buffer = os.view(header, HEADER_BYTES);
    const words = new Int32Array(buffer);
    const floats = new Float64Array(buffer, F_BYTE);
    words[W_ARENA_SHIFT] = arenaShift;
    words[W_MIN_SHIFT] = minShift;
    words[W_THRESHOLD] = threshold;
    words[W_MAX_ARENAS] = maxArenas;
    words[W_MAX_ATTACHMENTS] = maxAttachments;
    words[W_LARGE_CAPACITY] = largeCapacity;
    words[W_PAGE_SIZE] = pageSize;
    words[W_LOW] = region + regionBytes <= 2 ** 31 ? 1 : 0;
    words.fill(NIL, W_HEADS, W_HEADS + MAX_ORDERS);
    floats[F_REGION] = region;
    floats[F_REGION_BYTES] = regionBytes;
    floats[F_TAGS] = tags;
    floats[F_TAGS_BYTES] = tagsBytes;
    floats[F_BITMAPS] = bitmaps;
    floats[F_BITMAPS_BYTES] = bitmapsBytes;
    floats[F_SLOTS] = slots;
    floats[F_SLOTS_BYTES] = slotsBytes;
    floats[F_LARGE] = large;
    floats[F_LARGE_BYTES] = largeBytes;
    Atomics.store(words, W_MAGIC, MAGIC); // published last
    return header;
  } catch (error) {
    for (const [address, length] of made.reverse()) {
      try {
        os.unmap(address, length);
      } catch { /* the first error is the one to report */ }
    }
    throw error;
  }
}

/**
 * Maps `length` bytes below 2^31 at a multiple of `alignment`, trying hints from the top of the
 * window down (PseudoMalloc's window fills from 256 MiB up); 0 when eight hints were refused.
 */
function mapLow(os: Os, length: number, alignment: number): number {
  const step = Math.max(length, 1 << 28);
  let hint = Math.floor((2 ** 31 - length) / alignment) * alignment;
  for (let tries = 0; tries < 8 && hint >= 1 << 28; tries++, hint -= step) {
    const address = os.mapAt(hint, length);
    if (address !== 0) return address;
  }
  return 0;
}

/**
 * Unmaps every mapping of the heap but its header page: the large blocks still live, the large
 * table, the slots, the bitmaps, the tags and the region. Tries every one; throws the first
 * `OsError` after trying the rest.
 */
export function teardown(os: Os, header: number): void {
  const floats = new Float64Array(os.view(header, HEADER_BYTES), F_BYTE);
  const large = new Float64Array(os.view(floats[F_LARGE]!, floats[F_LARGE_BYTES]!));
  const mappings: [number, number][] = [];
  for (let r = 0; r < large.length; r += LARGE_RECORD) {
    if (large[r] !== 0) mappings.push([large[r]!, large[r + 1]!]);
  }
  for (
    const [address, bytes] of [
      [F_LARGE, F_LARGE_BYTES],
      [F_SLOTS, F_SLOTS_BYTES],
      [
        F_BITMAPS,
        F_BITMAPS_BYTES,
      ],
      [F_TAGS, F_TAGS_BYTES],
      [F_REGION, F_REGION_BYTES],
    ] as const
  ) {
    mappings.push([floats[address]!, floats[bytes]!]);
  }
  let failure: unknown;
  for (const [address, length] of mappings) {
    try {
      os.unmap(address, length);
    } catch (error) {
      failure ??= error;
    }
  }
  if (failure !== undefined) throw failure;
}
