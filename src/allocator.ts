/**
 * The interface every allocator of the package implements, so that workloads, tests and benchmarks
 * run unchanged on each strategy.
 *
 * @module
 */

import type { SystemCalls } from "../ffi/counting_os.ts";

/**
 * Counters every allocator reports. Sizes are in bytes.
 *
 * @example Reading the counters of any allocator
 * ```ts
 * import { type Allocator, type AllocatorStats, PseudoMalloc } from "@pseudo/malloc";
 *
 * const allocator: Allocator = new PseudoMalloc();
 * allocator.malloc(100);
 * const stats: AllocatorStats = allocator.stats();
 * console.log(stats.liveBytes, stats.allocatedBytes); // 100 128
 * allocator.close();
 * ```
 */
export interface AllocatorStats {
  /** Bytes taken from the OS now. */
  mappedBytes: number;
  /** Highest `mappedBytes` seen after any call. */
  peakMappedBytes: number;
  /** Blocks allocated and not yet freed. */
  liveAllocations: number;
  /** Bytes requested by the live blocks (a 100-byte request counts 100). */
  liveBytes: number;
  /** Highest `liveBytes` seen after any call. */
  peakLiveBytes: number;
  /** Bytes of the blocks behind the live allocations, at least `liveBytes`. */
  allocatedBytes: number;
  /** Blocks handed out so far by malloc, calloc and realloc (a realloc that moves counts one). */
  totalAllocations: number;
  /** Blocks given back so far by free and realloc (a realloc that moves counts one). */
  totalFrees: number;
  /** System calls made so far (`mmap`, `munmap`, `mremap`, `madvise`, `mprotect`). */
  systemCalls: SystemCalls;
}

/**
 * A malloc over native memory. Addresses are plain numbers; 0 is the null address.
 *
 * Semantics shared by every implementation: `malloc(0)` returns a unique block; `calloc` zeroes;
 * `realloc(0, n)` is `malloc(n)`, `realloc(a, 0)` frees `a` and returns 0, and a failed `realloc`
 * leaves the block untouched; `free(0)` does nothing. Sizes that are not numbers throw `TypeError`,
 * negative, fractional, non-finite or impossibly large ones `RangeError`; freeing what was never
 * returned throws `InvalidFreeError`, and a double free `DoubleFreeError` where the design can tell.
 * After any throw the allocator is as it was. After `close()` every call throws `HeapClosedError`.
 *
 * @example Code that works with any allocator
 * ```ts
 * import { type Allocator, PseudoMalloc } from "@pseudo/malloc";
 *
 * function copyIn(allocator: Allocator, data: Uint8Array): number {
 *   const address = allocator.malloc(data.length);
 *   allocator.bytes(address, data.length).set(data);
 *   return address;
 * }
 *
 * using heap = new PseudoMalloc();
 * heap.free(copyIn(heap, new Uint8Array([1, 2, 3])));
 * ```
 */
export interface Allocator extends Disposable {
  /** Allocates `size` bytes (not cleared) and returns the address. */
  malloc(size: number): number;
  /** Allocates zeroed memory for `count` elements of `size` bytes. */
  calloc(count: number, size: number): number;
  /** Resizes a block, C style, and returns its (possibly new) address. */
  realloc(address: number, size: number): number;
  /** Frees a block; `free(0)` does nothing. */
  free(address: number): void;
  /** The usable size of a live block, at least what was requested. */
  usableSize(address: number): number;
  /** A `Uint8Array` over a live block (default: its usable size). */
  bytes(address: number, length?: number): Uint8Array;
  /** A snapshot of the counters. */
  stats(): AllocatorStats;
  /** Checks every invariant; throws an `Error` naming the first broken one. */
  validate(): void;
  /** Gives all memory back to the OS; later calls throw `HeapClosedError`. */
  close(): void;
}
