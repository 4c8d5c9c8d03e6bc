// The options of a SegregatedAllocator with the span cache's check, the snapshot its stats()
// returns, and the record its spans() lists.

import type { AllocatorStats } from "../allocator.ts";
import type { Os } from "../../ffi/os.ts";

/**
 * Default `spanCacheBytes` of {@linkcode SegregatedAllocator}: 8 MiB of empty spans.
 *
 * @example Up to 2048 empty 4 KiB spans
 * ```ts
 * import { DEFAULT_SPAN_CACHE_BYTES } from "@pseudo/malloc";
 * import assert from "node:assert/strict";
 *
 * assert.equal(DEFAULT_SPAN_CACHE_BYTES / 4096, 2048);
 * ```
 */
export const DEFAULT_SPAN_CACHE_BYTES = 8 << 20;

/**
 * Options of {@linkcode SegregatedAllocator}.
 *
 * @example Give every empty span back at once
 * ```ts
 * import { SegregatedAllocator, type SegregatedOptions } from "@pseudo/malloc";
 * import assert from "node:assert/strict";
 *
 * const options: SegregatedOptions = { spanCacheBytes: 0 };
 * using heap = new SegregatedAllocator(options);
 * heap.free(heap.malloc(100));
 * assert.equal(heap.stats().mappedBytes, 0);
 * ```
 */
export interface SegregatedOptions {
  /**
   * Bytes of empty spans, all classes together, kept mapped for reuse; beyond it the span emptied
   * longest ago is unmapped. `0` unmaps every span as soon as its last block is freed; `Infinity`
   * keeps every span until `close()`. @default {8388608} (8 MiB)
   */
  spanCacheBytes?: number;
  /**
   * The system calls: a `mmap` per span and per large block, their `munmap` (a span evicted from
   * the cache, a large block freed, everything on `close()`), `mremap` for a large realloc. A test
   * passes one that fails on demand. @default {libcOs}
   */
  os?: Os;
}

/**
 * A snapshot of a {@linkcode SegregatedAllocator}'s counters.
 *
 * @example Small and large blocks
 * ```ts
 * import { SegregatedAllocator, type SegregatedStats } from "@pseudo/malloc";
 * import assert from "node:assert/strict";
 *
 * using heap = new SegregatedAllocator();
 * heap.malloc(100);
 * heap.malloc(100_000); // above the largest class, 64 KiB
 * const stats: SegregatedStats = heap.stats();
 * assert.equal(stats.spans, 1);
 * assert.equal(stats.smallAllocations, 1);
 * assert.equal(stats.largeAllocations, 1);
 * ```
 */
export interface SegregatedStats extends AllocatorStats {
  /** Spans mapped now, empty cached ones included. */
  spans: number;
  /** Bytes of the empty spans kept for reuse, part of `mappedBytes`. */
  cachedBytes: number;
  /** Live blocks in spans. */
  smallAllocations: number;
  /** Live blocks with their own mapping. */
  largeAllocations: number;
}

/**
 * One span, as listed by {@linkcode SegregatedAllocator.prototype.spans}.
 *
 * @example The span of a 100-byte request
 * ```ts
 * import { SegregatedAllocator, type SegregatedSpan } from "@pseudo/malloc";
 * import assert from "node:assert/strict";
 *
 * using heap = new SegregatedAllocator();
 * const address = heap.malloc(100);
 * const span: SegregatedSpan = heap.spans()[0]!;
 * assert.equal(span.address, address);
 * assert.equal(span.classSize, 112);
 * assert.equal(span.live, 1);
 * ```
 */
export interface SegregatedSpan {
  /** Address of the span's first page, and of its block 0. */
  address: number;
  /** Bytes mapped: whole pages. */
  length: number;
  /** The size of each of its blocks. */
  classSize: number;
  /** How many blocks it holds. */
  blocks: number;
  /** How many of them are allocated. */
  live: number;
}

/** The span cache's budget that `options` ask for; throws `RangeError` when it is not one. */
export function spanCacheLimit(options: SegregatedOptions): number {
  const limit = options.spanCacheBytes ?? DEFAULT_SPAN_CACHE_BYTES;
  if (!(limit >= 0) || (limit % 1 !== 0 && limit !== Infinity)) {
    throw new RangeError(
      `Cannot use spanCacheBytes ${limit}: it must be a non-negative integer or Infinity`,
    );
  }
  return limit;
}
