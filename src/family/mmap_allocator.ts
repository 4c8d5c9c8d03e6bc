/**
 * The simplest allocator there is: every block is a mapping of its own.
 *
 * ## Algorithm
 *
 * `malloc(n)` asks the kernel for `n` bytes rounded up to whole pages (`mmap`), `free` gives them
 * straight back (`munmap`), and `realloc` resizes the mapping with `mremap` (on Linux the kernel
 * moves the page-table entries, not the bytes; elsewhere it maps, copies and unmaps). The allocator
 * itself keeps one small record per live block, keyed by address, in a `Map`.
 *
 * ```
 *   malloc(100)  ──▶ mmap(4096)   ┌─100─┬──── unused ────┐
 *   malloc(5000) ──▶ mmap(8192)   ┌────5000────┬── unused ──┐
 *   free(a)      ──▶ munmap(a, length)
 * ```
 *
 * ## Costs
 *
 * - Time: one system call per `malloc`, `free` and page-changing `realloc`, plus a page fault on
 *   the first touch of every page and a TLB shootdown per `munmap`. That is thousands of times the
 *   cost of a free-list pop, which is the point of the design: it shows why every real malloc
 *   serves small requests from memory it already holds. `calloc` is free: fresh pages are zero.
 * - Space: every block takes whole pages, so a 16-byte request occupies 4096 bytes (99.6 %
 *   internal fragmentation); on average half a page is wasted per block. External fragmentation is
 *   the kernel's problem, and none stays behind: freed memory goes back to the OS at once. The
 *   kernel also limits the number of mappings (`vm.max_map_count`, 65530 by default on Linux), so
 *   a program cannot hold more live blocks than that.
 * - Metadata: one JS record per live block; nothing in native memory.
 *
 * ## Misuse detected
 *
 * - Foreign addresses (never returned, or interior to a block): always, since a block exists only
 *   if its address is in the record map. Interior addresses are named as such.
 * - Double free: the last 1024 unmapped addresses are remembered, so freeing one of them again
 *   throws {@linkcode DoubleFreeError} — until the kernel hands the same address to a new block.
 *   Then the stale `free` frees the new block, which no allocator that reuses addresses can tell.
 * - Use after free is the one misuse the OS catches for us: touching an unmapped block faults.
 *   That kills the whole process rather than throwing, so never keep a view past `free`.
 * - Overflow past the block's pages faults the same way; overflow into the page-rounding slack
 *   goes unnoticed.
 *
 * ## Interior addresses
 *
 * `blockOf`, `bytesAt`, `view` and `dataView` take any byte of a live block's pages. The records
 * are keyed by start: the address's page and up to 15 pages below are looked up (O(1)); deeper
 * inside a large block, a sorted array of the starts is bisected, O(log blocks), and remade when
 * blocks came or went since it was made (see _block_starts.ts).
 *
 * @module
 */

import type { Allocator, AllocatorStats } from "../allocator.ts";
import { HeapClosedError, hex } from "../errors.ts";
import { Counters } from "../_counters.ts";
import { reallocEdge } from "../_checks.ts";
import { Mappings } from "../_mappings.ts";
import { callocSize, checkSize, roundUp, viewLength } from "../_size.ts";
import type { Os } from "../../ffi/os.ts";
import { libcOs } from "../../ffi/libc.ts";
import { CountingOs } from "../../ffi/counting_os.ts";
import type { BlockInfo } from "../heap/types.ts";
import { dataViewOf, type TypedArrayConstructor, typedView } from "../_views.ts";
import { lookable, noBlock } from "./_block_access.ts";
import { bytesFrom } from "../_views.ts";
import { BlockStarts } from "../_block_starts.ts";

/**
 * Options of {@linkcode MmapAllocator}.
 *
 * @example Through a given OS
 * ```ts
 * import { libcOs, MmapAllocator, type MmapAllocatorOptions } from "@pseudo/malloc";
 *
 * const options: MmapAllocatorOptions = { os: libcOs };
 * using heap = new MmapAllocator(options);
 * heap.free(heap.malloc(10));
 * ```
 */
