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
 * ## Low addresses
 *
 * Arenas are mapped below 2^31 where the OS allows (see `_low_memory.ts`): there every address is
 * an integer V8 keeps unboxed, so no call creates a heap number, inlined or not, and the fast paths
 * compute in 32-bit integers. An arena that finds no room there is mapped anywhere and works the
 * same, only slower: its blocks take the fast paths' second branch, or the out-of-line path.
 *
 * ## The fast path: tags and a block cache
 *
 * Each arena has a *tag* per minimum-block slot: the requested size + 1 of the live block that
 * starts there, 0 for none (2 bytes per 16-byte slot while `mmapThreshold` fits 16 bits). A block's
 * order is always the order of its requested size, so `free` checks the tag and knows the order
 * in O(1), without walking the bitmap; a zero tag is an invalid or double free, explained by the
 * slow path. Tags also let `stats()` report requested bytes apart from block bytes.
 *
 * The tags of all low arenas live in one *shadow table* indexed by `address >>> log2(minBlockSize)`
 * (reserved address space; memory only where tags are written), so the fast path of `free` finds
 * a tag without finding the arena: `free(0x1010_0040)` reads `shadow[0x0101_0004]` with 16-byte
 * blocks. An arena above 2^31 keeps its tags in an array of its own.
 *
 * `free` then parks the block in a per-order LIFO *cache* (at most 64 blocks per order, like
 * glibc's tcache) instead of merging it at once, and `malloc` of the same order
 * takes it back: a repeated malloc+free pair touches no bitmap and splits nothing. Blocks that do
 * not fit in the cache go to the buddy, which merges them all the way up. When no arena has room,
 * the cache is flushed into the buddies (so cached blocks never cause an `OutOfMemoryError` or a
 * new arena), and {@linkcode PseudoMalloc.prototype.trim} flushes it on demand.
 *
 * Per large block: one small record (see `_mappings.ts`).
 *
 * @module
 */

import { type ArenaPicture, renderSvg, renderText } from "./_heap_map.ts";
import { type CAllocator, cAllocator, type CAllocatorOptions } from "../c/c_allocator.ts";
import {
  BuddyAllocator,
  checkArenaGeometry,
  DEFAULT_ARENA_SIZE,
  DEFAULT_MIN_BLOCK_SIZE,
} from "../buddy/buddy.ts";
import type { Allocator, AllocatorStats } from "../allocator.ts";
import {
  DoubleFreeError,
  HeapClosedError,
  hex,
  InvalidAddressError,
  OutOfMemoryError,
} from "../errors.ts";
import { Counters } from "../_counters.ts";
import { LOW_LIMIT, lowMemory } from "./_low_memory.ts";
import { isFreeing, notAnAddress } from "../_checks.ts";
import { Mappings } from "../_mappings.ts";
import { callocSize, checkSize, isPowerOfTwo, viewLength } from "../_size.ts";
import {
  addressFrom,
  adviseDontNeed,
  libcOs,
  mapMemory,
  memoryView,
  pageSize,
  pointerFrom,
  reserveMemory,
  unmapMemory,
} from "../../ffi/libc.ts";

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
  /**
   * Map arenas below 2^31 where the OS allows, so that every small block's address is an integer
   * V8 keeps unboxed (see the README's Design section): no heap number per call, and 32-bit
   * arithmetic. Arenas that find no room there are mapped anywhere. Turn off to leave the low 2 GiB
   * of the address space to other code that needs it (e.g. a JIT mapping with `MAP_32BIT`).
   * @default {true}
   */
  lowAddresses?: boolean;
  /**
   * Debug mode: remember where each live block was allocated (a stack trace, costly) for
   * {@linkcode PseudoMalloc.prototype.liveAllocations}, and report leaks on `close()`.
   * @default {false}
   */
  debug?: boolean;
  /**
   * Called by `close()` in debug mode with the blocks still live, if any.
   * @default {a report on the console, one line per leak with its allocation site}
   */
  onLeaks?: (leaks: LiveAllocation[]) => void;
}

/**
 * A live block, as listed by {@linkcode PseudoMalloc.prototype.liveAllocations}.
 *
 * @example Listing live blocks
 * ```ts
 * import { type LiveAllocation, PseudoMalloc } from "@pseudo/malloc";
 * import assert from "node:assert/strict";
 *
 * using heap = new PseudoMalloc();
 * const address = heap.malloc(100);
 * const [block]: LiveAllocation[] = [...heap.liveAllocations()];
 * assert.deepEqual(block, { address, size: 100 });
 * ```
 */
export interface LiveAllocation {
  /** The block's address. */
  address: number;
  /** Bytes requested. */
  size: number;
  /** In debug mode: the stack trace of the call that allocated the block. */
  site?: string;
}

