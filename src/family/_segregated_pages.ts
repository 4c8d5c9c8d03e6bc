// The page table of a SegregatedAllocator: from the number of a page (`address / pageSize`,
// rounded down) to the span that holds it, as a two-level table.
//
// Why not a `Map`: a page number of a 64-bit address is above 2^31 (0x7f12_3456_3 for the page at
// 0x7f12_3456_3000), outside V8's small integers, so a `Map` keyed by it boxes the number into a
// fresh heap object at every lookup and hashes it as a double: measured, that was a quarter of a
// malloc/free pair.
//
// Here an address is split into a *window* of 2^24 bytes (16 MiB) and an offset in it:
// `high = Math.floor(address / 2^24)`, `low = address - high * 2^24`, both small integers. Each
// window that holds a span has an array with one entry per page (4096 entries of 4 KiB pages):
// the span, or a sentinel for none (so that the array stays packed, of one element kind). So
// 0x7f12_3456_3c30 is window 0x7f1234, offset 0x563c30, page 0x563 of the window: one array load,
// `window[low >>> 12]`. The window of the last
// lookup is remembered, so a run of lookups in one window (the spans of a heap are mostly mapped
// side by side) compares one number; another window is found by a linear search of the few
// windows there are (a heap with 1 GiB of spans has 64).

const WINDOW = 2 ** 24;

/** Page number → span (`T`), through windows of 16 MiB; see the file comment. */
export class PageTable<T> {
  readonly #pagesPerWindow: number;
  readonly #shift: number;
  readonly #none: T;
  /** The windows in use: their `high` numbers, their pages, and how many pages each has. */
  #highs: number[] = [];
  #windows: T[][] = [];
  #counts: number[] = [];
  /** `high` of the last window found; -0.5, which no `high` equals, when there is none. */
  #lastHigh = -0.5;
  #last: T[];
  /** Entries in the table. */
  size = 0;

  /**
   * An empty table for pages of `pageSize` bytes (a power of two, at most 16 MiB), in which a page
   * of no span holds `none`.
   */
  constructor(pageSize: number, none: T) {
    this.#pagesPerWindow = WINDOW / pageSize;
    this.#shift = Math.log2(pageSize);
    this.#none = none;
    this.#last = [none];
  }

  /** The span of the page holding `high * 2^24 + low` (`low` below 2^24), or `none`. */
  find(high: number, low: number): T {
    if (high !== this.#lastHigh) {
      const at = this.#highs.indexOf(high);
      if (at < 0) return this.#none;
      this.#lastHigh = high;
      this.#last = this.#windows[at]!;
    }
    return this.#last[low >>> this.#shift]!;
  }

  /** The span of `page`, or `none`. */
  get(page: number): T {
    const high = Math.floor(page / this.#pagesPerWindow);
    const at = this.#highs.indexOf(high);
    if (at < 0) return this.#none;
    return this.#windows[at]![page - high * this.#pagesPerWindow]!;
  }

  /** Records `page` (a positive integer, not yet in the table) as held by `span`. */
  set(page: number, span: T): void {
    const high = Math.floor(page / this.#pagesPerWindow);
    let at = this.#highs.indexOf(high);
    if (at < 0) {
      at = this.#highs.length;
      this.#highs.push(high);
      this.#windows.push(new Array<T>(this.#pagesPerWindow).fill(this.#none));
      this.#counts.push(0);
    }
    this.#windows[at]![page - high * this.#pagesPerWindow] = span;
    this.#counts[at]!++;
    this.size++;
  }

  /** Forgets `page`, which is in the table; a window left with no page goes. */
  delete(page: number): void {
    const high = Math.floor(page / this.#pagesPerWindow);
    const at = this.#highs.indexOf(high);
    this.#windows[at]![page - high * this.#pagesPerWindow] = this.#none;
    this.size--;
    if (--this.#counts[at]! > 0) return;
    if (this.#lastHigh === high) this.#lastHigh = -0.5;
    this.#highs.splice(at, 1);
    this.#windows.splice(at, 1);
    this.#counts.splice(at, 1);
  }

  /** Every entry, as [page, span] pairs (for `validate`). */
  *entries(): IterableIterator<[number, T]> {
    for (const [at, window] of this.#windows.entries()) {
      const first = this.#highs[at]! * this.#pagesPerWindow;
      for (let i = 0; i < window.length; i++) {
        if (window[i] !== this.#none) yield [first + i, window[i]!];
      }
    }
  }
}