export interface MmapAllocatorOptions {
  /**
   * The system calls: a `mmap` per block, its `munmap` on free and close, `mremap` on a realloc
   * that changes its page count. A test passes one that fails on demand. @default {libcOs}
   */
  os?: Os;
}

/**
 * A malloc where every block is its own `mmap` and every `free` its `munmap`: simple, exact about
 * misuse, and slow (one system call per request). Blocks are page-aligned and a whole number of
 * pages long. Needs `--allow-ffi`.
 *
 * @example One mapping per block
 * ```ts
 * import { MmapAllocator } from "@pseudo/malloc";
 * import assert from "node:assert/strict";
 *
 * using heap = new MmapAllocator();
 * const address = heap.malloc(100);
 * assert.equal(address % heap.pageSize, 0);
 * assert.equal(heap.usableSize(address), heap.pageSize);
 * assert.equal(heap.stats().mappedBytes, heap.pageSize);
 * heap.free(address);
 * assert.equal(heap.stats().mappedBytes, 0);
 * ```
 */
export class MmapAllocator implements Allocator {
  #pageSize: number;
  #blocks: Mappings;
  /** For `blockOf` only: the block starts, sorted when a deep interior address needs them. */
  #starts: BlockStarts;
  #counters = new Counters();
  #calls: CountingOs;
  #closed = false;

  /**
   * Creates an allocator. Nothing is mapped until the first request.
   *
   * @param options The OS; optional.
   * @throws {Deno.errors.NotCapable} Without `--allow-ffi`.
   *
   * @example Creating one
   * ```ts
   * import { MmapAllocator } from "@pseudo/malloc";
   *
   * using heap = new MmapAllocator();
   * console.log(heap.stats().mappedBytes); // 0
   * ```
   */
  constructor(options: MmapAllocatorOptions = {}) {
    const os = this.#calls = new CountingOs(options.os ?? libcOs);
    this.#pageSize = os.pageSize();
    this.#blocks = new Mappings(os, { label: "block" });
    this.#starts = new BlockStarts(this.#pageSize);
  }

  /**
   * The OS page size in bytes: every block is a multiple of it.
   *
   * @returns The page size, e.g. 4096.
   *
   * @example Blocks are whole pages
   * ```ts
   * import { MmapAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new MmapAllocator();
   * assert.equal(heap.usableSize(heap.malloc(heap.pageSize + 1)), 2 * heap.pageSize);
   * ```
   */
  get pageSize(): number {
    return this.#pageSize;
  }

  /**
   * Allocates `size` bytes in a mapping of their own. The memory is zero (fresh pages), but
   * portable code should not count on it: use `calloc`.
   *
   * @param size Bytes wanted; 0 gives a unique one-page block that must be freed too.
   * @returns The block's address, page-aligned.
   * @throws {TypeError} When `size` is not a number.
   * @throws {RangeError} When `size` is negative, fractional, not finite or above 2^47.
   * @throws {OutOfMemoryError} When the OS refuses the mapping; `errno` tells why.
   *
   * @example A block per request
   * ```ts
   * import { MmapAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new MmapAllocator();
   * const a = heap.malloc(10);
   * const b = heap.malloc(10);
   * assert.notEqual(a, b);
   * assert.equal(heap.stats().mappedBytes, 2 * heap.pageSize);
   * ```
   */
  malloc(size: number): number {
    this.#open("malloc");
    checkSize(size, "allocate");
    const address = this.#blocks.map(size);
    this.#counters.allocated(size);
    this.#notePeaks();
    return address;
  }

