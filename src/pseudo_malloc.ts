/**
 * The heap: buddy arenas for small requests, one mapping per large request.
 *
 * ## Routing
 *
 * A request below `mmapThreshold` (a quarter page, 1024 bytes on 4 KiB pages) goes to a *buddy
 * arena*: a 1 MiB mapping managed by a {@linkcode BuddyAllocator}. It is served in JavaScript, with
 * no FFI call. A request at or above the threshold gets its own `mmap`, rounded up to whole pages,
 * and `free` gives it back with `munmap`.
 *
 * ```
 *   malloc(100) ──▶ arena 0 (1 MiB, aligned to 1 MiB)     malloc(5000) ──▶ mmap(8192)
 *                   ┌──────────────────────────────┐                        ┌──────────┐
 *                   │128│ free │  256  │   free     │ …                      │ 5000 + … │
 *                   └──────────────────────────────┘                        └──────────┘
 *                   bitmap: 1 bit per tree node (16 KiB)                    Map: address → length
 * ```
 *
 * ## Finding the owner of an address
 *
 * Arenas are mapped at addresses that are multiples of `arenaSize` (map twice the size, unmap the
 * unaligned ends). So `Math.floor(address / arenaSize)` names the arena that may own an address,
 * and one `Map` lookup finds it, however many arenas there are. An address no arena owns is looked
 * up among the large mappings.
 *
 * ## State kept outside native memory
 *
 * Per arena: the buddy bitmap (2 bits per 16 bytes) and the requested size of each live block
 * (2 bytes per 16 when `mmapThreshold` fits 16 bits), so that `stats()` reports requested bytes
 * apart from block bytes. Per large block: one small record.
 *
 * @module
 */

import {
  BuddyAllocator,
  type BuddyBlock,
  DEFAULT_ARENA_SIZE,
  DEFAULT_MIN_BLOCK_SIZE,
} from "./buddy.ts";
import type { Allocator, AllocatorStats } from "./allocator.ts";
import { HeapClosedError, hex, OutOfMemoryError } from "./errors.ts";
import { Counters } from "./_counters.ts";
import { Mappings } from "./_mappings.ts";
import { checkSize, isPowerOfTwo, MAX_SIZE } from "./_size.ts";
import {
  addressFrom,
  mapMemory,
  memoryView,
  pageSize,
  pointerFrom,
  unmapMemory,
} from "../ffi/libc.ts";

/**
 * Options of {@linkcode PseudoMalloc}. Every field has a default.
 *
 * @example The original design: one fixed 1 MiB arena
 * ```ts
 * import { PseudoMalloc, type PseudoMallocOptions } from "@pseudo/malloc";
 *
 * const options: PseudoMallocOptions = { maxArenas: 1 };
 * using heap = new PseudoMalloc(options);
 * ```
 */
export interface PseudoMallocOptions {
  /** Bytes per buddy arena: a power of two, at least a page, at most 1 GiB. @default {1048576} */
  arenaSize?: number;
  /** Smallest block and alignment of small blocks: a power of two >= 8. @default {16} */
  minBlockSize?: number;
  /**
   * Requests of this many bytes or more get their own mapping; smaller ones go to an arena.
   * At most `arenaSize`. @default {pageSize / 4}
   */
  mmapThreshold?: number;
  /**
   * Most arenas mapped at once; when all are full a small request throws
   * {@linkcode OutOfMemoryError}. `1` is the original design: one fixed arena. @default {Infinity}
   */
  maxArenas?: number;
}

/**
 * A snapshot of a heap's counters, from {@linkcode PseudoMalloc.prototype.stats}.
 *
 * @example Internal fragmentation of the live blocks
 * ```ts
 * import { type HeapStats, PseudoMalloc } from "@pseudo/malloc";
 *
 * using heap = new PseudoMalloc();
 * heap.malloc(100);
 * const stats: HeapStats = heap.stats();
 * console.log(1 - stats.liveBytes / stats.allocatedBytes); // 0.21875: 28 of 128 bytes unused
 * ```
 */
