// The free page ranges behind large blocks: what `Mappings` keeps of released mappings, for reuse.
//
// Memory comes from the OS in *regions* (one `mmap` each) and is handed out in *spans*: whole
// pages, one live block each. A region starts as one span; a span is split when a request takes
// only its front, and neighbouring free spans of one region are merged again when released, so a
// region's spans always cover it in address order, linked by `prev`/`next`, and no two free spans
// are ever neighbours. A free span is in the cache: a request of `p` pages takes the smallest free
// span of at least `p` pages (best fit) and leaves the rest as a smaller free span, so varied
// sizes reuse each other's memory. Worked example with 4 KiB pages: a 40 KiB block is freed (one
// free span of 10 pages); `malloc(12_000)` takes its first 3 pages and leaves 7 free; when the
// 3-page block is freed it merges with the 7 again, into the 10 it was.
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
// A span remembers whether it is `clean`: never handed out since the OS zeroed it. `calloc` takes a
// clean span as it is and clears a used one.
//
// Nothing here calls the OS: `Mappings` unmaps a span before it asks the cache to forget it.

/** One mapping obtained from the OS (`mmap`, or `mremap` that moved or grew a block). */
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
  region: Region;
  /** The span just below, in the same region (contiguous), or null. */
  prev: Span | null;
  /** The span just above, in the same region (contiguous), or null. */
  next: Span | null;
  /** While free: its bin, and its position there; -1 while live. */
  bin: number;
  slot: number;
  /** While free: the neighbours in release order. */
  older: Span | null;
  newer: Span | null;
  /** While free: the cache's clock when it was released. */
  releasedAt: number;
  /** Never handed out since the OS zeroed it. */
  clean: boolean;
}

/** Page counts with a bin of their own: 1 to 256 pages (1 MiB of 4 KiB pages). */
const BINS = 257;

/**
 * A new span (every span is made here, so that all have one shape): live with `requested` bytes,
 * or free with -1, linked below `next` and above `prev` by the caller.
 */
