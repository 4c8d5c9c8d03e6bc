/**
 * Segregated size classes: every page holds blocks of one size only, and the page tells the size.
 *
 * ## Size classes
 *
 * A request up to 2048 bytes is rounded up to one of 24 *size classes*: four classes per doubling
 * above 128 bytes, and multiples of 16 below, so that every block is 16-byte aligned and a request
 * wastes at most a fifth of its block above 128 bytes:
 *
 * ```
 *   16  32  48  64  80  96 112 128       step 16
 *  160 192 224 256                       step 32
 *  320 384 448 512                       step 64
 *  640 768 896 1024                      step 128
 * 1280 1536 1792 2048                    step 256
 * ```
 *
 * The class of a request is one table lookup, indexed by the request in 16-byte granules:
 * `CLASS_INDEX[(size + 15) >> 4]`. For `malloc(100)`: `(100 + 15) >> 4 = 7` granules, and entry 7
 * is class 6, 112 bytes; for `malloc(120)`: 8 granules, class 7, 128 bytes; for `malloc(1000)`:
 * `1015 >> 4 = 63` granules, class 19, 1024 bytes; for `malloc(0)`: entry 0, class 0, 16 bytes, a
 * unique block like any other.
 *
 * 2048 bytes, half a 4 KiB page, is the largest class: a larger request gets its own `mmap`,
 * rounded up to whole pages, which wastes at most half of it (2049 bytes take 4096) and where the
 * syscall is a small part of the cost of filling the memory anyway.
 *
 * ## Spans
 *
 * A class takes memory in *spans*: one `mmap` of the fewest whole pages that hold at least 8 of its
 * blocks (one 4 KiB page up to the 512-byte class, 2 pages for 640..1024, 3 for 1280 and 1536, 4
 * for 1792 and 2048; one page for every class on 16 KiB pages). A span holds blocks of its class
 * only, packed from its start; the tail that no whole block fits in (at most 256 bytes, 6.25% of a
 * 4 KiB page, for 320 and 384) stays unused.
 *
 * Each span's metadata lives in JavaScript, outside the native memory: a *free bitmap* (bit `i` set
 * when block `i` is free), a live count, the lowest bitmap word that may hold a free block, the
 * number of blocks ever handed out, and a byte per block for its slack (class size minus request,
 * for `stats()`). A table (`Map`) maps each page number to its span, so the span of any address is
 * found by rounding it down to its page:
 *
 * ```
 * free(0x7f1234563c30):  page 0x7f1234563 → span of class 48 at 0x7f1234563000
 *                        offset 0xc30 = 3120 = 65 × 48 → block 65; bit 65 clear → live: set it
 * free(0x7f1234563c40):  offset 3136 = 65 × 48 + 16 → not a block start: InvalidFreeError
 * ```
 *
 * ## malloc and free
 *
 * Each class keeps a doubly linked list of its spans that have a free block. `malloc` takes the
 * list's head span and the lowest free bit of its bitmap (scanning from the remembered word), and
 * drops the span from the list when it becomes full; when the list is empty it maps a new span.
 * `free` sets the block's bit and puts a span that was full back at the head of its list.
 *
 * A span whose last block is freed stays mapped, at its list's tail so that partly used spans are
 * filled first, and joins a cache of empty spans of all classes. The cache holds at most
 * `spanCacheBytes` (8 MiB by default, the floor of {@linkcode PseudoMalloc}'s cache of released
 * large mappings); beyond that the span emptied longest ago is unmapped. A span that gets a block
 * again leaves the cache. Without a cache, a program that builds and frees a large structure in
 * phases maps and unmaps every span at every phase (twice the time on a binary-trees workload);
 * evicting the oldest rather than the newest empty span keeps a malloc/free loop of any class from
 * mapping and unmapping at every turn when the cache is full of other classes' spans.
 *
 * `realloc` stays in place when the new size falls in the same class; otherwise it moves.
 *
 * ## Costs
 *
 * - `malloc`: O(1): a table lookup, the list head, and a bitmap scan that starts at the lowest word
 *   that can have a free bit (at most 8 words for the 16-byte class on a 4 KiB page). Plus one
 *   `mmap` per new span, one per large request.
 * - `free`: O(1): one `Map` lookup, a remainder, a bit; one `munmap` per span evicted from the
 *   cache.
 * - Space: no header in the blocks. Outside the native memory, per span: 1 bit per block, 1 byte
 *   per block (slack), one `Map` entry per page and a small object. Per large block: one record.
 * - Internal fragmentation: rounding up to the class, at most 15 bytes per block up to 128 bytes
 *   and at most a fifth of the block above; a span's unused tail; large blocks round up to pages.
 * - External fragmentation: memory of one class never serves another: after a phase of many small
 *   blocks, their spans stay mapped (one live block pins a whole span) and cannot serve other
 *   sizes.
 *
 * ## Misuse it detects, and what gets through
 *
 * The metadata is outside the native memory, so no write by the program (past a block's end, or
 * after a free) can corrupt the allocator's own state. Checks on every `free`, `realloc`,
 * `usableSize` and `bytes`: an address on no span page and no large block is foreign; an offset
 * that is not a multiple of the class size is interior (or misaligned); an offset past the span's
 * last whole block is in its unused tail; a set bit is a double free, except for a block never
 * handed out, which is an invalid free. An address in a span or large block recently given back to
 * the OS is reported as a double free.
 *
 * It cannot detect: a write past a block's end (there is no canary: it silently changes the next
 * block's data); a use after free; a double free of a block that has meanwhile been handed out
 * again (the second free frees the new owner's block).
 *
 * @module
 */

