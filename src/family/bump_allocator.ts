/**
 * The arena (region) allocator: one big mapping, a pointer that only moves forward, and a
 * `reset()` that takes everything back at once.
 *
 * ## Algorithm
 *
 * The constructor maps one pool (`size` bytes, 64 MiB by default). `top` is the offset of its
 * first unused byte. `malloc(n)` writes a 16-byte header at `top`, returns the 16 bytes after it,
 * and moves `top` past the block, rounded up to 16 bytes. `free` only marks the header; the memory
 * is not reused until `reset()` moves `top` back to 0 and so releases every block in one store.
 *
 * ```
 *   pool  ┌────────┬───────┬────────┬─────────────┬────────┬─────┬──────────────────────────┐
 *         │ header │ 100 B │ header │   5000 B    │ header │ 8 B │      never touched       │
 *         │  LIVE  │  +12  │  FREE  │   (dead)    │  LIVE  │ +8  │  (no page behind it yet) │
 *         └────────┴───────┴────────┴─────────────┴────────┴─────┴──────────────────────────┘
 *         0                                                      ▲ top                  size
 * ```
 *
 * The header, read as C: `struct { uint64_t size; uint32_t state; uint32_t check; }` in host byte
 * order. `size` is the request, `state` spells `LIVE`, `FREE` or `PAD_` in a hex dump, and `check`
 * is a hash of the block's offset, its size and the number of resets so far. The header is what
 * `usableSize`, `realloc` and the statistics read, and what `validate()` walks: the pool below
 * `top` is an unbroken chain of header + block records (`_bump_pool.ts` writes and reads them).
 *
 * `realloc` of the block nearest `top` grows or shrinks it in place by moving `top`. Another block
 * stays in place when it shrinks (its tail becomes a `PAD_` record, dead until reset); when it grows
 * it is copied to a new block at `top` and the old one is marked free.
 *
 * ## Costs
 *
 * - Time: `malloc` is a bounds check, four 32-bit stores and a pointer bump, O(1) and no system
 *   call; `free` checks the header and makes one store; `reset()` is O(1) and touches no memory.
 *   `calloc` clears only memory that a block used before a reset: pages above the highest `top`
 *   ever reached are still fresh from `mmap`, hence zero.
 * - Space: 16 bytes of header per block and rounding to 16 bytes (7.5 bytes on average), so a
 *   16-byte node takes 32. Freed memory is never reused before `reset()`: a program that frees as
 *   it goes fills the pool with dead blocks, and `stats().usedBytes - allocatedBytes` measures that
 *   waste. The design suits phases (build a structure, use it, drop it all), not long-lived heaps.
 * - The default 64 MiB pool costs nothing up front: `mmap` reserves address space and the kernel
 *   backs a page only when it is first touched. Touched pages stay resident until `close()`: a
 *   reset does not give them back, so the next phase runs without page faults.
 *
 * ## Misuse detected
 *
 * Everything below is checked when an address is freed, reallocated, sized or viewed; the
 * allocator never writes through an address it has not verified, and after a throw it is as before.
 *
 * - Exactly: addresses outside the pool, not 16-byte aligned, or at or beyond `top` (never
 *   allocated, or released by a reset and not yet handed out again).
 * - Interior addresses and overwritten headers: the 16 bytes before an address must be a header
 *   whose `check` matches; stray data passes with probability 2^-32. An overflow that reaches the
 *   next block's header is reported at that block's next `free`, `realloc` or `usableSize`, and
 *   by `validate()`.
 * - Double free: the `FREE` state word makes a second `free` throw {@linkcode DoubleFreeError},
 *   until `reset()`. After a reset a stale address is beyond `top`, or inside newer data (the
 *   `check` word, which includes the reset count, fails), or, by chance, exactly the address of a
 *   new block: then it frees that block, which no allocator that reuses addresses can tell.
 * - Not detected: use after free and overflows that stay inside the pool's data. Before a reset
 *   they are harmless to the allocator (nothing is reused); after it they alias newer blocks.
 *
 * ## Interior addresses
 *
 * `blockOf`, `bytesAt`, `view` and `dataView` take any byte of a live block (and the start of a
 * 0-byte one). Nothing but the headers records the blocks, so two searches run in lockstep: the
 * chain of headers from the pool's start (exact) and, from the address down, every 16-byte
 * position until an intact header whose record covers the address and is followed by another
 * (data taken for one must match four 32-bit words). O(the smaller of the blocks below the address
 * and its distance from its block's start / 16): O(1) near either; a block's start is one header
 * check, as for `free`. `_bump_pool.ts`'s `recordOf` has the details.
 *
 * @module
 */

