// The shared heap's stats, validation and picture, over its native state (run under the lock by
// shared_pseudo_malloc.ts). The slots of the other attachments are read as they are: exact when
// those are between calls, a snapshot while they run.
//
// validate() walks every arena's block tree (a leaf is a free block, or a used one: live when its
// tag is set, cached when exactly one slot's stack holds it), every free list (each entry a free
// leaf of its order, the links consistent), every tag (set only at a live leaf's start), and the
// large table (every record found from its home); then the counters must agree with what it found.

import type { Os } from "../../ffi/os.ts";
import type { AllocatorStats } from "../allocator.ts";
import type { SystemCalls } from "../../ffi/counting_os.ts";
import { type ArenaPicture, type PictureBlock, renderSvg, renderText } from "../heap/_heap_map.ts";
import { hex } from "../errors.ts";
import { findLarge, progress, testBit } from "./_central.ts";
import {
  F_BUDDY_USED,
  F_LARGE_MAPPED,
  F_PEAK_LIVE,
  F_PEAK_MAPPED,
  F_RETIRED_ALLOCS,
  F_RETIRED_CALLS,
  F_RETIRED_FREES,
  F_RETIRED_LIVE,
  LARGE_RECORD,
  NIL,
  S_COUNT,
  S_STATE,
  SF_ALLOCS,
  SF_CALLS,
  SF_FREES,
  SF_LIVE,
  type Views,
  W_ARENAS,
  W_HEADS,
  W_LARGE_COUNT,
  W_LOW,
  W_MAX_ATTACHMENTS,
} from "./_layout.ts";

/** One attachment's counters, in {@linkcode SharedHeapStats.attachments}. */
export interface AttachmentStats {
  /** The attachment's `id` (its slot; 0 is the creator). */
  id: number;
  /** Blocks it allocated. */
  allocations: number;
  /** Blocks it freed (whoever allocated them). */
  frees: number;
  /** Bytes it allocated minus bytes it freed: negative when it frees others' blocks. */
  liveBytes: number;
  /** Bytes of blocks in its cache. */
  cachedBytes: number;
  /** Its system calls. */
  systemCalls: SystemCalls;
}

/** What `SharedPseudoMalloc.stats()` returns. */
export interface SharedHeapStats extends AllocatorStats {
  /** Arenas in use. */
  arenas: number;
  /** Arenas at most (the region reserved). */
  maxArenas: number;
  /** Whether the arenas lie below 2^31 (addresses are small integers). */
  lowAddresses: boolean;
  /** Live small blocks. */
  smallAllocations: number;
  /** Live large blocks (a mapping each). */
  largeAllocations: number;
  /** Bytes of freed small blocks in every attachment's cache. */
  smallCachedBytes: number;
  /** Attachments now, with their own counters. */
  attachments: AttachmentStats[];
}

function orderOf(v: Views, size: number): number {
  const g = v.geometry;
  return size <= g.minBlockSize ? 0 : 32 - Math.clz32(size - 1) - g.minShift;
}

/** The attached slots' indexes. */
function attached(v: Views): number[] {
  const slots: number[] = [];
  for (let i = 0; i < v.words[W_MAX_ATTACHMENTS]!; i++) {
    if (v.slot(i).words[S_STATE] === 1) slots.push(i);
  }
  return slots;
}

/** Live bytes over every attachment (and the retired ones). */
export function sumLive(_os: Os, v: Views): number {
  let live = v.floats[F_RETIRED_LIVE]!;
  for (const i of attached(v)) live += v.slot(i).counters[SF_LIVE]!;
  return live;
}

/** Bytes and count of the blocks in slot `i`'s cache. */
function cached(v: Views, i: number): number {
  const g = v.geometry;
  const words = v.slot(i).words;
  let bytes = 0;
  for (let order = 0; order <= g.maxOrder; order++) {
    bytes += words[S_COUNT + order]! * (g.minBlockSize << order);
  }
  return bytes;
}

