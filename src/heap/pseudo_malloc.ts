/**
 * The heap: buddy arenas for small requests, one mapping per large request.
 *
 * A request below `mmapThreshold` (a quarter page, 1024 bytes on 4 KiB pages) goes to a *buddy
 * arena*: a 1 MiB mapping managed by a {@linkcode BuddyAllocator}, served in JavaScript with no FFI
 * call. A request at or above the threshold gets its own `mmap`, rounded up to whole pages, and
 * `free` gives it back with `munmap` (or keeps it for reuse, see `src/_mappings.ts`).
 *
 * ```
 *   malloc(100) ──▶ arena 0 (1 MiB, aligned to 1 MiB)     malloc(5000) ──▶ mmap(8192)
 *                   ┌──────────────────────────────┐                        ┌──────────┐
 *                   │128│ free │  256  │   free     │ …                      │ 5000 + … │
 *                   └──────────────────────────────┘                        └──────────┘
 *                   bitmap: 1 bit per tree node (16 KiB)                    Map: address → length
 * ```
 *
 * This file is the public class and its fast paths: a small `malloc` that pops a block of its
 * order from the block cache, a `free` that pushes one back. Where the rest lives:
 * - `_core.ts`: the heap's state and every slow path (`outOfLine`), large blocks, realloc, trim
 *   and close;
 * - `_block_cache.ts`: freed blocks parked per order (64 KiB per order at most);
 * - `_arenas.ts`: mapping arenas and finding the arena of an address;
 * - `_tag_table.ts`: the shadow table of tags (requested size + 1 per block start) of low arenas;
 * - `_low_memory.ts`: the window below 2^31 where arenas are mapped, so addresses stay small
 *   integers;
 * - `_inspect.ts`, `_heap_map.ts`: stats, validate, heapMap, liveAllocations;
 * - `_debug.ts` (with `_debug_block.ts`, `_debug_quarantine.ts`, `_debug_guarded.ts`): debug mode's
 *   redzones, quarantine, guard pages, allocation sites and leak report; `_options.ts`: options
 *   checked.
 *
 * The fast paths follow the rules of `docs/hot_paths.md`: they read typed arrays held directly in
 * fields, compute in 32-bit integers (low addresses are below 2^31), make no object, and hand
 * anything else to one out-of-line function too big for V8 to inline into a hot loop.
 *
 * @module
 */

import type { Allocator } from "../allocator.ts";
import { type CAllocator, cAllocator, type CAllocatorOptions } from "../c/c_allocator.ts";
import type { Counters } from "../_counters.ts";
import { checkOpen, notAnAddress, reallocEdge } from "../_checks.ts";
import { hex, InvalidAddressError } from "../errors.ts";
import { viewLength } from "../_size.ts";
import { addressFrom, libcOs, pointerFrom } from "../../ffi/libc.ts";
import type { CACHE_ORDER_BYTES } from "./_block_cache.ts";
import { CALLOC, FREE, HeapCore, MALLOC } from "./_core.ts";
import { DebugHeap, installDebugHooks, reportLeaks } from "./_debug.ts";
import { heapPicture, heapStats, liveBlocks, validateHeap } from "./_inspect.ts";
import { LOW_LIMIT } from "./_low_memory.ts";
import { resolveOptions } from "./_options.ts";
import { releaseSpares } from "./_spares.ts";
import type {
  BlockInfo,
  HeapStats,
  LiveAllocation,
  PseudoMallocOptions,
  ScopedBlock,
} from "./types.ts";
import {
  bytesFrom,
  cStringBytes,
  dataViewOf,
  readCStringFrom,
  type TypedArrayConstructor,
  typedView,
} from "../_views.ts";

export type {
  ArenaStats,
  BlockInfo,
  DebugOptions,
  DebugStats,
  HeapStats,
  LiveAllocation,
  PseudoMallocOptions,
  ScopedBlock,
} from "./types.ts";
export type { TypedArrayConstructor } from "../_views.ts";
export { CACHE_DEPTH, CACHE_ORDER_BYTES } from "./_block_cache.ts";
export { DEBUG_FILL } from "./_debug_block.ts";

/**
 * `CACHE_ORDER_BYTES`, as a constant of this module: TurboFan folds a module's own constant into
 * the fast paths' code, but loads an imported one from its cell on every use (measured: 0.8 ns of
 * a 12 ns pair). The type keeps the two equal. The stack of order k takes
 * `ORDER_BYTES >> (minShift + k)` blocks and starts at `((ORDER_BYTES >> minShift) - that) << 1`
 * (`cacheLimit`, `cacheBase` in `_block_cache.ts`): two shifts, no load of a per-order limit.
 */