// This file: the public class, its checks and counters. The pool itself (the mapping, the bump
// pointer, the headers, the walk of validate() and the diagnosis of a bad address) is a BumpPool,
// in _bump_pool.ts; the options, the pool size's check and the stats type are in _bump_options.ts.

import type { Allocator } from "../allocator.ts";
import { HeapClosedError, OutOfMemoryError } from "../errors.ts";
import { Counters } from "../_counters.ts";
import { reallocEdge } from "../_checks.ts";
import { callocSize, checkSize, roundUp, viewLength } from "../_size.ts";
import { libcOs } from "../../ffi/libc.ts";
import { CountingOs } from "../../ffi/counting_os.ts";
import type { BlockInfo } from "../heap/types.ts";
import { dataViewOf, type TypedArrayConstructor, typedView } from "../_views.ts";
import { BumpPool } from "./_bump_pool.ts";
import { lookable, noBlock } from "./_block_access.ts";
import { bytesFrom } from "../_views.ts";
import { type BumpAllocatorOptions, type BumpStats, poolSize } from "./_bump_options.ts";

export type { BumpAllocatorOptions, BumpStats };

/**
 * An arena allocator: one pool mapped once, a bump pointer per request, `free` that only marks the
 * block, and {@linkcode BumpAllocator.prototype.reset} that releases every block at once. Blocks
 * are 16-byte aligned with a 16-byte header before each. Needs `--allow-ffi`.
 *
 * @example One phase of work, then reset
 * ```ts
 * import { BumpAllocator } from "@pseudo/malloc";
 * import assert from "node:assert/strict";
 *
 * using arena = new BumpAllocator();
 * const first = arena.malloc(24);
 * const second = arena.malloc(24);
 * assert.equal(second - first, 48); // 32-byte block + 16-byte header
 * arena.reset();
 * assert.equal(arena.malloc(24), first);
 * ```
 */
export class BumpAllocator implements Allocator {
  #pool: BumpPool;
  #resets = 0;
  #counters = new Counters();
  #calls: CountingOs;
  #closed = false;

  /**
   * Maps the pool.
   *
   * @param options The pool size and the OS; optional.
   * @throws {RangeError} When `size` is not a positive integer up to 2^47.
   * @throws {OutOfMemoryError} When the OS refuses to map the pool; `errno` tells why.
   * @throws {Deno.errors.NotCapable} Without `--allow-ffi`.
   *
   * @example Default and custom pools
   * ```ts
   * import { BumpAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using big = new BumpAllocator();
   * using small = new BumpAllocator({ size: 10_000 });
   * assert.equal(big.poolSize, 64 * 1024 * 1024);
   * assert.equal(small.poolSize % 4096, 0); // rounded up to whole pages
   * ```
   */
  constructor(options: BumpAllocatorOptions = {}) {
    const os = this.#calls = new CountingOs(options.os ?? libcOs);
    this.#pool = new BumpPool(os, poolSize(options, os.pageSize()));
  }

  /**
   * Bytes of the pool, the most that can be live (headers included) between resets.
   *
   * @returns The pool size, a whole number of pages.
   *
   * @example The default pool
   * ```ts
   * import { BumpAllocator } from "@pseudo/malloc";
   *
   * using arena = new BumpAllocator();
   * console.log(arena.poolSize); // 67108864
   * ```
   */
  get poolSize(): number {
    return this.#pool.size;
  }

  /**
   * Allocates `size` bytes at the bump pointer. The memory is not cleared.
   *
   * @param size Bytes wanted; 0 gives a unique block of no usable bytes that must be freed too.
   * @returns The block's address, 16-byte aligned.
   * @throws {TypeError} When `size` is not a number.
   * @throws {RangeError} When `size` is negative, fractional, not finite or above 2^47.
   * @throws {OutOfMemoryError} When the pool has no room left; `reset()` makes room.
   *
   * @example Consecutive blocks
   * ```ts
   * import { BumpAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using arena = new BumpAllocator();
   * const a = arena.malloc(1);
   * const b = arena.malloc(1);
   * assert.equal(b, a + 32);
   * assert.equal(arena.usableSize(a), 16);
   * ```
   */
  malloc(size: number): number {
    this.#open("malloc");
    checkSize(size, "allocate");
    const address = this.#allocate(size, "allocate");
    this.#notePeaks();
    return address;
  }

