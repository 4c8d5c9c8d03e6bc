// The heap's state and its slow paths: everything `PseudoMalloc`'s fast paths leave out.
//
// `PseudoMalloc` (pseudo_malloc.ts) serves the common case inline: a small block popped from or
// pushed onto the block cache. Every other case comes here, through `outOfLine`: checks and
// errors, an empty or full cache, new arenas, large blocks, blocks of arenas above 2^31. Below
// `outOfLine` each step hands the next what it computed (the order, the arena, the tag), so that
// nothing is worked out twice on the way down; `free` hands down the arena it found. (`malloc`'s
// fast path does not hand down its order: a second call site in it cost 0.4 ns a pair, more than
// the one `Math.clz32` it would save on the slow path.)
//
// Rules of this file (docs/hot_paths.md says why):
// - `outOfLine` is one function, larger than V8 inlines (460 bytes of bytecode), so a hot loop
//   that inlines `malloc` and `free` never inlines the slow paths with them. Kept apart, V8
//   inlined them wherever they had run often, and the loop's fast paths got slower (a 64-byte
//   malloc + free pair: 14 ns instead of 11).
// - Every system call comes before the state it changes, or its failure puts the state back:
//   after an `OsError` or `OutOfMemoryError` the heap validates, every live block keeps its
//   contents, and the call can be made again.
// - No slow path calls back up into a public method of `PseudoMalloc` (its debug hooks wrap
//   those); realloc frees through `outOfLine`, the complete path. Only C's edge cases of realloc
//   (`realloc(0, n)` is `malloc(n)`, `realloc(a, 0)` is `free(a)`; `src/_checks.ts`) call the
//   public methods, by definition, before the core is reached.

import { CountingOs } from "../../ffi/counting_os.ts";
import {
  DoubleFreeError,
  HeapClosedError,
  hex,
  InvalidAddressError,
  OutOfMemoryError,
} from "../errors.ts";
import { Counters } from "../_counters.ts";
import { isFreeing, notAnAddress } from "../_checks.ts";
import { Mappings } from "../_mappings.ts";
import { BlockStarts } from "../_block_starts.ts";
import { idleTimer } from "../../ffi/idle_timer.ts";
import { callocSize, checkSize } from "../_size.ts";
import { type Arena, Arenas } from "./_arenas.ts";
import {
  BlockCache,
  BURST_ARMED,
  BURST_DRAINED,
  BURST_NONE,
  BURST_OVERFLOWED,
} from "./_block_cache.ts";
import type { HeapConfig } from "./_options.ts";
import { type Spares, sparesOf } from "./_spares.ts";
import { TagTable } from "./_tag_table.ts";

/** What `outOfLine` is called for: `a` and `b` are its arguments, as each call says. */
export type OutOfLine = typeof MALLOC | typeof CALLOC | typeof FREE;
/** `malloc(a)`; `b` is unused. */
export const MALLOC = 0;
/** `calloc(a, b)`. */
export const CALLOC = 1;
/** `free(a)`; `b` is the index of the arena the fast path found, -1 if it did not look, -2 if none. */
export const FREE = 2;

const NAMES = ["malloc", "calloc", "free"] as const;

/**
 * Bytes of blocks split off at once to refill an empty stack of the block cache (`#refill`): a
 * malloc that finds its stack empty takes one block and parks up to 1 KiB of its neighbours (31
 * blocks of 32 bytes), so that the next mallocs of its order are cache hits instead of one
 * `outOfLine` call each. Only for an order whose stack is armed (`BlockCache.bursts`): it
 * overflowed (a free found it full), was drained by mallocs, and overflowed again. A program that
 * frees in bursts longer than the stack (binary-tree frees trees of up to 16,382 nodes into a stack
 * of 2,048) allocates in bursts too; a heap that never went round that cycle caches only what was
 * freed. Measured on binary-tree, warm, against libc (medians of 5 rounds per process, two sets
 * of 3 alternating processes on a loaded machine): 0.83-0.89x and 0.85-0.93x without, 0.93-1.01x
 * and 0.91-0.95x with.
 */