const ORDER_BYTES: typeof CACHE_ORDER_BYTES = 65536;

/**
 * A malloc for native memory: buddy arenas for small requests, `mmap` for large ones. Addresses are
 * plain numbers; {@linkcode PseudoMalloc.prototype.bytes} gives a `Uint8Array` over a block and
 * {@linkcode PseudoMalloc.prototype.pointer} a pointer for FFI calls. Needs `--allow-ffi`.
 *
 * @example Allocate, write, free
 * ```ts
 * import { PseudoMalloc } from "@pseudo/malloc";
 * import assert from "node:assert/strict";
 *
 * using heap = new PseudoMalloc();
 * const address = heap.malloc(100);
 * assert.equal(heap.usableSize(address), 128);
 * heap.bytes(address, 5).set([104, 101, 108, 108, 111]);
 * assert.equal(new TextDecoder().decode(heap.bytes(address, 5)), "hello");
 * heap.free(address);
 * ```
 */
export class PseudoMalloc implements Allocator {
  #core: HeapCore;
  /** Debug mode's layer (`_debug.ts`); its hooks shadow the prototype's hot methods. */
  #debug: DebugHeap | undefined;
  #onLeaks: (leaks: LiveAllocation[]) => void;
  // The fast paths' state, held directly in fields (docs/hot_paths.md): the same arrays and
  // counters as the core's, read without going through another object.
  /** The threshold while open, 0 once closed: one comparison sends every call to the slow path. */
  #smallLimit: number;
  #minBlockSize: number;
  #minShift: number;
  /** `LOW_LIMIT` while the shadow table exists, 0 before and once closed: `free`'s guard. */
  #lowEnd = 0;
  #shadow: Uint16Array | Uint32Array | undefined;
  #cacheBlock: Int32Array;
  #cacheCount: Int32Array;
  #cacheLimit: Int32Array;
  #counters: Counters;

