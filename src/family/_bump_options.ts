// The options of a BumpAllocator and the snapshot its stats() returns, with the pool size's check.

import type { AllocatorStats } from "../allocator.ts";
import { MAX_SIZE, roundUp } from "../_size.ts";
import type { Os } from "../../ffi/os.ts";

/** The default pool: 64 MiB of address space, backed page by page as it is touched. */
const DEFAULT_POOL_SIZE = 64 * 1024 * 1024;

/**
 * Options of {@linkcode BumpAllocator}.
 *
 * @example A small pool
 * ```ts
 * import { BumpAllocator, type BumpAllocatorOptions } from "@pseudo/malloc";
 *
 * const options: BumpAllocatorOptions = { size: 1 << 20 };
 * using arena = new BumpAllocator(options);
 * console.log(arena.poolSize); // 1048576
 * ```
 */
export interface BumpAllocatorOptions {
  /**
   * Bytes of the pool, rounded up to whole pages and mapped once by the constructor. The default
   * 64 MiB suits a laptop: untouched pages cost no memory, only address space. A positive integer
   * up to 2^47. @default {67108864}
   */
  size?: number;
  /**
   * The system calls: the pool's one `mmap` and, on `close()`, its `munmap`. A test passes one
   * that fails on demand. @default {libcOs}
   */
  os?: Os;
}

/**
 * A snapshot of a {@linkcode BumpAllocator}'s counters. `allocatedBytes` counts each live block
 * with its 16-byte header; `mappedBytes` is the pool.
 *
 * @example Dead space
 * ```ts
 * import { BumpAllocator, type BumpStats } from "@pseudo/malloc";
 * import assert from "node:assert/strict";
 *
 * using arena = new BumpAllocator();
 * arena.free(arena.malloc(100));
 * const stats: BumpStats = arena.stats();
 * assert.equal(stats.usedBytes, 128); // 16 header + 112 block, dead until reset
 * assert.equal(stats.allocatedBytes, 0);
 * ```
 */
export interface BumpStats extends AllocatorStats {
  /** Bytes of the pool below the bump pointer: live blocks, dead blocks and headers. */
  usedBytes: number;
  /** Calls of `reset()` so far. */
  resets: number;
}

/**
 * The pool size that `options` ask for, rounded up to whole pages; throws `RangeError` when it is
 * not a positive integer up to 2^47. `{}` gives 64 MiB; `{ size: 10_000 }` 12288 on 4 KiB pages.
 */
export function poolSize(options: BumpAllocatorOptions, pageSize: number): number {
  const size = options.size ?? DEFAULT_POOL_SIZE;
  if (!Number.isInteger(size) || size < 1 || size > MAX_SIZE) {
    throw new RangeError(
      `Cannot use a pool of ${size} bytes: size must be a positive integer up to 2^47`,
    );
  }
  return roundUp(size, pageSize);
}