  /**
   * Allocates zeroed memory for `count` elements of `size` bytes. Only memory used before a reset
   * is cleared; the rest of the pool is still zero from `mmap`.
   *
   * @param count Number of elements.
   * @param size Bytes per element.
   * @returns The block's address, 16-byte aligned.
   * @throws {TypeError} When an argument is not a number.
   * @throws {RangeError} When an argument is invalid or `count * size` exceeds 2^47.
   * @throws {OutOfMemoryError} When the pool has no room left.
   *
   * @example Zeroed after a reset
   * ```ts
   * import { BumpAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using arena = new BumpAllocator();
   * arena.bytes(arena.malloc(64)).fill(0xff);
   * arena.reset();
   * const address = arena.calloc(8, 8);
   * assert.ok(arena.bytes(address).every((byte) => byte === 0));
   * ```
   */
  calloc(count: number, size: number): number {
    this.#open("calloc");
    const total = callocSize(count, size);
    // Only what a block used before a reset is dirty: above the high-water mark the pool is still
    // zero from mmap.
    const pool = this.#pool;
    const dirty = pool.highWater;
    const address = this.#allocate(total, "allocate");
    const block = address - pool.base;
    if (block < dirty) pool.u8.fill(0, block, Math.min(block + roundUp(total, 16), dirty));
    this.#notePeaks();
    return address;
  }

