// The options of a FirstFitAllocator with the chunk size's check, the snapshot its stats()
// returns, and the record its blocks() lists.

import type { AllocatorStats } from "../allocator.ts";
import { isPowerOfTwo } from "../_size.ts";
import type { Os } from "../../ffi/os.ts";
import { DEFAULT_CHUNK_SIZE } from "./_first_fit_layout.ts";

/**
 * Options of {@linkcode FirstFitAllocator}.
 *
 * @example Small chunks, to watch the heap grow
 * ```ts
 * import { FirstFitAllocator, type FirstFitOptions } from "@pseudo/malloc";
 *
 * const options: FirstFitOptions = { chunkSize: 64 * 1024 };
 * using heap = new FirstFitAllocator(options);
 * heap.malloc(100_000); // larger than a chunk: a chunk of its own
 * console.log(heap.stats().chunks); // 1
 * ```
 */
export interface FirstFitOptions {
  /**
   * Bytes per chunk, the unit by which the heap grows: a power of two, at least the page size, at
   * most 1 GiB. Larger requests get a chunk of their own size. @default {1048576}
   */
  chunkSize?: number;
  /**
   * The system calls: an aligned `mmap` per chunk, a `munmap` per chunk given back (when one
   * empties, and on `close()`). A test passes one that fails on demand. @default {libcOs}
   */
  os?: Os;
}

/**
 * A snapshot of a {@linkcode FirstFitAllocator}'s counters.
 *
 * @example Free space and how fragmented it is
 * ```ts
 * import { FirstFitAllocator, type FirstFitStats } from "@pseudo/malloc";
 *
 * using heap = new FirstFitAllocator();
 * const a = heap.malloc(100);
 * heap.malloc(100);
 * heap.free(a);
 * const stats: FirstFitStats = heap.stats();
 * console.log(stats.freeBlocks, stats.allocatedBytes); // 2 128
 * ```
 */
export interface FirstFitStats extends AllocatorStats {
  /** Chunks mapped now. */
  chunks: number;
  /** Blocks on the free list. */
  freeBlocks: number;
  /** Bytes of the free blocks, headers and footers included. */
  freeBytes: number;
}

/**
 * One block of the heap, as listed by {@linkcode FirstFitAllocator.prototype.blocks}.
 *
 * @example The first block of a fresh chunk
 * ```ts
 * import { FirstFitAllocator, type FirstFitBlock } from "@pseudo/malloc";
 * import assert from "node:assert/strict";
 *
 * using heap = new FirstFitAllocator({ chunkSize: 65536 });
 * const address = heap.malloc(100);
 * const first: FirstFitBlock = heap.blocks()[0]!;
 * assert.deepEqual(first, { address, size: 128, allocated: true });
 * ```
 */
export interface FirstFitBlock {
  /** The payload address: what `malloc` returned for it (or would, for a free block). */
  address: number;
  /** Block size in bytes, header and footer included. */
  size: number;
  /** True for an allocated block, false for a free one. */
  allocated: boolean;
}

/**
 * The chunk size `options` ask for; throws `RangeError` unless it is a power of two from the page
 * size to 1 GiB.
 */
export function chunkSizeOf(options: FirstFitOptions, pageSize: number): number {
  const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
  if (!isPowerOfTwo(chunkSize) || chunkSize < pageSize || chunkSize > 1 << 30) {
    throw new RangeError(
      `Cannot use chunkSize ${chunkSize}: it must be a power of two from the page size (${pageSize}) to 1 GiB`,
    );
  }
  return chunkSize;
}
