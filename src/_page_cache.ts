// The free page ranges behind large blocks: what `Mappings` keeps of released mappings, for reuse.
//
// Memory comes from the OS in *regions* (one `mmap` each) and is handed out in *spans*: whole
// pages, one live block each. A free span is in the cache: a request of `p` pages takes the
// smallest free span of at least `p` pages (best fit) and leaves the rest as a smaller free span,
// so varied sizes reuse each other's memory. A released span merges with the free span that
// starts where it ends (found by address in a hash table), and when a request finds no span long
// enough, every run of free neighbours is merged first (`#consolidate`: spans sorted by address),
// then the search runs again. Merging downwards on every release too would need a second table
// and cost three more lookups per `free`; measured on the 1-64 KiB churn of `bench/`, the lookups
// were a fifth of the time, and that churn never needs the merge. Neighbours need not come from one
// region: the kernel places new mappings next to old ones, and memory freed from either side
// merges into one span, as in a heap that grows contiguously (a span over two regions is one range
// to `munmap`). Worked example with 4 KiB pages: a 40 KiB block is freed (one free span of 10
// pages); `malloc(12_000)` takes its first 3 pages and leaves 7 free; when the 3-page block is
// freed it merges with the 7 above it again.
//
// Finding the best fit is a bitmap scan, not a search: free spans of 1 to 256 pages sit in one
// bin per page count, and a bit per bin says whether it has any, so the first set bit at or above
// `p` names the bin (`p = 3`, bits `0b1010_0000` left: bin 5, found with one `Math.clz32`). Spans
// longer than 256 pages share bin 0, searched in full: there are few of them.
//
// Free spans are also listed in the order they were released, oldest first: the cache gives back
// (unmaps) its oldest span first, when over budget or idle (`Mappings` decides when). A span's
// `releasedAt` is the cache's clock (one tick per release) at its release, so "idle for more than
// n releases" is one subtraction.
//
// A free span has been handed out before, so it holds old contents: `calloc` clears it.
//
// Nothing here calls the OS: `Mappings` unmaps a span before it asks the cache to forget it.

import { AddressTable } from "./_address_table.ts";

/**
 * A range a view is made over: one mapping obtained from the OS (`mmap`, or `mremap` that moved or
 * grew a block), or a window over several, for a span that grew over them (`covering`).
 */
export interface Region {
  readonly base: number;
  readonly length: number;
  /** One view over the whole region, made on first use. */
  bytes: Uint8Array | undefined;
}

/** Whole pages of one region: a live block, or free in the cache. */
export interface Span {
  address: number;
  /** Bytes, a whole number of pages. */
  length: number;
  /** Bytes requested while live; -1 while free. */
  requested: number;
  /** A region whose view covers the span when it was made (`Mappings` checks before use). */
  region: Region;
  /** While free: its bin, and its position there; -1 while live. */
  bin: number;
  slot: number;
  /** While free: the neighbours in release order. */
  older: Span | null;
  newer: Span | null;
  /** While free: the cache's clock when it was released. */
  releasedAt: number;
}

/**
 * Span records kept for reuse once their pages merged into a neighbour's: a take that splits
 * needs one, and making a new object each time was a tenth of the 1-64 KiB churn (in the garbage
 * collector).
 */
const SPARE_SPANS = 256;

/** The region of a spare record (so that it keeps no view alive). */
const NO_REGION: Region = { base: 0, length: 0, bytes: undefined };

/** Page counts with a bin of their own: 1 to 256 pages (1 MiB of 4 KiB pages). */
const BINS = 257;

/**
 * A region whose view covers both `a` and `b` (one of them when it covers the other): a span that
 * grows over the pages of another mapping gets it, so that its views (and those of the spans later
 * split off it) stay cut from one view instead of each making a new one (`getArrayBuffer`, about a
 * microsecond). The range between two mappings may be unmapped: nothing ever reads it.
 */
export function covering(a: Region, b: Region): Region {
  if (a === b) return a;
  const base = Math.min(a.base, b.base);
  const end = Math.max(a.base + a.length, b.base + b.length);
  if (base === a.base && end === a.base + a.length) return a;
  if (base === b.base && end === b.base + b.length) return b;
  return { base, length: end - base, bytes: undefined };
}

/**
 * A new span (every span is made here, so that all have one shape): live with `requested` bytes,
 * or free with -1.
 */
export function newSpan(
  address: number,
  length: number,
  requested: number,
  region: Region,
): Span {
  return {
    address,
    length,
    requested,
    region,
    bin: -1,
    slot: 0,
    older: null,
    newer: null,
    releasedAt: 0,
  };
}

/** The free spans, by page count and by age; see the file comment. */
export class PageCache {
  /** Bytes in free spans. */
  bytes = 0;
  /** Free spans. */
  count = 0;
  /** One tick per release. */
  clock = 0;
  /** The free span released longest ago, or null. */
  oldest: Span | null = null;
  #newest: Span | null = null;
  /** 1 / the page size: exact, a power of two. */
  #pageScale: number;
  /** Made on first use: a new heap makes none (a new heap costs microseconds, see design.md). */
  #bins: (Span[] | undefined)[] = new Array(BINS);
  /** Bit `b % 16` of word `b >> 4` is set when bin `b` has spans: 16-bit words stay small integers. */
  #nonEmpty: number[] = new Array<number>(Math.ceil(BINS / 16)).fill(0);
  #byStart: AddressTable<Span>;
  #spare: Span[] = [];
  /** Released spans since the last `#consolidate`: free neighbours may be unmerged. */
  #unmerged = 0;

