// The options of a CellAllocator, the geometry they give (cell, chunk, cells per chunk) with the
// checks that make it sound, and the snapshot its stats() returns.

import type { AllocatorStats } from "../allocator.ts";
import { isPowerOfTwo } from "../_size.ts";
import type { Os } from "../../ffi/os.ts";

/** The default cell: two 16-byte granules, room for a binary-tree node and some. */
const DEFAULT_CELL_SIZE = 32;
/** The default chunk: 64 KiB, 2048 default cells. */
const DEFAULT_CHUNK_SIZE = 64 * 1024;
/** The largest chunk: 1 GiB. */
const MAX_CHUNK_SIZE = 2 ** 30;
/** Cells are multiples of this, so every cell is aligned like C's malloc. */
const ALIGN = 16;

/**
 * Options of {@linkcode CellAllocator}. Every field has a default.
 *
 * @example 16-byte cells in 4 KiB chunks
 * ```ts
 * import { CellAllocator, type CellAllocatorOptions } from "@pseudo/malloc";
 *
 * const options: CellAllocatorOptions = { cellSize: 16, chunkSize: 4096 };
 * using cells = new CellAllocator(options);
 * console.log(cells.cellsPerChunk); // 256
 * ```
 */
export interface CellAllocatorOptions {
  /**
   * Bytes per cell, the largest request served: a multiple of 16, at most `chunkSize`.
   * @default {32}
   */
  cellSize?: number;
  /**
   * Bytes per chunk, mapped when the free list runs dry: a power of two from the page size to
   * 1 GiB. Chunks are aligned to their size. @default {65536}
   */
  chunkSize?: number;
  /**
   * Most chunks mapped at once; beyond it `malloc` throws {@linkcode OutOfMemoryError}.
   * @default {Infinity}
   */
  maxChunks?: number;
  /**
   * The system calls: an aligned `mmap` per chunk and, on `close()`, a `munmap` each. A test
   * passes one that fails on demand. @default {libcOs}
   */
  os?: Os;
}

/**
 * A snapshot of a {@linkcode CellAllocator}'s counters. `allocatedBytes` is the live cells times
 * the cell size; `mappedBytes` is the chunks.
 *
 * @example Cells in use and free
 * ```ts
 * import { CellAllocator, type CellStats } from "@pseudo/malloc";
 * import assert from "node:assert/strict";
 *
 * using cells = new CellAllocator();
 * cells.malloc(10);
 * const stats: CellStats = cells.stats();
 * assert.equal(stats.allocatedBytes, 32);
 * assert.equal(stats.freeCells, 2047);
 * ```
 */
export interface CellStats extends AllocatorStats {
  /** Chunks mapped now. */
  chunks: number;
  /** Cells on the free list. */
  freeCells: number;
}

/** The shape of a CellAllocator's memory, from its options. */
export interface CellGeometry {
  cellSize: number;
  chunkSize: number;
  maxChunks: number;
  /** `Math.floor(chunkSize / cellSize)`: 2048 by default, 1365 for 48-byte cells. */
  cellsPerChunk: number;
}

/** The geometry `options` ask for; throws `RangeError` naming the first option out of range. */
export function cellGeometry(options: CellAllocatorOptions, pageSize: number): CellGeometry {
  const cellSize = options.cellSize ?? DEFAULT_CELL_SIZE;
  const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
  const maxChunks = options.maxChunks ?? Infinity;
  if (!isPowerOfTwo(chunkSize) || chunkSize < pageSize || chunkSize > MAX_CHUNK_SIZE) {
    throw new RangeError(
      `Cannot use chunkSize ${chunkSize}: it must be a power of two from the page size (${pageSize}) to 2^30`,
    );
  }
  if (
    !Number.isInteger(cellSize) || cellSize < ALIGN || cellSize % ALIGN !== 0 ||
    cellSize > chunkSize
  ) {
    throw new RangeError(
      `Cannot use cellSize ${cellSize}: it must be a multiple of 16 from 16 to chunkSize (${chunkSize})`,
    );
  }
  if (!(maxChunks >= 0) || (maxChunks % 1 !== 0 && maxChunks !== Infinity)) {
    throw new RangeError(
      `Cannot use maxChunks ${maxChunks}: it must be a non-negative integer or Infinity`,
    );
  }
  return { cellSize, chunkSize, maxChunks, cellsPerChunk: Math.floor(chunkSize / cellSize) };
}