import type { Allocator, AllocatorStats } from "../allocator.ts";
import {
  DoubleFreeError,
  HeapClosedError,
  hex,
  InvalidAddressError,
  InvalidFreeError,
} from "../errors.ts";
import { Counters } from "../_counters.ts";
import { isFreeing, notAnAddress } from "../_checks.ts";
import { Mappings } from "../_mappings.ts";
import { ReleasedRanges } from "../_released.ts";
import { callocSize, checkSize, roundUp, viewLength } from "../_size.ts";
import { libcOs, mapMemory, memoryView, pageSize, unmapMemory } from "../../ffi/libc.ts";

/**
 * The block sizes of {@linkcode SegregatedAllocator}, smallest first: multiples of 16 up to 128,
 * then four classes per doubling up to 2048.
 *
 * @example Four classes per doubling
 * ```ts
 * import { SIZE_CLASSES } from "@pseudo/malloc";
 * import assert from "node:assert/strict";
 *
 * assert.equal(SIZE_CLASSES.length, 24);
 * const fromHalfToOneKiB = SIZE_CLASSES.filter((size) => size > 512 && size <= 1024);
 * assert.deepEqual(fromHalfToOneKiB, [640, 768, 896, 1024]);
 * ```
 */
// deno-fmt-ignore
export const SIZE_CLASSES: readonly number[] = Object.freeze([
  16, 32, 48, 64, 80, 96, 112, 128, // step 16
  160, 192, 224, 256, //               step 32
  320, 384, 448, 512, //               step 64
  640, 768, 896, 1024, //              step 128
  1280, 1536, 1792, 2048, //           step 256
]);

/**
 * The largest size class, 2048 bytes: larger requests get their own mapping.
 *
 * @example One byte more takes a page
 * ```ts
 * import { LARGEST_SIZE_CLASS, SegregatedAllocator } from "@pseudo/malloc";
 * import assert from "node:assert/strict";
 *
 * using heap = new SegregatedAllocator();
 * assert.equal(heap.classSize(LARGEST_SIZE_CLASS), 2048);
 * assert.equal(heap.classSize(LARGEST_SIZE_CLASS + 1), heap.pageSize);
 * ```
 */
export const LARGEST_SIZE_CLASS = 2048;

/** Fewest blocks per span: a span is the fewest whole pages that hold this many blocks. */
export const MIN_BLOCKS_PER_SPAN = 8;

/** Class index of a request, by its size in 16-byte granules: `CLASS_INDEX[(size + 15) >> 4]`. */
export const CLASS_INDEX: Uint8Array = (() => {
  const table = new Uint8Array(LARGEST_SIZE_CLASS / 16 + 1);
  let index = 0;
  for (let granules = 0; granules < table.length; granules++) {
    while (SIZE_CLASSES[index]! < granules * 16) index++;
    table[granules] = index;
  }
  return table;
})();

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
 * heap.malloc(10_000);
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

/** One size class: its geometry and its list of spans with a free block. */
interface SizeClass {
  index: number;
  size: number;
  spanLength: number;
  capacity: number;
  head: Span | undefined;
  tail: Span | undefined;
}

/** One span and its metadata. */
interface Span {
  base: number;
  sizeClass: SizeClass;
  /** Bit `i` set when block `i` is free; bits past the last block are clear. */
  free: Uint32Array;
  /** No bitmap word below this one has a set bit. */
  hint: number;
  live: number;
  /** Blocks below this index have been handed out at least once. */
  touched: number;
  /** Class size minus requested bytes of each live block. */
  slack: Uint8Array;
  bytes: Uint8Array;
  listed: boolean;
  prev: Span | undefined;
  next: Span | undefined;
  /** True while the span is empty and in the cache. */
  cached: boolean;
  /** The next older and newer span of the cache. */
  older: Span | undefined;
  newer: Span | undefined;
}

