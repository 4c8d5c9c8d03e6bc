/**
 * Segregated size classes: every page holds blocks of one size only, and the page tells the size.
 * The design of tcmalloc's spans and mimalloc's pages, the one modern mallocs are built on.
 *
 * ## Size classes
 *
 * A request up to 64 KiB is rounded up to one of 44 *size classes* (see _segregated_classes.ts for
 * the table): multiples of 16 up to 128 bytes, then four per doubling (160, 192, 224, 256, 320,
 * ..., 57344, 65536), so that every block is 16-byte aligned and a request wastes at most a fifth
 * of its block above 128 bytes. The class of a request is one table lookup, by the request in
 * 16-byte granules: `CLASS_INDEX[(size + 15) >> 4]`; `malloc(100)` takes class 6, 112 bytes.
 *
 * 64 KiB is the largest class: a larger request gets whole pages of its own (65537 bytes take
 * 69632), from `mmap` or from the pages of large blocks freed before, kept in the same page cache
 * as PseudoMalloc's (`src/_mappings.ts`: best fit, split and merged, a bounded budget). Medium
 * requests (a few KiB to 64 KiB: I/O buffers, small images) are classes too,
 * not a mapping each: a `mmap` and `munmap` per block cost microseconds, a class's block tens of
 * nanoseconds.
 *
 * ## Spans
 *
 * A class takes memory in *spans*: one `mmap` of the fewest whole pages that hold at least 8 of its
 * blocks (one 4 KiB page up to the 512-byte class, 2 pages for 640..1024, 3 for 1280 and 1536, 4
 * for 1792 and 2048, 5 to 8 pages for 2560..4096); above 4 KiB, as many blocks as fit in 32 KiB,
 * at least one (6 of 5120 in 8 pages, 2 of 16384, one of 65536 in 16 pages), so that one live
 * medium block pins little memory beside it. A span holds blocks of its class only, packed from
 * its start; the tail that no whole block fits in (at most 1/16 of the span: 256 bytes of a 4 KiB
 * page for 320 and 384, 2048 bytes of 32 KiB for 5120) stays unused.
 *
 * Each span's metadata lives in JavaScript, outside the native memory, in one `Int32Array`: a tag
 * per block (requested size + 1 of a live block, 0 for a free one) and a stack of the blocks freed
 * since the span was last empty; a *bump* index says where the blocks never handed out since then
 * begin (see _spans.ts). A page table maps each page to its span (see _segregated_pages.ts: the
 * page's 16 MiB window, then one array load), so the span of any address is found by rounding it
 * down to its page:
 *
 * ```
 * free(0x7f1234563c30):  page 0x7f1234563 → span of class 48 at 0x7f1234563000
 *                        offset 0xc30 = 3120 = 65 × 48 → block 65; tag 41 (40 bytes) → free it
 * free(0x7f1234563c40):  offset 3136 = 65 × 48 + 16 → not a block start: InvalidFreeError
 * ```
 *
 * The block's index is found without a division (see _segregated_heap.ts).
 *
 * ## malloc and free
 *
 * Each class keeps a doubly linked list of its spans that have a free block. `malloc` takes the
 * list's head span, pops its free stack (or, when it is empty, takes the block at the bump index),
 * and drops the span from the list when it becomes full; when the list is empty it maps a new span.
 * `free` clears the block's tag, pushes its index on the stack and puts a span that was full back
 * at the head of its list. The span of the last free is remembered: a free in the same span (a
 * malloc/free pair, a structure freed in the order it was built) skips the page table.
 *
 * A span whose last block is freed starts over (stack empty, bump at 0: its blocks are handed out
 * in address order again), stays mapped, at its list's tail so that partly used spans are filled
 * first, and joins a cache of empty spans of all classes. The cache holds at most
 * `spanCacheBytes` (8 MiB by default, the floor of {@linkcode PseudoMalloc}'s cache of released
 * large mappings); beyond that the span emptied longest ago is unmapped. A span that gets a block
 * again leaves the cache (its bytes at once; its place in the cache's list when it comes up, see
 * _spans.ts). Without a cache, a program that builds and frees a large structure in phases maps
 * and unmaps every span at every phase (twice the time on a binary-trees workload); evicting the
 * oldest rather than the newest empty span keeps a malloc/free loop of any class from mapping and
 * unmapping at every turn when the cache is full of other classes' spans.
 *
 * `realloc` stays in place when the new size falls in the same class; otherwise it moves.
 *
 * ## Costs
 *
 * - `malloc`: O(1): a table lookup, the list head, a pop or a bump. Plus one `mmap` per new span,
 *   and per large request that the page cache cannot serve.
 * - `free`: O(1): the page table (a comparison for the last span's, else a window and an array
 *   load), a multiplication, a tag, a push; one `munmap` per span evicted from the cache.
 * - Space: no header in the blocks. Outside the native memory, per span: 8 bytes per block (tag
 *   and stack slot) and a small object; per 16 MiB window holding spans, one array of a pointer per
 *   page (32 KiB). Per large block: one record.
 * - Internal fragmentation: rounding up to the class, at most 15 bytes per block up to 128 bytes
 *   and at most a fifth of the block above; a span's unused tail; large blocks round up to pages.
 * - External fragmentation: memory of one class never serves another: after a phase of many small
 *   blocks, their spans stay mapped (one live block pins a whole span) and cannot serve other
 *   sizes. Medium classes keep a span each as long as one of their blocks lives (up to 32 KiB):
 *   a program growing buffers through them pins one span per class.
 *
 * ## Misuse it detects, and what gets through
 *
 * The metadata is outside the native memory, so no write by the program (past a block's end, or
 * after a free) can corrupt the allocator's own state. Checks on every `free`, `realloc`,
 * `usableSize` and `bytes`: an address on no span page and no large block is foreign; an offset
 * that is not a multiple of the class size is interior (or misaligned); an offset past the span's
 * last whole block is in its unused tail; a zero tag is a double free, except for a block never
 * handed out, which is an invalid free. An address in a span or large block recently given back to
 * the OS is reported as a double free.
 *
 * It cannot detect: a write past a block's end (there is no canary: it silently changes the next
 * block's data); a use after free; a double free of a block that has meanwhile been handed out
 * again (the second free frees the new owner's block).
 *
 * ## Interior addresses
 *
 * `blockOf`, `bytesAt`, `view` and `dataView` take any byte of a live block. A small block in
 * O(1): the page table gives the span, a division the block, its tag whether it is live. A large
 * block: its page and up to 15 pages below (records are keyed by start), then a sorted array of the
 * large blocks' starts, bisected (see _block_starts.ts).
 *
 * @module
 */