/** The stats snapshot. */
export function sharedStats(_os: Os, v: Views): SharedHeapStats {
  const f = v.floats;
  const g = v.geometry;
  let allocations = f[F_RETIRED_ALLOCS]!;
  let frees = f[F_RETIRED_FREES]!;
  let liveBytes = f[F_RETIRED_LIVE]!;
  let smallCachedBytes = 0;
  const calls: SystemCalls = { mmap: 0, munmap: 0, mremap: 0, madvise: 0, mprotect: 0 };
  const kinds = ["mmap", "munmap", "mremap", "madvise", "mprotect"] as const;
  kinds.forEach((kind, k) => calls[kind] = f[F_RETIRED_CALLS + k]!);
  const attachments: AttachmentStats[] = [];
  let peak = f[F_PEAK_LIVE]!;
  for (const i of attached(v)) {
    const c = v.slot(i).counters;
    const own: SystemCalls = { mmap: 0, munmap: 0, mremap: 0, madvise: 0, mprotect: 0 };
    kinds.forEach((kind, k) => {
      own[kind] = c[SF_CALLS + k]!;
      calls[kind] += c[SF_CALLS + k]!;
    });
    const cachedBytes = cached(v, i);
    smallCachedBytes += cachedBytes;
    allocations += c[SF_ALLOCS]!;
    frees += c[SF_FREES]!;
    liveBytes += c[SF_LIVE]!;
    if (c[3]! > peak) peak = c[3]!; // the attachment's own peak (SF_PEAK)
    attachments.push({
      id: i,
      allocations: c[SF_ALLOCS]!,
      frees: c[SF_FREES]!,
      liveBytes: c[SF_LIVE]!,
      cachedBytes,
      systemCalls: own,
    });
  }
  const arenas = Atomics.load(v.words, W_ARENAS);
  const mappedBytes = arenas * g.arenaSize + f[F_LARGE_MAPPED]!;
  const largeAllocations = v.words[W_LARGE_COUNT]!;
  return {
    mappedBytes,
    peakMappedBytes: Math.max(f[F_PEAK_MAPPED]!, mappedBytes),
    liveAllocations: allocations - frees,
    liveBytes,
    peakLiveBytes: Math.max(peak, liveBytes),
    allocatedBytes: f[F_BUDDY_USED]! - smallCachedBytes + f[F_LARGE_MAPPED]!,
    totalAllocations: allocations,
    totalFrees: frees,
    systemCalls: calls,
    arenas,
    maxArenas: g.maxArenas,
    lowAddresses: v.words[W_LOW] === 1,
    smallAllocations: allocations - frees - largeAllocations,
    largeAllocations,
    smallCachedBytes,
    attachments,
  };
}

interface TreeLeaf {
  start: number;
  order: number;
  used: boolean;
}

/** Every leaf of arena `arena`'s block tree, in address order. */
function leaves(v: Views, arena: number): TreeLeaf[] {
  const g = v.geometry;
  const bits = arena * g.bitmapBytes * 8;
  const arenaStart = arena * g.arenaSize;
  const out: TreeLeaf[] = [];
  const visit = (node: number, k: number, start: number) => {
    if (testBit(v, bits + node) === 0) out.push({ start, order: k, used: false });
    else if (
      k === 0 || (testBit(v, bits + 2 * node) === 0 && testBit(v, bits + 2 * node + 1) === 0)
    ) out.push({ start, order: k, used: true });
    else {
      visit(2 * node, k - 1, start);
      visit(2 * node + 1, k - 1, start + (g.minBlockSize << (k - 1)));
    }
  };
  visit(1, g.maxOrder, arenaStart);
  return out;
}

/** Offset -> order of every block in the caches of the attached slots (but `skip`'s). */
function cachedBlocks(v: Views, skip: number): Map<number, number> {
  const g = v.geometry;
  const blocks = new Map<number, number>();
  for (const i of attached(v)) {
    if (i === skip) continue;
    const s = v.slot(i);
    for (let order = 0; order <= g.maxOrder; order++) {
      const limit = 65536 >> (g.minShift + order);
      if (limit === 0) break;
      const base = ((65536 >> g.minShift) - limit) << 1;
      const count = s.words[S_COUNT + order]!;
      if (count < 0 || count > limit) {
        throw new Error(`Invalid heap: attachment ${i}'s stack of order ${order} holds ${count}`);
      }
      for (let j = 0; j < count; j++) {
        const offset = s.stacks[base + j]!;
        if (blocks.has(offset)) {
          throw new Error(`Invalid heap: block ${hex(v.regionBase + offset)} is cached twice`);
        }
        blocks.set(offset, order);
      }
    }
  }
  return blocks;
}

/**
 * Checks every invariant; throws naming the first broken one. `central`: only what is written under
 * the lock (free lists, bitmaps, the buddy's counter, the large table), for `reclaim` taking over a
 * dead attachment's lock while the others run their lock-free paths (their tags and caches move).
 */