  /**
   * Allocates zeroed memory for `count` elements of `size` bytes. Costs no more than `malloc`:
   * a fresh mapping is already zero, so no byte is written.
   *
   * @param count Number of elements.
   * @param size Bytes per element.
   * @returns The block's address, page-aligned.
   * @throws {TypeError} When an argument is not a number.
   * @throws {RangeError} When an argument is invalid or `count * size` exceeds 2^47.
   * @throws {OutOfMemoryError} When the OS refuses the mapping.
   *
   * @example Zeroed memory
   * ```ts
   * import { MmapAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new MmapAllocator();
   * const address = heap.calloc(100, 8);
   * assert.ok(heap.bytes(address, 800).every((byte) => byte === 0));
   * ```
   */
  calloc(count: number, size: number): number {
    this.#open("calloc");
    const total = callocSize(count, size);
    return this.malloc(total);
  }

  /**
   * Resizes a block, C style: `realloc(0, n)` is `malloc(n)`; `realloc(a, 0)` frees `a` and returns
   * 0. A new size within the same number of pages changes nothing; otherwise the mapping is resized
   * with `mremap` (which may move it without copying) or, where there is none, mapped anew, copied
   * and unmapped. If it throws, the old block is untouched.
   *
   * @param address A live block, or 0.
   * @param size The new size in bytes.
   * @returns The block's address, which may differ from `address`; 0 when `size` is 0.
   * @throws {TypeError} When `size` is not a number.
   * @throws {RangeError} When `size` is invalid.
   * @throws {InvalidFreeError} When `address` is not a live block of this allocator.
   * @throws {DoubleFreeError} When `address` was freed recently.
   * @throws {OutOfMemoryError} When the OS refuses the new size.
   * @throws {OsError} Where there is no `mremap`, when the OS refuses to unmap the old mapping
   *   after the copy (the block then stays where it was).
   *
   * @example Growing keeps the contents
   * ```ts
   * import { MmapAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new MmapAllocator();
   * let address = heap.malloc(3);
   * heap.bytes(address, 3).set([1, 2, 3]);
   * address = heap.realloc(address, 1_000_000);
   * assert.deepEqual([...heap.bytes(address, 3)], [1, 2, 3]);
   * ```
   */
  realloc(address: number, size: number): number {
    const edge = reallocEdge(this, this.#closed, address, size);
    if (edge !== -1) return edge;
    const before = this.#blocks.requestedBytes;
    const moved = this.#blocks.resize(address, size);
    this.#counters.liveBytes += this.#blocks.requestedBytes - before;
    if (moved !== address) {
      this.#counters.totalAllocations++;
      this.#counters.totalFrees++;
    }
    this.#notePeaks();
    return moved;
  }

  /**
   * Frees a block: its pages go back to the OS at once. `free(0)` does nothing.
   *
   * @param address A block this allocator returned, or 0.
   * @throws {InvalidFreeError} When `address` is foreign or interior to a block.
   * @throws {DoubleFreeError} When the block was freed recently (see the module notes).
   * @throws {OsError} When the OS refuses the `munmap`: the block then stays live and intact.
   *
   * @example Free unmaps
   * ```ts
   * import { MmapAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new MmapAllocator();
   * heap.free(heap.malloc(10_000));
   * assert.equal(heap.stats().mappedBytes, 0);
   * ```
   */
  free(address: number): void {
    this.#open("free");
    if (address === 0) return;
    this.#counters.freed(this.#blocks.unmap(address));
  }

  /**
   * The usable size of a live block: its whole pages.
   *
   * @param address A live block.
   * @returns Its mapped length in bytes.
   * @throws {InvalidAddressError} When `address` is not a live block.
   *
   * @example Page-rounded
   * ```ts
   * import { MmapAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new MmapAllocator();
   * assert.equal(heap.usableSize(heap.malloc(1)), heap.pageSize);
   * ```
   */
  usableSize(address: number): number {
    this.#open("usableSize");
    const length = this.#blocks.lengthOf(address);
    if (length < 0) throw this.#blocks.rejection(address, "find the size of");
    return length;
  }

  /**
   * A `Uint8Array` over a live block; one buffer per block, sliced per call. The view dies with the
   * block: after `free`, or a `realloc` that changes its page count, touching it kills the process.
   *
   * @param address A live block.
   * @param length Bytes to cover, at most the usable size (the default).
   * @returns A view of the block's memory.
   * @throws {InvalidAddressError} When `address` is not a live block.
   * @throws {RangeError} When `length` is negative or beyond the usable size.
   *
   * @example Writing through a view
   * ```ts
   * import { MmapAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new MmapAllocator();
   * const address = heap.malloc(4);
   * heap.bytes(address, 4).set([9, 8, 7, 6]);
   * assert.equal(heap.bytes(address)[3], 6);
   * ```
   */
  bytes(address: number, length?: number): Uint8Array {
    this.#open("bytes");
    const usable = this.usableSize(address);
    const wanted = viewLength(address, length, usable);
    return this.#blocks.view(address, wanted);
  }

  /**
   * The live block whose pages hold `address`: any byte of them, not only the block's start (C
   * hands back interior pointers). The records are keyed by start, so: the page of `address` and
   * up to 15 pages below it (O(1), one lookup each), then, deeper inside a large block, a sorted
   * array of the starts, searched by bisection (O(log blocks); remade, O(blocks log blocks), when
   * blocks came or went since it was made).
   *
   * @param address An address inside a live block.
   * @returns The block's start and usable size (its whole pages).
   * @throws {InvalidAddressError} When no live block holds `address` (freed, foreign, not an
   *   integer).
   * @throws {TypeError} When `address` is not a number.
   * @throws {HeapClosedError} After `close()`.
   *
   * @example A pointer into the middle of a buffer
   * ```ts
   * import { MmapAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new MmapAllocator();
   * const buffer = heap.malloc(1 << 20);
   * assert.deepEqual(heap.blockOf(buffer + 700_000), { address: buffer, size: 1 << 20 });
   * ```
   */
  blockOf(address: number): BlockInfo {
    if (!lookable(this.#closed, address)) throw noBlock(address, "it is not an integer");
    const counters = this.#counters;
    const version = counters.totalAllocations + counters.totalFrees;
    const start = this.#starts.find(address, this.#blocks, version);
    if (start < 0) throw noBlock(address);
    return { address: start, size: this.#blocks.lengthOf(start) };
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
   * @example The second page of a block
   * ```ts
   * import { MmapAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new MmapAllocator();
   * const address = heap.malloc(2 * heap.pageSize);
   * heap.bytes(address).fill(7, heap.pageSize);
   * assert.deepEqual([...heap.bytesAt(address + heap.pageSize, 3)], [7, 7, 7]);
   * assert.throws(() => heap.bytesAt(address + heap.pageSize, heap.pageSize + 1), RangeError);
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
   * @example A page of doubles
   * ```ts
   * import { MmapAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new MmapAllocator();
   * const address = heap.malloc(100);
   * const xs = heap.view(address, Float64Array);
   * assert.equal(xs.length, heap.pageSize / 8); // the whole page
   * xs[1] = 2.5;
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
   * import { MmapAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new MmapAllocator();
   * const view = heap.dataView(heap.malloc(16), 16);
   * view.setInt32(0, 7, true);
   * view.setFloat64(8, 0.5, true);
   * assert.equal(view.getInt32(0, true), 7);
   * assert.equal(view.byteLength, 16);
   * ```
   */
  dataView(address: number, length?: number): DataView {
    return dataViewOf(this.bytesAt(address), address, length);
  }

  /**
   * The counters. Every block owns its mapping, so `allocatedBytes` equals `mappedBytes`: the
   * page-rounded sizes of the live blocks.
   *
   * @returns A fresh snapshot.
   *
   * @example Page-rounded accounting
   * ```ts
   * import { MmapAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new MmapAllocator();
   * heap.malloc(100);
   * const stats = heap.stats();
   * assert.equal(stats.liveBytes, 100);
   * assert.equal(stats.allocatedBytes, heap.pageSize);
   * assert.equal(stats.mappedBytes, heap.pageSize);
   * ```
   */
  stats(): AllocatorStats {
    this.#open("stats");
    const mapped = this.#blocks.mappedBytes;
    return this.#counters.snapshot(mapped, mapped, this.#calls.counts);
  }

  /**
   * Checks the invariants: every block is page-aligned and maps exactly its request rounded up to
   * whole pages, and the counters agree with the blocks. Throws an `Error` naming the first broken
   * one.
   *
   * @example After some work
   * ```ts
   * import { MmapAllocator } from "@pseudo/malloc";
   *
   * using heap = new MmapAllocator();
   * heap.free(heap.malloc(100));
   * heap.validate();
   * ```
   */
  validate(): void {
    this.#open("validate");
    let count = 0;
    let requested = 0;
    let mapped = 0;
    for (const [address, length, size] of this.#blocks.entries()) {
      if (address % this.#pageSize !== 0 || length !== roundUp(Math.max(size, 1), this.#pageSize)) {
        throw new Error(
          `MmapAllocator invariant broken: block ${
            hex(address)
          } maps ${length} bytes for a request of ${size}`,
        );
      }
      count++;
      requested += size;
      mapped += length;
    }
    const expect = (what: string, actual: number, expected: number): void => {
      if (actual !== expected) {
        throw new Error(
          `MmapAllocator invariant broken: ${what} is ${actual}, blocks say ${expected}`,
        );
      }
    };
    expect("liveAllocations", this.#counters.liveAllocations, count);
    expect("liveBytes", this.#counters.liveBytes, requested);
    expect("mappedBytes", this.#blocks.mappedBytes, mapped);
    expect("requestedBytes", this.#blocks.requestedBytes, requested);
    this.#blocks.validate();
  }

  /**
   * Checks the allocator for damage. This design keeps no redzones or quarantine (PseudoMalloc's
   * debug mode does), so it checks the invariants: the same as `validate()`.
   *
   * @example After some work
   * ```ts
   * import { MmapAllocator } from "@pseudo/malloc";
   *
   * using heap = new MmapAllocator();
   * heap.free(heap.malloc(100));
   * heap.check();
   * ```
   */
  check(): void {
    this.validate();
  }

  /**
   * Unmaps every live block. Every later call except `close` throws {@linkcode HeapClosedError};
   * closing twice does nothing.
   *
   * @throws {OsError} When the OS refuses a `munmap`: the allocator then stays open with the
   *   blocks not unmapped yet (the ones unmapped before count as freed), and `close` can be called
   *   again.
   *
   * @example Explicit close
   * ```ts
   * import { MmapAllocator } from "@pseudo/malloc";
   *
   * const heap = new MmapAllocator();
   * heap.malloc(10);
   * heap.close();
   * ```
   */
  close(): void {
    if (this.#closed) return;
    const blocks = this.#blocks;
    const count = blocks.count;
    try {
      blocks.close();
    } catch (error) {
      // The blocks unmapped before the refusal are gone: they count as freed.
      this.#counters.totalFrees += count - blocks.count;
      this.#counters.liveBytes = blocks.requestedBytes;
      throw error;
    }
    this.#closed = true;
  }

  /**
   * Same as {@linkcode MmapAllocator.prototype.close}, for `using`.
   *
   * @example Scoped allocator
   * ```ts
   * import { MmapAllocator } from "@pseudo/malloc";
   *
   * {
   *   using heap = new MmapAllocator();
   *   heap.malloc(10);
   * } // unmapped here
   * ```
   */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Throws {@linkcode HeapClosedError} for `operation` once the allocator is closed. */
  #open(operation: string): void {
    if (this.#closed) throw new HeapClosedError(operation);
  }

  #notePeaks(): void {
    this.#counters.notePeaks(this.#blocks.mappedBytes);
  }
}
