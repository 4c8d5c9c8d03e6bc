// Reading a FirstFitAllocator's heap from the outside, on the slow paths: the walk of
// `validate()`, the block list of `blocks()`, the diagnosis of an address that is not a live block
// (which walks its chunk to say where it falls), the survey of the chunks a failed `close` left,
// and the block that holds an interior address (`blockOf`). Each walks a chunk block by block from
// granule 0, stepping by each header's size; `blockOf`'s walk also steps back from the chunk's
// end by each footer's size.

import { DoubleFreeError, hex, InvalidAddressError, InvalidFreeError } from "../errors.ts";
import { isFreeing, notAnAddress } from "../_checks.ts";
import type { BlockInfo } from "../heap/types.ts";
import { noBlock } from "./_block_access.ts";
import type { ChunkSet } from "./_first_fit_chunks.ts";
import type { FreeList } from "./_first_fit_free_list.ts";
import {
  BLOCK_OVERHEAD,
  type Chunk,
  CHUNK_OVERHEAD,
  GRANULE,
  granulesFor,
  HEADER_SIZE,
  NIL,
  SLACK_MASK,
  TAG_EDGE,
  TAG_FREE,
  TAG_MASK,
  TAG_USED,
} from "./_first_fit_layout.ts";
import type { FirstFitBlock } from "./_first_fit_options.ts";

/** The heap as {@linkcode checkHeap} reads it. */
export interface HeapState {
  chunks: ChunkSet;
  list: FreeList;
  spare: Chunk | undefined;
  allocatedBytes: number;
  liveAllocations: number;
  liveBytes: number;
}

/** Requested bytes of the allocated block whose size is `granules` and whose tag is `tag`. */
function requestedOf(granules: number, tag: number): number {
  return GRANULE * granules - BLOCK_OVERHEAD - (tag & SLACK_MASK);
}

/**
 * Checks every invariant: each chunk's edges; that its blocks tile it with matching headers and
 * footers, sane tags and no two free blocks side by side; that the free list links every free
 * block once, both ways, and nothing else; that only the spare chunk is wholly free; and that the
 * counters agree with the blocks. Throws an `Error` naming the first broken one.
 */
export function checkHeap(state: HeapState): void {
  const fail = (what: string): never => {
    throw new Error(`FirstFitAllocator invariant broken: ${what}`);
  };
  const { chunks, list } = state;
  let mapped = 0;
  let capacity = 0;
  let allocated = 0;
  let requested = 0;
  let live = 0;
  let count = 0;
  const free = new Set<string>();
  for (const chunk of chunks) {
    count++;
    const { base, length, end, words: w } = chunk;
    const at = (g: number) => hex(base + GRANULE * g + HEADER_SIZE);
    if (base % chunks.chunkSize !== 0) fail(`chunk ${hex(base)} is not chunk-aligned`);
    if (!chunks.isIndexed(chunk)) fail(`chunk ${hex(base)} is not indexed`);
    if (w[0] !== 0 || w[1] !== TAG_EDGE) fail(`chunk ${hex(base)} lost its prologue`);
    if (w[4 * end + 2] !== 0 || w[4 * end + 3] !== TAG_EDGE) {
      fail(`chunk ${hex(base)} lost its epilogue`);
    }
    let previousFree = false;
    let g = 0;
    while (g < end) {
      const size = w[4 * g + 2]!;
      const tag = w[4 * g + 3]!;
      if (!(size >= 2 && g + size <= end)) fail(`block ${at(g)} has size ${size} granules`);
      if (w[4 * (g + size)] !== size || w[4 * (g + size) + 1] !== tag) {
        fail(`block ${at(g)}: footer does not match header`);
      }
      if (tag === TAG_FREE) {
        if (previousFree) fail(`free block ${at(g)} follows a free block`);
        free.add(`${chunk.id}:${g}`);
        previousFree = true;
      } else if ((tag & TAG_MASK) === TAG_USED) {
        const slack = tag & SLACK_MASK;
        const asked = requestedOf(size, tag);
        const fits = granulesFor(asked);
        if (slack > 32 || asked < 0 || fits > size || fits < size - 1) {
          fail(`block ${at(g)} of ${size} granules records a request of ${asked} bytes`);
        }
        live++;
        allocated += GRANULE * size;
        requested += asked;
        previousFree = false;
      } else {
        fail(`block ${at(g)} has tag ${hex(tag >>> 0)}`);
      }
      g += size;
    }
    const empty = w[2] === end && w[3] === TAG_FREE;
    if (empty !== (chunk === state.spare)) {
      fail(`chunk ${hex(base)} is ${empty ? "empty but not the spare" : "the spare but in use"}`);
    }
    mapped += length;
    capacity += length - CHUNK_OVERHEAD;
  }
  // The free list: every free block once, links consistent both ways.
  let id = list.headChunk;
  let g = list.headGranule;
  let prevId = NIL;
  let prevG = NIL;
  let seen = 0;
  while (id !== NIL) {
    const chunk = chunks.byId[id];
    if (chunk === undefined || !free.has(`${id}:${g}`)) {
      fail(`free list links ${id}:${g}, which is not a free block`);
    }
    const w = chunk!.words;
    const h = 4 * g + 2;
    if (w[h + 4] !== prevId || w[h + 5] !== prevG) fail(`bad back link at ${id}:${g}`);
    if (++seen > free.size) fail("the free list has a cycle");
    prevId = id;
    prevG = g;
    id = w[h + 2]!;
    g = w[h + 3]!;
  }
  const expect = (what: string, actual: number, expected: number): void => {
    if (actual !== expected) fail(`${what} is ${actual}, blocks say ${expected}`);
  };
  expect("free-list length", seen, free.size);
  expect("freeBlocks", list.count, free.size);
  expect("chunks", chunks.count, count);
  expect("mappedBytes", chunks.mappedBytes, mapped);
  expect("capacity", chunks.capacity, capacity);
  expect("allocatedBytes", state.allocatedBytes, allocated);
  expect("liveAllocations", state.liveAllocations, live);
  expect("liveBytes", state.liveBytes, requested);
}

