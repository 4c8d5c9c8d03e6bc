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

// This file: the public class, its checks and counters, and the fast paths of small blocks (take a
// bit, give it back) and of large ones. The size classes are in _size_classes.ts; spans, the
// class lists and the cache of empty spans in _spans.ts; validate and the diagnosis of a bad
// address in _segregated_inspect.ts; the options and stats types in _segregated_options.ts.

import type { Allocator } from "../allocator.ts";
import { HeapClosedError } from "../errors.ts";
import { Counters } from "../_counters.ts";
import { reallocEdge } from "../_checks.ts";
import { Mappings } from "../_mappings.ts";
import { ReleasedRanges } from "../_released.ts";
import { callocSize, checkSize, roundUp, viewLength } from "../_size.ts";
import type { Os } from "../../ffi/os.ts";
import { libcOs } from "../../ffi/libc.ts";
import { CountingOs } from "../../ffi/counting_os.ts";
import { checkSpans, rejection, spanRejection, tallySpans } from "./_segregated_inspect.ts";
import {
  type SegregatedOptions,
  type SegregatedSpan,
  type SegregatedStats,
  spanCacheLimit,
} from "./_segregated_options.ts";
import { CLASS_INDEX, SIZE_CLASSES } from "./_size_classes.ts";
import { type Span, SpanCache, SpanClass } from "./_spans.ts";

export { DEFAULT_SPAN_CACHE_BYTES } from "./_segregated_options.ts";
export {
  CLASS_INDEX,
  LARGEST_SIZE_CLASS,
  MIN_BLOCKS_PER_SPAN,
  SIZE_CLASSES,
} from "./_size_classes.ts";
export type { SegregatedOptions, SegregatedSpan, SegregatedStats };

