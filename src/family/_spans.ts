// The spans of a SegregatedAllocator and the two lists they are on: each size class's list of its
// spans with a free block, and the cache of empty spans of all classes, oldest first.
//
// A span's metadata lives in JavaScript, outside the native memory: its free bitmap (bit i set
// when block i is free; bits past the last block clear), a live count, the lowest bitmap word
// that may hold a free block, how many blocks were ever handed out, and a byte per block for the
// slack. A fresh span of class 48 on a 4 KiB page holds 85 blocks: bitmap words 0 and 1 are
// 0xffffffff, word 2 is 2^21 - 1 (blocks 64 to 84), and the 16 bytes after block 84 stay unused.
//
// A class's list: `malloc` takes its head, a full span leaves it, a span that was full comes back
// at its head, an emptied one goes to its tail (so partly used spans are filled first). The cache:
// an emptied span joins it as the newest; when the cache is over its budget the oldest is
// unmapped; a cached span that gets a block again leaves it.

import type { Os } from "../../ffi/os.ts";
import { MIN_BLOCKS_PER_SPAN } from "./_size_classes.ts";

/** One span and its metadata. */
export interface Span {
  base: number;
  sizeClass: SpanClass;
  /** Bit `i` set when block `i` is free; bits past the last block are clear. */
  free: Uint32Array;
  /** No bitmap word below this one has a set bit. */
  hint: number;
  live: number;
  /** Blocks below this index have been handed out at least once. */
  touched: number;
  /** Class size minus requested bytes of each live block. */
  slack: Uint8Array;
  bytes: Uint8Array;
  listed: boolean;
  prev: Span | undefined;
  next: Span | undefined;
  /** True while the span is empty and in the cache. */
  cached: boolean;
  /** The next older and newer span of the cache. */
  older: Span | undefined;
  newer: Span | undefined;
}

/** One size class: its geometry and its list of spans with a free block. */
export class SpanClass {
  /** Position in the class table, and the block size. */
  readonly index: number;
  readonly size: number;
  /** Bytes of one span: the fewest whole pages that hold MIN_BLOCKS_PER_SPAN blocks. */
  readonly spanLength: number;
  /** Blocks per span. */
  readonly capacity: number;
  head: Span | undefined;
  tail: Span | undefined;

  constructor(index: number, size: number, pageSize: number) {
    this.index = index;
    this.size = size;
    this.spanLength = Math.ceil((MIN_BLOCKS_PER_SPAN * size) / pageSize) * pageSize;
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
   * Maps a fresh span of this class, every block free, on no list; throws `OutOfMemoryError`
   * from the OS, with nothing mapped, when it refuses.
   */
  map(os: Os): Span {
    const length = this.spanLength;
    const base = os.map(length);
    const words = Math.ceil(this.capacity / 32);
    const free = new Uint32Array(words).fill(0xffff_ffff);
    if (this.capacity % 32 !== 0) free[words - 1] = 2 ** (this.capacity % 32) - 1;
    return {
      base,
      sizeClass: this,
      free,
      hint: 0,
      live: 0,
      touched: 0,
      slack: new Uint8Array(this.capacity),
      bytes: new Uint8Array(os.view(base, length)),
      listed: false,
      prev: undefined,
      next: undefined,
      cached: false,
      older: undefined,
      newer: undefined,
    };
  }
}

/** The cache of empty spans, all classes together, oldest first, within a budget in bytes. */
export class SpanCache {
  /** Bytes the cache may hold. */
  readonly limit: number;
  /** Bytes it holds. */
  bytes = 0;
  /** The span emptied longest ago, and the one emptied last. */
  oldest: Span | undefined;
  newest: Span | undefined;

  constructor(limit: number) {
    this.limit = limit;
  }

  /** Adds an empty span as the newest (the caller made room for it). */
  add(span: Span): void {
    span.cached = true;
    span.older = this.newest;
    span.newer = undefined;
    if (this.newest === undefined) this.oldest = span;
    else this.newest.newer = span;
    this.newest = span;
    this.bytes += span.sizeClass.spanLength;
  }

  /** Takes a span out (it gets a block, or is unmapped). */
  remove(span: Span): void {
    if (span.older === undefined) this.oldest = span.newer;
    else span.older.newer = span.newer;
    if (span.newer === undefined) this.newest = span.older;
    else span.newer.older = span.older;
    span.older = span.newer = undefined;
    span.cached = false;
    this.bytes -= span.sizeClass.spanLength;
  }
}
