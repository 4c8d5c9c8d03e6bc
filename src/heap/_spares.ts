// What closed heaps leave for the next heap: their shadow tag tables and their arenas, kept mapped
// and clean, per `Os`, within a budget. So a heap made after another closed costs no system call:
// `new PseudoMalloc()` + `malloc(16)` + `free` + `close()` takes a spare table (no 256 MiB
// reservation, no `getArrayBuffer` of it) and a spare arena (no `mmap`, no buddy to build, its
// pages already faulted in), and gives both back on `close`.
//
// - A *spare table* is a reserved shadow table (`_tag_table.ts`) that no open heap holds, every tag
//   in it 0. A table is held by one open heap at a time: a heap's `free` reads a tag and trusts it,
//   so two open heaps sharing a table would each accept the other's live blocks. A heap made while
//   another is open reserves a table of its own (once: it becomes a spare when that heap closes).
//   At most `SPARE_TABLES` per `Os` are kept; they cost address space, and memory only for the tag
//   pages that were written (zero now, 1/8 of the arena bytes they covered).
// - A closed heap's block cache (empty: `close` flushed it) is kept too, at most `SPARE_TABLES`: its
//   five typed arrays (three of 32 KiB with 16-byte minimum blocks) cost more to allocate (6 µs
//   when they were 4 KiB each) than the rest of a new heap.
// - A *spare arena* is an empty arena of a closed heap, still mapped: its buddy one free block and
//   every tag of it 0, so that none of the old heap's addresses reads as live in the next heap (a
//   free of one finds tag 0 and is refused as the buddy explains it). Its contents are not
//   cleared. An arena with live blocks at `close` is unmapped, as before. The spare arenas of an
//   `Os` hold at most its budget: `SPARE_BYTES` (4 MiB, four default arenas) for `libcOs`; a
//   closing heap unmaps the empty arenas beyond it. A new arena is the lowest spare, unless the
//   low window has a free slot below it (`_arenas.ts`).
//
// Spares exist only for an `Os` that keeps them: `libcOs`, the default, and any `Os` a test
// registers with `keepSpares`. For any other `Os` (a test's `FaultyOs`) a heap unmaps everything
// on `close`, as before, and leaves nothing mapped. `releaseSpares(os)` (`PseudoMalloc.releaseSpares`
// for `libcOs`) unmaps them all.
//
// System calls: the heap that makes a call counts it in its `stats().systemCalls`. So the one-time
// reservation of a table is counted by the heap whose first low arena reserved it, a heap that
// takes a spare table or arena counts nothing for it, a closing heap counts the unmaps beyond the
// budget, and `releaseSpares` is counted by no heap.

import type { Os } from "../../ffi/os.ts";
import { libcOs } from "../../ffi/libc.ts";
import type { BuddyAllocator } from "../buddy/buddy.ts";
import type { BlockCache } from "./_block_cache.ts";
import { lowMemory } from "./_low_memory.ts";

/** The budget of spare arenas of `libcOs`, in bytes: four default (1 MiB) arenas. */
export const SPARE_BYTES = 4 << 20;
/** Most spare tag tables kept per `Os`. */
export const SPARE_TABLES = 2;

/** A reserved shadow table: its address, its tags, and the geometry it is indexed by. */
export interface ReservedTable {
  address: number;
  tags: Uint16Array | Uint32Array;
  /** `log2(minBlockSize)`: the table is indexed by `address >>> minShift`. */
  minShift: number;
  /** 32-bit tags instead of 16-bit ones. */
  wide: boolean;
  /** False once unmapped. */
  mapped: boolean;
}

/** An arena no heap holds: mapped, its buddy one free block, its tags zero. */
export interface SpareArena {
  base: number;
  size: number;
  minBlockSize: number;
  /** Mapped through the low window; its tags then live in a shadow table. */
  low: boolean;
  buddy: BuddyAllocator;
  bytes: Uint8Array;
  /** The tags of an arena that is not low (its own array); `undefined` for a low one. */
  tags: Uint16Array | Uint32Array | undefined;
  /** The table a low arena's tags were last in, for giving its tag pages back when unmapped. */
  table: ReservedTable | undefined;
}

/** The spares of one `Os`; see the file comment. */
export class Spares {
  /** Bytes of spare arenas kept at most. */
  readonly budget: number;
  readonly tables: ReservedTable[] = [];
  readonly arenas: SpareArena[] = [];
  /** Block caches of closed heaps (empty), by geometry: five typed arrays not to allocate again. */
  readonly caches: { key: string; cache: BlockCache }[] = [];
  /** Bytes of the spare arenas. */
  bytes = 0;

  /** @param budget Bytes of spare arenas kept at most. */
  constructor(budget: number) {
    this.budget = budget;
  }

