// The shared heap's central structures and their lock: the buddy arenas (free lists threaded
// through the free blocks, one bitmap per arena), the table of large blocks, and the spin lock that
// guards them. Every function here except `lock`/`unlock` runs with the lock held, so its words
// are read and written plainly; `shared_pseudo_malloc.ts` states the memory-ordering argument.
//
// The buddy is src/buddy/buddy.ts's algorithm over region offsets instead of arena offsets, with
// one free list per order for all arenas together: a free block of order k is a free block of
// order k whichever arena holds it, and merging never crosses an arena (a block and its buddy
// differ in the bit worth the block size, below `arenaShift`). Example with 1 MiB arenas of 16-byte
// blocks: freeing the 16-byte block at offset 0x0010_0010 (arena 1, local 0x10) finds its buddy at
// local 0x00; when that is free, the two leave and join as the 32-byte block at 0x0010_0000, and
// so on up.
//
// The large table is an open-addressed hash table (linear probing, deletion by backward shift) of
// records [address, length, requested, owner] keyed by the page number of the address, in a
// mapping reserved for `largeCapacity` records. Example: the record of 0x7f00_0001_0000 (page
// 0x7f00_0001_0 with 4 KiB pages) starts at slot `imul(page, 0x9e3779b1) & (capacity - 1)`.

import { HeapClosedError, OutOfMemoryError } from "../errors.ts";
import {
  F_BUDDY_USED,
  F_RECENT,
  LARGE_RECORD,
  NIL,
  RECENT,
  type Views,
  W_ARENAS,
  W_BROKEN,
  W_HEADS,
  W_LARGE_COUNT,
  W_LOCK,
  W_LOCK_PROGRESS,
  W_RECENT_NEXT,
} from "./_layout.ts";

/** A private word to sleep on with `Atomics.wait` (allowed on a SharedArrayBuffer) as back-off. */
const sleeper = new Int32Array(new SharedArrayBuffer(4));

/** Milliseconds a waiter sleeps on a held lock before it gives up. */
const PATIENCE = 1000;

/**
 * Takes the spin lock for attachment `me` (slot + 1): a compare-and-swap of 0 to `me`; while held,
 * spins on an atomic load, 1, 2, 4, ... up to 1024 loads between tries, then sleeps 20 µs between
 * tries (`Atomics.wait` on a private SharedArrayBuffer: it cannot wait on the heap's memory, which
 * is not a SharedArrayBuffer). After a second of sleeps (a lock is held for microseconds) it throws,
 * naming the holder, rather than hang on a lock a terminated worker left held.
 *
 * @param words The header's words.
 * @param me The taker's slot + 1.
 * @param operation The public method, for the errors.
 */
export function lock(words: Int32Array, me: number, operation: string): void {
  if (Atomics.compareExchange(words, W_LOCK, 0, me) === 0) return;
  let spins = 1;
  let since = -1;
  let seen = -1;
  let seenProgress = -1;
  for (;;) {
    if (spins > 1024) {
      Atomics.wait(sleeper, 0, 0, 0.02);
      if (Atomics.load(words, W_BROKEN) !== 0) throw brokenError(operation);
      const now = performance.now();
      const holder = Atomics.load(words, W_LOCK);
      const progress = Atomics.load(words, W_LOCK_PROGRESS);
      if (since < 0 || holder !== seen || progress !== seenProgress) {
        // A new holder, or the holder made progress: wait a second more.
        since = now;
        seen = holder;
        seenProgress = progress;
      } else if (now - since > PATIENCE) {
        throw new Error(`Cannot ${operation}: ${holderText(holder - 1)}`);
      }
    } else {
      for (let i = 0; i < spins && Atomics.load(words, W_LOCK) !== 0; i++);
      spins <<= 1;
    }
    if (Atomics.compareExchange(words, W_LOCK, 0, me) === 0) return;
  }
}

/** Who holds a lock that has not moved for a second, and what can be done. */
function holderText(holder: number): string {
  const since = "has held the heap's lock for over a second without progress";
  if (holder > 0) {
    return `attachment ${holder} ${since}; if its worker is gone, call reclaim(${holder}) ` +
      `from another attachment`;
  }
  return holder === 0
    ? `the creator ${since}`
    : `a worker inside attach() ${since} (a worker that dies there leaves the lock held)`;
}

/** Tells waiters that the lock's holder is making progress (long calls under the lock). */
export function progress(words: Int32Array): void {
  Atomics.add(words, W_LOCK_PROGRESS, 1);
}

/** Releases the lock (a sequentially consistent store: every write under it is published). */
export function unlock(words: Int32Array): void {
  Atomics.store(words, W_LOCK, 0);
}

