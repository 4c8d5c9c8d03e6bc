// The chunks of a CellAllocator: each one aligned mapping cut into cells, with one JS entry per
// cell. Here: making a chunk (map it, link its cells in address order), linking the free cells of
// the chunks anew (after a close that stopped half-way), and the slow paths that read chunks: the
// walk of `validate()` and the diagnosis of an address that is not a live cell.
//
// A free cell's first 8 bytes hold the address of the next free cell as a native pointer, two
// 32-bit words, low first (0 ends the list); a live cell holds the caller's data. A chunk's entry
// per cell (`slots`) is 0 when the cell is free and the requested size + 1 when it is live. For a
// fresh chunk at 0x7f0000000000 with 32-byte cells, cell 0's link is 0x7f0000000020, cell 1's
// 0x7f0000000040, ..., and the last cell's link stays 0 (fresh memory).

import { DoubleFreeError, hex, InvalidAddressError, InvalidFreeError } from "../errors.ts";
import { isFreeing, notAnAddress } from "../_checks.ts";
import type { Os } from "../../ffi/os.ts";
import type { CellGeometry } from "./_cell_options.ts";

const TWO_32 = 2 ** 32;

/** One chunk: its address, views of its memory, and one entry per cell. */
export interface Chunk {
  base: number;
  /** The chunk as 32-bit words: a free cell's link is the two words at its start. */
  words: Uint32Array;
  bytes: Uint8Array;
  /** Per cell: 0 when free, requested size + 1 when live. */
  slots: Uint8Array | Uint16Array | Uint32Array;
}

/**
 * Maps a chunk aligned to its size and links all its cells, in address order, into a list that
 * starts at the chunk's first cell and ends (link 0) at its last. Throws `OutOfMemoryError` from
 * the OS, with nothing mapped, when it refuses.
 */
export function mapChunk(os: Os, geometry: CellGeometry): Chunk {
  const { cellSize, chunkSize, cellsPerChunk: cells } = geometry;
  const base = os.map(chunkSize, chunkSize);
  const buffer = os.view(base, chunkSize);
  const chunk: Chunk = {
    base,
    words: new Uint32Array(buffer),
    bytes: new Uint8Array(buffer),
    slots: cellSize < 0xff
      ? new Uint8Array(cells)
      : cellSize < 0xffff
      ? new Uint16Array(cells)
      : new Uint32Array(cells),
  };
  const step = cellSize / 4;
  const words = chunk.words;
  for (let cell = 0, word = 0; cell < cells - 1; cell++, word += step) {
    const next = base + (cell + 1) * cellSize;
    words[word] = next >>> 0;
    words[word + 1] = Math.floor(next / TWO_32);
  }
  // The last cell's link stays 0 (fresh memory): the end of the list.
  return chunk;
}

/** The link stored in the free cell at `address` of `chunk`. */
export function linkAt(chunk: Chunk, address: number): number {
  const word = (address - chunk.base) / 4;
  return chunk.words[word]! + chunk.words[word + 1]! * TWO_32;
}

/** What {@linkcode relink} found: the new free list and the live cells. */
export interface Relinked {
  /** The first free cell, 0 when there is none. */
  head: number;
  /** Its chunk. */
  headChunk: Chunk | undefined;
  /** Cells on the list. */
  count: number;
  /** Live cells, and the bytes they requested. */
  live: number;
  requested: number;
}

/**
 * Links every free cell of `chunks` (entry 0) into one new list, chunk by chunk and in address
 * order within a chunk, overwriting the old links, and counts the live cells, which it does not
 * touch. O(cells).
 */
export function relink(chunks: readonly Chunk[], geometry: CellGeometry): Relinked {
  const { cellSize, cellsPerChunk } = geometry;
  const list: Relinked = { head: 0, headChunk: undefined, count: 0, live: 0, requested: 0 };
  let tail: Chunk | undefined;
  let tailWord = 0;
  for (const chunk of chunks) {
    for (let cell = 0; cell < cellsPerChunk; cell++) {
      const slot = chunk.slots[cell]!;
      if (slot !== 0) {
        list.live++;
        list.requested += slot - 1;
        continue;
      }
      const address = chunk.base + cell * cellSize;
      if (tail === undefined) {
        list.head = address;
        list.headChunk = chunk;
      } else {
        tail.words[tailWord] = address >>> 0;
        tail.words[tailWord + 1] = Math.floor(address / TWO_32);
      }
      tail = chunk;
      tailWord = (cell * cellSize) / 4;
      list.count++;
    }
  }
  if (tail !== undefined) tail.words[tailWord] = tail.words[tailWord + 1] = 0;
  return list;
}