  /** @param pageSize The OS page size, a power of two. */
  constructor(pageSize: number) {
    this.#pageScale = 1 / pageSize;
    this.#byStart = new AddressTable(pageSize);
  }

  /** The free span that starts at `address`, if any. */
  freeAt(address: number): Span | undefined {
    return this.#byStart.get(address);
  }

  /** The free span that holds `address`, if any (a walk over every free span: for errors). */
  holding(address: number): Span | undefined {
    for (const span of this.spans()) {
      if (address >= span.address && address < span.address + span.length) return span;
    }
    return undefined;
  }

  /**
   * Takes the front `length` bytes of the best-fitting free span (the smallest of at least
   * `length` bytes), leaving the rest free in its place; returns the span, now live, or
   * `undefined` when no free span is long enough.
   */
  take(length: number, requested: number): Span | undefined {
    let span = this.#bestFit(length);
    if (span === undefined && this.#unmerged > 0) {
      this.#consolidate();
      span = this.#bestFit(length);
    }
    if (span === undefined) return undefined;
    const { older, newer } = span;
    this.#unlist(span);
    if (span.length > length) this.#splitOff(span, length, older, newer);
    span.requested = requested;
    return span;
  }

  /** Releases the live span `span` into the cache, merged with a free span above it. */
  release(span: Span): void {
    span.requested = -1;
    this.clock++;
    this.#unmerged++;
    this.#mergeAbove(span);
    span.releasedAt = this.clock;
    this.#list(span);
  }

  /**
   * Adds a free span that was never live (the tail cut off a shrinking block), merged with a free
   * span above it.
   */
  addTail(span: Span): void {
    span.requested = -1;
    this.#mergeAbove(span);
    span.releasedAt = this.clock;
    this.#list(span);
  }

  /**
   * Takes `length` bytes off the front of the free span `span` (the one above a growing block),
   * the rest staying free; the whole span when `length` is all of it.
   */
  shorten(span: Span, length: number): void {
    const { older, newer } = span;
    this.#unlist(span);
    if (span.length === length) {
      this.#recycle(span);
      return;
    }
    span.address += length;
    span.length -= length;
    this.#list(span, older, newer);
  }

  /** Takes `length` bytes off the top of the free span `span` (the caller unmapped them). */
  cutTop(span: Span, length: number): void {
    const { older, newer } = span;
    this.#unlist(span);
    span.length -= length;
    this.#list(span, older, newer);
  }

  /** Forgets the free span `span`, which the caller has just unmapped. */
  forget(span: Span): void {
    this.#unlist(span);
    this.#recycle(span);
  }

  /** A span record (a spare one when there is one); see {@linkcode newSpan}. */
  make(address: number, length: number, requested: number, region: Region): Span {
    const span = this.#spare.pop();
    if (span === undefined) return newSpan(address, length, requested, region);
    span.address = address;
    span.length = length;
    span.requested = requested;
    span.region = region;
    return span;
  }

  /** Every free span, oldest first. */
  *spans(): IterableIterator<Span> {
    for (let span = this.oldest; span !== null; span = span.newer) yield span;
  }