const REFILL_BYTES = 1024;

/** A heap's state and slow paths; see the file comment. */
export class HeapCore {
  readonly config: HeapConfig;
  /** The OS calls, counted for `stats().systemCalls`. */
  readonly os: CountingOs;
  readonly arenas: Arenas;
  readonly cache: BlockCache;
  readonly tags: TagTable;
  readonly large: Mappings;
  readonly counters: Counters = new Counters();
  closed = false;
  /** Bytes of arenas and large mappings. */
  mapped = 0;
  /** Called when the shadow tag table appears or goes: the fast paths hold it directly. */
  onTableChange: () => void = () => {};

  /** @param config The checked options. */
  constructor(config: HeapConfig) {
    this.config = config;
    const os = this.os = new CountingOs(config.os);
    // What closed heaps of the same Os left (_spares.ts): a table and arenas, taken on first use.
    const spares = sparesOf(config.os);
    this.tags = new TagTable(os, spares, config.minShift, config.threshold >= 0x10000);
    this.arenas = new Arenas(config, os, this.tags, config.lowAddresses, spares);
    const orders = Math.log2(config.arenaSize / config.minBlockSize) + 1;
    this.#cacheKey = `${orders}/${config.minBlockSize}`;
    this.#spares = spares;
    this.cache = spares?.takeCache(this.#cacheKey) ?? new BlockCache(orders, config.minBlockSize);
    this.#largeStarts = new BlockStarts(config.pageSize);
    this.large = new Mappings(os, {
      label: "large block",
      cache: true,
      idleTimer,
      onIdleTrim: () => this.syncMapped(),
    });
  }

  /** The large blocks' starts, sorted when an interior lookup needs them (`startOf`). */
  readonly #largeStarts: BlockStarts;

  /** Where this heap's table, arenas and cache go on `close` (`_spares.ts`); `undefined`: none. */
  readonly #spares: Spares | undefined;
  /** The geometry of the block cache, for reusing a closed heap's. */
  readonly #cacheKey: string;

  /** The order of the block that serves `size` bytes (`size` below the threshold). */
  orderOf(size: number): number {
    // ceil(log2(size)) - log2(minBlockSize): 100 -> 7 - 4 = 3, a 128-byte block.
    const { minBlockSize, minShift } = this.config;
    return size <= minBlockSize ? 0 : 32 - Math.clz32(size - 1) - minShift;
  }

  /**
   * Everything the fast paths of `malloc`, `calloc` and `free` leave out (see `OutOfLine` for the
   * arguments). It handles every case completely: the fast paths are shortcuts of it.
   */
  outOfLine(call: OutOfLine, a: number, b: number): number {
    if (this.closed) throw new HeapClosedError(NAMES[call]);
    const threshold = this.config.threshold;
    if (call !== FREE) {
      let address: number;
      if (call === MALLOC) {
        checkSize(a, "allocate");
        address = a < threshold ? this.mallocSmall(a, this.orderOf(a)) : this.large.map(a);
      } else {
        a = callocSize(a, b);
        // A fresh mapping is already zero: no memset for a large block.
        address = a < threshold ? this.callocSmall(a, this.orderOf(a)) : this.large.mapZeroed(a);
      }
      if (a >= threshold) {
        this.counters.allocated(a);
        this.syncMapped();
      }
      this.counters.notePeaks(this.mapped);
      return address;
    }
    // FREE: a block of an arena above 2^31, a large block, a full cache, or an error.
    if (a === 0) return 0;
    if (typeof a !== "number") throw notAnAddress(a, "free");
    const arena = b >= 0 ? this.arenas.list[b]! : b === -1 ? this.arenas.arenaOf(a) : undefined;
    if (arena === undefined) {
      try {
        this.counters.freed(this.large.unmap(a));
      } finally {
        this.syncMapped(); // cached mappings may have been evicted before a munmap failed
      }
      return 0;
    }
    const offset = a - arena.base;
    const tag = this.arenas.tagOf(arena, offset);
    if (tag === 0) throw this.smallRejection(arena, offset, "free");
    arena.tags[offset >>> this.config.minShift] = 0;
    this.counters.freed(tag - 1);
    const order = this.orderOf(tag - 1);
    const count = this.cache.count[order]!;
    if (count < this.cache.limit[order]!) this.cache.park(arena, offset, order, count);
    else {
      arena.buddy.free(offset, arena.base); // the cache is full: the buddy merges the block
      const burst = this.cache.bursts[order]!;
      if (burst === BURST_NONE || burst === BURST_DRAINED) this.cache.bursts[order] = burst + 1;
    }
    return 0;
  }

  // --- small blocks -----------------------------------------------------------------------------

  /** Allocates a small block of `order`: from the cache when it has one, else from a buddy. */
  mallocSmall(size: number, order: number): number {
    const base = this.cache.baseOf(order);
    const top = base + this.cache.count[order]! - 1;
    if (top < base) return this.#mallocFresh(size, order);
    const arena = this.cache.arenaOf(top, this.arenas);
    const offset = this.cache.offsetOf(top, arena);
    this.cache.count[order]!--;
    arena.tags[offset >>> this.config.minShift] = size + 1;
    this.counters.allocated(size);
    return arena.base + offset;
  }

  /** A small block of `total` bytes and `order`, zeroed: all of the block, not only `total`. */
  callocSmall(total: number, order: number): number {
    const address = this.mallocSmall(total, order);
    this.clear(address, order);
    return address;
  }

  /** Zeroes the small block of `order` at `address`, all of it. */
  clear(address: number, order: number): void {
    const arena = this.arenas.arenaOf(address)!;
    const offset = address - arena.base;
    arena.bytes.fill(0, offset, offset + (this.config.minBlockSize << order));
  }

  /** Splits a block off the current arena, or off another arena with room (maybe a new one). */
  #mallocFresh(size: number, order: number): number {
    let arena = this.arenas.current ?? this.#arenaWithRoom(size, order);
    let offset = arena.buddy.allocOrder(order);
    if (offset < 0) {
      arena = this.#arenaWithRoom(size, order);
      offset = arena.buddy.allocOrder(order);
    }
    arena.tags[offset >>> this.config.minShift] = size + 1;
    this.counters.allocated(size);
    // The stack of `order` is empty (else the block came from it): a step of its burst cycle.
    const burst = this.cache.bursts[order]!;
    if (burst === BURST_ARMED) this.#refill(arena, order);
    else if (burst === BURST_OVERFLOWED) this.cache.bursts[order] = BURST_DRAINED;
    return arena.base + offset;
  }