/**
 * Fragmentation of one arena, part of {@linkcode HeapStats}.
 *
 * @example Reading it
 * ```ts
 * import { type ArenaStats, PseudoMalloc } from "@pseudo/malloc";
 *
 * using heap = new PseudoMalloc();
 * heap.malloc(16);
 * const arena: ArenaStats = heap.stats().arenaDetails[0]!;
 * console.log(arena.externalFragmentation); // 0.5: the largest free block is half the free bytes
 * ```
 */
export interface ArenaStats {
  /** The arena's address. */
  address: number;
  /** Bytes in the buddy's free blocks (cached blocks count as allocated until merged). */
  freeBytes: number;
  /** The largest free block. */
  largestFreeBlock: number;
  /** `1 - largestFreeBlock / freeBytes`: 0 when the free memory is one block; 0 when full. */
  externalFragmentation: number;
  /** Free blocks per order: `freeBlocks[k]` blocks of `minBlockSize << k` bytes. */
  freeBlocks: number[];
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
  /** Freed small blocks parked in the block cache, in bytes (free to use; merged on demand). */
  smallCachedBytes: number;
  /** Released large mappings kept for reuse, in bytes (still mapped; `trim()` unmaps them). */
  largeCachedBytes: number;
  /** `1 - liveBytes / allocatedBytes`: the share of allocated bytes that was not requested. */
  internalFragmentation: number;
  /** Per arena: free bytes, largest free block, external fragmentation, free blocks per order. */
  arenaDetails: ArenaStats[];
}

/** One buddy arena: its mapping, its allocator and one view over all of it. */
interface Arena {
  base: number;
  /** Mapped in the low window (below 2^31), and given back to it when unmapped. */
  low: boolean;
  /** `base / arenaSize`: the arena's key in the lookup table. */
  key: number;
  /** Position in the heap's list of arenas. */
  index: number;
  buddy: BuddyAllocator;
  bytes: Uint8Array;
  /** Per minimum-block slot: requested size + 1 of the live block starting there, or 0. */
  tags: Uint16Array | Uint32Array;
}

/** What `PseudoMalloc`'s out-of-line path is called for. */
type OutOfLine = typeof MALLOC | typeof CALLOC | typeof FREE;
const MALLOC = 0;
const CALLOC = 1;
const FREE = 2;

/**
 * Freed blocks kept per order for reuse before they go back to the buddy: 64 blocks of each
 * order, at most 130 KiB in all with the default 1 KiB threshold.
 */