export function validateShared(_os: Os, v: Views, central = false): void {
  const g = v.geometry;
  const fail = (what: string) => {
    throw new Error(`Invalid heap: ${what}`);
  };
  const arenas = Atomics.load(v.words, W_ARENAS);
  const skip = central ? Infinity : -1;
  const cache = central ? new Map<number, number>() : cachedBlocks(v, -1);
  const freeStarts = new Map<number, number>();
  let usedBytes = 0;
  let live = 0;
  let cachedSeen = 0;
  for (let a = 0; a < arenas; a++) {
    progress(v.words);
    for (const leaf of leaves(v, a)) {
      const tag = v.tags[leaf.start >>> g.minShift]!;
      const where = hex(v.regionBase + leaf.start);
      if (!leaf.used) {
        if (tag !== 0) fail(`the free block at ${where} has a tag`);
        freeStarts.set(leaf.start, leaf.order);
        continue;
      }
      usedBytes += g.minBlockSize << leaf.order;
      if (central) continue; // its tag and cache are the lock-free paths'
      const order = cache.get(leaf.start);
      if (tag !== 0) {
        if (order !== undefined) fail(`the live block at ${where} is also cached`);
        if (orderOf(v, tag - 1) !== leaf.order) {
          fail(
            `the block at ${where} is ${g.minBlockSize << leaf.order} bytes, its tag says ${
              tag - 1
            }`,
          );
        }
        live++;
      } else if (order === leaf.order) {
        cachedSeen++;
      } else if (skip < 0) {
        fail(`the block at ${where} is neither live, cached nor free (lost)`);
      }
    }
  }
  if (cachedSeen !== cache.size && skip < 0) {
    fail("a cached block is not a used block of its order");
  }
  let listed = 0;
  for (let order = 0; order <= g.maxOrder; order++) {
    let prev = NIL;
    for (let offset = v.words[W_HEADS + order]!; offset !== NIL; offset = v.links[offset >>> 2]!) {
      if (freeStarts.get(offset) !== order) {
        fail(`the free list of order ${order} holds ${hex(v.regionBase + offset)}, not free there`);
      }
      if (v.links[(offset >>> 2) + 1] !== prev) {
        fail(`a broken link at ${hex(v.regionBase + offset)}`);
      }
      prev = offset;
      if (++listed > freeStarts.size) fail(`the free list of order ${order} loops`);
    }
  }
  if (listed !== freeStarts.size) fail(`${freeStarts.size - listed} free blocks are on no list`);
  if (usedBytes !== v.floats[F_BUDDY_USED]) {
    fail(`the buddies hand out ${usedBytes} bytes, the counter says ${v.floats[F_BUDDY_USED]}`);
  }
  let tagged = 0;
  const end = (arenas * g.arenaSize) >>> g.minShift;
  for (let i = 0; i < end && !central; i++) if (v.tags[i] !== 0) tagged++;
  if (tagged !== live) fail(`${tagged} tags are set for ${live} live blocks`);
  let records = 0;
  for (let r = 0; r < g.largeCapacity; r++) {
    const address = v.large[r * LARGE_RECORD]!;
    if (address === 0) continue;
    records++;
    if (findLarge(v, address) !== r) fail(`the large record of ${hex(address)} is unreachable`);
  }
  if (records !== v.words[W_LARGE_COUNT]) {
    fail(`${records} large records, counted ${v.words[W_LARGE_COUNT]}`);
  }
  if (skip < 0) {
    const stats = sharedStats(_os, v);
    if (stats.liveAllocations !== live + records) {
      fail(`${live + records} live blocks, the counters say ${stats.liveAllocations}`);
    }
  }
}

/** The picture of the arenas and the large mappings. */
export function heapPictureOf(_os: Os, v: Views, format: "text" | "svg"): string {
  const g = v.geometry;
  const cache = cachedBlocks(v, -1);
  const arenas: ArenaPicture[] = [];
  for (let a = 0; a < Atomics.load(v.words, W_ARENAS); a++) {
    progress(v.words);
    const blocks: PictureBlock[] = leaves(v, a).map((leaf) => ({
      offset: leaf.start - a * g.arenaSize,
      size: g.minBlockSize << leaf.order,
      order: leaf.order,
      state: !leaf.used ? "free" : cache.has(leaf.start) ? "cached" : "live",
    }));
    arenas.push({ base: v.regionBase + a * g.arenaSize, size: g.arenaSize, blocks });
  }
  const mappings = [];
  for (let r = 0; r < g.largeCapacity; r++) {
    const address = v.large[r * LARGE_RECORD]!;
    if (address !== 0) {
      mappings.push({
        address,
        length: v.large[r * LARGE_RECORD + 1]!,
        requested: v.large[r * LARGE_RECORD + 2]!,
      });
    }
  }
  mappings.sort((a, b) => a.address - b.address);
  return format === "svg" ? renderSvg(arenas, mappings) : renderText(arenas, mappings);
}