export interface HeapStats extends AllocatorStats {
  /** Buddy arenas mapped now. */
  arenas: number;
  /** Live blocks served by an arena. */
  smallAllocations: number;
  /** Live blocks with their own mapping. */
  largeAllocations: number;
}

/** One buddy arena: its mapping, its allocator and one view over all of it. */
interface Arena {
  base: number;
  buddy: BuddyAllocator;
  bytes: Uint8Array;
  /** Requested size of the live block at each minimum-block index. */
  requested: Uint16Array | Uint32Array;
}

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
  #arenaSize: number;
  #minBlockSize: number;
  #minShift: number;
  #pageSize: number;
  #threshold: number;
  #maxArenas: number;

  #arenas: Arena[] = [];
  #arenaByKey = new Map<number, Arena>();
  #current: Arena | undefined;
  #large: Mappings;
  #closed = false;
  #counters = new Counters();
  #small = 0;

  /**
   * Creates a heap. Arenas are mapped on first use.
   *
   * @param options Arena size, minimum block, mmap threshold and arena limit; all optional.
   * @throws {RangeError} When an option is out of range.
   * @throws {Deno.errors.NotCapable} Without `--allow-ffi`.
   */
  constructor(options: PseudoMallocOptions = {}) {
    this.#pageSize = pageSize();
    this.#large = new Mappings(this.#pageSize, "large block");
    this.#arenaSize = options.arenaSize ?? DEFAULT_ARENA_SIZE;
    this.#minBlockSize = options.minBlockSize ?? DEFAULT_MIN_BLOCK_SIZE;
    this.#threshold = options.mmapThreshold ?? this.#pageSize / 4;
    this.#maxArenas = options.maxArenas ?? Infinity;
    if (!isPowerOfTwo(this.#arenaSize) || this.#arenaSize < this.#pageSize) {
      throw new RangeError(
        `Cannot use arenaSize ${this.#arenaSize}: it must be a power of two of at least the page size (${this.#pageSize})`,
      );
    }
    // The buddy checks the rest of the arena geometry (minBlockSize, at most 1 GiB).
    new BuddyAllocator({
      size: this.#arenaSize,
      minBlockSize: this.#minBlockSize,
      memory: new ArrayBuffer(this.#arenaSize),
    });
    this.#minShift = Math.log2(this.#minBlockSize);
    if (
      !Number.isInteger(this.#threshold) || this.#threshold < 0 ||
      this.#threshold > this.#arenaSize
    ) {
      throw new RangeError(
        `Cannot use mmapThreshold ${this.#threshold}: it must be an integer from 0 to arenaSize (${this.#arenaSize})`,
      );
    }
    if (!(this.#maxArenas >= 0) || (this.#maxArenas % 1 !== 0 && this.#maxArenas !== Infinity)) {
      throw new RangeError(
        `Cannot use maxArenas ${this.#maxArenas}: it must be a non-negative integer or Infinity`,
      );
    }
  }

  /** The OS page size in bytes. */
  get pageSize(): number {
    return this.#pageSize;
  }

  /** Requests of at least this many bytes get their own mapping. */
  get mmapThreshold(): number {
    return this.#threshold;
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
    if (this.#closed) throw new HeapClosedError("malloc");
    checkSize(size, "allocate");
    const address = size < this.#threshold ? this.#mallocSmall(size) : this.#mallocLarge(size);
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
    if (this.#closed) throw new HeapClosedError("calloc");
    checkSize(count, "allocate");
    checkSize(size, "allocate");
    const total = count * size;
    if (total > MAX_SIZE) {
      throw new RangeError(
        `Cannot allocate ${count} × ${size} bytes: the product exceeds the largest possible mapping (2^47 bytes)`,
      );
    }
    let address: number;
    if (total >= this.#threshold) {
      address = this.#mallocLarge(total); // a fresh mapping is already zero
    } else {
      address = this.#mallocSmall(total);
      const arena = this.#arenaOf(address)!;
      const offset = address - arena.base;
      arena.bytes.fill(0, offset, offset + arena.buddy.blockSize(offset));
    }
    this.#notePeaks();
    return address;
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
    if (this.#closed) throw new HeapClosedError("realloc");
    if (address === 0) return this.malloc(size);
    checkSize(size, "reallocate");
    if (size === 0) {
      this.free(address);
      return 0;
    }
    const arena = this.#arenaOf(address);
    const moved = arena !== undefined
      ? this.#reallocSmall(arena, address, size)
      : this.#reallocLarge(address, size);
    this.#notePeaks();
    return moved;
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
    if (this.#closed) throw new HeapClosedError("free");
    if (address === 0) return;
    const arena = this.#arenaOf(address);
    if (arena !== undefined) {
      const offset = address - arena.base;
      arena.buddy.free(offset, arena.base);
      this.#counters.freed(arena.requested[offset >>> this.#minShift]!);
      this.#small--;
      return;
    }
    this.#counters.freed(this.#large.unmap(address));
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
    if (this.#closed) throw new HeapClosedError("usableSize");
    const arena = this.#arenaOf(address);
    if (arena !== undefined) return arena.buddy.blockSize(address - arena.base, arena.base);
    const length = this.#large.lengthOf(address);
    if (length < 0) throw this.#large.rejection(address, "find the size of");
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
    if (this.#closed) throw new HeapClosedError("bytes");
    const usable = this.usableSize(address);
    const wanted = length ?? usable;
    if (!Number.isInteger(wanted) || wanted < 0 || wanted > usable) {
      throw new RangeError(
        `Cannot view ${wanted} bytes at ${hex(address)}: the block holds ${usable} bytes`,
      );
    }
    return this.#view(address, wanted);
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
    if (this.#closed) throw new HeapClosedError("pointer");
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
    if (this.#closed) throw new HeapClosedError("addressOf");
    return addressFrom(pointer);
  }

  /**
   * The heap's counters: what is mapped, what is live (requested bytes and block bytes apart),
   * peaks and totals.
   *
   * @returns A fresh snapshot.
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
    if (this.#closed) throw new HeapClosedError("stats");
    const mapped = this.#mappedBytes();
    return {
      arenas: this.#arenas.length,
      ...this.#counters.snapshot(mapped, mapped - this.#arenaFreeBytes()),
      smallAllocations: this.#small,
      largeAllocations: this.#large.count,
    };
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
    if (this.#closed) throw new HeapClosedError("validate");
    let small = 0;
    let requested = 0;
    let allocated = 0;
    let mapped = 0;
    for (const arena of this.#arenas) {
      arena.buddy.validate();
      if (this.#arenaByKey.get(arena.base / this.#arenaSize) !== arena) {
        throw new Error(`PseudoMalloc invariant broken: arena ${hex(arena.base)} is not indexed`);
      }
      for (const block of arena.buddy.blocks()) {
        if (!block.allocated) continue;
        small++;
        allocated += block.size;
        const size = arena.requested[block.offset >>> this.#minShift]!;
        if (size > block.size || size >= Math.max(this.#threshold, 1)) {
          throw new Error(
            `PseudoMalloc invariant broken: block ${
              hex(arena.base + block.offset)
            } of ${block.size} bytes records a request of ${size}`,
          );
        }
        requested += size;
      }
      mapped += this.#arenaSize;
    }
    for (const [, length, size] of this.#large.entries()) {
      requested += size;
      allocated += length;
      mapped += length;
    }
    const expect = (what: string, actual: number, expected: number): void => {
      if (actual !== expected) {
        throw new Error(
          `PseudoMalloc invariant broken: ${what} is ${actual}, blocks say ${expected}`,
        );
      }
    };
    expect("smallAllocations", this.#small, small);
    expect("liveAllocations", this.#counters.liveAllocations, small + this.#large.count);
    expect("liveBytes", this.#counters.liveBytes, requested);
    expect("allocatedBytes", this.#mappedBytes() - this.#arenaFreeBytes(), allocated);
    expect("mappedBytes", this.#mappedBytes(), mapped);
  }

  /**
   * A picture of each arena's occupancy for a terminal: one character per `arenaSize / 1024`
   * bytes, from `·` (free) through `░▒▓` to `█` (fully allocated), 64 characters a row.
   *
   * @returns The picture, one block of rows per arena.
   *
   * @example Printing the map
   * ```ts
   * import { PseudoMalloc } from "@pseudo/malloc";
   *
   * using heap = new PseudoMalloc();
   * heap.malloc(100);
   * console.log(heap.heapMap());
   * ```
   */
  heapMap(): string {
    if (this.#closed) throw new HeapClosedError("heapMap");
    const lines: string[] = [];
    for (const [index, arena] of this.#arenas.entries()) {
      lines.push(
        `arena ${index} at ${
          hex(arena.base)
        }: ${arena.buddy.freeBytes} of ${this.#arenaSize} bytes free`,
      );
      lines.push(...renderOccupancy(arena.buddy.blocks(), this.#arenaSize));
    }
    if (this.#large.count > 0) {
      lines.push(`${this.#large.count} large mappings, ${this.#large.mappedBytes} bytes`);
    }
    return lines.join("\n");
  }

  /**
   * Unmaps every arena and large block. Every later method call except `close` throws
   * {@linkcode HeapClosedError}; closing twice does nothing. Views of the heap's memory die: touching
   * one kills the process.
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
    if (this.#closed) return;
    this.#closed = true;
    for (const arena of this.#arenas) unmapMemory(arena.base, this.#arenaSize);
    this.#large.close();
    this.#arenas = [];
    this.#arenaByKey.clear();
    this.#current = undefined;
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

  // --- small blocks -----------------------------------------------------------------------------

  #arenaOf(address: number): Arena | undefined {
    return this.#arenaByKey.get(Math.floor(address / this.#arenaSize));
  }

  #mallocSmall(size: number): number {
    let arena = this.#current;
    let offset = arena === undefined ? -1 : arena.buddy.alloc(size);
    if (offset < 0) {
      arena = this.#arenaWithRoom(size);
      offset = arena.buddy.alloc(size);
    }
    arena = arena!;
    arena.requested[offset >>> this.#minShift] = size;
    this.#small++;
    this.#counters.allocated(size);
    return arena.base + offset;
  }

  /** An arena that can serve `size` bytes, mapping a new one if allowed; it becomes current. */
  #arenaWithRoom(size: number): Arena {
    // The block size that serves `size`: a power of two, at least the minimum block.
    const needed = size <= this.#minBlockSize
      ? this.#minBlockSize
      : 2 ** (32 - Math.clz32(size - 1));
    let found: Arena | undefined;
    for (const arena of this.#arenas) {
      if (arena.buddy.largestFreeBlock >= needed) {
        found = arena;
        break;
      }
    }
    if (found === undefined) {
      if (this.#arenas.length >= this.#maxArenas) {
        throw new OutOfMemoryError(
          `Cannot allocate ${size} bytes: all ${this.#arenas.length} arenas are full (maxArenas is ${this.#maxArenas})`,
        );
      }
      found = this.#mapArena();
    }
    this.#current = found;
    return found;
  }

  #mapArena(): Arena {
    const base = mapMemory(this.#arenaSize, this.#arenaSize);
    const buffer = memoryView(base, this.#arenaSize);
    const slots = this.#arenaSize / this.#minBlockSize;
    const arena: Arena = {
      base,
      buddy: new BuddyAllocator({
        size: this.#arenaSize,
        minBlockSize: this.#minBlockSize,
        memory: buffer,
      }),
      bytes: new Uint8Array(buffer),
      requested: this.#threshold <= 0x10000 ? new Uint16Array(slots) : new Uint32Array(slots),
    };
    this.#arenas.push(arena);
    this.#arenaByKey.set(base / this.#arenaSize, arena);
    return arena;
  }

  #reallocSmall(arena: Arena, address: number, size: number): number {
    const offset = address - arena.base;
    const slot = offset >>> this.#minShift;
    // Resize in place when a small block still fits (a size above the arena only checks the
    // address, throwing InvalidFreeError/DoubleFreeError for a block that is not live).
    const inPlace = size < this.#threshold ? size : this.#arenaSize + 1;
    if (arena.buddy.resize(offset, inPlace, arena.base) >= 0) {
      this.#counters.liveBytes += size - arena.requested[slot]!;
      arena.requested[slot] = size;
      return address;
    }
    // Move: allocate first, so that a failure leaves the old block untouched.
    const usable = arena.buddy.blockSize(offset);
    const moved = size < this.#threshold ? this.#mallocSmall(size) : this.#mallocLarge(size);
    this.#view(moved, Math.min(usable, size)).set(
      arena.bytes.subarray(offset, offset + Math.min(usable, size)),
    );
    this.free(address);
    return moved;
  }

  // --- large blocks -----------------------------------------------------------------------------

  #mallocLarge(size: number): number {
    const address = this.#large.map(size);
    this.#counters.allocated(size);
    return address;
  }

  #reallocLarge(address: number, size: number): number {
    const length = this.#large.lengthOf(address);
    if (length < 0) throw this.#large.rejection(address, "reallocate");
    if (size < this.#threshold) {
      const moved = this.#mallocSmall(size);
      this.#view(moved, size).set(this.#large.view(address, size));
      this.free(address);
      return moved;
    }
    const before = this.#large.requestedBytes;
    const moved = this.#large.resize(address, size);
    this.#counters.liveBytes += this.#large.requestedBytes - before;
    if (moved !== address) {
      this.#counters.totalAllocations++;
      this.#counters.totalFrees++;
    }
    return moved;
  }

  /** Bytes taken from the OS: arenas and large mappings. */
  #mappedBytes(): number {
    return this.#arenas.length * this.#arenaSize + this.#large.mappedBytes;
  }

  /** Free bytes of all arenas together. */
  #arenaFreeBytes(): number {
    let total = 0;
    for (const arena of this.#arenas) total += arena.buddy.freeBytes;
    return total;
  }

  // --- shared helpers ---------------------------------------------------------------------------

  /** A view of `length` bytes at a live block's address (checked by the caller). */
  #view(address: number, length: number): Uint8Array {
    const arena = this.#arenaOf(address);
    if (arena !== undefined) {
      const offset = address - arena.base;
      return arena.bytes.subarray(offset, offset + length);
    }
    return this.#large.view(address, length);
  }

  #notePeaks(): void {
    this.#counters.notePeaks(this.#mappedBytes());
  }
}

const SHADES = ["·", "░", "▒", "▓", "█"];

/** Renders an arena's blocks as 1024 cells of occupancy, 64 a row. */
function renderOccupancy(blocks: BuddyBlock[], arenaSize: number): string[] {
  const cells = 1024;
  const cellSize = arenaSize / cells;
  const used = new Float64Array(cells);
  for (const block of blocks) {
    if (!block.allocated) continue;
    for (let at = block.offset; at < block.offset + block.size;) {
      const cell = Math.floor(at / cellSize);
      const end = Math.min(block.offset + block.size, (cell + 1) * cellSize);
      used[cell]! += end - at;
      at = end;
    }
  }
  const rows: string[] = [];
  for (let row = 0; row < cells; row += 64) {
    let line = "";
    for (let cell = row; cell < row + 64; cell++) {
      const fraction = used[cell]! / cellSize;
      line += SHADES[fraction === 0 ? 0 : fraction === 1 ? 4 : 1 + Math.floor(fraction * 2.999)];
    }
    rows.push(line);
  }
  return rows;
}