// This file: the public class, its checks and counters, and the fast paths of malloc and free. The
// state and the paths below the checks (small and large blocks, spans, the cache, realloc's moves)
// are in _segregated_heap.ts; the size classes in _segregated_classes.ts; the page table in
// _segregated_pages.ts; spans, the class lists and the cache of empty spans in _spans.ts; validate
// and the diagnosis of a bad address in _segregated_inspect.ts; options and stats types in
// _segregated_options.ts.

import type { Allocator } from "../allocator.ts";
import { HeapClosedError } from "../errors.ts";
import { reallocEdge } from "../_checks.ts";
import { callocSize, checkSize, roundUp, viewLength } from "../_size.ts";
import { libcOs } from "../../ffi/libc.ts";
import { checkSpans, snapshot, spanRecords } from "./_segregated_inspect.ts";
import {
  type SegregatedOptions,
  type SegregatedSpan,
  type SegregatedStats,
  spanCacheLimit,
} from "./_segregated_options.ts";
import { CLASS_INDEX, SIZE_CLASSES } from "./_segregated_classes.ts";
import { SegregatedHeap, WINDOW } from "./_segregated_heap.ts";
import type { BlockInfo } from "../heap/types.ts";
import { dataViewOf, type TypedArrayConstructor, typedView } from "../_views.ts";
import { lookable, noBlock } from "./_block_access.ts";
import { bytesFrom } from "../_views.ts";
import { BlockStarts } from "../_block_starts.ts";

export { DEFAULT_SPAN_CACHE_BYTES } from "./_segregated_options.ts";
export {
  CLASS_INDEX,
  LARGEST_SIZE_CLASS,
  MAX_SPAN_BYTES,
  MIN_BLOCKS_PER_SPAN,
  SIZE_CLASSES,
} from "./_segregated_classes.ts";
export type { SegregatedOptions, SegregatedSpan, SegregatedStats };

// The class table and the largest class (LARGEST_SIZE_CLASS), bound in this file for the fast
// paths: V8 folds a module's own constants into its code, but loads and checks an imported or
// exported one at every use (measured: 1.5 ns more per malloc/free pair).
const CLASS_OF: Uint8Array = CLASS_INDEX;
const LARGEST = 65536;
const TO_WINDOW = 1 / WINDOW;