  /**
   * Fills the empty stack of `order` with up to `REFILL_BYTES` of blocks split off `arena` (fewer
   * when the arena has no more of them), the lowest address on top, so that the next mallocs go up
   * through the batch as they would through the buddy.
   */
  #refill(arena: Arena, order: number): void {
    const cache = this.cache;
    const wanted = Math.min(cache.limit[order]!, REFILL_BYTES >> (this.config.minShift + order));
    if (wanted <= 1 || cache.count[order] !== 0) return;
    const base = cache.baseOf(order);
    let count = 0;
    for (; count < wanted; count++) {
      const offset = arena.buddy.allocOrder(order);
      if (offset < 0) break;
      cache.park(arena, offset, order, count);
    }
    cache.reverse(base, count);
  }

  /**
   * An arena with a free block of `order`; it becomes current. Flushes the cache into the buddies
   * before mapping a new arena or giving up, so that cached blocks never cost memory.
   */
  #arenaWithRoom(size: number, order: number): Arena {
    const needed = this.config.minBlockSize << order;
    let found = this.arenas.withRoom(needed);
    if (found === undefined && this.cache.bytes() > 0) {
      this.cache.flush(this.arenas);
      found = this.arenas.withRoom(needed);
    }
    if (found === undefined) {
      const { maxArenas } = this.config;
      if (this.arenas.list.length >= maxArenas) {
        throw new OutOfMemoryError(
          `Cannot allocate ${size} bytes: all ${this.arenas.list.length} arenas are full (maxArenas is ${maxArenas})`,
        );
      }
      try {
        found = this.arenas.map();
      } finally {
        // Even when mapping the arena failed: the shadow table may have been reserved first.
        this.syncMapped();
        this.onTableChange();
      }
    }
    this.arenas.current = found;
    return found;
  }

  /**
   * The error for a small-arena offset with no live block: a cached block was freed already;
   * anything else the buddy explains (free space, interior, misaligned).
   */
  smallRejection(arena: Arena, offset: number, verb: string): Error {
    if (arena.buddy.orderAt(offset) >= 0) {
      const address = arena.base + offset;
      const message = `Cannot ${verb} ${hex(address)}: this block was already freed`;
      return isFreeing(verb)
        ? new DoubleFreeError(message, address)
        : new InvalidAddressError(message, address);
    }
    return arena.buddy.rejection(offset, verb, arena.base);
  }

  // --- realloc ----------------------------------------------------------------------------------

  /** `realloc` of a live block (address a number, size above 0: C's edge cases are done). */
  realloc(address: number, size: number): number {
    const arena = this.arenas.arenaOf(address);
    const moved = arena !== undefined
      ? this.#reallocSmall(arena, address, size)
      : this.#reallocLarge(address, size);
    this.counters.notePeaks(this.mapped);
    return moved;
  }

  #reallocSmall(arena: Arena, address: number, size: number): number {
    const offset = address - arena.base;
    const tag = this.arenas.tagOf(arena, offset);
    if (tag === 0) throw this.smallRejection(arena, offset, "reallocate");
    const order = this.orderOf(tag - 1);
    const small = size < this.config.threshold;
    const wanted = small ? this.orderOf(size) : -1;
    // In place when it fits, shrinks (the unneeded upper halves go back to the buddy) or can grow
    // into free buddies above it (a buddy parked in the block cache counts as taken).
    if (
      small &&
      (wanted <= order || arena.buddy.growOrder(offset, order, wanted))
    ) {
      if (wanted < order) arena.buddy.resize(offset, size, arena.base);
      this.counters.liveBytes += size - (tag - 1);
      arena.tags[offset >>> this.config.minShift] = size + 1;
      return address;
    }
    // Move: allocate first, so that a failure leaves the old block untouched. (Not through
    // `outOfLine`: the peak is noted once the old block is freed.)
    const moved = small ? this.mallocSmall(size, wanted) : this.#mallocLarge(size);
    // The whole old block, not only the bytes requested: `usableSize` (and C's
    // `malloc_usable_size`) promise all of it, and SQLite writes up to `xSize` before it reallocs.
    const kept = Math.min(this.config.minBlockSize << order, size);
    if (this.arenas.arenaOf(moved) === arena) {
      // Within one arena: copyWithin makes no view objects.
      arena.bytes.copyWithin(moved - arena.base, offset, offset + kept);
    } else {
      this.view(moved, kept).set(arena.bytes.subarray(offset, offset + kept));
    }
    this.outOfLine(FREE, address, arena.index);
    return moved;
  }

  /** A large block for realloc's move: `outOfLine`'s large `malloc` without noting the peak. */
  #mallocLarge(size: number): number {
    const address = this.large.map(size);
    this.counters.allocated(size);
    this.syncMapped();
    return address;
  }

  #reallocLarge(address: number, size: number): number {
    const length = this.large.lengthOf(address);
    if (length < 0) throw this.large.rejection(address, "reallocate");
    if (size < this.config.threshold) {
      const order = this.orderOf(size);
      const moved = this.mallocSmall(size, order);
      const kept = this.config.minBlockSize << order; // all the new block holds (old: whole pages)
      this.view(moved, kept).set(this.large.view(address, kept));
      try {
        this.outOfLine(FREE, address, -1);
      } catch (error) {
        this.outOfLine(FREE, moved, -1); // munmap refused: the old block stays, the new one goes
        throw error;
      }
      return moved;
    }
    const before = this.large.requestedBytes;
    let moved: number;
    try {
      moved = this.large.resize(address, size);
    } finally {
      this.syncMapped(); // a move that failed may have changed the cache (a copy, an eviction)
    }
    this.counters.liveBytes += this.large.requestedBytes - before;
    if (moved !== address) {
      this.counters.totalAllocations++;
      this.counters.totalFrees++;
    }
    return moved;
  }

  // --- shared -----------------------------------------------------------------------------------

  /**
   * The start of the live block that holds `address` (any byte of it), or -1. A small block is
   * found by its tag: the nearest tagged slot at or below the address is the only block that can
   * hold it (blocks never overlap), so the scan goes back at most one largest small block.
   */
  startOf(address: number): number {
    const arena = this.arenas.arenaOf(address);
    if (arena === undefined) {
      // A large block: its pages and 15 below, then the sorted starts (`_block_starts.ts`), remade
      // when blocks came or went (every allocation and free counts) since they were sorted.
      const { totalAllocations, totalFrees } = this.counters;
      return this.#largeStarts.find(address, this.large, totalAllocations + totalFrees);
    }
    const { minShift, minBlockSize, threshold } = this.config;
    const offset = Math.floor(address - arena.base);
    const slot = offset >>> minShift;
    // The largest small block has `1 << orderOf(threshold - 1)` slots.
    const lowest = threshold <= 1 ? slot : Math.max(0, slot - (1 << this.orderOf(threshold - 1)));
    for (let s = slot; s >= lowest; s--) {
      const tag = arena.tags[s]!;
      if (tag === 0) continue;
      const start = s << minShift;
      const size = minBlockSize << this.orderOf(tag - 1);
      return offset < start + size ? arena.base + start : -1;
    }
    return -1;
  }

  /** A view of `length` bytes at a live block's address (checked by the caller). */
  view(address: number, length: number): Uint8Array {
    const arena = this.arenas.arenaOf(address);
    if (arena !== undefined) {
      const offset = address - arena.base;
      return arena.bytes.subarray(offset, offset + length);
    }
    return this.large.view(address, length);
  }

  /** Recounts the bytes taken from the OS, after a mapping changed. */
  syncMapped(): void {
    this.mapped = this.arenas.mappedBytes + this.large.mappedBytes + this.large.cachedBytes;
  }

  /** Bytes of the blocks behind live allocations: what is mapped, less what is free or cached. */
  allocatedBytes(): number {
    let free = 0;
    for (const arena of this.arenas.list) free += arena.buddy.freeBytes;
    return this.mapped - free - this.cache.bytes() - this.large.cachedBytes;
  }

  // --- giving memory back -----------------------------------------------------------------------

  /** See `PseudoMalloc.trim`. Throws `OsError` when `munmap` fails, with every record true. */
  trim(): number {
    this.cache.flush(this.arenas);
    try {
      return this.arenas.unmapEmpty() + this.large.trim();
    } finally {
      this.syncMapped();
    }
  }

  /**
   * Unmaps everything. When `munmap` fails it throws `OsError` and the heap stays open: what was
   * unmapped is freed (the counters are recounted from what is left), the rest is intact.
   */
  close(): void {
    this.cache.flush(this.arenas);
    try {
      this.arenas.close();
      this.large.close();
      this.closed = true;
      // Flushed and never read again (a closed heap's calls all throw): the next heap's cache.
      this.#spares?.keepCache(this.#cacheKey, this.cache);
    } catch (error) {
      this.#recount();
      throw error;
    } finally {
      this.syncMapped();
      this.onTableChange(); // the table is gone once the arenas are, closed or not
    }
  }

  /** Sets the live counters from the blocks that are left (after a close that failed halfway). */
  #recount(): void {
    let live = this.large.count;
    let bytes = this.large.requestedBytes;
    for (const arena of this.arenas.list) {
      for (let slot = 0; slot < arena.tags.length; slot++) {
        const tag = arena.tags[slot]!;
        if (tag !== 0) {
          live++;
          bytes += tag - 1;
        }
      }
    }
    this.counters.totalFrees = this.counters.totalAllocations - live;
    this.counters.liveBytes = bytes;
  }
}