/** Every block of every chunk, chunks in address order. */
export function listBlocks(chunks: ChunkSet): FirstFitBlock[] {
  const list: FirstFitBlock[] = [];
  for (const chunk of chunks.sorted()) {
    const w = chunk.words;
    for (let g = 0; g < chunk.end && w[4 * g + 2]! > 0; g += w[4 * g + 2]!) {
      list.push({
        address: chunk.base + GRANULE * g + GRANULE,
        size: GRANULE * w[4 * g + 2]!,
        allocated: w[4 * g + 3] !== TAG_FREE,
      });
    }
  }
  return list;
}

/** What the blocks of some chunks hold, from {@linkcode survey}. */
export interface Survey {
  /** Allocated blocks, the bytes they requested, and their sizes in bytes. */
  live: number;
  requested: number;
  allocated: number;
  /** The free blocks, as chunk and granule. */
  free: [Chunk, number][];
}

/** Walks `chunks` (intact ones) and adds up their blocks. */
export function survey(chunks: Iterable<Chunk>): Survey {
  const result: Survey = { live: 0, requested: 0, allocated: 0, free: [] };
  for (const chunk of chunks) {
    const w = chunk.words;
    for (let g = 0; g < chunk.end; g += w[4 * g + 2]!) {
      const size = w[4 * g + 2]!;
      const tag = w[4 * g + 3]!;
      if (tag === TAG_FREE) {
        result.free.push([chunk, g]);
      } else {
        result.live++;
        result.requested += requestedOf(size, tag);
        result.allocated += GRANULE * size;
      }
    }
  }
  return result;
}

/** The error for a free neighbour whose header and footer disagree. */
export function corrupt(chunk: Chunk, g: number): Error {
  return new Error(
    `FirstFitAllocator heap corrupt: the free block at ${
      hex(chunk.base + GRANULE * g + HEADER_SIZE)
    } has a header and footer that disagree (a write past the end of a block?)`,
  );
}

