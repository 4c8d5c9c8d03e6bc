// The heap's block cache: freed small blocks parked per order for reuse, before they go back to
// their buddy. Like glibc's tcache: a repeated malloc + free of one size touches no bitmap and
// splits nothing.
//
// Memory budget: at most `CACHE_ORDER_BYTES` (64 KiB) of blocks parked per order, so a stack takes
// `64 KiB / block size` blocks: 4096 of 16 bytes, 2048 of 32, ... 64 of 1 KiB, 2 of 32 KiB, 1 of
// 64 KiB; a block of more than 64 KiB is never cached. Below the default 1 KiB threshold (orders
// 16 B to 1 KiB) the cache holds at most 7 x 64 KiB = 448 KiB; with a larger `mmapThreshold`,
// 64 KiB more per order up to 64 KiB blocks (at most 13 x 64 KiB = 832 KiB). What it holds counts
// in `stats().smallCachedBytes`, goes back to the buddies on `trim()` and `close()`, and whenever no
// arena has room for a request (before a new arena is mapped or an `OutOfMemoryError` thrown), so
// cached blocks never cost a new arena. Why bytes and not a count per order: programs free in
// bursts of whole structures (the binary-tree trace frees trees of 31 to 16,382 nodes); with 64
// blocks per order, 68 % of its frees missed the cache, merged in the buddy and were split again by
// the next malloc. A bound in bytes takes long bursts of small blocks at the memory cost of a few
// large ones. (Measured on binary-tree, warm, against libc: 64 blocks 0.48x, 32 KiB per order
// 0.76x, 64 KiB 0.88x.)
//
// Layout: one LIFO stack per order in flat `Int32Array`s that the heap's fast paths index
// directly. With `depth` = the stack of order 0's capacity (`CACHE_ORDER_BYTES / minBlockSize`,
// 4096 for 16-byte blocks), order k takes `depth >> k` entries, and the stacks lie one after the
// other, so that stack k starts at the sum of the ones below it:
//
//   base(k) = 2 * (depth - (depth >> k))       16-byte minimum: 0, 4096, 6144, 7168, ... 8064
//
// 2 * depth entries in all (8192, 32 KiB per array), where a stack per order of the deepest
// stack's size would take 7 x 4096 below 1 KiB. The fast paths compute base(k) and the capacity from
// `minShift` with shifts: no load of a per-order limit. An entry of a low arena (below 2^31) is its
// address alone, so that `free` parks it without finding its arena; an entry of another arena is 0
// in `block`, with the arena's index and the block's offset in `arena` and `offset`. Example with
// 16-byte minimum blocks: freeing the 100-byte block at 0x1000_0080 when stack 3 (128-byte blocks)
// holds 5 pushes it at base(3) + 5 = 2 * (4096 - 512) + 5: `block[7173] = 0x1000_0080`.
//
// A block that finds its stack full goes back to its buddy, which merges it. An order whose stack
// went round a burst cycle (`bursts`: full, then empty, then full again) is refilled in batches:
// a malloc that finds it empty splits up to 1 KiB of blocks off the buddy at once (`_core.ts`).

import { hex } from "../errors.ts";
import type { Arena, Arenas } from "./_arenas.ts";

/** Most bytes parked per order: a stack of 16-byte blocks holds 4096, one of 1 KiB blocks 64. */
export const CACHE_ORDER_BYTES = 64 << 10;
/**
 * Most blocks parked per order, in the stack of the smallest blocks a heap can have (8 bytes):
 * `CACHE_ORDER_BYTES / 8`. With the default 16-byte minimum block the deepest stack takes 4096.
 */
export const CACHE_DEPTH = CACHE_ORDER_BYTES / 8;

/** `BlockCache.bursts`: the stack never overflowed since the last flush. */
export const BURST_NONE = 0;
/** `BlockCache.bursts`: a free found the stack full. */
export const BURST_OVERFLOWED = 1;
/** `BlockCache.bursts`: then a malloc found it empty. */
export const BURST_DRAINED = 2;
/** `BlockCache.bursts`: then a free found it full again; an empty stack is refilled in batches. */
export const BURST_ARMED = 3;

/** The number of blocks the stack of `order` takes, with `log2(minBlockSize)` = `minShift`. */
export function cacheLimit(minShift: number, order: number): number {
  return CACHE_ORDER_BYTES >> (minShift + order);
}

/** Where the stack of `order` starts in the cache's arrays (see the file comment). */
export function cacheBase(minShift: number, order: number): number {
  return ((CACHE_ORDER_BYTES >> minShift) - (CACHE_ORDER_BYTES >> (minShift + order))) << 1;
}