/**
 * A size-class malloc: each span of pages holds blocks of one class, found from an address by
 * rounding it down to its page; requests above 2048 bytes get their own `mmap`. Metadata is kept
 * outside the native memory: a free bitmap per span. Needs `--allow-ffi`.
 *
 * @example Same class, same span
 * ```ts
 * import { SegregatedAllocator } from "@pseudo/malloc";
 * import assert from "node:assert/strict";
 *
 * using heap = new SegregatedAllocator();
 * const a = heap.malloc(120); // class 128
 * const b = heap.malloc(128); // class 128: the next block of the same span
 * const c = heap.malloc(20); // class 32: another span
 * assert.equal(b - a, 128);
 * assert.equal(heap.usableSize(c), 32);
 * assert.equal(heap.stats().spans, 2);
 * ```
 */
export class SegregatedAllocator implements Allocator {
  #pageSize: number;
  #cacheLimit: number;
  #cachedBytes = 0;
  #oldestEmpty: Span | undefined;
  #newestEmpty: Span | undefined;
  #classes: SizeClass[];
  #spanByPage = new Map<number, Span>();
  #spans = new Set<Span>();
  #spanBytes = 0;
  #small = 0;
  #smallAllocated = 0;
  #large: Mappings;
  #released = new ReleasedRanges();
  #counters = new Counters();
  #closed = false;

  /**
   * Creates an empty heap; spans are mapped on first use.
   *
   * @param options How many bytes of empty spans to keep; optional.
   * @throws {RangeError} When `spanCacheBytes` is not a non-negative integer or `Infinity`.
   * @throws {Deno.errors.NotCapable} Without `--allow-ffi`.
   */
  constructor(options: SegregatedOptions = {}) {
    this.#pageSize = pageSize();
    this.#cacheLimit = options.spanCacheBytes ?? DEFAULT_SPAN_CACHE_BYTES;
    if (
      !(this.#cacheLimit >= 0) || (this.#cacheLimit % 1 !== 0 && this.#cacheLimit !== Infinity)
    ) {
      throw new RangeError(
        `Cannot use spanCacheBytes ${this.#cacheLimit}: it must be a non-negative integer or Infinity`,
      );
    }
    this.#large = new Mappings(libcOs, { label: "large block" });
    this.#classes = SIZE_CLASSES.map((size, index) => {
      const pages = Math.ceil((MIN_BLOCKS_PER_SPAN * size) / this.#pageSize);
      const spanLength = pages * this.#pageSize;
      return {
        index,
        size,
        spanLength,
        capacity: Math.floor(spanLength / size),
        head: undefined,
        tail: undefined,
      };
    });
  }

  /** The OS page size in bytes. */
  get pageSize(): number {
    return this.#pageSize;
  }

