// The heap's block cache: freed small blocks parked per order for reuse, before they go back to
// their buddy. Like glibc's tcache: a repeated malloc + free of one size touches no bitmap and
// splits nothing.
//
// Layout: one LIFO stack per order, `CACHE_DEPTH` entries each, in flat `Int32Array`s that the
// heap's fast paths index directly (`order * CACHE_DEPTH + i`). An entry of a low arena (below
// 2^31) is its address alone, so that `free` parks it without finding its arena; an entry of
// another arena is 0 in `block`, with the arena's index and the block's offset in `arena` and
// `offset`. Example with 16-byte minimum blocks: freeing the 100-byte block at 0x1000_0080 pushes
// 0x1000_0080 on stack 3 (128-byte blocks): `block[3 * 64 + count[3]] = 0x1000_0080`.
//
// Bounds: at most `CACHE_DEPTH` (64) blocks and at most `CACHE_ORDER_BYTES` (64 KiB) per order, so
// at most 64 KiB of each block size is parked: 130 KiB in all below the default 1 KiB threshold,
// and 64 KiB per order above it (a block of more than 64 KiB is never cached). `limit[order]` is
// the depth of each stack. A block that finds its stack full goes back to its buddy, which merges
// it; when no arena has room the heap flushes the whole cache first, so cached blocks never cost a
// new arena or an `OutOfMemoryError`.

import { hex } from "../errors.ts";
import type { Arena, Arenas } from "./_arenas.ts";

/** Most blocks parked per order. */
export const CACHE_DEPTH = 64;
/** Most bytes parked per order: a stack of 1 KiB blocks holds 64, one of 32 KiB blocks 2. */
export const CACHE_ORDER_BYTES = 64 << 10;

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
  /** Per order: the most entries the stack takes (`CACHE_DEPTH`, or fewer for large blocks). */
  readonly limit: Int32Array;
  /**
   * The largest requested size whose order's stack takes all `CACHE_DEPTH` blocks (1024 with the
   * default 16-byte minimum block: 64 blocks of 1 KiB are 64 KiB), or -1 when no order does.
   */
  readonly deepSize: number;
  #minBlockSize: number;

  /**
   * @param orders How many block sizes there are: `log2(arenaSize / minBlockSize) + 1`.
   * @param minBlockSize The size of order 0.
   * @param largestOrder The highest order ever cached (the order of `mmapThreshold - 1`).
   */
  constructor(orders: number, minBlockSize: number, largestOrder: number) {
    this.block = new Int32Array(orders * CACHE_DEPTH);
    this.arena = new Int32Array(orders * CACHE_DEPTH);
    this.offset = new Int32Array(orders * CACHE_DEPTH);
    this.count = new Int32Array(orders);
    this.limit = new Int32Array(orders);
    this.#minBlockSize = minBlockSize;
    const deepBlock = CACHE_ORDER_BYTES / CACHE_DEPTH;
    this.deepSize = minBlockSize <= deepBlock ? deepBlock : -1;
    for (let order = 0; order <= largestOrder && order < orders; order++) {
      this.limit[order] = Math.min(
        CACHE_DEPTH,
        Math.floor(CACHE_ORDER_BYTES / (minBlockSize << order)),
      );
    }
  }

  /**
   * Parks the freed block at `offset` of `arena` on stack `order`, which holds `count` entries
   * (fewer than its limit).
   */
  park(arena: Arena, offset: number, order: number, count: number): void {
    const i = order * CACHE_DEPTH + count;
    this.block[i] = arena.low ? arena.base + offset : 0;
    this.offset[i] = offset;
    this.arena[i] = arena.index;
    this.count[order] = count + 1;
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
      for (let i = order * CACHE_DEPTH; i < order * CACHE_DEPTH + this.count[order]!; i++) {
        const arena = this.arenaOf(i, arenas);
        arena.buddy.free(this.offsetOf(i, arena), arena.base);
      }
    }
    this.count.fill(0);
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
      for (let i = order * CACHE_DEPTH; i < order * CACHE_DEPTH + count; i++) {
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