/** Freed small blocks per order; see the file comment. */
export class BlockCache {
  /** Per entry: the block's address (a low arena's block), or 0 (see `arena` and `offset`). */
  readonly block: Int32Array;
  /** Per entry of a block that is not low: its arena's index in the heap's list. */
  readonly arena: Int32Array;
  /** Per entry of a block that is not low: its offset in its arena. */
  readonly offset: Int32Array;
  /** Per order: the entries in use, the top of the stack. */
  readonly count: Int32Array;
  /** Per order: the most entries the stack takes, `cacheLimit(minShift, order)`. */
  readonly limit: Int32Array;
  /**
   * Per order, how far the stack went round the burst cycle since the last flush: `BURST_NONE`,
   * then `BURST_OVERFLOWED` when a free found it full, `BURST_DRAINED` when a malloc then found it
   * empty, `BURST_ARMED` when a free found it full again. Once armed, the core refills the empty
   * stack in batches (`_core.ts`, `REFILL_BYTES`).
   */
  readonly bursts: Uint8Array;
  #minBlockSize: number;
  #minShift: number;

  /**
   * @param orders How many block sizes there are: `log2(arenaSize / minBlockSize) + 1`.
   * @param minBlockSize The size of order 0.
   */
  constructor(orders: number, minBlockSize: number) {
    const minShift = Math.log2(minBlockSize);
    const entries = 2 * (CACHE_ORDER_BYTES >> minShift);
    this.block = new Int32Array(entries);
    this.arena = new Int32Array(entries);
    this.offset = new Int32Array(entries);
    this.count = new Int32Array(orders);
    this.limit = new Int32Array(orders);
    this.bursts = new Uint8Array(orders);
    this.#minBlockSize = minBlockSize;
    this.#minShift = minShift;
    for (let order = 0; order < orders; order++) this.limit[order] = cacheLimit(minShift, order);
  }

  /** Where the stack of `order` starts in `block`, `arena` and `offset`. */
  baseOf(order: number): number {
    return cacheBase(this.#minShift, order);
  }

  /**
   * Parks the freed block at `offset` of `arena` on stack `order`, which holds `count` entries
   * (fewer than its limit).
   */
  park(arena: Arena, offset: number, order: number, count: number): void {
    const i = this.baseOf(order) + count;
    this.block[i] = arena.low ? arena.base + offset : 0;
    this.offset[i] = offset;
    this.arena[i] = arena.index;
    this.count[order] = count + 1;
  }

  /** Reverses the `count` entries from `i` on: what was pushed last comes out last. */
  reverse(i: number, count: number): void {
    const { block, arena, offset } = this;
    for (let j = i + count - 1; i < j; i++, j--) {
      const b = block[i]!, a = arena[i]!, o = offset[i]!;
      block[i] = block[j]!;
      arena[i] = arena[j]!;
      offset[i] = offset[j]!;
      block[j] = b;
      arena[j] = a;
      offset[j] = o;
    }
  }

  /** The arena of entry `i`: a low block is found by its address, any other by its index. */
  arenaOf(i: number, arenas: Arenas): Arena {
    const address = this.block[i]!;
    return address === 0 ? arenas.list[this.arena[i]!]! : arenas.arenaOf(address)!;
  }

  /** The offset of entry `i` in its arena, `arena`. */
  offsetOf(i: number, arena: Arena): number {
    const address = this.block[i]!;
    return address === 0 ? this.offset[i]! : address - arena.base;
  }

  /** Bytes of the parked blocks. */
  bytes(): number {
    let total = 0;
    for (let order = 0; order < this.count.length; order++) {
      total += this.count[order]! * (this.#minBlockSize << order);
    }
    return total;
  }

  /** Gives every parked block back to its buddy, which merges it as far up as it can. */
  flush(arenas: Arenas): void {
    for (let order = 0; order < this.count.length; order++) {
      const base = this.baseOf(order);
      for (let i = base; i < base + this.count[order]!; i++) {
        const arena = this.arenaOf(i, arenas);
        arena.buddy.free(this.offsetOf(i, arena), arena.base);
      }
    }
    this.count.fill(0);
    this.bursts.fill(BURST_NONE);
  }

  /**
   * Checks the cache against the arenas: distinct blocks within each stack's limit, each allocated
   * in its buddy at the stack's order and untagged. Returns the cached addresses.
   */
  validate(arenas: Arenas, fail: (what: string) => never): Set<number> {
    const cached = new Set<number>();
    for (let order = 0; order < this.count.length; order++) {
      const count = this.count[order]!;
      if (count < 0 || count > this.limit[order]!) fail(`cache ${order} holds ${count} blocks`);
      const base = this.baseOf(order);
      for (let i = base; i < base + count; i++) {
        const arena = this.arenaOf(i, arenas);
        if (arena === undefined) fail(`cached block ${order}/${i} is in no arena`);
        const offset = this.offsetOf(i, arena);
        const address = arena.base + offset;
        if (cached.has(address)) fail(`${hex(address)} is cached twice`);
        if (arena.buddy.orderAt(offset) !== order) {
          fail(`cached ${hex(address)} is not of order ${order}`);
        }
        if (arenas.tagOf(arena, offset) !== 0) fail(`cached ${hex(address)} has a tag`);
        cached.add(address);
      }
    }
    return cached;
  }
}