/**
 * A size-class malloc: each span of pages holds blocks of one class, found from an address by
 * rounding it down to its page; requests above 64 KiB get their own `mmap`. Metadata is kept
 * outside the native memory: a tag per block and a free stack per span. Needs `--allow-ffi`.
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
  #heap: SegregatedHeap;
  /** For `blockOf` only: the large blocks' starts, sorted when a deep interior address needs them. */
  #largeStarts: BlockStarts;

  /**
   * Creates an empty heap; spans are mapped on first use.
   *
   * @param options How many bytes of empty spans to keep, and the OS; optional.
   * @throws {RangeError} When `spanCacheBytes` is not a non-negative integer or `Infinity`.
   * @throws {Deno.errors.NotCapable} Without `--allow-ffi`.
   */
  constructor(options: SegregatedOptions = {}) {
    const limit = spanCacheLimit(options);
    this.#heap = new SegregatedHeap(options.os ?? libcOs, limit);
    this.#largeStarts = new BlockStarts(this.#heap.pageSize);
  }

  /** The OS page size in bytes. */
  get pageSize(): number {
    return this.#heap.pageSize;
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
      : roundUp(size, this.#heap.pageSize);
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
    // The common case, kept small enough for V8 to inline into the caller with free's: a whole
    // number of bytes up to the largest class, on an open heap.
    const heap = this.#heap;
    if (typeof size === "number" && size <= LARGEST && size >= 0 && (size | 0) === size) {
      if (!heap.closed) {
        const address = heap.mallocSmall(size); // notes the mapped peak when it maps a span
        heap.counters.allocated(size);
        heap.counters.noteLivePeak();
        return address;
      }
    }
    return heap.mallocOther(size);
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
    const heap = this.#heap;
    if (heap.closed) throw new HeapClosedError("calloc");
    return heap.calloc(callocSize(count, size));
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
    const heap = this.#heap;
    const edge = reallocEdge(this, heap.closed, address, size);
    if (edge !== -1) return edge;
    return heap.realloc(address, size);
  }

  /**
   * Frees a block. `free(0)` does nothing.
   *
   * @param address A block this heap returned, or 0.
   * @throws {InvalidFreeError} When `address` is foreign, inside a block, or in a span's tail.
   * @throws {DoubleFreeError} When the block is already free.
   *
   * @example The block's tag catches a double free
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
    // The common case, kept small enough for V8 to inline: a block of the span of the last free
    // (one subtraction and two comparisons find it), else of the span the page table names. What
    // goes to calls V8 may not inline are small integers (a span's offset, the address split in
    // two), never the address: a number above 2^31 would be boxed into a heap object per call.
    const heap = this.#heap;
    if (typeof address === "number" && !heap.closed) {
      const span = heap.last;
      const offset = address - span.base;
      if (offset >= 0 && offset < span.length) return heap.freeIn(span, offset);
      const high = Math.floor(address * TO_WINDOW);
      if (heap.freeSplit(high, address - high * WINDOW)) return;
    }
    heap.freeOther(address); // 0, a large block, foreign, not a number, or a closed heap
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
   * assert.equal(heap.usableSize(heap.malloc(3000)), 3072);
   * const pages = Math.ceil(100_000 / heap.pageSize);
   * assert.equal(heap.usableSize(heap.malloc(100_000)), pages * heap.pageSize);
   * ```
   */
  usableSize(address: number): number {
    const heap = this.#heap;
    if (heap.closed) throw new HeapClosedError("usableSize");
    const span = heap.spanOf(address);
    if (span !== undefined) {
      heap.block(span, address, "find the size of");
      return span.sizeClass.size;
    }
    const length = heap.large.lengthOf(address);
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
    return this.#heap.view(address, wanted);
  }

  /**
   * The live block that holds `address`: any byte of it, not only its start (C hands back interior
   * pointers). A small block in O(1): the page table gives the span, a division the block, its
   * tag whether it is live. A large block: its page and up to 15 pages below (O(1)), then, deeper
   * inside it, a sorted array of the large blocks' starts, searched by bisection (O(log large
   * blocks); remade, O(large blocks log large blocks), when blocks came or went since it was made).
   *
   * @param address An address inside a live block.
   * @returns The block's start and usable size (its class, or a large block's whole pages).
   * @throws {InvalidAddressError} When no live block holds `address` (a free block, a span's unused
   *   tail, freed or foreign pages, not an integer).
   * @throws {TypeError} When `address` is not a number.
   * @throws {HeapClosedError} After `close()`.
   *
   * @example The element of an array that C points at
   * ```ts
   * import { SegregatedAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new SegregatedAllocator();
   * const array = heap.malloc(10 * 8); // class 80
   * const element = array + 3 * 8;
   * assert.deepEqual(heap.blockOf(element), { address: array, size: 80 });
   * ```
   */
  blockOf(address: number): BlockInfo {
    const heap = this.#heap;
    if (!lookable(heap.closed, address)) throw noBlock(address, "it is not an integer");
    const span = heap.spanOf(address);
    if (span !== undefined) {
      const size = span.sizeClass.size;
      const index = Math.floor((address - span.base) / size);
      if (index >= span.capacity) throw noBlock(address, "it is in the unused tail of a span");
      if (span.blocks[index] === 0) throw noBlock(address, "it lies in a free block");
      return { address: span.base + index * size, size };
    }
    const counters = heap.counters;
    const version = counters.totalAllocations + counters.totalFrees;
    const start = this.#largeStarts.find(address, heap.large, version);
    if (start < 0) throw noBlock(address);
    return { address: start, size: heap.large.lengthOf(start) };
  }

  /**
   * `length` bytes from any address inside a live block, bounded by that block's end.
   *
   * @param address An address inside a live block.
   * @param length Bytes to cover; at most to the block's end (the default).
   * @returns A view of the memory.
   * @throws {InvalidAddressError} When no live block holds `address`.
   * @throws {RangeError} When `length` passes the block's end.
   *
   * @example The second half of a block
   * ```ts
   * import { SegregatedAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new SegregatedAllocator();
   * const address = heap.malloc(16);
   * heap.bytes(address).set([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
   * assert.deepEqual([...heap.bytesAt(address + 8, 4)], [8, 9, 10, 11]);
   * assert.throws(() => heap.bytesAt(address + 8, 9), RangeError);
   * ```
   */
  bytesAt(address: number, length?: number): Uint8Array {
    return bytesFrom(this, address, length);
  }

  /**
   * A typed view (`Type`: any typed-array constructor) from `address`, inside a live block, to
   * the block's end or `length` elements.
   *
   * @param address An address inside a live block, aligned for `Type`.
   * @param Type `Int32Array`, `Float64Array`, `BigUint64Array`, ...
   * @param length Elements; as many as fit to the block's end by default.
   * @returns The view.
   * @throws {InvalidAddressError} When no live block holds `address`.
   * @throws {RangeError} When `address` is not aligned for `Type`, or `length` passes the block's end.
   *
   * @example An array of doubles
   * ```ts
   * import { SegregatedAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new SegregatedAllocator();
   * const address = heap.malloc(4 * 8);
   * const xs = heap.view(address, Float64Array);
   * xs.set([1.5, 2.5, 3.5, 4.5]);
   * assert.equal(heap.view(address + 8, Float64Array, 1)[0], 2.5);
   * assert.throws(() => heap.view(address + 4, Float64Array), RangeError); // misaligned
   * ```
   */
  view<T>(address: number, Type: TypedArrayConstructor<T>, length?: number): T {
    return typedView(this.bytesAt(address), address, Type, length);
  }

  /**
   * A `DataView` from `address`, inside a live block, to the block's end or `length` bytes.
   *
   * @param address An address inside a live block.
   * @param length Bytes; to the block's end by default.
   * @returns The view.
   * @throws {InvalidAddressError} When no live block holds `address`.
   * @throws {RangeError} When `length` passes the block's end.
   *
   * @example Fields of mixed types
   * ```ts
   * import { SegregatedAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new SegregatedAllocator();
   * const view = heap.dataView(heap.malloc(20));
   * view.setInt32(0, 7, true);
   * view.setFloat64(8, 0.5, true);
   * assert.equal(view.getInt32(0, true), 7);
   * assert.equal(view.byteLength, 32); // the class of 20 bytes
   * ```
   */
  dataView(address: number, length?: number): DataView {
    return dataViewOf(this.bytesAt(address), address, length);
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
    return snapshot(this.#heap);
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
    return spanRecords(this.#heap);
  }

  /**
   * Checks every invariant: each span's tags, free stack and bump index against its live count
   * and its high-water mark; the recorded requests against the class; the page table and the
   * table of spans; each class's list (exactly the spans with room, linked both ways); the cache
   * (every empty span on its list, linked both ways, its bytes exactly the empty spans', within its
   * budget); and the counters. Throws an `Error` naming the first broken one.
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
    checkSpans(this.#heap);
  }

  /**
   * Checks the allocator for damage. This design keeps no redzones or quarantine (PseudoMalloc's
   * debug mode does), so it checks the invariants: the same as `validate()`.
   *
   * @example After some work
   * ```ts
   * import { SegregatedAllocator } from "@pseudo/malloc";
   *
   * using heap = new SegregatedAllocator();
   * heap.free(heap.malloc(100));
   * heap.check();
   * ```
   */
  check(): void {
    this.validate();
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
    this.#heap.close();
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

  #rejection(address: number, verb: string): Error {
    return this.#heap.rejection(address, verb);
  }

  /** Throws {@linkcode HeapClosedError} for `operation` once the allocator is closed. */
  #open(operation: string): void {
    if (this.#heap.closed) throw new HeapClosedError(operation);
  }
}