  /** A spare table of this geometry, taken (the caller holds it), or `undefined`. */
  takeTable(minShift: number, wide: boolean): ReservedTable | undefined {
    const i = this.tables.findLastIndex((t) => t.minShift === minShift && t.wide === wide);
    return i < 0 ? undefined : this.tables.splice(i, 1)[0];
  }

  /** Keeps `table` (all its tags 0) when there is room; false when the caller must unmap it. */
  keepTable(table: ReservedTable): boolean {
    if (this.tables.length >= SPARE_TABLES) return false;
    this.tables.push(table);
    return true;
  }

  /**
   * The lowest spare arena of this geometry, low or not as asked, below `below`, taken; or
   * `undefined`.
   */
  takeArena(
    size: number,
    minBlockSize: number,
    low: boolean,
    wide: boolean,
    below: number,
  ): SpareArena | undefined {
    let i = -1;
    for (const [j, a] of this.arenas.entries()) {
      if (
        a.size === size && a.minBlockSize === minBlockSize && a.low === low &&
        (low || (a.tags instanceof Uint32Array) === wide) && a.base < below &&
        (i < 0 || a.base < this.arenas[i]!.base)
      ) i = j;
    }
    if (i < 0) return undefined;
    const arena = this.arenas.splice(i, 1)[0]!;
    this.bytes -= size;
    return arena;
  }

  /** A closed heap's empty block cache of geometry `key`, taken, or `undefined`. */
  takeCache(key: string): BlockCache | undefined {
    const i = this.caches.findLastIndex((spare) => spare.key === key);
    return i < 0 ? undefined : this.caches.splice(i, 1)[0]!.cache;
  }

  /** Keeps the empty `cache` of a closed heap, at most `SPARE_TABLES` of them. */
  keepCache(key: string, cache: BlockCache): void {
    if (this.caches.length < SPARE_TABLES) this.caches.push({ key, cache });
  }

  /** True when an arena of `size` bytes fits the budget. */
  hasRoom(size: number): boolean {
    return this.bytes + size <= this.budget;
  }

  /** Keeps `arena` (clean: buddy reset, tags zero); the caller checked `hasRoom`. */
  keepArena(arena: SpareArena): void {
    this.arenas.push(arena);
    this.bytes += arena.size;
  }
}

const registry = new Map<Os, Spares>([[libcOs, new Spares(SPARE_BYTES)]]);

/**
 * The spares of `os`, or `undefined` when it keeps none (every `Os` but `libcOs`, unless a test
 * registered it).
 */
export function sparesOf(os: Os): Spares | undefined {
  return registry.get(os);
}

/**
 * Makes the heaps of `os` keep spares within `budget` bytes of arenas (tests: a `FaultyOs` that
 * keeps spares, to count and fail the calls of that path). Release them with `releaseSpares`.
 */
export function keepSpares(os: Os, budget: number): void {
  if (!registry.has(os)) registry.set(os, new Spares(budget));
}

/**
 * Unmaps every spare arena and table of `os`, through `os` itself (no heap counts these calls).
 * Returns the bytes of arenas unmapped. When
 * `munmap` fails it throws `OsError`: what was unmapped is gone, the rest is still spare.
 */
export function releaseSpares(os: Os): number {
  const spares = registry.get(os);
  if (spares === undefined) return 0;
  let released = 0;
  while (spares.arenas.length > 0) {
    const arena = spares.arenas.at(-1)!;
    if (arena.low) lowMemory.unmap(os, arena.base, arena.size);
    else os.unmap(arena.base, arena.size);
    spares.arenas.pop();
    spares.bytes -= arena.size;
    released += arena.size;
    const table = arena.table;
    if (table !== undefined && table.mapped) {
      releaseTagPages(os, table, arena.base, arena.size >>> table.minShift);
    }
  }
  while (spares.tables.length > 0) {
    const table = spares.tables.at(-1)!;
    os.unmap(table.address, table.tags.byteLength);
    table.mapped = false;
    spares.tables.pop();
  }
  return released;
}

/**
 * Gives back the pages of `table` that hold only the tags of the (unmapped) arena at `base` with
 * `slots` minimum blocks (`madvise`), rounding inward so that a neighbour's tags stay.
 */
export function releaseTagPages(os: Os, table: ReservedTable, base: number, slots: number): void {
  const pageSize = os.pageSize();
  const tagBytes = table.tags.BYTES_PER_ELEMENT;
  const first = table.address + (base >>> table.minShift) * tagBytes;
  const start = Math.ceil(first / pageSize) * pageSize;
  const end = Math.floor((first + slots * tagBytes) / pageSize) * pageSize;
  if (end > start) os.adviseDontNeed(start, end - start);
}