/** True when `address` is the start of a free cell of `chunk`. */
function isFreeCell(chunk: Chunk, address: number, geometry: CellGeometry): boolean {
  const offset = address - chunk.base;
  const { cellSize, cellsPerChunk } = geometry;
  return offset % cellSize === 0 && offset < cellsPerChunk * cellSize &&
    chunk.slots[offset / cellSize] === 0;
}

/** What {@linkcode checkCells} reads of a CellAllocator. */
export interface CellState {
  geometry: CellGeometry;
  chunks: readonly Chunk[];
  /** The chunk index: chunks by `(base - origin) / chunkSize`. */
  chunkByKey: ReadonlyMap<number, Chunk>;
  origin: number;
  head: number;
  headChunk: Chunk | undefined;
  freeCells: number;
  liveAllocations: number;
  liveBytes: number;
}

/**
 * Checks every invariant: each chunk is aligned and indexed, each cell's entry is in range, the
 * free list runs through exactly the free cells (no cycle, no live or foreign cell, nothing lost),
 * and the counters agree with the cells. Throws an `Error` naming the first broken one. O(cells).
 */
export function checkCells(state: CellState): void {
  const broken = (what: string) => new Error(`CellAllocator invariant broken: ${what}`);
  const { geometry, chunks, chunkByKey, origin } = state;
  const { cellSize, chunkSize, cellsPerChunk } = geometry;
  const chunkOf = (address: number) => chunkByKey.get(Math.floor((address - origin) / chunkSize));
  let live = 0;
  let requested = 0;
  for (const chunk of chunks) {
    if (
      chunk.base % chunkSize !== 0 || chunkByKey.get((chunk.base - origin) / chunkSize) !== chunk
    ) {
      throw broken(`chunk ${hex(chunk.base)} is misaligned or not indexed`);
    }
    for (let cell = 0; cell < cellsPerChunk; cell++) {
      const slot = chunk.slots[cell]!;
      if (slot === 0) continue;
      if (slot > cellSize + 1) {
        throw broken(`cell ${hex(chunk.base + cell * cellSize)} records ${slot - 1} bytes`);
      }
      live++;
      requested += slot - 1;
    }
  }
  if (chunkByKey.size !== chunks.length) throw broken("the chunk index has extras");
  const free = chunks.length * cellsPerChunk - live;
  if (state.freeCells !== free) {
    throw broken(`freeCells is ${state.freeCells}, the cells say ${free}`);
  }
  if (state.head !== 0 && state.headChunk !== chunkOf(state.head)) {
    throw broken(`the head's chunk is stale`);
  }
  let listed = 0;
  for (let address = state.head; address !== 0;) {
    const chunk = chunkOf(address);
    if (chunk === undefined || !isFreeCell(chunk, address, geometry)) {
      throw broken(`the free list reaches ${hex(address)}, which is not a free cell`);
    }
    if (++listed > free) throw broken(`the free list is longer than the ${free} free cells`);
    address = linkAt(chunk, address);
  }
  if (listed !== free) throw broken(`the free list holds ${listed} of the ${free} free cells`);
  if (state.liveAllocations !== live) {
    throw broken(`liveAllocations is ${state.liveAllocations}, the cells say ${live}`);
  }
  if (state.liveBytes !== requested) {
    throw broken(`liveBytes is ${state.liveBytes}, the cells say ${requested}`);
  }
}

/** The error for an address that is not a live cell; `chunk` is the chunk it falls in, if any. */
export function rejection(
  chunk: Chunk | undefined,
  address: number,
  verb: string,
  geometry: CellGeometry,
): Error {
  if (typeof address !== "number") return notAnAddress(address, verb);
  const where = `Cannot ${verb} ${hex(address)}`;
  const Invalid = isFreeing(verb) ? InvalidFreeError : InvalidAddressError;
  if (chunk === undefined) {
    return new Invalid(`${where}: it is not an address of this heap`, address);
  }
  const { cellSize } = geometry;
  const offset = address - chunk.base;
  const cell = Math.floor(offset / cellSize);
  if (cell >= geometry.cellsPerChunk) {
    return new Invalid(`${where}: it is past the last cell of its chunk`, address);
  }
  if (offset % cellSize !== 0) {
    const start = hex(chunk.base + cell * cellSize);
    return new Invalid(`${where}: it is inside the cell at ${start}, not at its start`, address);
  }
  const message = `${where}: this cell was already freed`;
  return isFreeing(verb)
    ? new DoubleFreeError(message, address)
    : new InvalidAddressError(message, address);
}
