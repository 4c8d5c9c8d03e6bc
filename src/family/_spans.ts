// The spans of a SegregatedAllocator and the two lists they are on: each size class's list of its
// spans with a free block, and the cache of empty spans of all classes, oldest first.
//
// A span's metadata lives in JavaScript, outside the native memory, in one typed array: a *tag* per
// block (the requested size + 1 of a live block, 0 for a free one), then a *free stack* of the
// blocks freed since the span was last empty; and a *bump* index: every block at or above it is free and
// on no stack. `malloc` pops the stack, or when it is empty takes the block at the bump index and
// moves it up; `free` pushes the block's index. A span that empties starts over: stack empty, bump
// at 0, so its blocks are handed out in address order again. For a span of class 48 on a 4 KiB
// page (85 blocks): malloc, malloc, malloc give blocks 0, 1, 2 (bump 3); free(1) pushes 1; the
// next malloc pops 1, the one after takes 3 (bump 4). Blocks below `handedOut`, the highest bump
// ever, have been handed out at least once (for the diagnosis of a bad free).
//
// A class's list: `malloc` takes its head, a full span leaves it, a span that was full comes back
// at its head, an emptied one goes to its tail (so partly used spans are filled first). The cache:
// an emptied span joins it as the newest; when the cache is over its budget the oldest is
// unmapped; a cached span that gets a block again leaves it: its bytes at once (one subtraction
// on malloc's fast path), its place on the list when it comes up for eviction (it is skipped) or
// empties again (it moves to the newest end).

import type { Os } from "../../ffi/os.ts";
import { MAX_SPAN_BYTES, MIN_BLOCKS_PER_SPAN } from "./_segregated_classes.ts";

/** One span and its metadata; see the file comment. */
export class Span {
  // The fields the fast paths read come first: V8 lays them out in this order, so that they share
  // the object's first cache lines.
  readonly base: number;
  /** Bytes mapped and blocks held: `sizeClass.spanLength` and `.capacity`, for the fast paths. */
  readonly length: number;
  readonly capacity: number;
  /**
   * One array for both: from 0 to `capacity`, the requested size + 1 of each live block (0 for a
   * free one, its *tag*); from `capacity` to `top`, the free stack: indices of blocks freed below
   * `bump`. One array rather than two: a free touches one typed array, not two.
   */
  readonly blocks: Int32Array;
  /** The end of the free stack in `blocks`: `capacity` when it is empty. */
  top: number;
  /** Blocks from this index on are free and on no stack. */
  bump = 0;
  live = 0;
  readonly sizeClass: SpanClass;
  /** Position in the allocator's table of spans. */
  readonly id: number;
  /** The highest bump before the span last started over (see `handedOut`). */
  touched = 0;
  readonly bytes: Uint8Array;
  listed = false;
  prev: Span | undefined = undefined;
  next: Span | undefined = undefined;
  /** True while the span is on the cache's list: always when it is empty, maybe after. */
  cached = false;
  /** The next older and newer span of the cache. */
  older: Span | undefined = undefined;
  newer: Span | undefined = undefined;

  /** Blocks below this index have been handed out at least once. */
  get handedOut(): number {
    return Math.max(this.touched, this.bump);
  }

  constructor(id: number, base: number, sizeClass: SpanClass, bytes: Uint8Array) {
    this.id = id;
    this.base = base;
    this.sizeClass = sizeClass;
    this.capacity = this.top = sizeClass.capacity;
    this.length = bytes.length;
    this.blocks = new Int32Array(2 * sizeClass.capacity);
    this.bytes = bytes;
  }
}

/** One size class: its geometry and its list of spans with a free block. */
export class SpanClass {
  /** Position in the class table, and the block size. */
  readonly index: number;
  readonly size: number;
  /**
   * `1 / size + 2^-40`: a block's index is `(offset * inverse) | 0`, checked by multiplying back
   * (see _segregated_heap.ts). The 2^-40 keeps an exact multiple of the size from truncating to
   * one less, and is too small to reach the next index: offsets are below 2^20.
   */
  readonly inverse: number;
  /**
   * Bytes of one span: the fewest whole pages that hold MIN_BLOCKS_PER_SPAN blocks, or, for a
   * class above MAX_SPAN_BYTES / MIN_BLOCKS_PER_SPAN, as many as fit in MAX_SPAN_BYTES (at least
   * one). So one live block of a medium class pins at most 32 KiB beside it, or its own pages.
   */
  readonly spanLength: number;
  /** Blocks per span. */
  readonly capacity: number;
  head: Span | undefined;
  tail: Span | undefined;

  constructor(index: number, size: number, pageSize: number) {
    this.index = index;
    this.size = size;
    this.inverse = 1 / size + 2 ** -40;
    const blocks = Math.max(1, Math.min(MIN_BLOCKS_PER_SPAN, Math.floor(MAX_SPAN_BYTES / size)));
    this.spanLength = Math.ceil((blocks * size) / pageSize) * pageSize;
    this.capacity = Math.floor(this.spanLength / size);
  }

  /** Puts `span` at the head of the list. */
  pushFront(span: Span): void {
    span.prev = undefined;
    span.next = this.head;
    if (this.head === undefined) this.tail = span;
    else this.head.prev = span;
    this.head = span;
    span.listed = true;
  }

  /** Puts `span` at the tail of the list. */
  pushBack(span: Span): void {
    span.next = undefined;
    span.prev = this.tail;
    if (this.tail === undefined) this.head = span;
    else this.tail.next = span;
    this.tail = span;
    span.listed = true;
  }

  /** Takes `span` off the list. */
  unlist(span: Span): void {
    if (span.prev === undefined) this.head = span.next;
    else span.prev.next = span.next;
    if (span.next === undefined) this.tail = span.prev;
    else span.next.prev = span.prev;
    span.prev = span.next = undefined;
    span.listed = false;
  }

  /**
   * Maps a fresh span of this class with id `id`, every block free, on no list; throws
   * `OutOfMemoryError` from the OS, with nothing mapped, when it refuses.
   */
  map(os: Os, id: number): Span {
    const length = this.spanLength;
    const base = os.map(length);
    return new Span(id, base, this, new Uint8Array(os.view(base, length)));
  }
}

/**
 * The cache of empty spans, all classes together, oldest first, within a budget in bytes. The list
 * is kept lazily: a cached span that gets a block again stays on it (only `bytes` changes, on the
 * fast path), and is dropped when it comes up for eviction or empties again.
 */
export class SpanCache {
  /** Bytes the cache may hold. */
  readonly limit: number;
  /** Bytes of the empty spans: exactly those the cache holds. */
  bytes = 0;
  /** The span emptied longest ago, and the one emptied last (either may have blocks again). */
  oldest: Span | undefined;
  newest: Span | undefined;

  constructor(limit: number) {
    this.limit = limit;
  }

  /** Puts a span that just emptied on the list as the newest (the caller counts its bytes). */
  add(span: Span): void {
    span.cached = true;
    span.older = this.newest;
    span.newer = undefined;
    if (this.newest === undefined) this.oldest = span;
    else this.newest.newer = span;
    this.newest = span;
  }

  /** Takes a span off the list (it empties again, is evicted, or is found with blocks). */
  remove(span: Span): void {
    if (span.older === undefined) this.oldest = span.newer;
    else span.older.newer = span.newer;
    if (span.newer === undefined) this.newest = span.older;
    else span.newer.older = span.older;
    span.older = span.newer = undefined;
    span.cached = false;
  }
}