  /**
   * Creates a heap. Arenas are mapped on first use.
   *
   * @param options Arena size, minimum block, mmap threshold and arena limit; all optional.
   * @throws {RangeError} When an option is out of range.
   * @throws {Deno.errors.NotCapable} Without `--allow-ffi`.
   */
  constructor(options: PseudoMallocOptions = {}) {
    const config = resolveOptions(options);
    const core = new HeapCore(config);
    this.#core = core;
    this.#smallLimit = config.threshold;
    this.#minBlockSize = config.minBlockSize;
    this.#minShift = config.minShift;
    this.#cacheBlock = core.cache.block;
    this.#cacheCount = core.cache.count;
    this.#cacheLimit = core.cache.limit;
    this.#counters = core.counters;
    core.onTableChange = () => {
      this.#shadow = core.closed ? undefined : core.tags.tags;
      this.#lowEnd = this.#shadow === undefined ? 0 : LOW_LIMIT;
      if (core.closed) this.#smallLimit = 0;
    };
    this.#onLeaks = config.onLeaks ?? reportLeaks;
    if (config.debug !== undefined) {
      const prototype = PseudoMalloc.prototype;
      this.#debug = new DebugHeap(config.debug, core, {
        malloc: (size) => prototype.malloc.call(this, size),
        free: (address) => prototype.free.call(this, address),
        usableSize: (address) => prototype.usableSize.call(this, address),
      });
      installDebugHooks(this, this.#debug);
    }
  }

  /**
   * Unmaps what closed heaps on the default OS (`libcOs`) left for the next heap: their empty
   * arenas (at most 4 MiB are kept) and their shadow tag tables (at most 2). A heap made afterwards
   * maps its own again. `close()` keeps an empty arena mapped, clean, while that budget has room,
   * so that the next heap's first block costs no system call; call this when no heap will be made
   * for a while. The calls it makes are counted by no heap's `stats().systemCalls`.
   *
   * @returns The bytes of arenas unmapped.
   * @throws {OsError} When `munmap` fails: what was unmapped is gone, the rest stays kept.
   *
   * @example Giving back the spares
   * ```ts
   * import { PseudoMalloc } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * const heap = new PseudoMalloc();
   * heap.free(heap.malloc(100));
   * heap.close(); // its empty 1 MiB arena stays mapped for the next heap
   * assert.ok(PseudoMalloc.releaseSpares() >= 1 << 20);
   * assert.equal(PseudoMalloc.releaseSpares(), 0);
   * ```
   */
  static releaseSpares(): number {
    return releaseSpares(libcOs);
  }

  /** The OS page size in bytes. */
  get pageSize(): number {
    return this.#core.config.pageSize;
  }

  /** Requests of at least this many bytes get their own mapping. */
  get mmapThreshold(): number {
    return this.#core.config.threshold;
  }

  /**
   * Allocates `size` bytes. The memory is not cleared.
   *
   * @param size Bytes wanted; 0 gives a unique minimal block that must be freed too.
   * @returns The block's address: `minBlockSize`-aligned for small blocks, page-aligned for large.
   * @throws {TypeError} When `size` is not a number.
   * @throws {RangeError} When `size` is negative, fractional, not finite or above 2^47.
   * @throws {OutOfMemoryError} When no arena has room and no more memory can be mapped.
   *
   * @example A small and a large block
   * ```ts
   * import { PseudoMalloc } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new PseudoMalloc();
   * const small = heap.malloc(24);
   * const large = heap.malloc(10_000);
   * assert.equal(small % 16, 0);
   * assert.equal(large % heap.pageSize, 0);
   * heap.free(small);
   * heap.free(large);
   * ```
   */
  malloc(size: number): number {
    // The common case first: a valid small size on an open heap, and a cached block of its order.
    if (typeof size === "number" && size < this.#smallLimit && size >= 0 && (size | 0) === size) {
      const address = this.#takeCached(size, this.#orderOf(size));
      if (address !== 0) return address;
    }
    return this.#core.outOfLine(MALLOC, size, 0);
  }

  /**
   * Allocates zeroed memory for `count` elements of `size` bytes.
   *
   * @param count Number of elements.
   * @param size Bytes per element.
   * @returns The block's address.
   * @throws {RangeError} When an argument is invalid or `count * size` exceeds 2^47.
   * @throws {OutOfMemoryError} When no memory can be had.
   *
   * @example Zeroed memory
   * ```ts
   * import { PseudoMalloc } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new PseudoMalloc();
   * const address = heap.calloc(10, 4);
   * assert.ok(heap.bytes(address).every((byte) => byte === 0));
   * heap.free(address);
   * ```
   */
  calloc(count: number, size: number): number {
    // The common case inline (see `malloc`): small whole numbers whose product is a small block of
    // an order with a cached block, then cleared. Types first: `count * size` of a bigint throws.
    if (typeof count === "number" && typeof size === "number") {
      const total = count * size;
      if (
        total < this.#smallLimit && count >= 0 && size >= 0 && (count | 0) === count &&
        (size | 0) === size
      ) {
        const order = this.#orderOf(total);
        const address = this.#takeCached(total, order);
        if (address !== 0) {
          this.#core.clear(address, order);
          return address;
        }
      }
    }
    return this.#core.outOfLine(CALLOC, count, size);
  }

  /**
   * Resizes a block, C style: `realloc(0, n)` is `malloc(n)`; `realloc(a, 0)` frees `a` and returns
   * 0. A block stays where it is when the new size fits (shrinking gives memory back); otherwise the
   * contents move to a new block, up to the smaller of the two sizes. Large blocks grow with
   * `mremap` on Linux, without copying. If it throws, the old block is untouched.
   *
   * @param address A live block, or 0.
   * @param size The new size in bytes.
   * @returns The block's address, which may differ from `address`; 0 when `size` is 0.
   * @throws {InvalidFreeError} When `address` is not a live block of this heap.
   * @throws {DoubleFreeError} When `address` was freed.
   * @throws {OutOfMemoryError} When the new block cannot be had.
   *
   * @example Growing a block keeps its contents
   * ```ts
   * import { PseudoMalloc } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new PseudoMalloc();
   * let address = heap.malloc(4);
   * heap.bytes(address, 4).set([1, 2, 3, 4]);
   * address = heap.realloc(address, 100_000);
   * assert.deepEqual([...heap.bytes(address, 4)], [1, 2, 3, 4]);
   * heap.free(address);
   * ```
   */
  realloc(address: number, size: number): number {
    const edge = reallocEdge(this, this.#core.closed, address, size);
    return edge !== -1 ? edge : this.#core.realloc(address, size);
  }

  /**
   * Frees a block. `free(0)` does nothing.
   *
   * @param address A block this heap returned, or 0.
   * @throws {InvalidFreeError} When `address` is foreign, interior to a block, or misaligned.
   * @throws {DoubleFreeError} When the block is already free.
   *
   * @example Free is idempotent only for 0
   * ```ts
   * import { PseudoMalloc } from "@pseudo/malloc";
   *
   * using heap = new PseudoMalloc();
   * heap.free(heap.malloc(8));
   * heap.free(0);
   * ```
   */
  free(address: number): void {
    // The common case, kept small enough for V8 to inline into the caller: a live block of a low
    // arena (its tag is in the shadow table) whose order's cache has room (64 KiB of its blocks).
    if (typeof address === "number" && address < this.#lowEnd && address > 0) {
      const index = address >>> this.#minShift;
      // A whole number of minimum blocks: shifted back, `index` gives the address again.
      if (index << this.#minShift === address) {
        const tag = this.#shadow![index]!;
        const order = this.#orderOf(tag - 1);
        const count = this.#cacheCount[order]!;
        // The stack's capacity: 64 KiB of blocks of this order (`_block_cache.ts`).
        const room = ORDER_BYTES >> (this.#minShift + order);
        if (tag !== 0 && count < room) {
          this.#shadow![index] = 0;
          this.#cacheBlock[(((ORDER_BYTES >> this.#minShift) - room) << 1) + count] = address;
          this.#cacheCount[order] = count + 1;
          this.#counters.freed(tag - 1);
          return;
        }
      }
    }
    this.#freeHigh(address);
  }

  /**
   * The usable size of a live block: what the block really holds, at least what was requested.
   *
   * @param address A live block.
   * @returns Its size in bytes (128 for a 100-byte request; whole pages for a large block).
   * @throws {InvalidAddressError} When `address` is not a live block of this heap.
   *
   * @example Rounded up to a power of two
   * ```ts
   * import { PseudoMalloc } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new PseudoMalloc();
   * assert.equal(heap.usableSize(heap.malloc(100)), 128);
   * ```
   */
  usableSize(address: number): number {
    const core = this.#core;
    checkOpen(core.closed, "usableSize");
    if (typeof address !== "number") throw notAnAddress(address, "find the size of");
    const arena = core.arenas.arenaOf(address);
    if (arena !== undefined) {
      const offset = address - arena.base;
      const tag = core.arenas.tagOf(arena, offset);
      if (tag === 0) throw core.smallRejection(arena, offset, "find the size of");
      return this.#minBlockSize << this.#orderOf(tag - 1);
    }
    const length = core.large.lengthOf(address);
    if (length < 0) throw core.large.rejection(address, "find the size of");
    return length;
  }

  /**
   * A `Uint8Array` over a live block. Small blocks share one view per arena (a cheap `subarray`).
   * The view dies with the block: after `free`, or after a `realloc` that moves or shrinks it, do
   * not touch it (the memory may be unmapped, which kills the process).
   *
   * @param address A live block.
   * @param length Bytes to cover, at most the usable size (the default).
   * @returns A view of the block's memory.
   * @throws {InvalidAddressError} When `address` is not a live block.
   * @throws {RangeError} When `length` is negative or beyond the usable size.
   *
   * @example Writing through a view
   * ```ts
   * import { PseudoMalloc } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new PseudoMalloc();
   * const address = heap.malloc(16);
   * const view = heap.bytes(address, 4);
   * view.set([1, 2, 3, 4]);
   * assert.equal(heap.bytes(address)[3], 4);
   * ```
   */
  bytes(address: number, length?: number): Uint8Array {
    checkOpen(this.#core.closed, "bytes");
    const usable = this.usableSize(address);
    return this.#core.view(address, viewLength(address, length, usable));
  }

  /**
   * The live block that holds `address`: any byte of it, not only its start (C hands back interior
   * pointers: a `qsort` comparator gets element addresses).
   *
   * @param address An address inside a live block.
   * @returns The block's start and usable size.
   * @throws {InvalidAddressError} When no live block holds `address`.
   *
   * @example The element of an array that C points at
   * ```ts
   * import { PseudoMalloc } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new PseudoMalloc();
   * const array = heap.malloc(10 * 8);
   * const element = array + 3 * 8;
   * assert.equal((element - heap.blockOf(element).address) / 8, 3);
   * ```
   */
  blockOf(address: number): BlockInfo {
    const core = this.#core;
    checkOpen(core.closed, "blockOf");
    if (typeof address !== "number") throw notAnAddress(address, "find the block of");
    if (!Number.isInteger(address)) {
      throw new InvalidAddressError(
        `Cannot find the block of ${hex(address)}: it is not an integer`,
        address,
      );
    }
    if (this.#debug !== undefined) {
      const block = this.#debug.blockOf(address);
      if (block !== undefined) return block;
    } else {
      const start = core.startOf(address);
      if (start >= 0) return { address: start, size: this.usableSize(start) };
    }
    throw new InvalidAddressError(
      `Cannot find the block of ${hex(address)}: no live block of this heap holds it`,
      address,
    );
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
   * @example Reading the second half of a block
   * ```ts
   * import { PseudoMalloc } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new PseudoMalloc();
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
   * A typed view (`Type`: any typed-array constructor) of native memory from `address`, inside a
   * live block, to the block's end or `length` elements: no hand-made `DataView`, and never the
   * whole arena behind a block's `bytes().buffer`.
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
   * import { PseudoMalloc } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new PseudoMalloc();
   * const address = heap.malloc(4 * 8);
   * const xs = heap.view(address, Float64Array);
   * xs.set([1.5, 2.5, 3.5, 4.5]);
   * assert.equal(xs.length, 4);
   * assert.equal(heap.view(address + 8, Float64Array, 1)[0], 2.5);
   * assert.throws(() => heap.view(address + 4, Float64Array), RangeError); // misaligned
   * ```
   */
  view<T>(address: number, Type: TypedArrayConstructor<T>, length?: number): T {
    return typedView(this.bytesAt(address), address, Type, length);
  }

  /**
   * A `DataView` of native memory from `address`, inside a live block, to the block's end or
   * `length` bytes.
   *
   * @param address An address inside a live block.
   * @param length Bytes; to the block's end by default.
   * @returns The view.
   * @throws {InvalidAddressError} When no live block holds `address`.
   * @throws {RangeError} When `length` passes the block's end.
   *
   * @example Fields of mixed types
   * ```ts
   * import { PseudoMalloc } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new PseudoMalloc();
   * const address = heap.malloc(24);
   * const view = heap.dataView(address);
   * view.setInt32(0, 7, true);
   * view.setFloat64(8, 0.5, true);
   * assert.equal(view.getInt32(0, true), 7);
   * assert.equal(view.byteLength, 32); // the block's usable size
   * ```
   */
  dataView(address: number, length?: number): DataView {
    return dataViewOf(this.bytesAt(address), address, length);
  }

  /**
   * Allocates a NUL-terminated UTF-8 copy of `text`, for C.
   *
   * @param text The text; it must not hold a NUL itself.
   * @returns The address of the copy (free it when C is done with it).
   * @throws {TypeError} When `text` is not a string or holds a NUL.
   * @throws {OutOfMemoryError} When no memory can be had.
   *
   * @example A C string round trip
   * ```ts
   * import { PseudoMalloc } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new PseudoMalloc();
   * const address = heap.cstring("héllo");
   * assert.equal(heap.bytes(address, 7)[6], 0); // 6 bytes of UTF-8, then the NUL
   * assert.equal(heap.readCString(address), "héllo");
   * heap.free(address);
   * ```
   */
  cstring(text: string): number {
    const bytes = cStringBytes(text);
    const address = this.malloc(bytes.byteLength);
    this.bytes(address, bytes.byteLength).set(bytes);
    return address;
  }

  /**
   * Decodes the NUL-terminated UTF-8 string at `address` (any address inside a live block), never
   * reading past the block's end.
   *
   * @param address Where the string starts.
   * @param maxLength Bytes to read at most (then the text so far, as `strnlen` would stop).
   * @returns The text, without its NUL.
   * @throws {InvalidAddressError} When no live block holds `address`.
   * @throws {RangeError} When the block ends before a NUL (and before `maxLength`).
   *
   * @example What C wrote
   * ```ts
   * import { PseudoMalloc } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new PseudoMalloc();
   * const address = heap.malloc(16);
   * heap.bytes(address).set(new TextEncoder().encode("abc\0"));
   * assert.equal(heap.readCString(address), "abc");
   * assert.equal(heap.readCString(address, 2), "ab");
   * ```
   */
  readCString(address: number, maxLength?: number): string {
    return readCStringFrom(this.bytesAt(address), address, maxLength);
  }

  /**
   * Allocates a block that is freed at the end of a `using` scope: a temporary buffer for one call.
   * (An object per call: the convenience path, not the fast one.)
   *
   * @param size Bytes.
   * @returns The block; disposing of it twice frees it once.
   * @throws {RangeError} When `size` is invalid.
   * @throws {OutOfMemoryError} When no memory can be had.
   *
   * @example An out-parameter for one call
   * ```ts
   * import { PseudoMalloc } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new PseudoMalloc();
   * {
   *   using out = heap.scoped(8);
   *   heap.view(out.address, BigInt64Array)[0] = 42n; // as C would fill it
   *   assert.equal(heap.view(out.address, BigInt64Array)[0], 42n);
   * }
   * assert.equal(heap.stats().liveAllocations, 0);
   * ```
   */
  scoped(size: number): ScopedBlock {
    const address = this.malloc(size);
    let live = true;
    return {
      address,
      size,
      pointer: this.pointer(address),
      bytes: () => this.bytes(address, size),
      [Symbol.dispose]: () => {
        if (!live) return;
        live = false;
        if (!this.#core.closed) this.free(address);
      },
    };
  }

  /**
   * A `Deno.PointerValue` for an address (or an address inside a block), to pass to FFI
   * `"pointer"` parameters. 0 gives `null`.
   *
   * @param address A native address.
   * @returns The pointer.
   *
   * @example Passing a block to strlen
   * ```ts ignore
   * const libc = Deno.dlopen("libc.so.6", {
   *   strlen: { parameters: ["pointer"], result: "usize" },
   * });
   * const heap = new PseudoMalloc();
   * const address = heap.malloc(6);
   * heap.bytes(address).set(new TextEncoder().encode("hello\0"));
   * console.log(libc.symbols.strlen(heap.pointer(address))); // 5n
   * ```
   */
  pointer(address: number): Deno.PointerValue {
    checkOpen(this.#core.closed, "pointer");
    if (!Number.isSafeInteger(address) || address < 0) {
      throw new RangeError(`Cannot make a pointer of ${address}: it is not an address`);
    }
    return pointerFrom(address);
  }

  /**
   * The numeric address of an FFI pointer; `null` gives 0. The inverse of
   * {@linkcode PseudoMalloc.prototype.pointer}.
   *
   * @param pointer A pointer from FFI.
   * @returns Its address.
   *
   * @example Round trip
   * ```ts
   * import { PseudoMalloc } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new PseudoMalloc();
   * const address = heap.malloc(8);
   * assert.equal(heap.addressOf(heap.pointer(address)), address);
   * ```
   */
  addressOf(pointer: Deno.PointerValue): number {
    checkOpen(this.#core.closed, "addressOf");
    return addressFrom(pointer);
  }

  /**
   * C function pointers (`malloc`, `free`, `calloc`, `realloc`, `usable_size`) that serve a C
   * library from this heap. See {@linkcode cAllocator} for the details and the options.
   *
   * @param options Error reporting and thread safety; see {@linkcode CAllocatorOptions}.
   * @returns The callbacks; close them (or use `using`) when the C library is done.
   *
   * @example Calling the C malloc through its function pointer
   * ```ts
   * import { C_ALLOCATOR_DEFINITIONS, PseudoMalloc } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new PseudoMalloc();
   * using c = heap.cAllocator();
   * const malloc = new Deno.UnsafeFnPointer(c.malloc, C_ALLOCATOR_DEFINITIONS.malloc);
   * const free = new Deno.UnsafeFnPointer(c.free, C_ALLOCATOR_DEFINITIONS.free);
   * const address = malloc.call(24n);
   * assert.equal(heap.stats().liveAllocations, 1);
   * free.call(address);
   * ```
   */
  cAllocator(options?: CAllocatorOptions): CAllocator {
    return cAllocator(this, options);
  }

  /**
   * The heap's counters: what is mapped, what is live (requested bytes and block bytes apart),
   * peaks and totals.
   *
   * @returns A fresh snapshot. `systemCalls` counts the calls this heap made: a heap that took what
   *   a closed heap left (its tag table, an empty arena) counts none for them, and the one that
   *   reserved the table counts that reservation.
   *
   * @example Requested and allocated bytes
   * ```ts
   * import { PseudoMalloc } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new PseudoMalloc();
   * heap.malloc(100);
   * const stats = heap.stats();
   * assert.equal(stats.liveBytes, 100);
   * assert.equal(stats.allocatedBytes, 128);
   * assert.equal(stats.arenas, 1);
   * ```
   */
  stats(): HeapStats {
    checkOpen(this.#core.closed, "stats");
    const stats = heapStats(this.#core);
    return this.#debug === undefined ? stats : this.#debug.adjust(stats);
  }

  /**
   * Checks every invariant: each arena's buddy state, and that the counters agree with the blocks
   * really live. Throws an `Error` naming the first broken one. Slow: for tests and debugging.
   *
   * @example After some work
   * ```ts
   * import { PseudoMalloc } from "@pseudo/malloc";
   *
   * using heap = new PseudoMalloc();
   * heap.free(heap.malloc(100));
   * heap.validate();
   * ```
   */
  validate(): void {
    checkOpen(this.#core.closed, "validate");
    validateHeap(this.#core);
    this.#debug?.validate();
  }

  /**
   * Checks the heap for damage: in debug mode every live block's redzones and every quarantined
   * block's bytes (see {@linkcode DebugOptions}), after every invariant (`validate()`); without
   * debug, the invariants alone. Throws the first corruption found, repaired so that it is
   * reported once; returns nothing when all is intact. Slow: it reads every byte it checks.
   *
   * @throws {HeapOverflowError} When a redzone of a live block changed.
   * @throws {UseAfterFreeError} When a quarantined block changed.
   * @throws {Error} When an invariant is broken (as `validate()`).
   *
   * @example Finding a write past the end, made by C
   * ```ts
   * import { HeapOverflowError, PseudoMalloc } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * const libc = Deno.dlopen(Deno.build.os === "darwin" ? "libc.dylib" : "libc.so.6", {
   *   memset: { parameters: ["pointer", "i32", "usize"], result: "pointer" },
   * });
   * using heap = new PseudoMalloc({ debug: true });
   * const address = heap.malloc(24);
   * libc.symbols.memset(heap.pointer(address), 0, 25n); // one byte too many
   * assert.throws(() => heap.check(), (error: HeapOverflowError) => error.offset === 24);
   * heap.check(); // reported once: the redzone was repaired
   * heap.free(address);
   * libc.close();
   * ```
   */
  check(): void {
    checkOpen(this.#core.closed, "check");
    this.validate();
    this.#debug?.check();
  }

  /**
   * Gives memory back: merges every cached free block into its arena's buddy, unmaps the arenas
   * that are entirely free, and unmaps the large mappings kept for reuse. Like C's `malloc_trim`.
   * After it, each arena with no live block is gone, and the others hold only live blocks and
   * fully merged free blocks. In debug mode the quarantine is emptied first, each block checked as
   * it leaves (a changed one is a {@linkcode UseAfterFreeError}, thrown once it is freed).
   *
   * @returns The number of bytes unmapped.
   *
   * @example Releasing an emptied arena
   * ```ts
   * import { PseudoMalloc } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new PseudoMalloc();
   * heap.free(heap.malloc(100));
   * assert.equal(heap.stats().arenas, 1);
   * assert.equal(heap.trim(), 1 << 20);
   * assert.equal(heap.stats().arenas, 0);
   * ```
   */
  trim(): number {
    checkOpen(this.#core.closed, "trim");
    const released = this.#debug?.drain() ?? 0; // debug mode: the quarantine goes first
    return released + this.#core.trim();
  }

  /**
   * A picture of the heap. As text (the default), for a terminal: per arena a header and 16 rows of
   * 64 cells, each cell `arenaSize / 1024` bytes shaded from `·` (free) through `░▒▓` to `█` (all
   * live), then a line for the large mappings. As SVG: per arena 32 rows of 32 cells, every block a
   * rectangle at its place (a block smaller than a cell a part of it, so the buddy splits show down
   * to 16 bytes), live blue, cached amber, free grey, with a legend and scale; then the large
   * mappings.
   *
   * @param options `format`: `"text"` (default) or `"svg"`.
   * @returns The picture.
   *
   * @example Printing the map
   * ```ts
   * import { PseudoMalloc } from "@pseudo/malloc";
   *
   * using heap = new PseudoMalloc();
   * heap.malloc(100);
   * console.log(heap.heapMap());
   * const svg = heap.heapMap({ format: "svg" }); // for a file or a page
   * ```
   */
  heapMap(options: { format?: "text" | "svg" } = {}): string {
    checkOpen(this.#core.closed, "heapMap");
    return heapPicture(this.#core, options.format);
  }

  /**
   * Lists the live blocks: address and requested size, and in debug mode the allocation site.
   * Small blocks come arena by arena in address order, then the large ones.
   *
   * @returns The live blocks.
   *
   * @example Finding what is still allocated
   * ```ts
   * import { PseudoMalloc } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new PseudoMalloc({ debug: true });
   * const address = heap.malloc(24);
   * const [block] = heap.liveAllocations();
   * assert.equal(block!.address, address);
   * assert.match(block!.site!, /\.ts:\d+:\d+/); // where malloc was called
   * heap.free(address);
   * ```
   */
  liveAllocations(): LiveAllocation[] {
    checkOpen(this.#core.closed, "liveAllocations");
    return this.#debug?.liveAllocations() ?? liveBlocks(this.#core, undefined);
  }

  /**
   * Unmaps every arena and large block, except that on the default OS up to 4 MiB of empty arenas
   * and the shadow tag table stay mapped, clean, for the next heap (see
   * {@linkcode PseudoMalloc.releaseSpares}). Every later method call except `close` throws
   * {@linkcode HeapClosedError}; closing twice does nothing. Views of the heap's memory die:
   * touching one kills the process, or, in a kept arena, writes into the next heap's memory.
   *
   * @example Explicit close
   * ```ts
   * import { PseudoMalloc } from "@pseudo/malloc";
   *
   * const heap = new PseudoMalloc();
   * heap.malloc(10);
   * heap.close();
   * ```
   */
  close(): void {
    if (this.#core.closed) return;
    const debug = this.#debug;
    const leaks = debug === undefined ? [] : debug.leaks();
    // The OS may refuse half-way (OsError): the heap stays open, and what close unmapped is freed.
    // (In debug mode the guarded blocks go first; a refusal among them leaves the rest as it was.)
    debug?.close();
    try {
      this.#core.close();
    } catch (error) {
      debug?.forgetUnmapped(new Set(liveBlocks(this.#core, undefined).map((b) => b.address)));
      throw error;
    }
    if (leaks.length > 0) this.#onLeaks(leaks); // once, when the heap is really closed
  }

  /**
   * Same as {@linkcode PseudoMalloc.prototype.close}, for `using heap = new PseudoMalloc()`.
   *
   * @example Scoped heap
   * ```ts
   * import { PseudoMalloc } from "@pseudo/malloc";
   *
   * {
   *   using heap = new PseudoMalloc();
   *   heap.malloc(10);
   * } // unmapped here
   * ```
   */
  [Symbol.dispose](): void {
    this.close();
  }

  /** The order of the block that serves `size` bytes (as `HeapCore.orderOf`, inline here). */
  #orderOf(size: number): number {
    // ceil(log2(size)) - log2(minBlockSize): 100 -> 7 - 4 = 3, a 128-byte block.
    return size <= this.#minBlockSize ? 0 : 32 - Math.clz32(size - 1) - this.#minShift;
  }

  /**
   * The fast path of `malloc` and `calloc`: a cached block of `order` for `size` bytes, or 0 when
   * the order's stack is empty. A block of a low arena is popped here, its tag written into the
   * shadow table; one of an arena above 2^31 takes one lookup more, in the core.
   */
  #takeCached(size: number, order: number): number {
    const count = this.#cacheCount[order]! - 1;
    if (count < 0) return 0;
    const shift = this.#minShift;
    const base = ((ORDER_BYTES >> shift) - (ORDER_BYTES >> (shift + order))) << 1;
    let address = this.#cacheBlock[base + count]!;
    if (address !== 0) {
      this.#cacheCount[order] = count;
      this.#shadow![address >>> this.#minShift] = size + 1;
      this.#counters.allocated(size);
    } else {
      address = this.#core.mallocSmall(size, order);
    }
    this.#counters.noteLivePeak(); // nothing was mapped
    return address;
  }

  /**
   * `free`'s fast path for a block of an arena above 2^31 whose order's cache has room; anything
   * else goes on to the core's out-of-line path, with the arena found. Apart from `free`, so that
   * V8 inlines it only where it runs often.
   */
  #freeHigh(address: number): void {
    const arenas = this.#core.arenas;
    // No arena is found once the heap is closed: `outOfLine` throws then.
    const arena = typeof address === "number" && address !== 0
      ? arenas.arenaOf(address)
      : undefined;
    if (arena !== undefined && !arena.low) {
      const offset = address - arena.base;
      const tag = arenas.tagOf(arena, offset);
      const order = this.#orderOf(tag - 1);
      const count = this.#cacheCount[order]!;
      if (tag !== 0 && count < this.#cacheLimit[order]!) {
        arena.tags[offset >>> this.#minShift] = 0;
        this.#core.cache.park(arena, offset, order, count);
        this.#counters.freed(tag - 1);
        return;
      }
    }
    // -2: looked, and no arena holds it (a large block): `outOfLine` need not look again.
    this.#core.outOfLine(FREE, address, arena === undefined ? -2 : arena.index);
  }
}