/** The error of every call on a heap whose central state a terminated attachment left broken. */
export function brokenError(operation: string): Error {
  return new HeapClosedError(
    `${operation} (the heap is broken: an attachment terminated while holding its lock left the ` +
      `central state inconsistent)`,
  );
}

// --- the buddy ---------------------------------------------------------------------------------

function nodeOf(v: Views, order: number, local: number): number {
  return (1 << (v.geometry.maxOrder - order)) + (local >>> (v.geometry.minShift + order));
}

/** The bit index, in the bitmaps, of node `node` of arena `arena`. */
function bitIndex(v: Views, arena: number, node: number): number {
  return arena * v.geometry.bitmapBytes * 8 + node;
}

/** Bit `index` of the bitmaps. */
export function testBit(v: Views, index: number): number {
  return (v.bitmaps[index >>> 3]! >>> (index & 7)) & 1;
}

function setBit(v: Views, index: number): void {
  v.bitmaps[index >>> 3]! |= 1 << (index & 7);
}

function clearBit(v: Views, index: number): void {
  v.bitmaps[index >>> 3]! &= ~(1 << (index & 7));
}

function push(v: Views, order: number, offset: number): void {
  const head = v.words[W_HEADS + order]!;
  v.links[offset >>> 2] = head;
  v.links[(offset >>> 2) + 1] = NIL;
  if (head !== NIL) v.links[(head >>> 2) + 1] = offset;
  v.words[W_HEADS + order] = offset;
}

function remove(v: Views, order: number, offset: number): void {
  const next = v.links[offset >>> 2]!;
  const prev = v.links[(offset >>> 2) + 1]!;
  if (prev === NIL) v.words[W_HEADS + order] = next;
  else v.links[prev >>> 2] = next;
  if (next !== NIL) v.links[(next >>> 2) + 1] = prev;
}

/** Starts the next arena: its whole span is one free block. False when `maxArenas` are in use. */
function openArena(v: Views): boolean {
  const count = v.words[W_ARENAS]!;
  if (count >= v.geometry.maxArenas) return false;
  push(v, v.geometry.maxOrder, count * v.geometry.arenaSize);
  Atomics.store(v.words, W_ARENAS, count + 1);
  return true;
}

/**
 * Takes a block of `order` from the buddies, splitting a larger one; opens an arena when none is
 * free. Returns its region offset, or -1 when every arena is full and no more may be opened.
 */
export function allocBlock(v: Views, order: number): number {
  const g = v.geometry;
  let j = order;
  while (j <= g.maxOrder && v.words[W_HEADS + j] === NIL) j++;
  if (j > g.maxOrder) {
    if (!openArena(v)) return -1;
    j = g.maxOrder;
  }
  const offset = v.words[W_HEADS + j]!;
  remove(v, j, offset);
  const arena = offset >>> g.arenaShift;
  const local = offset & (g.arenaSize - 1);
  setBit(v, bitIndex(v, arena, nodeOf(v, j, local)));
  while (j > order) {
    j--;
    push(v, j, offset + (g.minBlockSize << j));
    setBit(v, bitIndex(v, arena, nodeOf(v, j, local)));
  }
  v.floats[F_BUDDY_USED]! += g.minBlockSize << order;
  return offset;
}

/** Gives the block of `order` at `offset` back to its buddy, merging while the buddy is free. */
export function freeBlock(v: Views, offset: number, order: number): void {
  const g = v.geometry;
  const arena = offset >>> g.arenaShift;
  const arenaStart = arena * g.arenaSize;
  let local = offset - arenaStart;
  let k = order;
  let node = nodeOf(v, k, local);
  const bits = bitIndex(v, arena, 0);
  clearBit(v, bits + node);
  while (k < g.maxOrder && testBit(v, bits + (node ^ 1)) === 0) {
    const size = g.minBlockSize << k;
    remove(v, k, arenaStart + (local ^ size));
    local &= ~size;
    k++;
    node >>>= 1;
    clearBit(v, bits + node);
  }
  push(v, k, arenaStart + local);
  v.floats[F_BUDDY_USED]! -= g.minBlockSize << order;
}

/** The leaf of the block tree holding an offset: its start, its order, whether it is in use. */
export interface Leaf {
  start: number;
  order: number;
  used: boolean;
}