  /**
   * Resizes a block, C style: `realloc(0, n)` is `malloc(n)`; `realloc(a, 0)` frees `a` and returns
   * 0. The block nearest the bump pointer grows or shrinks in place; any other block stays in place
   * when it shrinks and is copied to a new block when it grows (the old one is then freed). If it
   * throws, the old block is untouched.
   *
   * @param address A live block, or 0.
   * @param size The new size in bytes.
   * @returns The block's address, which may differ from `address`; 0 when `size` is 0.
   * @throws {TypeError} When `size` is not a number.
   * @throws {RangeError} When `size` is invalid.
   * @throws {InvalidFreeError} When `address` is not a live block of this allocator.
   * @throws {DoubleFreeError} When `address` was freed since the last reset.
   * @throws {OutOfMemoryError} When the pool has no room for the new size.
   *
   * @example The newest block grows in place
   * ```ts
   * import { BumpAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using arena = new BumpAllocator();
   * const older = arena.malloc(8);
   * const newest = arena.malloc(8);
   * assert.equal(arena.realloc(newest, 1000), newest);
   * assert.notEqual(arena.realloc(older, 1000), older); // moved past the newest
   * ```
   */
  realloc(address: number, size: number): number {
    const edge = reallocEdge(this, this.#closed, address, size);
    if (edge !== -1) return edge;
    const block = this.#live(address, "reallocate");
    const pool = this.#pool;
    const old = pool.sizeAt(block);
    if (pool.resizeInPlace(block, size)) {
      this.#counters.liveBytes += size - old;
      this.#notePeaks();
      return address;
    }
    // Grow by moving: allocate first, so that a failure leaves the old block untouched.
    const moved = this.#allocate(size, "reallocate");
    pool.u8.copyWithin(moved - pool.base, block, block + pool.usable(block));
    this.#release(block);
    this.#notePeaks();
    return moved;
  }

  /**
   * Marks a block free. Its memory is not reused before {@linkcode BumpAllocator.prototype.reset};
   * the header remembers the free, so a second `free` throws. `free(0)` does nothing.
   *
   * @param address A block this allocator returned since the last reset, or 0.
   * @throws {InvalidFreeError} When `address` is foreign, interior, or was released by a reset.
   * @throws {DoubleFreeError} When the block was already freed since the last reset.
   *
   * @example Free does not give memory back
   * ```ts
   * import { BumpAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using arena = new BumpAllocator();
   * const a = arena.malloc(16);
   * arena.free(a);
   * assert.notEqual(arena.malloc(16), a);
   * ```
   */
  free(address: number): void {
    this.#open("free");
    if (address === 0) return;
    this.#release(this.#live(address, "free"));
  }

  /**
   * Releases every block at once: the bump pointer goes back to the start of the pool. Every
   * address handed out before is invalid afterwards: freeing one throws, unless a newer block
   * happens to start at the same address (see the module notes). Live counters go to 0 and every
   * live block counts as freed in `totalFrees`; peaks and totals are kept. The pages stay mapped
   * and resident, ready for reuse.
   *
   * @throws {HeapClosedError} After `close()`.
   *
   * @example Addresses start over
   * ```ts
   * import { BumpAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using arena = new BumpAllocator();
   * const first = arena.malloc(100);
   * arena.malloc(100);
   * arena.reset();
   * assert.equal(arena.stats().liveAllocations, 0);
   * assert.equal(arena.malloc(100), first);
   * ```
   */
  reset(): void {
    this.#open("reset");
    const counters = this.#counters;
    counters.totalFrees += counters.liveAllocations; // now none is live
    counters.liveBytes = 0;
    this.#pool.reset();
    this.#resets++;
  }

  /**
   * The usable size of a live block: its request rounded up to 16 bytes.
   *
   * @param address A live block.
   * @returns Its size in bytes.
   * @throws {InvalidAddressError} When `address` is not a live block.
   *
   * @example Rounded to 16
   * ```ts
   * import { BumpAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using arena = new BumpAllocator();
   * assert.equal(arena.usableSize(arena.malloc(100)), 112);
   * ```
   */
  usableSize(address: number): number {
    this.#open("usableSize");
    return this.#pool.usable(this.#live(address, "find the size of"));
  }

  /**
   * A `Uint8Array` over a live block: a `subarray` of the pool's one view. It stays valid memory
   * until `close()`, but after `free` or `reset` it may alias a newer block.
   *
   * @param address A live block.
   * @param length Bytes to cover, at most the usable size (the default).
   * @returns A view of the block's memory.
   * @throws {InvalidAddressError} When `address` is not a live block.
   * @throws {RangeError} When `length` is negative or beyond the usable size.
   *
   * @example Writing through a view
   * ```ts
   * import { BumpAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using arena = new BumpAllocator();
   * const address = arena.malloc(3);
   * arena.bytes(address, 3).set([1, 2, 3]);
   * assert.equal(arena.bytes(address).length, 16);
   * ```
   */
  bytes(address: number, length?: number): Uint8Array {
    this.#open("bytes");
    const block = this.#live(address, "view");
    const usable = this.#pool.usable(block);
    const wanted = viewLength(address, length, usable);
    return this.#pool.u8.subarray(block, block + wanted);
  }

  /**
   * The live block that holds `address`: any byte of it, not only its start (C hands back interior
   * pointers), or the start of a 0-byte block. A block's start costs one header check; an interior
   * address a search of the headers (see the module notes): O(the smaller of the blocks below it
   * and its distance from its block's start / 16).
   *
   * @param address An address inside a live block.
   * @returns The block's start and usable size.
   * @throws {InvalidAddressError} When no live block holds `address` (a freed block, a header, a
   *   shrunk block's tail, beyond the bump pointer, not in the pool, not an integer).
   * @throws {TypeError} When `address` is not a number.
   * @throws {HeapClosedError} After `close()`.
   *
   * @example The element of an array that C points at
   * ```ts
   * import { BumpAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using arena = new BumpAllocator({ size: 1 << 20 });
   * const array = arena.malloc(10 * 8);
   * assert.deepEqual(arena.blockOf(array + 3 * 8), { address: array, size: 80 });
   * ```
   */
  blockOf(address: number): BlockInfo {
    const pool = this.#pool;
    if (!lookable(this.#closed, address)) throw noBlock(address, "it is not an integer");
    const block = pool.blockHolding(address);
    return { address: pool.base + block, size: pool.usable(block) };
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
   * import { BumpAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using arena = new BumpAllocator({ size: 1 << 20 });
   * const address = arena.malloc(16);
   * arena.bytes(address).set([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
   * assert.deepEqual([...arena.bytesAt(address + 8, 4)], [8, 9, 10, 11]);
   * assert.throws(() => arena.bytesAt(address + 8, 9), RangeError);
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
   * import { BumpAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using arena = new BumpAllocator({ size: 1 << 20 });
   * const address = arena.malloc(4 * 8);
   * arena.view(address, Float64Array).set([1.5, 2.5, 3.5, 4.5]);
   * assert.equal(arena.view(address + 8, Float64Array, 1)[0], 2.5);
   * assert.throws(() => arena.view(address + 4, Float64Array), RangeError); // misaligned
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
   * import { BumpAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using arena = new BumpAllocator({ size: 1 << 20 });
   * const view = arena.dataView(arena.malloc(24));
   * view.setInt32(0, 7, true);
   * view.setFloat64(8, 0.5, true);
   * assert.equal(view.getInt32(0, true), 7);
   * assert.equal(view.byteLength, 32); // the usable size: 24 rounded up to 16
   * ```
   */
  dataView(address: number, length?: number): DataView {
    return dataViewOf(this.bytesAt(address), address, length);
  }

  /**
   * The counters, plus the bytes below the bump pointer and the number of resets.
   * `allocatedBytes` counts each live block with its header; `mappedBytes` is the pool.
   *
   * @returns A fresh snapshot.
   *
   * @example Live and used bytes
   * ```ts
   * import { BumpAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using arena = new BumpAllocator({ size: 1 << 20 });
   * arena.malloc(100);
   * const stats = arena.stats();
   * assert.equal(stats.liveBytes, 100);
   * assert.equal(stats.allocatedBytes, 128);
   * assert.equal(stats.mappedBytes, 1 << 20);
   * ```
   */
  stats(): BumpStats {
    this.#open("stats");
    return {
      ...this.#counters.snapshot(this.#pool.size, this.#pool.allocated, this.#calls.counts),
      usedBytes: this.#pool.top,
      resets: this.#resets,
    };
  }

  /**
   * Walks the pool from its start to the bump pointer, header by header, and checks that every
   * header is intact (state word and check word), that the records tile the pool exactly up to
   * the bump pointer, and that the counters agree with the live blocks. Throws an `Error` naming
   * the first broken invariant, e.g. a header overwritten by an overflowing write. O(blocks).
   *
   * @example After some work
   * ```ts
   * import { BumpAllocator } from "@pseudo/malloc";
   *
   * using arena = new BumpAllocator();
   * arena.free(arena.malloc(100));
   * arena.validate();
   * ```
   */
  validate(): void {
    this.#open("validate");
    const { live, requested, allocated } = this.#pool.walk();
    const expect = (what: string, actual: number, expected: number): void => {
      if (actual !== expected) {
        throw new Error(
          `BumpAllocator invariant broken: ${what} is ${actual}, headers say ${expected}`,
        );
      }
    };
    expect("liveAllocations", this.#counters.liveAllocations, live);
    expect("liveBytes", this.#counters.liveBytes, requested);
    expect("allocatedBytes", this.#pool.allocated, allocated);
  }

  /**
   * Checks the allocator for damage. This design keeps no redzones or quarantine (PseudoMalloc's
   * debug mode does), so it checks the invariants: the same as `validate()`.
   *
   * @example After some work
   * ```ts
   * import { BumpAllocator } from "@pseudo/malloc";
   *
   * using heap = new BumpAllocator();
   * heap.free(heap.malloc(100));
   * heap.check();
   * ```
   */
  check(): void {
    this.validate();
  }

  /**
   * Unmaps the pool. Every later call except `close` throws {@linkcode HeapClosedError}; closing
   * twice does nothing. Views of the pool die: touching one kills the process.
   *
   * @throws {OsError} When the OS refuses the `munmap`: the arena then stays open and as it was,
   *   and `close` can be called again.
   *
   * @example Explicit close
   * ```ts
   * import { BumpAllocator } from "@pseudo/malloc";
   *
   * const arena = new BumpAllocator();
   * arena.malloc(10);
   * arena.close();
   * ```
   */
  close(): void {
    if (this.#closed) return;
    this.#pool.unmap(); // first: when the OS refuses, the arena stays open as it was
    this.#closed = true;
  }

  /**
   * Same as {@linkcode BumpAllocator.prototype.close}, for `using`.
   *
   * @example Scoped arena
   * ```ts
   * import { BumpAllocator } from "@pseudo/malloc";
   *
   * {
   *   using arena = new BumpAllocator();
   *   arena.malloc(10);
   * } // unmapped here
   * ```
   */
  [Symbol.dispose](): void {
    this.close();
  }

  // --- internals --------------------------------------------------------------------------------

  /** Carves a block of `size` bytes and returns its address; throws when it does not fit. */
  #allocate(size: number, verb: string): number {
    const pool = this.#pool;
    const block = pool.carve(size);
    if (block < 0) {
      throw new OutOfMemoryError(
        `Cannot ${verb} ${size} bytes: the pool has ${
          pool.size - pool.top
        } of ${pool.size} bytes left (a block takes its size rounded up to 16, plus a 16-byte header); reset() frees it`,
      );
    }
    this.#counters.allocated(size);
    return pool.base + block;
  }

  /** Marks the live block at offset `block` free. */
  #release(block: number): void {
    this.#counters.freed(this.#pool.release(block));
  }

  /** The pool offset of the live block at `address`; throws the matching error otherwise. */
  #live(address: number, verb: string): number {
    return this.#pool.live(address, verb);
  }

  /** Throws {@linkcode HeapClosedError} for `operation` once the allocator is closed. */
  #open(operation: string): void {
    if (this.#closed) throw new HeapClosedError(operation);
  }

  #notePeaks(): void {
    this.#counters.notePeaks(this.#pool.size);
  }
}