// The class table and the largest class (LARGEST_SIZE_CLASS), bound in this file for the fast
// paths: V8 folds a module's own constants into its code, but loads and checks an imported or
// exported one at every use (measured: 1.5 ns more per malloc/free pair). For the same reason the
// fast paths of small blocks stay methods of this class: moved into an object of their own, they
// measured 3 ns (5 %) more per pair.
const CLASS_OF: Uint8Array = CLASS_INDEX;
const LARGEST = 2048;

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
  #os: Os;
  #pageSize: number;
  #cache: SpanCache;
  #classes: SpanClass[];
  #spanByPage = new Map<number, Span>();
  #spans = new Set<Span>();
  #spanBytes = 0;
  #small = 0;
  #smallAllocated = 0;
  #large: Mappings;
  #released = new ReleasedRanges();
  #counters = new Counters();
  #calls: CountingOs;
  #closed = false;

  /**
   * Creates an empty heap; spans are mapped on first use.
   *
   * @param options How many bytes of empty spans to keep, and the OS; optional.
   * @throws {RangeError} When `spanCacheBytes` is not a non-negative integer or `Infinity`.
   * @throws {Deno.errors.NotCapable} Without `--allow-ffi`.
   */
  constructor(options: SegregatedOptions = {}) {
    const limit = spanCacheLimit(options);
    this.#os = this.#calls = new CountingOs(options.os ?? libcOs);
    this.#pageSize = this.#os.pageSize();
    this.#cache = new SpanCache(limit);
    this.#large = new Mappings(this.#os, { label: "large block" });
    this.#classes = SIZE_CLASSES.map((size, index) => new SpanClass(index, size, this.#pageSize));
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
    return size <= LARGEST
      ? SIZE_CLASSES[CLASS_OF[(size + 15) >>> 4]!]!
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
    this.#open("malloc");
    checkSize(size, "allocate");
    const address = size <= LARGEST ? this.#mallocSmall(size) : this.#mallocLarge(size);
    this.#counters.allocated(size);
    this.#notePeaks();
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
    this.#open("calloc");
    const total = callocSize(count, size);
    let address: number;
    if (total > LARGEST) {
      address = this.#mallocLarge(total); // a fresh mapping is already zero
    } else {
      address = this.#mallocSmall(total);
      const span = this.#spanOf(address)!;
      const offset = address - span.base;
      span.bytes.fill(0, offset, offset + span.sizeClass.size);
    }
    this.#counters.allocated(total);
    this.#notePeaks();
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
    const edge = reallocEdge(this, this.#closed, address, size);
    if (edge !== -1) return edge;
    const span = this.#spanOf(address);
    const moved = span !== undefined
      ? this.#reallocSmall(span, address, size)
      : this.#reallocLarge(address, size);
    this.#notePeaks();
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
    this.#open("free");
    if (address === 0) return;
    const span = this.#spanOf(address);
    if (span !== undefined) {
      const index = this.#block(span, address, "free");
      const requested = span.sizeClass.size - span.slack[index]!;
      this.#freeSmall(span, index);
      this.#counters.freed(requested);
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
    this.#open("usableSize");
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
    this.#open("bytes");
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
    this.#open("stats");
    return {
      ...this.#counters.snapshot(
        this.#spanBytes + this.#large.mappedBytes,
        this.#smallAllocated + this.#large.mappedBytes,
        this.#calls.counts,
      ),
      spans: this.#spans.size,
      cachedBytes: this.#cache.bytes,
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
    this.#open("spans");
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
    this.#open("validate");
    checkSpans({
      pageSize: this.#pageSize,
      spans: this.#spans,
      spanByPage: this.#spanByPage,
      classes: this.#classes,
      cache: this.#cache,
      large: this.#large,
      spanBytes: this.#spanBytes,
      small: this.#small,
      smallAllocated: this.#smallAllocated,
      liveAllocations: this.#counters.liveAllocations,
      liveBytes: this.#counters.liveBytes,
    });
  }

  /**
   * Unmaps every span and large block. Every later method call except `close` throws
   * {@linkcode HeapClosedError}; closing twice does nothing.
   *
   * @throws {OsError} When the OS refuses a `munmap`: the heap then stays open with the spans and
   *   large blocks not unmapped yet, as they were (the blocks of the ones unmapped before count as
   *   freed), and `close` can be called again.
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
    try {
      for (const span of [...this.#spans]) this.#unmapSpan(span);
      this.#large.close();
    } catch (error) {
      // What was unmapped before the refusal is gone, its blocks with it: count those as freed.
      const left = tallySpans(this.#spans);
      const counters = this.#counters;
      this.#small = left.live;
      this.#smallAllocated = left.allocated;
      counters.totalFrees += counters.liveAllocations - (left.live + this.#large.count);
      counters.liveBytes = left.requested + this.#large.requestedBytes;
      throw error;
    }
    this.#closed = true;
    this.#released.clear();
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

  /** A block for `size` bytes from a span of its class (mapped if none has room); not counted. */
  #mallocSmall(size: number): number {
    const sizeClass = this.#classes[CLASS_OF[(size + 15) >>> 4]!]!;
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
    if (span.live++ === 0 && span.cached) this.#cache.remove(span);
    if (span.live === sizeClass.capacity) sizeClass.unlist(span);
    this.#small++;
    this.#smallAllocated += sizeClass.size;
    return span.base + index * sizeClass.size;
  }

  /**
   * Marks block `index` free; relists a span that was full; a span that empties goes to the tail
   * of its list and into the cache (see `#cacheEmptied` when the cache is full).
   */
  #freeSmall(span: Span, index: number): void {
    const sizeClass = span.sizeClass;
    const w = index >>> 5;
    span.free[w] = span.free[w]! | (1 << (index & 31));
    if (w < span.hint) span.hint = w;
    this.#small--;
    this.#smallAllocated -= sizeClass.size;
    if (span.live-- === sizeClass.capacity) sizeClass.pushFront(span);
    if (span.live === 0) {
      const cache = this.#cache;
      if (cache.bytes + sizeClass.spanLength > cache.limit) {
        this.#cacheEmptied(span, index);
      } else {
        sizeClass.unlist(span);
        sizeClass.pushBack(span);
        cache.add(span);
      }
    }
  }

  /**
   * The span just emptied by freeing its block `index` does not fit in the cache: unmaps the
   * spans emptied longest ago until it does, or, when it cannot fit even alone, the span itself.
   * When the OS refuses an unmap, the block is live again (spans evicted before the refusal stay
   * unmapped) and the `OsError` goes on to the caller: a refused free changes nothing.
   */
  #cacheEmptied(span: Span, index: number): void {
    const sizeClass = span.sizeClass;
    try {
      if (this.#makeRoom(sizeClass.spanLength)) {
        sizeClass.unlist(span);
        sizeClass.pushBack(span);
        this.#cache.add(span);
      } else {
        this.#unmapSpan(span);
      }
    } catch (error) {
      span.free[index >>> 5] = span.free[index >>> 5]! & ~(1 << (index & 31));
      span.live = 1;
      this.#small++;
      this.#smallAllocated += sizeClass.size;
      throw error;
    }
  }

  /**
   * Unmaps the spans emptied longest ago until `length` more bytes fit in the cache; false when
   * they cannot (the cache is empty, and `length` is over its budget).
   */
  #makeRoom(length: number): boolean {
    const cache = this.#cache;
    while (cache.bytes + length > cache.limit) {
      const oldest = cache.oldest;
      if (oldest === undefined) return false;
      this.#unmapSpan(oldest);
    }
    return true;
  }

  /** Maps a span for a class (first: a refusal changes nothing) and puts it on its list. */
  #mapSpan(sizeClass: SpanClass): Span {
    const span = sizeClass.map(this.#os);
    const length = sizeClass.spanLength;
    const first = span.base / this.#pageSize;
    for (let page = 0; page < length / this.#pageSize; page++) {
      this.#spanByPage.set(first + page, span);
    }
    this.#spans.add(span);
    this.#spanBytes += length;
    this.#released.forget(span.base, span.base + length);
    sizeClass.pushFront(span);
    return span;
  }

  /**
   * Unmaps a span (first: when the OS refuses, it throws with nothing changed), takes it off its
   * list and out of the cache, and remembers it for double-free reports.
   */
  #unmapSpan(span: Span): void {
    const sizeClass = span.sizeClass;
    const length = sizeClass.spanLength;
    this.#os.unmap(span.base, length);
    if (span.cached) this.#cache.remove(span);
    if (span.listed) sizeClass.unlist(span);
    const first = span.base / this.#pageSize;
    for (let page = 0; page < length / this.#pageSize; page++) {
      this.#spanByPage.delete(first + page);
    }
    this.#spans.delete(span);
    this.#spanBytes -= length;
    this.#released.add(span.base, span.base + length, sizeClass.size);
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
    throw spanRejection(span, address, verb);
  }

  #rejection(address: number, verb: string): Error {
    return rejection(this.#released, this.#large, address, verb);
  }

  #reallocSmall(span: Span, address: number, size: number): number {
    const index = this.#block(span, address, "reallocate");
    const sizeClass = span.sizeClass;
    const old = sizeClass.size - span.slack[index]!;
    if (size <= LARGEST && CLASS_OF[(size + 15) >>> 4] === sizeClass.index) {
      span.slack[index] = sizeClass.size - size;
      this.#counters.liveBytes += size - old;
      return address;
    }
    // Move: allocate first, so that a failure leaves the old block untouched; when freeing the
    // old block then fails (the OS refused an unmap), the new one is freed again.
    const moved = size <= LARGEST ? this.#mallocSmall(size) : this.#mallocLarge(size);
    const offset = address - span.base;
    const kept = Math.min(sizeClass.size, size);
    this.#view(moved, kept).set(span.bytes.subarray(offset, offset + kept));
    try {
      this.#freeSmall(span, index);
    } catch (error) {
      this.#undo(moved, size);
      throw error;
    }
    this.#counters.allocated(size);
    this.#counters.freed(old);
    return moved;
  }

  /**
   * Frees the block that `#mallocSmall` or `#mallocLarge` just made at `address` (`size` bytes),
   * after the call that wanted it failed. If the OS refuses that too, the block stays allocated,
   * counted as live, until `close`.
   */
  #undo(address: number, size: number): void {
    try {
      const span = this.#spanOf(address);
      if (span === undefined) this.#large.unmap(address);
      else this.#freeSmall(span, (address - span.base) / span.sizeClass.size);
    } catch {
      this.#counters.allocated(size); // two refusals in a row: the first is the caller's error
    }
  }

  // --- large blocks -----------------------------------------------------------------------------

  /** A mapping of its own for `size` bytes; not counted. */
  #mallocLarge(size: number): number {
    const address = this.#large.map(size);
    this.#released.forget(address, address + this.#large.lengthOf(address));
    return address;
  }

  #reallocLarge(address: number, size: number): number {
    const length = this.#large.lengthOf(address);
    if (length < 0) throw this.#rejection(address, "reallocate");
    if (size <= LARGEST) {
      const moved = this.#mallocSmall(size);
      this.#view(moved, size).set(this.#large.view(address, size));
      let old: number;
      try {
        old = this.#large.unmap(address);
      } catch (error) {
        this.#undo(moved, size);
        throw error;
      }
      this.#counters.allocated(size);
      this.#counters.freed(old);
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

  /** Throws {@linkcode HeapClosedError} for `operation` once the allocator is closed. */
  #open(operation: string): void {
    if (this.#closed) throw new HeapClosedError(operation);
  }

  #notePeaks(): void {
    this.#counters.notePeaks(this.#spanBytes + this.#large.mappedBytes);
  }
}