  /** Checks the bins, the bitmap and the age list against each other; throws on the first fault. */
  validate(): void {
    let count = 0;
    let bytes = 0;
    for (let span = this.oldest; span !== null; span = span.newer) {
      count++;
      bytes += span.length;
      const bin = this.#binOf(span.length);
      if (span.requested >= 0) throw new Error(`free span ${span.address} is marked live`);
      if (span.bin !== bin || this.#bins[bin]![span.slot] !== span) {
        throw new Error(`free span ${span.address} is not in bin ${bin}`);
      }
      if (this.#byStart.get(span.address) !== span) {
        throw new Error(`free span ${span.address} is not indexed by its start`);
      }
      if (span.region.length === 0) throw new Error(`free span ${span.address} has no region`);
      if (span.newer !== null && span.newer.releasedAt < span.releasedAt) {
        throw new Error(`free span ${span.newer.address} is listed out of release order`);
      }
    }
    if (count !== this.#byStart.size) {
      throw new Error(`the cache indexes ${this.#byStart.size} free spans, lists ${count}`);
    }
    if (count !== this.count || bytes !== this.bytes) {
      throw new Error(
        `the cache counts ${this.count} spans of ${this.bytes} bytes; it holds ${count} of ${bytes}`,
      );
    }
    for (let bin = 0; bin < BINS; bin++) {
      const has = (this.#nonEmpty[bin >>> 4]! >>> (bin & 15) & 1) === 1;
      if (has !== (this.#bins[bin]?.length ?? 0) > 0) throw new Error(`bin ${bin}'s bit is wrong`);
    }
  }

  // --- private -----------------------------------------------------------------------------------

  /** The smallest free span of at least `length` bytes, if any. */
  #bestFit(length: number): Span | undefined {
    const pages = length * this.#pageScale; // whole: lengths are whole pages (no `>>>`: 2^32 wraps)
    return pages < BINS ? this.#fromBins(pages) ?? this.#fromRest(length) : this.#fromRest(length);
  }

  /**
   * Merges every run of free neighbours into one span, which keeps the latest release time of its
   * parts (and its place in the age list by that time).
   */
  #consolidate(): void {
    this.#unmerged = 0;
    const spans = [...this.spans()].sort((a, b) => a.address - b.address);
    for (let i = 0; i < spans.length;) {
      const low = spans[i]!;
      let j = i + 1;
      while (
        j < spans.length && spans[j - 1]!.address + spans[j - 1]!.length === spans[j]!.address
      ) {
        j++;
      }
      if (j > i + 1) {
        this.#unlist(low);
        for (let k = i + 1; k < j; k++) {
          const high = spans[k]!;
          this.#unlist(high);
          low.length += high.length;
          low.region = covering(low.region, high.region);
          low.releasedAt = Math.max(low.releasedAt, high.releasedAt);
          this.#recycle(high); // last: its record is reused
        }
        let newer: Span | null = null; // the first span released after `low`, from the newest end
        let older = this.#newest;
        while (older !== null && older.releasedAt > low.releasedAt) {
          newer = older;
          older = older.older;
        }
        this.#list(low, older, newer);
      }
      i = j;
    }
  }

  #binOf(length: number): number {
    const pages = length * this.#pageScale;
    return pages < BINS ? pages : 0;
  }

  /** The last span listed in the first non-empty bin at or above `pages`. */
  #fromBins(pages: number): Span | undefined {
    let word = pages >>> 4;
    let bits = this.#nonEmpty[word]! & (0xffff << (pages & 15));
    while (bits === 0) {
      if (++word === this.#nonEmpty.length) return undefined;
      bits = this.#nonEmpty[word]!;
    }
    // The lowest set bit: 31 - clz32 of it alone.
    const bin = (word << 4) + 31 - Math.clz32(bits & -bits);
    const list = this.#bins[bin]!;
    return list[list.length - 1];
  }

  /** The shortest span of bin 0 (more than 256 pages) of at least `length` bytes. */
  #fromRest(length: number): Span | undefined {
    let best: Span | undefined;
    for (const span of this.#bins[0] ?? []) {
      if (span.length >= length && (best === undefined || span.length < best.length)) best = span;
    }
    return best;
  }

  /**
   * Splits the free remainder off `span` (just unlisted) after its first `length` bytes; the
   * remainder takes its place by age, between `older` and `newer`.
   */
  #splitOff(span: Span, length: number, older: Span | null, newer: Span | null): void {
    const rest = this.make(span.address + length, span.length - length, -1, span.region);
    rest.releasedAt = span.releasedAt;
    span.length = length;
    this.#list(rest, older, newer);
  }

  /** `span` (not listed) takes over the free span that starts where it ends, if there is one. */
  #mergeAbove(span: Span): void {
    const above = this.#byStart.get(span.address + span.length);
    if (above === undefined) return;
    this.#unlist(above);
    span.length += above.length;
    span.region = covering(span.region, above.region);
    this.#recycle(above);
  }

  /** Keeps the record of a span whose pages are gone (merged or unmapped) for `make`. */
  #recycle(span: Span): void {
    if (this.#spare.length >= SPARE_SPANS) return;
    span.region = NO_REGION;
    span.requested = -1;
    this.#spare.push(span);
  }

  /**
   * Lists a free span in its bin, and in the age list between `older` and `newer` (neighbours
   * there), by default as the newest.
   */
  #list(span: Span, older: Span | null = this.#newest, newer: Span | null = null): void {
    const bin = this.#binOf(span.length);
    const list = this.#bins[bin] ??= [];
    span.bin = bin;
    span.slot = list.length;
    list.push(span);
    this.#nonEmpty[bin >>> 4]! |= 1 << (bin & 15);
    this.count++;
    this.bytes += span.length;
    this.#byStart.set(span.address, span);
    span.older = older;
    span.newer = newer;
    if (older !== null) older.newer = span;
    else this.oldest = span;
    if (newer !== null) newer.older = span;
    else this.#newest = span;
  }

  /** Removes a free span from its bin and the age list (and its bytes from the count). */
  #unlist(span: Span): void {
    const list = this.#bins[span.bin]!;
    const last = list.pop()!;
    if (last !== span) {
      list[span.slot] = last;
      last.slot = span.slot;
    }
    if (list.length === 0) this.#nonEmpty[span.bin >>> 4]! &= ~(1 << (span.bin & 15));
    span.bin = -1;
    if (span.older !== null) span.older.newer = span.newer;
    else this.oldest = span.newer;
    if (span.newer !== null) span.newer.older = span.older;
    else this.#newest = span.older;
    span.older = span.newer = null;
    this.count--;
    this.bytes -= span.length;
    this.#byStart.delete(span.address);
  }
}