/** The error for an address that is not a live block; walks its chunk to say where it falls. */
export function rejection(chunks: ChunkSet, address: number, verb: string): Error {
  if (typeof address !== "number") return notAnAddress(address, verb);
  const where = `Cannot ${verb} ${hex(address)}`;
  const freeing = isFreeing(verb);
  const Invalid = freeing ? InvalidFreeError : InvalidAddressError;
  const Freed = freeing ? DoubleFreeError : InvalidAddressError;
  const chunk = chunks.of(address);
  if (chunk === undefined || address >= chunk.base + chunk.length) {
    const released = chunks.released;
    const index = released.find(address);
    if (index >= 0 && address % GRANULE === 0) {
      return new Freed(
        `${where}: it lies in the chunk [${hex(released.start(index))}, ${
          hex(released.end(index))
        }), given back to the OS when its last block was freed (double free?)`,
        address,
      );
    }
    return new Invalid(`${where}: it is not an address of this heap`, address);
  }
  if (address % GRANULE !== 0) {
    return new Invalid(`${where}: blocks are 16-byte aligned, this address is not`, address);
  }
  const w = chunk.words;
  const offset = address - chunk.base;
  if (offset < GRANULE) {
    return new Invalid(`${where}: it is the prologue of chunk ${hex(chunk.base)}`, address);
  }
  for (let g = 0; g < chunk.end;) {
    const size = w[4 * g + 2]!;
    const tag = w[4 * g + 3]!;
    const start = chunk.base + GRANULE * g + HEADER_SIZE;
    if (!(size >= 2 && g + size <= chunk.end)) {
      return new Invalid(
        `${where}: the heap is corrupt at ${hex(start)} (a write past the end of a block?)`,
        address,
      );
    }
    const end = start + GRANULE * size;
    if (offset < GRANULE * (g + size) + HEADER_SIZE) {
      const range = `[${hex(start)}, ${hex(end)})`;
      if (tag === TAG_FREE) {
        return address === start + HEADER_SIZE
          ? new Freed(`${where}: this block was already freed`, address)
          : new Freed(`${where}: it lies in free block ${range} (double free?)`, address);
      }
      return address === start + HEADER_SIZE
        ? new Invalid(
          `${where}: the footer of block ${range} does not match its header (heap corrupt)`,
          address,
        )
        : new Invalid(`${where}: it is inside the block ${range}, not at its start`, address);
    }
    g += size;
  }
  return new Invalid(`${where}: it is not an address of this heap`, address);
}

/**
 * The live block of `chunk` that holds `address` (any byte of its payload), for `blockOf`; throws
 * the `InvalidAddressError` that says why there is none (a header, a footer, a free block, a
 * chunk's edge, a corrupt heap).
 *
 * Only true block boundaries can be trusted: a payload may hold the stale header of a block that
 * was merged away (a free keeps its header), so stepping back from the address to the nearest
 * header-like words could find one. The chunk's two ends are true boundaries, and so is every
 * boundary reached from them: forward by each header's size, backward by each footer's. The two
 * walks take turns, from granule 0 up and from the epilogue down, until one reaches the block
 * around the address: O(the smaller of the blocks before it and after it in its chunk), O(1) in a
 * chunk of one large request.
 *
 * Example: a fresh 64 KiB chunk after `malloc(100)` (8 granules at granule 0) and `malloc(24)` (3
 * at granule 8), the rest (4084 granules at 11) free; the address at offset 0x90 (granule 8's
 * payload): forward, block 0 covers bytes [0x8, 0x88), then block 8 covers [0x88, 0xb8): found.
 */
export function liveBlockAround(chunk: Chunk, address: number): BlockInfo {
  const w = chunk.words;
  const offset = address - chunk.base;
  // Blocks cover bytes [8, 16 end + 8): the prologue's footer is below, the epilogue's header above.
  if (offset < HEADER_SIZE || offset >= GRANULE * chunk.end + HEADER_SIZE) {
    throw noBlock(address, `it is an edge of the chunk at ${hex(chunk.base)}`);
  }
  // Invariant: 16 low + 8 <= offset < 16 high + 8, with low a block's start, high a block's end.
  let low = 0;
  let high = chunk.end;
  let g = -1;
  // Each step checks the boundary tag at the block's other end too (the same size and tag), so that
  // a write past a block into a footer or header stops the walk instead of misleading it.
  while (low < high) {
    const size = w[4 * low + 2]!;
    const tag = w[4 * low + 3]!;
    if (!(size >= 2 && low + size <= high)) break; // a broken header: g stays -1
    if (w[4 * (low + size)] !== size || w[4 * (low + size) + 1] !== tag) break;
    if (offset < GRANULE * (low + size) + HEADER_SIZE) {
      g = low;
      break;
    }
    low += size;
    const back = w[4 * high]!; // the footer of the block that ends at `high`
    if (!(back >= 2 && high - back >= low)) break;
    if (w[4 * (high - back) + 2] !== back || w[4 * (high - back) + 3] !== w[4 * high + 1]) break;
    high -= back;
    if (offset >= GRANULE * high + HEADER_SIZE) {
      g = high;
      break;
    }
  }
  if (g < 0) {
    throw noBlock(address, "the heap is corrupt around it (validate() says where)");
  }
  const size = w[4 * g + 2]!;
  if (offset < GRANULE * (g + 1)) throw noBlock(address, "it is in a block's header");
  if (offset >= GRANULE * (g + size)) throw noBlock(address, "it is in a block's footer");
  if ((w[4 * g + 3]! & TAG_MASK) !== TAG_USED) throw noBlock(address, "it lies in a free block");
  return { address: chunk.base + GRANULE * (g + 1), size: GRANULE * size - BLOCK_OVERHEAD };
}