  /**
   * The size of the block that serves a request: its size class, or whole pages above the largest
   * class.
   *
   * @param size Bytes requested.
   * @returns The block size in bytes.
   * @throws {RangeError} When `size` is not a valid size.
   *
   * @example Rounding up to a class
   * ```ts
   * import { SegregatedAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new SegregatedAllocator();
   * assert.deepEqual([0, 1, 17, 100, 120, 129, 1000].map((n) => heap.classSize(n)), [
   *   16, 16, 32, 112, 128, 160, 1024,
   * ]);
   * ```
   */
  classSize(size: number): number {
    checkSize(size, "classify");
    return size <= LARGEST_SIZE_CLASS
      ? SIZE_CLASSES[CLASS_INDEX[(size + 15) >>> 4]!]!
      : roundUp(size, this.#pageSize);
  }

  /**
   * Allocates `size` bytes, not cleared: a block of the request's class, or a mapping of its own
   * above the largest class.
   *
   * @param size Bytes wanted; 0 gives a unique 16-byte block that must be freed too.
   * @returns The block's address: 16-byte aligned, page-aligned for a large block.
   * @throws {TypeError} When `size` is not a number.
   * @throws {RangeError} When `size` is negative, fractional, not finite or above 2^47.
   * @throws {OutOfMemoryError} When the OS refuses to map a span or a large block.
   *
   * @example Blocks of a span follow each other
   * ```ts
   * import { SegregatedAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new SegregatedAllocator();
   * const first = heap.malloc(48);
   * assert.equal(first % heap.pageSize, 0); // block 0 of a fresh span
   * assert.equal(heap.malloc(40), first + 48);
   * ```
   */
  malloc(size: number): number {
    if (this.#closed) throw new HeapClosedError("malloc");
    checkSize(size, "allocate");
    const address = size <= LARGEST_SIZE_CLASS ? this.#mallocSmall(size) : this.#mallocLarge(size);
    this.#counters.notePeaks(this.#spanBytes + this.#large.mappedBytes);
    return address;
  }

  /**
   * Allocates zeroed memory for `count` elements of `size` bytes.
   *
   * @param count Number of elements.
   * @param size Bytes per element.
   * @returns The block's address.
   * @throws {RangeError} When an argument is invalid or `count * size` exceeds 2^47.
   * @throws {OutOfMemoryError} When the OS refuses memory.
   *
   * @example Zeroed, also over a reused block
   * ```ts
   * import { SegregatedAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new SegregatedAllocator();
   * const dirty = heap.malloc(40);
   * heap.bytes(dirty).fill(0xff);
   * heap.free(dirty);
   * const address = heap.calloc(10, 4);
   * assert.equal(address, dirty);
   * assert.ok(heap.bytes(address).every((byte) => byte === 0));
   * ```
   */
  calloc(count: number, size: number): number {
    if (this.#closed) throw new HeapClosedError("calloc");
    const total = callocSize(count, size);
    let address: number;
    if (total > LARGEST_SIZE_CLASS) {
      address = this.#mallocLarge(total); // a fresh mapping is already zero
    } else {
      address = this.#mallocSmall(total);
      const span = this.#spanOf(address)!;
      const offset = address - span.base;
      span.bytes.fill(0, offset, offset + span.sizeClass.size);
    }
    this.#counters.notePeaks(this.#spanBytes + this.#large.mappedBytes);
    return address;
  }

  /**
   * Resizes a block, C style: `realloc(0, n)` is `malloc(n)`; `realloc(a, 0)` frees `a` and returns
   * 0. A block stays in place when the new size falls in its class (and a large block when its page
   * count stays, or the OS can `mremap` it); otherwise the contents move. If it throws, the old
   * block is untouched.
   *
   * @param address A live block, or 0.
   * @param size The new size in bytes.
   * @returns The block's address, which may differ from `address`; 0 when `size` is 0.
   * @throws {InvalidFreeError} When `address` is not a live block of this heap.
   * @throws {DoubleFreeError} When `address` was freed.
   * @throws {OutOfMemoryError} When the new block cannot be had.
   *
   * @example In place within a class, moved across classes
   * ```ts
   * import { SegregatedAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new SegregatedAllocator();
   * const address = heap.malloc(120);
   * heap.bytes(address, 3).set([1, 2, 3]);
   * assert.equal(heap.realloc(address, 128), address); // still class 128
   * const moved = heap.realloc(address, 129); // class 160
   * assert.notEqual(moved, address);
   * assert.deepEqual([...heap.bytes(moved, 3)], [1, 2, 3]);
   * ```
   */
  realloc(address: number, size: number): number {
    if (this.#closed) throw new HeapClosedError("realloc");
    if (address === 0) return this.malloc(size);
    checkSize(size, "reallocate");
    if (size === 0) {
      this.free(address);
      return 0;
    }
    const span = this.#spanOf(address);
    const moved = span !== undefined
      ? this.#reallocSmall(span, address, size)
      : this.#reallocLarge(address, size);
    this.#counters.notePeaks(this.#spanBytes + this.#large.mappedBytes);
    return moved;
  }

  /**
   * Frees a block. `free(0)` does nothing.
   *
   * @param address A block this heap returned, or 0.
   * @throws {InvalidFreeError} When `address` is foreign, inside a block, or in a span's tail.
   * @throws {DoubleFreeError} When the block is already free.
   *
   * @example The bitmap catches a double free
   * ```ts
   * import { DoubleFreeError, SegregatedAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new SegregatedAllocator();
   * const address = heap.malloc(8);
   * heap.free(address);
   * assert.throws(() => heap.free(address), DoubleFreeError);
   * heap.free(0);
   * ```
   */
  free(address: number): void {
    if (this.#closed) throw new HeapClosedError("free");
    if (address === 0) return;
    const span = this.#spanOf(address);
    if (span !== undefined) {
      const index = this.#block(span, address, "free");
      this.#counters.freed(span.sizeClass.size - span.slack[index]!);
      this.#freeSmall(span, index);
      return;
    }
    if (this.#large.lengthOf(address) < 0) throw this.#rejection(address, "free");
    this.#counters.freed(this.#large.unmap(address));
  }

  /**
   * The usable size of a live block: its class size, or whole pages for a large block.
   *
   * @param address A live block.
   * @returns Its size in bytes.
   * @throws {InvalidAddressError} When `address` is not a live block of this heap.
   *
   * @example The class, not the request
   * ```ts
   * import { SegregatedAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new SegregatedAllocator();
   * assert.equal(heap.usableSize(heap.malloc(100)), 112);
   * assert.equal(heap.usableSize(heap.malloc(3000)), heap.pageSize);
   * ```
   */
  usableSize(address: number): number {
    if (this.#closed) throw new HeapClosedError("usableSize");
    const span = this.#spanOf(address);
    if (span !== undefined) {
      this.#block(span, address, "find the size of");
      return span.sizeClass.size;
    }
    const length = this.#large.lengthOf(address);
    if (length < 0) throw this.#rejection(address, "find the size of");
    return length;
  }

  /**
   * A `Uint8Array` over a live block: a `subarray` of its span's one view, or of the large block's.
   * It dies with the block: do not touch it after `free`, or after a `realloc` that moves it.
   *
   * @param address A live block.
   * @param length Bytes to cover, at most the usable size (the default).
   * @returns A view of the block's memory.
   * @throws {InvalidAddressError} When `address` is not a live block.
   * @throws {RangeError} When `length` is negative or beyond the usable size.
   *
   * @example Writing through a view
   * ```ts
   * import { SegregatedAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new SegregatedAllocator();
   * const address = heap.malloc(4);
   * heap.bytes(address, 4).set([1, 2, 3, 4]);
   * assert.equal(heap.bytes(address)[3], 4);
   * assert.equal(heap.bytes(address).length, 16);
   * ```
   */
  bytes(address: number, length?: number): Uint8Array {
    if (this.#closed) throw new HeapClosedError("bytes");
    const usable = this.usableSize(address);
    const wanted = viewLength(address, length, usable);
    return this.#view(address, wanted);
  }

  /**
   * The heap's counters. `allocatedBytes` counts the class size of each small block and the mapped
   * pages of each large one; `mappedBytes` counts spans (cached empty ones too) and large blocks.
   *
   * @returns A fresh snapshot.
   *
   * @example Requested, allocated and mapped bytes
   * ```ts
   * import { SegregatedAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new SegregatedAllocator();
   * heap.malloc(100);
   * const stats = heap.stats();
   * assert.equal(stats.liveBytes, 100);
   * assert.equal(stats.allocatedBytes, 112);
   * assert.equal(stats.mappedBytes, heap.pageSize); // one span of one page
   * ```
   */
  stats(): SegregatedStats {
    if (this.#closed) throw new HeapClosedError("stats");
    return {
      ...this.#counters.snapshot(
        this.#spanBytes + this.#large.mappedBytes,
        this.#smallAllocated + this.#large.mappedBytes,
      ),
      spans: this.#spans.size,
      cachedBytes: this.#cachedBytes,
      smallAllocations: this.#small,
      largeAllocations: this.#large.count,
    };
  }

  /**
   * Every span, in address order. For tests, teaching and debugging.
   *
   * @returns One record per span.
   *
   * @example One class per span
   * ```ts
   * import { SegregatedAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new SegregatedAllocator();
   * heap.malloc(16);
   * heap.malloc(1000);
   * assert.deepEqual(heap.spans().map((span) => span.classSize).sort((a, b) => a - b), [16, 1024]);
   * ```
   */
  spans(): SegregatedSpan[] {
    if (this.#closed) throw new HeapClosedError("spans");
    return [...this.#spans].sort((a, b) => a.base - b.base).map((span) => ({
      address: span.base,
      length: span.sizeClass.spanLength,
      classSize: span.sizeClass.size,
      blocks: span.sizeClass.capacity,
      live: span.live,
    }));
  }

  /**
   * Checks every invariant: each span's bitmap against its live count, its hint and its high-water
   * mark; the recorded requests against the class; the page table; each class's list (exactly the
   * spans with room, linked both ways); the cache (exactly the empty spans, oldest first, within
   * its budget); and the counters. Throws an `Error` naming the first broken one.
   *
   * @example After some work
   * ```ts
   * import { SegregatedAllocator } from "@pseudo/malloc";
   *
   * using heap = new SegregatedAllocator();
   * heap.free(heap.malloc(100));
   * heap.validate();
   * ```
   */
  validate(): void {
    if (this.#closed) throw new HeapClosedError("validate");
    const fail = (what: string): never => {
      throw new Error(`SegregatedAllocator invariant broken: ${what}`);
    };
    const expect = (what: string, actual: number, expected: number): void => {
      if (actual !== expected) fail(`${what} is ${actual}, spans say ${expected}`);
    };
    let live = 0;
    let requested = 0;
    let allocated = 0;
    let bytes = 0;
    let pages = 0;
    for (const span of this.#spans) {
      const { size, capacity, spanLength, index } = span.sizeClass;
      const at = `span ${hex(span.base)} (class ${size})`;
      if (span.base % this.#pageSize !== 0) fail(`${at} is not page-aligned`);
      for (let page = 0; page < spanLength / this.#pageSize; page++) {
        if (this.#spanByPage.get(span.base / this.#pageSize + page) !== span) {
          fail(`${at}: page ${page} is not in the page table`);
        }
      }
      pages += spanLength / this.#pageSize;
      let free = 0;
      for (let w = 0; w < span.free.length; w++) {
        const word = span.free[w]!;
        if (w < span.hint && word !== 0) {
          fail(`${at}: a free block below the hint word ${span.hint}`);
        }
        for (let bit = 0; bit < 32; bit++) {
          const i = w * 32 + bit;
          const isFree = (word >>> bit & 1) === 1;
          if (i >= capacity) {
            if (isFree) fail(`${at}: bit ${i} is set past the last block`);
          } else if (isFree) {
            free++;
          } else {
            if (i >= span.touched) fail(`${at}: block ${i} is live but above the high-water mark`);
            const slack = span.slack[i]!;
            const asked = size - slack;
            if (asked < 0 || CLASS_INDEX[(asked + 15) >>> 4] !== index) {
              fail(`${at}: block ${i} records a request of ${asked} bytes`);
            }
            requested += asked;
          }
        }
      }
      if (free !== capacity - span.live) {
        fail(`${at}: bitmap has ${free} free blocks, live count says ${capacity - span.live}`);
      }
      if (span.touched > capacity) fail(`${at}: high-water mark past the last block`);
      if (span.listed !== span.live < capacity) {
        fail(`${at} is ${span.listed ? "listed but full" : "not listed but has room"}`);
      }
      if (span.cached !== (span.live === 0)) {
        fail(`${at} is ${span.cached ? "cached but in use" : "empty but not cached"}`);
      }
      live += span.live;
      allocated += span.live * size;
      bytes += spanLength;
    }
    for (const sizeClass of this.#classes) {
      let previous: Span | undefined;
      let count = 0;
      for (let span = sizeClass.head; span !== undefined; span = span.next) {
        if (span.sizeClass !== sizeClass || !this.#spans.has(span) || !span.listed) {
          fail(`class ${sizeClass.size} lists a span that is not one of its own`);
        }
        if (span.prev !== previous) fail(`class ${sizeClass.size}: bad back link`);
        if (++count > this.#spans.size) fail(`class ${sizeClass.size}: the list has a cycle`);
        previous = span;
      }
      if (sizeClass.tail !== previous) fail(`class ${sizeClass.size}: bad tail`);
    }
    let cached = 0;
    let older: Span | undefined;
    let count = 0;
    for (let span = this.#oldestEmpty; span !== undefined; span = span.newer) {
      if (!this.#spans.has(span) || !span.cached) fail("the cache holds a span that is not empty");
      if (span.older !== older) fail("the cache has a bad back link");
      if (++count > this.#spans.size) fail("the cache has a cycle");
      cached += span.sizeClass.spanLength;
      older = span;
    }
    if (this.#newestEmpty !== older) fail("the cache has a bad newest end");
    if (cached > this.#cacheLimit) fail(`the cache holds ${cached} bytes, over its budget`);
    expect("cachedBytes", this.#cachedBytes, cached);
    for (const span of this.#spans) {
      if (!span.listed) continue;
      let found = false;
      for (let s = span.sizeClass.head; s !== undefined; s = s.next) found ||= s === span;
      if (!found) fail(`span ${hex(span.base)} is marked listed but is on no list`);
    }
    for (const [, length, size] of this.#large.entries()) {
      requested += size;
      allocated += length;
    }
    expect("page table size", this.#spanByPage.size, pages);
    expect("span bytes", this.#spanBytes, bytes);
    expect("smallAllocations", this.#small, live);
    expect("liveAllocations", this.#counters.liveAllocations, live + this.#large.count);
    expect("liveBytes", this.#counters.liveBytes, requested);
    expect("allocatedBytes", this.#smallAllocated + this.#large.mappedBytes, allocated);
  }

  /**
   * Unmaps every span and large block. Every later method call except `close` throws
   * {@linkcode HeapClosedError}; closing twice does nothing.
   *
   * @example Explicit close
   * ```ts
   * import { SegregatedAllocator } from "@pseudo/malloc";
   *
   * const heap = new SegregatedAllocator();
   * heap.malloc(10);
   * heap.close();
   * ```
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const span of this.#spans) unmapMemory(span.base, span.sizeClass.spanLength);
    this.#large.close();
    this.#spans.clear();
    this.#spanByPage.clear();
    this.#released.clear();
    for (const sizeClass of this.#classes) sizeClass.head = sizeClass.tail = undefined;
    this.#oldestEmpty = this.#newestEmpty = undefined;
    this.#spanBytes = 0;
    this.#cachedBytes = 0;
  }

  /**
   * Same as {@linkcode SegregatedAllocator.prototype.close}, for `using`.
   *
   * @example Scoped heap
   * ```ts
   * import { SegregatedAllocator } from "@pseudo/malloc";
   *
   * {
   *   using heap = new SegregatedAllocator();
   *   heap.malloc(10);
   * } // unmapped here
   * ```
   */
  [Symbol.dispose](): void {
    this.close();
  }

  // --- small blocks -----------------------------------------------------------------------------

  #spanOf(address: number): Span | undefined {
    return this.#spanByPage.get(Math.floor(address / this.#pageSize));
  }

  #mallocSmall(size: number): number {
    const sizeClass = this.#classes[CLASS_INDEX[(size + 15) >>> 4]!]!;
    const span = sizeClass.head ?? this.#mapSpan(sizeClass);
    // The lowest free block: the lowest set bit of the first non-zero word from the hint on.
    const free = span.free;
    let w = span.hint;
    let word = free[w]!;
    while (word === 0) word = free[++w]!;
    const bit = 31 - Math.clz32(word & -word);
    free[w] = word & ~(1 << bit);
    span.hint = w;
    const index = w * 32 + bit;
    if (index >= span.touched) span.touched = index + 1;
    span.slack[index] = sizeClass.size - size;
    if (span.live++ === 0 && span.cached) this.#uncache(span);
    if (span.live === sizeClass.capacity) this.#unlist(span);
    this.#small++;
    this.#smallAllocated += sizeClass.size;
    this.#counters.allocated(size);
    return span.base + index * sizeClass.size;
  }

  /** Marks block `index` free; relists a span that was full, caches or unmaps one now empty. */
  #freeSmall(span: Span, index: number): void {
    const sizeClass = span.sizeClass;
    const w = index >>> 5;
    span.free[w] = span.free[w]! | (1 << (index & 31));
    if (w < span.hint) span.hint = w;
    this.#small--;
    this.#smallAllocated -= sizeClass.size;
    if (span.live-- === sizeClass.capacity) this.#pushFront(span);
    if (span.live === 0) {
      // Empty: to the tail of its list and into the cache, evicting the oldest empty spans.
      this.#unlist(span);
      this.#pushBack(span);
      span.cached = true;
      span.older = this.#newestEmpty;
      span.newer = undefined;
      if (this.#newestEmpty === undefined) this.#oldestEmpty = span;
      else this.#newestEmpty.newer = span;
      this.#newestEmpty = span;
      this.#cachedBytes += sizeClass.spanLength;
      while (this.#cachedBytes > this.#cacheLimit) {
        const oldest = this.#oldestEmpty!;
        this.#uncache(oldest);
        this.#unlist(oldest);
        this.#unmapSpan(oldest);
      }
    }
  }

  /** Takes an empty span out of the cache (it gets a block, or is unmapped). */
  #uncache(span: Span): void {
    if (span.older === undefined) this.#oldestEmpty = span.newer;
    else span.older.newer = span.newer;
    if (span.newer === undefined) this.#newestEmpty = span.older;
    else span.newer.older = span.older;
    span.older = span.newer = undefined;
    span.cached = false;
    this.#cachedBytes -= span.sizeClass.spanLength;
  }

  /** Maps a span for a class and puts it on the class's list. */
  #mapSpan(sizeClass: SizeClass): Span {
    const length = sizeClass.spanLength;
    const base = mapMemory(length);
    const words = Math.ceil(sizeClass.capacity / 32);
    const free = new Uint32Array(words).fill(0xffff_ffff);
    if (sizeClass.capacity % 32 !== 0) free[words - 1] = 2 ** (sizeClass.capacity % 32) - 1;
    const span: Span = {
      base,
      sizeClass,
      free,
      hint: 0,
      live: 0,
      touched: 0,
      slack: new Uint8Array(sizeClass.capacity),
      bytes: new Uint8Array(memoryView(base, length)),
      listed: false,
      prev: undefined,
      next: undefined,
      cached: false,
      older: undefined,
      newer: undefined,
    };
    const first = base / this.#pageSize;
    for (let page = 0; page < length / this.#pageSize; page++) {
      this.#spanByPage.set(first + page, span);
    }
    this.#spans.add(span);
    this.#spanBytes += length;
    this.#released.forget(base, base + length);
    this.#pushFront(span);
    return span;
  }

  /** Unmaps an empty span that is on no list, and remembers it for double-free reports. */
  #unmapSpan(span: Span): void {
    const length = span.sizeClass.spanLength;
    unmapMemory(span.base, length);
    const first = span.base / this.#pageSize;
    for (let page = 0; page < length / this.#pageSize; page++) {
      this.#spanByPage.delete(first + page);
    }
    this.#spans.delete(span);
    this.#spanBytes -= length;
    this.#released.add(span.base, span.base + length, span.sizeClass.size);
  }

  #pushFront(span: Span): void {
    const sizeClass = span.sizeClass;
    span.prev = undefined;
    span.next = sizeClass.head;
    if (sizeClass.head === undefined) sizeClass.tail = span;
    else sizeClass.head.prev = span;
    sizeClass.head = span;
    span.listed = true;
  }

  #pushBack(span: Span): void {
    const sizeClass = span.sizeClass;
    span.next = undefined;
    span.prev = sizeClass.tail;
    if (sizeClass.tail === undefined) sizeClass.head = span;
    else sizeClass.tail.next = span;
    sizeClass.tail = span;
    span.listed = true;
  }

  #unlist(span: Span): void {
    const sizeClass = span.sizeClass;
    if (span.prev === undefined) sizeClass.head = span.next;
    else span.prev.next = span.next;
    if (span.next === undefined) sizeClass.tail = span.prev;
    else span.next.prev = span.prev;
    span.prev = span.next = undefined;
    span.listed = false;
  }

  /** The index of the live block at `address` in `span`; throws the error that says why not. */
  #block(span: Span, address: number, verb: string): number {
    const size = span.sizeClass.size;
    const offset = address - span.base;
    const index = offset / size;
    if (
      typeof address === "number" && offset % size === 0 && index < span.sizeClass.capacity &&
      (span.free[index >>> 5]! >>> (index & 31) & 1) === 0
    ) {
      return index;
    }
    throw this.#spanRejection(span, address, verb);
  }

  #spanRejection(span: Span, address: number, verb: string): Error {
    if (typeof address !== "number") return notAnAddress(address, verb);
    const where = `Cannot ${verb} ${hex(address)}`;
    const freeing = isFreeing(verb);
    const Invalid = freeing ? InvalidFreeError : InvalidAddressError;
    const { size, capacity } = span.sizeClass;
    const offset = address - span.base;
    const index = Math.floor(offset / size);
    if (index >= capacity) {
      return new Invalid(
        `${where}: it is in the unused tail of the ${size}-byte span at ${hex(span.base)}`,
        address,
      );
    }
    const start = span.base + index * size;
    if (address !== start) {
      return new Invalid(
        `${where}: it is inside the ${size}-byte block at ${hex(start)}, not at its start`,
        address,
      );
    }
    if (index >= span.touched) {
      return new Invalid(`${where}: this ${size}-byte block was never handed out`, address);
    }
    const message = `${where}: this ${size}-byte block was already freed`;
    return freeing
      ? new DoubleFreeError(message, address)
      : new InvalidAddressError(message, address);
  }

  /** The error for an address on no span page that is not a live large block either. */
  #rejection(address: number, verb: string): Error {
    const index = typeof address === "number" ? this.#released.find(address) : -1;
    if (index >= 0) {
      const size = this.#released.note(index);
      const start = this.#released.start(index);
      const where = `Cannot ${verb} ${hex(address)}`;
      const Invalid = isFreeing(verb) ? InvalidFreeError : InvalidAddressError;
      if ((address - start) % size !== 0) {
        return new Invalid(
          `${where}: it is inside a block of a span given back to the OS`,
          address,
        );
      }
      const message = `${where}: it lies in the ${size}-byte span at ${
        hex(start)
      }, given back to the OS when its last block was freed (double free?)`;
      return isFreeing(verb)
        ? new DoubleFreeError(message, address)
        : new InvalidAddressError(message, address);
    }
    return this.#large.rejection(address, verb);
  }

  #reallocSmall(span: Span, address: number, size: number): number {
    const index = this.#block(span, address, "reallocate");
    const sizeClass = span.sizeClass;
    const old = sizeClass.size - span.slack[index]!;
    if (size <= LARGEST_SIZE_CLASS && CLASS_INDEX[(size + 15) >>> 4] === sizeClass.index) {
      span.slack[index] = sizeClass.size - size;
      this.#counters.liveBytes += size - old;
      return address;
    }
    // Move: allocate first, so that a failure leaves the old block untouched.
    const moved = size <= LARGEST_SIZE_CLASS ? this.#mallocSmall(size) : this.#mallocLarge(size);
    const offset = address - span.base;
    const kept = Math.min(sizeClass.size, size);
    this.#view(moved, kept).set(span.bytes.subarray(offset, offset + kept));
    this.#counters.freed(old);
    this.#freeSmall(span, index);
    return moved;
  }

  // --- large blocks -----------------------------------------------------------------------------

  #mallocLarge(size: number): number {
    const address = this.#large.map(size);
    this.#released.forget(address, address + this.#large.lengthOf(address));
    this.#counters.allocated(size);
    return address;
  }

  #reallocLarge(address: number, size: number): number {
    const length = this.#large.lengthOf(address);
    if (length < 0) throw this.#rejection(address, "reallocate");
    if (size <= LARGEST_SIZE_CLASS) {
      const moved = this.#mallocSmall(size);
      this.#view(moved, size).set(this.#large.view(address, size));
      this.#counters.freed(this.#large.unmap(address));
      return moved;
    }
    const before = this.#large.requestedBytes;
    const moved = this.#large.resize(address, size);
    this.#released.forget(moved, moved + this.#large.lengthOf(moved));
    this.#counters.liveBytes += this.#large.requestedBytes - before;
    if (moved !== address) {
      this.#counters.totalAllocations++;
      this.#counters.totalFrees++;
    }
    return moved;
  }

  /** A view of `length` bytes at a live block's address (checked by the caller). */
  #view(address: number, length: number): Uint8Array {
    const span = this.#spanOf(address);
    if (span !== undefined) {
      const offset = address - span.base;
      return span.bytes.subarray(offset, offset + length);
    }
    return this.#large.view(address, length);
  }
}