/** Descends arena `offset >>> arenaShift`'s tree to the block holding `offset`. */
export function leafAt(v: Views, offset: number): Leaf {
  const g = v.geometry;
  const arena = offset >>> g.arenaShift;
  const arenaStart = arena * g.arenaSize;
  const local = offset - arenaStart;
  const bits = bitIndex(v, arena, 0);
  let node = 1;
  for (let k = g.maxOrder;; k--) {
    const start = arenaStart + ((local >>> (g.minShift + k)) << (g.minShift + k));
    if (testBit(v, bits + node) === 0) return { start, order: k, used: false };
    if (k === 0) return { start, order: 0, used: true };
    const child = 2 * node + ((local >>> (g.minShift + k - 1)) & 1);
    if (testBit(v, bits + 2 * node) === 0 && testBit(v, bits + 2 * node + 1) === 0) {
      return { start, order: k, used: true };
    }
    node = child;
  }
}

// --- the large table ---------------------------------------------------------------------------

function home(v: Views, address: number): number {
  const page = (address / v.geometry.pageSize) % 4294967296;
  return Math.imul(page | 0, 0x9e3779b1) & (v.geometry.largeCapacity - 1);
}

/** The record index of the live large block at `address`, or -1. */
export function findLarge(v: Views, address: number): number {
  const mask = v.geometry.largeCapacity - 1;
  for (let i = home(v, address);; i = (i + 1) & mask) {
    const key = v.large[i * LARGE_RECORD]!;
    if (key === address) return i;
    if (key === 0) return -1;
  }
}

/**
 * Records a large block; an `OutOfMemoryError` when the table is full (nothing changed). Owners
 * are slot numbers; a record being freed holds `-1 - owner` (see `SharedPseudoMalloc`'s
 * `#freeLarge`).
 */
export function insertLarge(
  v: Views,
  address: number,
  length: number,
  requested: number,
  owner: number,
): void {
  const g = v.geometry;
  // A record of this address still marked "being freed" (owner < 0): its munmap is done (the
  // kernel handed the address out again), its freer has not removed it yet. Take it over in place;
  // the freer sees its mark gone and leaves the record alone.
  const stale = findLarge(v, address);
  if (stale >= 0 && v.large[stale * LARGE_RECORD + 3]! < 0) {
    const r = stale * LARGE_RECORD;
    v.large[r + 1] = length;
    v.large[r + 2] = requested;
    v.large[r + 3] = owner;
    return;
  }
  if (v.words[W_LARGE_COUNT]! >= g.largeCapacity - 1) {
    throw new OutOfMemoryError(
      `Cannot allocate ${requested} bytes: the heap's table of large blocks is full ` +
        `(${g.largeCapacity - 1} records; the largeCapacity option)`,
    );
  }
  const mask = g.largeCapacity - 1;
  let i = home(v, address);
  while (v.large[i * LARGE_RECORD] !== 0) i = (i + 1) & mask;
  const r = i * LARGE_RECORD;
  v.large[r + 1] = length;
  v.large[r + 2] = requested;
  v.large[r + 3] = owner;
  v.large[r] = address;
  v.words[W_LARGE_COUNT]!++;
}

/** Removes record `index` (backward shift: every record stays reachable from its home). */
export function removeLarge(v: Views, index: number): void {
  const mask = v.geometry.largeCapacity - 1;
  const large = v.large;
  let hole = index;
  for (let i = (index + 1) & mask; large[i * LARGE_RECORD] !== 0; i = (i + 1) & mask) {
    const want = home(v, large[i * LARGE_RECORD]!);
    // Move record i into the hole when its home is not in (hole, i] (cyclically).
    const between = hole <= i ? want > hole && want <= i : want > hole || want <= i;
    if (!between) {
      large.copyWithin(hole * LARGE_RECORD, i * LARGE_RECORD, (i + 1) * LARGE_RECORD);
      hole = i;
    }
  }
  large.fill(0, hole * LARGE_RECORD, (hole + 1) * LARGE_RECORD);
  v.words[W_LARGE_COUNT]!--;
}

/** Notes a large address just freed (a later free of it is a double free). */
export function noteRecent(v: Views, address: number): void {
  const next = v.words[W_RECENT_NEXT]!;
  v.floats[F_RECENT + next] = address;
  v.words[W_RECENT_NEXT] = (next + 1) % RECENT;
}

/** Whether `address` is among the large addresses recently freed. */
export function isRecent(v: Views, address: number): boolean {
  for (let i = 0; i < RECENT; i++) if (v.floats[F_RECENT + i] === address) return true;
  return false;
}

/** Forgets `address` among the recent frees (it was mapped again). */
export function forgetRecent(v: Views, address: number): void {
  for (let i = 0; i < RECENT; i++) {
    if (v.floats[F_RECENT + i] === address) v.floats[F_RECENT + i] = 0;
  }
}