export const CACHE_DEPTH = 64;

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
  /** `#threshold` while open, 0 once closed: one comparison sends every call to the slow path. */
  #smallLimit: number;
  #maxArenas: number;
  #lowAddresses: boolean;
  /**
   * The tags of every low arena in one table, indexed by `address >>> minShift` (low addresses are
   * below 2^31): reserved address space, committed only where an arena's tags are written.
   */
  #shadow: Uint16Array | Uint32Array | undefined;
  #shadowAddress = 0;
  /** `LOW_LIMIT` once the shadow table exists, 0 before and once closed: the fast paths' guard. */
  #lowEnd = 0;

  #arenas: Arena[] = [];
  #arenaByKey = new Map<number, Arena>();
  #current: Arena | undefined; // where new blocks are split off first
  #lastFound: Arena | undefined; // the arena of the last address looked up
  // CACHE_DEPTH blocks per order. A block of a low arena is its address (an int32); a block of
  // another arena is 0 there, with its arena's index and its offset in the two arrays after.
  #cacheBlock: Int32Array;
  #cacheArena: Int32Array;
  #cacheOffset: Int32Array;
  #cacheCount: Int32Array;
  #arenaScale: number; // 1 / arenaSize, exact for a power of two
  #mapped = 0; // bytes of arenas and large mappings
  #large: Mappings;
  #closed = false;
  #counters = new Counters();
  #sites: Map<number, string> | undefined; // debug mode: allocation site of each live block
  #onLeaks: (leaks: LiveAllocation[]) => void;

  /**
   * Creates a heap. Arenas are mapped on first use.
   *
   * @param options Arena size, minimum block, mmap threshold and arena limit; all optional.
   * @throws {RangeError} When an option is out of range.
   * @throws {Deno.errors.NotCapable} Without `--allow-ffi`.
   */
  constructor(options: PseudoMallocOptions = {}) {
    this.#pageSize = pageSize();
    this.#large = new Mappings(libcOs, { label: "large block", cache: true });
    this.#arenaSize = options.arenaSize ?? DEFAULT_ARENA_SIZE;
    this.#arenaScale = 1 / this.#arenaSize;
    this.#minBlockSize = options.minBlockSize ?? DEFAULT_MIN_BLOCK_SIZE;
    this.#threshold = options.mmapThreshold ?? this.#pageSize / 4;
    this.#smallLimit = this.#threshold;
    this.#maxArenas = options.maxArenas ?? Infinity;
    this.#lowAddresses = options.lowAddresses ?? true;
    if (!isPowerOfTwo(this.#arenaSize) || this.#arenaSize < this.#pageSize) {
      throw new RangeError(
        `Cannot use arenaSize ${this.#arenaSize}: it must be a power of two of at least the page size (${this.#pageSize})`,
      );
    }
    // The rest of the arena geometry (minBlockSize, at most 1 GiB), checked as the buddy does.
    checkArenaGeometry(this.#arenaSize, this.#minBlockSize);
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
    const orders = Math.log2(this.#arenaSize / this.#minBlockSize) + 1;
    this.#cacheBlock = new Int32Array(orders * CACHE_DEPTH);
    this.#cacheOffset = new Int32Array(orders * CACHE_DEPTH);
    this.#cacheArena = new Int32Array(orders * CACHE_DEPTH);
    this.#onLeaks = options.onLeaks ?? reportLeaks;
    if (options.debug) this.#installDebugHooks();
    this.#cacheCount = new Int32Array(orders);
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
    // The common case first: a valid small size on an open heap.
    if (typeof size === "number" && size < this.#smallLimit && size >= 0 && (size | 0) === size) {
      // A block of the order from the cache (see `#mallocSmall`), else from a buddy.
      const order = this.#orderOf(size);
      const count = this.#cacheCount[order]! - 1;
      const address = count >= 0 ? this.#cacheBlock[order * CACHE_DEPTH + count]! : 0;
      if (address !== 0) {
        // A cached block of a low arena: its tag is in the shadow table.
        this.#cacheCount[order] = count;
        this.#shadow![address >>> this.#minShift] = size + 1;
        this.#counters.allocated(size);
        this.#counters.noteLivePeak(); // nothing was mapped
        return address;
      }
      if (count >= 0) {
        // A cached block of an arena above 2^31 (tagged in its own array): one lookup more.
        const address = this.#mallocSmall(size);
        this.#counters.noteLivePeak();
        return address;
      }
    }
    return this.#outOfLine(MALLOC, size, 0);
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
    // The common case inline (see `malloc`): small whole numbers whose product is a small block.
    const total = count * size;
    if (
      typeof count === "number" && typeof size === "number" && total < this.#smallLimit &&
      count >= 0 && size >= 0 && (count | 0) === count && (size | 0) === size
    ) {
      // A small block as `malloc` gives it, then cleared: all of it, not only `total` bytes.
      const address = this.malloc(total);
      const arena = this.#arenaOf(address)!;
      const offset = address - arena.base;
      arena.bytes.fill(0, offset, offset + (this.#minBlockSize << this.#orderOf(total)));
      return address;
    }
    return this.#outOfLine(CALLOC, count, size);
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
    if (typeof address !== "number") throw notAnAddress(address, "reallocate");
    const arena = this.#arenaOf(address);
    const moved = arena !== undefined
      ? this.#reallocSmall(arena, address, size)
      : this.#reallocLarge(address, size);
    this.#counters.notePeaks(this.#mapped);
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
    // The common case, kept small enough for V8 to inline into the caller: a live block of a low
    // arena (its tag is in the shadow table) whose order's cache has room.
    if (typeof address === "number" && address < this.#lowEnd && address > 0) {
      const index = address >>> this.#minShift;
      // A whole number of minimum blocks: shifted back, `index` gives the address again.
      if (index << this.#minShift === address) {
        const tag = this.#shadow![index]!;
        const order = this.#orderOf(tag - 1);
        const count = this.#cacheCount[order]!;
        if (tag !== 0 && count < CACHE_DEPTH) {
          this.#shadow![index] = 0;
          this.#cacheBlock[order * CACHE_DEPTH + count] = address;
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
    if (this.#closed) throw new HeapClosedError("usableSize");
    if (typeof address !== "number") throw notAnAddress(address, "find the size of");
    const arena = this.#arenaOf(address);
    if (arena !== undefined) {
      const offset = address - arena.base;
      const tag = this.#tagAt(arena, offset);
      if (tag === 0) throw this.#smallRejection(arena, offset, "find the size of");
      return this.#minBlockSize << this.#orderOf(tag - 1);
    }
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
    const wanted = viewLength(address, length, usable);
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
    const allocated = this.#allocatedBytes();
    return {
      arenas: this.#arenas.length,
      ...this.#counters.snapshot(this.#mapped, allocated),
      smallAllocations: this.#counters.liveAllocations - this.#large.count,
      largeAllocations: this.#large.count,
      smallCachedBytes: this.#cachedBytes(),
      largeCachedBytes: this.#large.cachedBytes,
      internalFragmentation: allocated === 0 ? 0 : 1 - this.#counters.liveBytes / allocated,
      arenaDetails: this.#arenas.map((arena) => {
        const freeBytes = arena.buddy.freeBytes;
        const largestFreeBlock = arena.buddy.largestFreeBlock;
        return {
          address: arena.base,
          freeBytes,
          largestFreeBlock,
          externalFragmentation: freeBytes === 0 ? 0 : 1 - largestFreeBlock / freeBytes,
          freeBlocks: arena.buddy.freeBlockCounts(),
        };
      }),
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
    const fail = (what: string): never => {
      throw new Error(`PseudoMalloc invariant broken: ${what}`);
    };
    // The cache: distinct blocks, each allocated in its buddy at the cache's order, with no tag.
    const cached = new Set<number>();
    let cachedBytes = 0;
    for (let order = 0; order < this.#cacheCount.length; order++) {
      const count = this.#cacheCount[order]!;
      if (count < 0 || count > CACHE_DEPTH) fail(`cache ${order} holds ${count} blocks`);
      for (let i = 0; i < count; i++) {
        const arena = this.#cachedArena(order * CACHE_DEPTH + i);
        if (arena === undefined) fail(`cached block ${order}/${i} is in no arena`);
        const offset = this.#cachedOffset(order * CACHE_DEPTH + i, arena);
        const address = arena.base + offset;
        if (cached.has(address)) fail(`${hex(address)} is cached twice`);
        if (arena.buddy.orderAt(offset) !== order) {
          fail(`cached ${hex(address)} is not of order ${order}`);
        }
        if (arena.tags[offset >>> this.#minShift] !== 0) fail(`cached ${hex(address)} has a tag`);
        cached.add(address);
        cachedBytes += this.#minBlockSize << order;
      }
    }
    if (cachedBytes !== this.#cachedBytes()) {
      fail(`cachedBytes is ${this.#cachedBytes()}, not ${cachedBytes}`);
    }
    // The arenas: every allocated block is live (tagged with a request of its order) or cached,
    // and no tag marks a slot where no block starts.
    let small = 0;
    let requested = 0;
    let allocated = 0;
    let mapped = 0;
    for (const arena of this.#arenas) {
      arena.buddy.validate();
      if (this.#arenaByKey.get(arena.key) !== arena) {
        fail(`arena ${hex(arena.base)} is not indexed`);
      }
      let tagged = 0;
      for (const block of arena.buddy.blocks()) {
        if (!block.allocated) continue;
        const tag = arena.tags[block.offset >>> this.#minShift]!;
        if (tag === 0) {
          if (!cached.has(arena.base + block.offset)) {
            fail(`block ${hex(arena.base + block.offset)} is neither live nor cached`);
          }
          continue;
        }
        const size = tag - 1;
        if (this.#orderOf(size) !== block.order || size >= this.#threshold) {
          fail(
            `block ${hex(arena.base + block.offset)} of order ${block.order} records ${size} bytes`,
          );
        }
        tagged++;
        requested += size;
        allocated += block.size;
      }
      // Every tag belongs to a block start: as many tags as tagged blocks.
      let tags = 0;
      for (let slot = 0; slot < arena.tags.length; slot++) if (arena.tags[slot] !== 0) tags++;
      if (tags !== tagged) fail(`arena ${hex(arena.base)} has ${tags - tagged} stray tags`);
      small += tagged;
      mapped += this.#arenaSize;
    }
    for (const [, length, size] of this.#large.entries()) {
      requested += size;
      allocated += length;
      mapped += length;
    }
    const expect = (what: string, actual: number, expected: number): void => {
      if (actual !== expected) fail(`${what} is ${actual}, blocks say ${expected}`);
    };
    expect("smallAllocations", this.#counters.liveAllocations - this.#large.count, small);
    expect("liveAllocations", this.#counters.liveAllocations, small + this.#large.count);
    expect("liveBytes", this.#counters.liveBytes, requested);
    expect("allocatedBytes", this.#allocatedBytes(), allocated);
    expect("mappedBytes", this.#mapped, mapped + this.#large.cachedBytes);
  }

  /**
   * Gives memory back: merges every cached free block into its arena's buddy, unmaps the arenas
   * that are entirely free, and unmaps the large mappings kept for reuse. Like C's `malloc_trim`.
   * After it, each arena with no live block is gone, and the others hold only live blocks and
   * fully merged free blocks.
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
    if (this.#closed) throw new HeapClosedError("trim");
    this.#flushCache();
    const empty = this.#arenas.filter((arena) => arena.buddy.freeBytes === this.#arenaSize);
    for (const arena of empty) {
      this.#unmapArena(arena);
      this.#arenaByKey.delete(arena.key);
    }
    this.#arenas = this.#arenas.filter((arena) => arena.buddy.freeBytes !== this.#arenaSize);
    this.#arenas.forEach((arena, index) => arena.index = index); // the cache is empty
    this.#current = this.#arenas[0];
    this.#lastFound = undefined;
    const released = empty.length * this.#arenaSize + this.#large.trim();
    this.#syncMapped();
    return released;
  }

  /**
   * A picture of the heap. As text (the default), for a terminal: per arena a header and 16 rows of
   * 64 cells, each cell `arenaSize / 1024` bytes shaded from `·` (free) through `░▒▓` to `█` (all
   * live), then a line for the large mappings. As SVG: one strip per arena with every block drawn
   * at its offset and size (so the splits show), live blocks coloured by order, cached blocks
   * amber, free blocks grey, and one bar per large mapping.
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
    if (this.#closed) throw new HeapClosedError("heapMap");
    const arenas = this.#arenas.map((arena): ArenaPicture => ({
      base: arena.base,
      size: this.#arenaSize,
      blocks: arena.buddy.blocks().map((block) => ({
        offset: block.offset,
        size: block.size,
        order: block.order,
        state: !block.allocated
          ? "free"
          : arena.tags[block.offset >>> this.#minShift] === 0
          ? "cached"
          : "live",
      })),
    }));
    const mappings = [...this.#large.entries()].map(([address, length, requested]) => ({
      address,
      length,
      requested,
    }));
    return options.format === "svg" ? renderSvg(arenas, mappings) : renderText(arenas, mappings);
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
    if (this.#closed) throw new HeapClosedError("liveAllocations");
    const live: LiveAllocation[] = [];
    const add = (address: number, size: number): void => {
      const site = this.#sites?.get(address);
      live.push(site === undefined ? { address, size } : { address, size, site });
    };
    for (const arena of this.#arenas) {
      for (const block of arena.buddy.blocks()) {
        const tag = block.allocated ? arena.tags[block.offset >>> this.#minShift]! : 0;
        if (tag !== 0) add(arena.base + block.offset, tag - 1);
      }
    }
    for (const [address, , requested] of this.#large.entries()) add(address, requested);
    return live;
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
    if (this.#sites !== undefined) {
      const leaks = this.liveAllocations();
      if (leaks.length > 0) this.#onLeaks(leaks);
    }
    this.#closed = true;
    this.#smallLimit = 0;
    for (const arena of this.#arenas) this.#unmapArena(arena, false); // the table goes next
    this.#lowEnd = 0; // before the table goes: the fast paths must not touch it again
    if (this.#shadow !== undefined) {
      unmapMemory(this.#shadowAddress, this.#shadow.byteLength);
      this.#shadow = undefined;
    }
    this.#large.close();
    this.#arenas = [];
    this.#arenaByKey.clear();
    this.#current = undefined;
    this.#lastFound = undefined;
    this.#cacheCount.fill(0);
    this.#mapped = 0;
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

  /**
   * Debug mode: records the allocation site of every block. Wraps this instance's malloc, calloc,
   * realloc and free with own properties that shadow the prototype's methods, so heaps without
   * debug pay nothing on their hot paths.
   */
  #installDebugHooks(): void {
    const sites = new Map<number, string>();
    this.#sites = sites;
    // Frames: 0 "Error", 1 this arrow, 2 the wrapper, 3.. the caller's stack.
    const site = (): string =>
      (new Error().stack ?? "").split("\n").slice(3, 6).map((line) => line.trim()).join(" <- ");
    const { malloc, calloc, realloc, free } = PseudoMalloc.prototype;
    Object.defineProperties(this, {
      malloc: {
        value: (size: number): number => {
          const address = malloc.call(this, size);
          sites.set(address, site());
          return address;
        },
      },
      calloc: {
        value: (count: number, size: number): number => {
          const address = calloc.call(this, count, size);
          sites.set(address, site());
          return address;
        },
      },
      realloc: {
        value: (address: number, size: number): number => {
          const moved = realloc.call(this, address, size);
          if (moved !== address) {
            sites.delete(address);
            if (moved !== 0) sites.set(moved, site());
          }
          return moved;
        },
      },
      free: {
        value: (address: number): void => {
          free.call(this, address);
          sites.delete(address);
        },
      },
    });
  }

  // --- small blocks -----------------------------------------------------------------------------

  /**
   * `free`'s fast path for a block of an arena above 2^31 whose order's cache has room; anything
   * else goes on to `#outOfLine`. Apart, so that V8 inlines it only where it runs often.
   */
  #freeHigh(address: number): void {
    // No arena is found once the heap is closed: `#outOfLine` throws then.
    const arena = typeof address === "number" && address !== 0 ? this.#arenaOf(address) : undefined;
    if (arena !== undefined && !arena.low) {
      const offset = address - arena.base;
      const tag = this.#tagAt(arena, offset);
      const order = this.#orderOf(tag - 1);
      const count = this.#cacheCount[order]!;
      if (tag !== 0 && count < CACHE_DEPTH) {
        arena.tags[offset >>> this.#minShift] = 0;
        this.#park(arena, offset, order, count);
        this.#counters.freed(tag - 1);
        return;
      }
    }
    this.#outOfLine(FREE, address, 0);
  }

  /**
   * Everything the fast paths of `malloc` (`call` MALLOC, `a` the size), `calloc` (CALLOC, `a` and
   * `b` the count and size) and `free` (FREE, `a` the address) leave out: checks and errors, large
   * blocks, an empty or full cache, blocks of arenas above 2^31. It handles every case completely:
   * the fast paths are shortcuts of it.
   *
   * One function on purpose: together these paths are more bytecode than V8 inlines into a caller
   * (460 bytes), so a hot loop that inlines `malloc` and `free` never inlines them as well. Kept
   * apart, V8 inlined them wherever they had run often (after a program's mixed sizes, a full cache
   * or large blocks), and the fast paths of the loop got slower: a 64-byte malloc+free pair took
   * 14 ns instead of 11 after the batch and churn benchmarks.
   */
  #outOfLine(call: OutOfLine, a: number, b: number): number {
    if (this.#closed) {
      throw new HeapClosedError(call === MALLOC ? "malloc" : call === CALLOC ? "calloc" : "free");
    }
    if (call === MALLOC) {
      checkSize(a, "allocate");
      const address = a < this.#threshold ? this.#mallocSmall(a) : this.#mallocLarge(a);
      this.#counters.notePeaks(this.#mapped);
      return address;
    }
    if (call === CALLOC) {
      const total = callocSize(a, b);
      if (total < this.#threshold) return this.calloc(total, 1); // e.g. count above 2^31, size 0
      const address = this.#mallocLarge(total, true); // a fresh mapping is already zero: no memset
      this.#counters.notePeaks(this.#mapped);
      return address;
    }
    // FREE: a block of an arena above 2^31, a large block, a full cache, or an error.
    if (a === 0) return 0;
    if (typeof a !== "number") throw notAnAddress(a, "free");
    const arena = this.#arenaOf(a);
    if (arena === undefined) {
      this.#counters.freed(this.#large.unmap(a));
      this.#syncMapped();
      return 0;
    }
    const offset = a - arena.base;
    const tag = this.#tagAt(arena, offset);
    if (tag === 0) throw this.#smallRejection(arena, offset, "free");
    arena.tags[offset >>> this.#minShift] = 0;
    this.#counters.freed(tag - 1);
    const order = this.#orderOf(tag - 1);
    const count = this.#cacheCount[order]!;
    if (count < CACHE_DEPTH) {
      this.#park(arena, offset, order, count); // as in `free`'s fast path
    } else {
      // The cache of this order is full: the block goes back to the buddy, which merges it.
      arena.buddy.free(offset, arena.base);
    }
    return 0;
  }

  /**
   * Puts the freed block at `offset` of `arena` on its order's cache, which holds `count` blocks
   * (fewer than `CACHE_DEPTH`): by address for a low arena, by arena and offset for another.
   */
  #park(arena: Arena, offset: number, order: number, count: number): void {
    this.#cacheBlock[order * CACHE_DEPTH + count] = arena.low ? arena.base + offset : 0;
    this.#cacheOffset[order * CACHE_DEPTH + count] = offset;
    this.#cacheArena[order * CACHE_DEPTH + count] = arena.index;
    this.#cacheCount[order] = count + 1;
  }

  /** The arena whose range holds `address`, if any: one multiplication and (usually) no lookup. */
  #arenaOf(address: number): Arena | undefined {
    const key = Math.floor(address * this.#arenaScale);
    const last = this.#lastFound;
    return last !== undefined && last.key === key ? last : this.#findArena(key);
  }

  /** The table lookup behind {@linkcode PseudoMalloc.prototype.#arenaOf}, kept out of line. */
  #findArena(key: number): Arena | undefined {
    const arena = this.#arenaByKey.get(key);
    if (arena !== undefined) this.#lastFound = arena;
    return arena;
  }

  /**
   * The tag of the slot at `offset` (requested size + 1 of the live block starting there), or 0
   * when none does or `offset` is not a whole multiple of the minimum block. Integer operations
   * only: `%` on doubles is a slow fmod call.
   */
  #tagAt(arena: Arena, offset: number): number {
    // `offset` is in [0, arenaSize): its slot, shifted back, equals it only for a whole multiple.
    const slot = offset >>> this.#minShift;
    return slot << this.#minShift === offset ? arena.tags[slot]! : 0;
  }

  /** The order of the block that serves `size` bytes (`size` below the threshold). */
  #orderOf(size: number): number {
    // ceil(log2(size)) - log2(minBlockSize): 100 -> 7 - 4 = 3, a 128-byte block.
    return size <= this.#minBlockSize ? 0 : 32 - Math.clz32(size - 1) - this.#minShift;
  }

  /** Allocates a small block: from the cache when it has one of the order, else from a buddy. */
  #mallocSmall(size: number): number {
    const order = this.#orderOf(size);
    const top = order * CACHE_DEPTH + this.#cacheCount[order]! - 1;
    if (top < order * CACHE_DEPTH) return this.#mallocFresh(size);
    const arena = this.#cachedArena(top);
    const offset = this.#cachedOffset(top, arena);
    this.#cacheCount[order]!--;
    arena.tags[offset >>> this.#minShift] = size + 1;
    this.#counters.allocated(size);
    return arena.base + offset;
  }

  /** Splits a block off the current arena, or off another arena with room (maybe a new one). */
  #mallocFresh(size: number): number {
    let arena = this.#current ?? this.#arenaWithRoom(size);
    let offset = arena.buddy.alloc(size);
    if (offset < 0) {
      arena = this.#arenaWithRoom(size);
      offset = arena.buddy.alloc(size);
    }
    arena.tags[offset >>> this.#minShift] = size + 1;
    this.#counters.allocated(size);
    return arena.base + offset;
  }

  /**
   * An arena that can serve `size` bytes; it becomes current. Flushes the cache into the buddies
   * before mapping a new arena or giving up, so that cached blocks never cost memory.
   */
  #arenaWithRoom(size: number): Arena {
    // The block size that serves `size`: a power of two, at least the minimum block.
    const needed = this.#minBlockSize << this.#orderOf(size);
    let found = this.#arenas.find((arena) => arena.buddy.largestFreeBlock >= needed);
    if (found === undefined && this.#cachedBytes() > 0) {
      this.#flushCache();
      found = this.#arenas.find((arena) => arena.buddy.largestFreeBlock >= needed);
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

  /**
   * The arena of cache entry `i`: a low block is known by its address alone (the fast path of
   * `free` does not look its arena up), any other by its arena's index and offset.
   */
  #cachedArena(i: number): Arena {
    const address = this.#cacheBlock[i]!;
    return address === 0 ? this.#arenas[this.#cacheArena[i]!]! : this.#arenaOf(address)!;
  }

  /** The offset of cache entry `i` in its arena, `arena`. */
  #cachedOffset(i: number, arena: Arena): number {
    const address = this.#cacheBlock[i]!;
    return address === 0 ? this.#cacheOffset[i]! : address - arena.base;
  }

  /** Gives every cached block back to its buddy, which merges it as far up as it can. */
  #flushCache(): void {
    for (let order = 0; order < this.#cacheCount.length; order++) {
      for (let i = 0; i < this.#cacheCount[order]!; i++) {
        const arena = this.#cachedArena(order * CACHE_DEPTH + i);
        arena.buddy.free(this.#cachedOffset(order * CACHE_DEPTH + i, arena), arena.base);
      }
    }
    this.#cacheCount.fill(0);
  }

  /** Bytes of the blocks parked in the cache. */
  #cachedBytes(): number {
    let total = 0;
    this.#cacheCount.forEach((count, order) => total += count * (this.#minBlockSize << order));
    return total;
  }

  #mapArena(): Arena {
    const low = this.#lowAddresses && this.#openShadow() ? lowMemory.map(this.#arenaSize) : 0;
    const base = low !== 0 ? low : mapMemory(this.#arenaSize, this.#arenaSize);
    const buffer = memoryView(base, this.#arenaSize);
    const slots = this.#arenaSize / this.#minBlockSize;
    const arena: Arena = {
      base,
      low: low !== 0,
      key: base / this.#arenaSize,
      index: this.#arenas.length,
      buddy: new BuddyAllocator({
        size: this.#arenaSize,
        minBlockSize: this.#minBlockSize,
        memory: buffer,
      }),
      bytes: new Uint8Array(buffer),
      // Tags hold requested + 1 < threshold + 1; a low arena's are its part of the shadow table.
      tags: low !== 0
        ? this.#shadow!.subarray(low >>> this.#minShift, (low >>> this.#minShift) + slots)
        : this.#threshold < 0x10000
        ? new Uint16Array(slots)
        : new Uint32Array(slots),
    };
    this.#arenas.push(arena);
    this.#arenaByKey.set(arena.key, arena);
    this.#syncMapped();
    return arena;
  }

  /**
   * Reserves the shadow table on first use: one tag per minimum block below 2^31 (256 MiB of
   * address space with 16-byte blocks and 2-byte tags; memory only where tags are written).
   * False when the OS refuses: then arenas are mapped anywhere, with tags of their own.
   */
  #openShadow(): boolean {
    if (this.#shadow !== undefined) return true;
    const wide = this.#threshold >= 0x10000;
    const length = (LOW_LIMIT >>> this.#minShift) * (wide ? 4 : 2);
    try {
      this.#shadowAddress = reserveMemory(length);
    } catch (error) {
      if (!(error instanceof OutOfMemoryError)) throw error;
      this.#lowAddresses = false;
      return false;
    }
    const buffer = memoryView(this.#shadowAddress, length);
    this.#shadow = wide ? new Uint32Array(buffer) : new Uint16Array(buffer);
    this.#lowEnd = LOW_LIMIT;
    return true;
  }

  /** Unmaps an arena; `releaseTags`: also give back its pages of the shadow table. */
  #unmapArena(arena: Arena, releaseTags = true): void {
    if (!arena.low) {
      unmapMemory(arena.base, this.#arenaSize);
      return;
    }
    lowMemory.unmap(arena.base, this.#arenaSize);
    if (!releaseTags) return;
    // Its tags are all 0 now (no block was live): give back the pages of the shadow table that
    // hold only its tags. Pages shared with a neighbour's tags stay.
    const tagBytes = this.#shadow!.BYTES_PER_ELEMENT;
    const first = this.#shadowAddress + (arena.base >>> this.#minShift) * tagBytes;
    const start = Math.ceil(first / this.#pageSize) * this.#pageSize;
    const end = Math.floor((first + arena.tags.byteLength) / this.#pageSize) * this.#pageSize;
    if (end > start) adviseDontNeed(start, end - start);
  }

  #reallocSmall(arena: Arena, address: number, size: number): number {
    const offset = address - arena.base;
    const slot = offset >>> this.#minShift;
    const tag = this.#tagAt(arena, offset);
    if (tag === 0) throw this.#smallRejection(arena, offset, "reallocate");
    const order = this.#orderOf(tag - 1);
    if (size < this.#threshold && this.#orderOf(size) <= order) {
      // In place; a smaller order gives the block's unneeded upper halves back to the buddy.
      if (this.#orderOf(size) < order) arena.buddy.resize(offset, size, arena.base);
      this.#counters.liveBytes += size - (tag - 1);
      arena.tags[slot] = size + 1;
      return address;
    }
    // Move: allocate first, so that a failure leaves the old block untouched.
    const moved = size < this.#threshold ? this.#mallocSmall(size) : this.#mallocLarge(size);
    const kept = Math.min(this.#minBlockSize << order, size);
    const target = this.#arenaOf(moved);
    if (target === arena) {
      // Within one arena: copyWithin makes no view objects.
      arena.bytes.copyWithin(moved - arena.base, offset, offset + kept);
    } else {
      this.#view(moved, kept).set(arena.bytes.subarray(offset, offset + kept));
    }
    this.free(address);
    return moved;
  }

  /**
   * The error for a small-arena offset with no live block: a cached block was freed already;
   * anything else the buddy explains (free space, interior, misaligned).
   */
  #smallRejection(arena: Arena, offset: number, verb: string): Error {
    if (arena.buddy.orderAt(offset) >= 0) {
      const address = arena.base + offset;
      const message = `Cannot ${verb} ${hex(address)}: this block was already freed`;
      return isFreeing(verb)
        ? new DoubleFreeError(message, address)
        : new InvalidAddressError(message, address);
    }
    return arena.buddy.rejection(offset, verb, arena.base);
  }

  // --- large blocks -----------------------------------------------------------------------------

  #mallocLarge(size: number, zeroed = false): number {
    const address = zeroed ? this.#large.mapZeroed(size) : this.#large.map(size);
    this.#counters.allocated(size);
    this.#syncMapped();
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
    this.#syncMapped();
    this.#counters.liveBytes += this.#large.requestedBytes - before;
    if (moved !== address) {
      this.#counters.totalAllocations++;
      this.#counters.totalFrees++;
    }
    return moved;
  }

  /** Recounts the bytes taken from the OS, after a mapping changed. */
  #syncMapped(): void {
    this.#mapped = this.#arenas.length * this.#arenaSize + this.#large.mappedBytes +
      this.#large.cachedBytes;
  }

  /** Bytes of the blocks behind live allocations: what is mapped, less what is free or cached. */
  #allocatedBytes(): number {
    return this.#mapped - this.#arenaFreeBytes() - this.#cachedBytes() - this.#large.cachedBytes;
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
}

/** The default leak report of debug mode: one line per block still live, with its site. */
function reportLeaks(leaks: LiveAllocation[]): void {
  const bytes = leaks.reduce((sum, leak) => sum + leak.size, 0);
  const lines = leaks.map((leak) =>
    `  ${hex(leak.address)}: ${leak.size} bytes, allocated ${leak.site ?? "(site unknown)"}`
  );
  const blocks = `${leaks.length} block${leaks.length === 1 ? "" : "s"}`;
  console.warn(`PseudoMalloc: ${blocks} (${bytes} bytes) leaked\n${lines.join("\n")}`);
}