export function newSpan(
  address: number,
  length: number,
  requested: number,
  region: Region,
  clean: boolean,
): Span {
  return {
    address,
    length,
    requested,
    region,
    prev: null,
    next: null,
    bin: -1,
    slot: 0,
    older: null,
    newer: null,
    releasedAt: 0,
    clean,
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
  #pageShift: number;
  #bins: Span[][] = Array.from({ length: BINS }, () => []);
  #nonEmpty = new Uint32Array(Math.ceil(BINS / 32));

  /** @param pageSize The OS page size, a power of two. */
  constructor(pageSize: number) {
    this.#pageShift = Math.log2(pageSize);
  }

  /**
   * Takes the front `length` bytes of the best-fitting free span (the smallest of at least
   * `length` bytes), leaving the rest free in its place; returns the span, now live, or
   * `undefined` when no free span is long enough.
   */
  take(length: number, requested: number): Span | undefined {
    const pages = length >>> this.#pageShift;
    const span = pages < BINS
      ? this.#fromBins(pages) ?? this.#fromRest(length)
      : this.#fromRest(length);
    if (span === undefined) return undefined;
    const { older, newer } = span;
    this.#unlist(span);
    if (span.length > length) this.#splitOff(span, length, older, newer);
    span.requested = requested;
    return span;
  }

  /**
   * Releases the live span `span` into the cache, merged with the free neighbours it has; returns
   * the free span that holds it now.
   */
  release(span: Span): Span {
    span.requested = -1;
    span.clean = false;
    this.clock++;
    let merged = span;
    const next = span.next;
    if (next !== null && next.requested < 0) {
      this.#unlist(next);
      this.#absorb(span, next);
    }
    const prev = span.prev;
    if (prev !== null && prev.requested < 0) {
      this.#unlist(prev);
      this.#absorb(prev, span);
      merged = prev;
    }
    merged.releasedAt = this.clock;
    this.#list(merged);
    return merged;
  }

  /**
   * Adds a free span that was never live (the tail cut off a shrinking block), merged with a free
   * span above it.
   */
  addTail(span: Span): void {
    span.requested = -1;
    const next = span.next;
    if (next !== null && next.requested < 0) {
      this.#unlist(next);
      this.#absorb(span, next);
    }
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
      this.#unlink(span);
      return;
    }
    span.address += length;
    span.length -= length;
    this.#list(span, older, newer);
  }

  /**
   * Forgets the free span `span`, which the caller has just unmapped: its neighbours are no longer
   * contiguous with anything.
   */
  forget(span: Span): void {
    this.#unlist(span);
    if (span.prev !== null) span.prev.next = null;
    if (span.next !== null) span.next.prev = null;
    span.prev = span.next = null;
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
      if (span.next !== null && span.next.requested < 0) {
        throw new Error(`free spans ${span.address} and ${span.next.address} were not merged`);
      }
      if (span.newer !== null && span.newer.releasedAt < span.releasedAt) {
        throw new Error(`free span ${span.newer.address} is listed out of release order`);
      }
    }
    if (count !== this.count || bytes !== this.bytes) {
      throw new Error(
        `the cache counts ${this.count} spans of ${this.bytes} bytes; it holds ${count} of ${bytes}`,
      );
    }
    for (let bin = 0; bin < BINS; bin++) {
      const has = (this.#nonEmpty[bin >>> 5]! >>> (bin & 31) & 1) === 1;
      if (has !== this.#bins[bin]!.length > 0) throw new Error(`bin ${bin}'s bit is wrong`);
    }
  }

  // --- private -----------------------------------------------------------------------------------

  #binOf(length: number): number {
    const pages = length >>> this.#pageShift;
    return pages < BINS ? pages : 0;
  }

  /** The most recently released span of the first non-empty bin at or above `pages`. */
  #fromBins(pages: number): Span | undefined {
    let word = pages >>> 5;
    let bits = this.#nonEmpty[word]! & (-1 << (pages & 31));
    while (bits === 0) {
      if (++word === this.#nonEmpty.length) return undefined;
      bits = this.#nonEmpty[word]!;
    }
    // The lowest set bit: 31 - clz32 of it alone.
    const bin = (word << 5) + 31 - Math.clz32(bits & -bits);
    const list = this.#bins[bin]!;
    return list[list.length - 1];
  }

  /** The shortest span of bin 0 (more than 256 pages) of at least `length` bytes. */
  #fromRest(length: number): Span | undefined {
    let best: Span | undefined;
    for (const span of this.#bins[0]!) {
      if (span.length >= length && (best === undefined || span.length < best.length)) best = span;
    }
    return best;
  }

  /**
   * Splits the free remainder off `span` (just unlisted) after its first `length` bytes; the
   * remainder takes its place by age, between `older` and `newer`.
   */
  #splitOff(span: Span, length: number, older: Span | null, newer: Span | null): void {
    const rest = newSpan(span.address + length, span.length - length, -1, span.region, span.clean);
    rest.prev = span;
    rest.next = span.next;
    rest.releasedAt = span.releasedAt;
    if (span.next !== null) span.next.prev = rest;
    span.next = rest;
    span.length = length;
    this.#list(rest, older, newer);
  }

  /** `low` takes over its free upper neighbour `high` (already unlisted). */
  #absorb(low: Span, high: Span): void {
    low.length += high.length;
    low.clean &&= high.clean;
    low.next = high.next;
    if (high.next !== null) high.next.prev = low;
  }

  /** Removes `span` from its region's list (its memory became part of the span below). */
  #unlink(span: Span): void {
    if (span.prev !== null) span.prev.next = span.next;
    if (span.next !== null) span.next.prev = span.prev;
  }

  /**
   * Lists a free span in its bin, and in the age list between `older` and `newer` (neighbours
   * there), by default as the newest.
   */
  #list(span: Span, older: Span | null = this.#newest, newer: Span | null = null): void {
    const bin = this.#binOf(span.length);
    const list = this.#bins[bin]!;
    span.bin = bin;
    span.slot = list.length;
    list.push(span);
    this.#nonEmpty[bin >>> 5]! |= 1 << (bin & 31);
    this.count++;
    this.bytes += span.length;
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
    if (list.length === 0) this.#nonEmpty[span.bin >>> 5]! &= ~(1 << (span.bin & 31));
    span.bin = -1;
    if (span.older !== null) span.older.newer = span.newer;
    else this.oldest = span.newer;
    if (span.newer !== null) span.newer.older = span.older;
    else this.#newest = span.older;
    span.older = span.newer = null;
    this.count--;
    this.bytes -= span.length;
  }
}
