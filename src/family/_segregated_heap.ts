// The state and the paths of a SegregatedAllocator, below its public checks and counters: small
// blocks (take a block of a span, give it back), spans (map, unmap, the cache of empty ones), large
// blocks (one mapping each), and realloc's moves. The public class (segregated_allocator.ts) checks
// its arguments and keeps the counters of its calls; everything here trusts them.
//
// A block's span is found from its address by `free` in one comparison when it is the span of
// the last free (`last`), else through the page table (_segregated_pages.ts): the address's 16 MiB
// window, then one array load by its page in the window. The block's index in its span is
// `(offset * inverse) | 0`, where `inverse` is `1 / size` rounded up by 2^-40 (so that an exact
// multiple of the size never truncates to one less), checked by multiplying back: `index * size
// === offset` holds exactly when the offset is a multiple of the class size. No division and no
// floating-point remainder is on the path. For class 48 and offset 3120: 3120 * (1/48 + 2^-40) =
// 65.000000003, index 65, and 65 * 48 = 3120: block 65; for offset 3136, index 65 again, but
// 65 * 48 is not 3136: inside block 65, rejected.

import { Counters } from "../_counters.ts";
import { Mappings } from "../_mappings.ts";
import { idleTimer } from "../../ffi/idle_timer.ts";
import { ReleasedRanges } from "../_released.ts";
import type { Os } from "../../ffi/os.ts";
import { CountingOs } from "../../ffi/counting_os.ts";
import { HeapClosedError } from "../errors.ts";
import { notAnAddress } from "../_checks.ts";
import { checkSize } from "../_size.ts";
import { rejection, spanRejection, tallySpans } from "./_segregated_inspect.ts";
import { CLASS_INDEX, LARGEST_SIZE_CLASS, SIZE_CLASSES } from "./_segregated_classes.ts";
import { PageTable } from "./_segregated_pages.ts";
import { Span, SpanCache, SpanClass } from "./_spans.ts";

// Bound here for the fast paths: V8 folds a module's own constants into its code, but loads and
// checks an imported one at every use (measured: 1.5 ns more per malloc/free pair).
const CLASS_OF: Uint8Array = CLASS_INDEX;
const LARGEST = 65536;
/** 2^24: free splits an address into `high * WINDOW + low`, two small integers. */
export const WINDOW = 2 ** 24;
if (LARGEST !== LARGEST_SIZE_CLASS) throw new Error("LARGEST must be LARGEST_SIZE_CLASS");

/** Everything a SegregatedAllocator holds, and the paths that change it; see the file comment. */
export class SegregatedHeap {
  readonly os: Os;
  readonly calls: CountingOs;
  readonly pageSize: number;
  /** `1 / pageSize`, exact for a power of two. */
  readonly pageScale: number;
  readonly cache: SpanCache;
  readonly classes: SpanClass[];
  /** Page number → span (`none` for a page of no span). */
  readonly pages: PageTable<Span>;
  /** The spans by id, for walks over all of them; `undefined` at an id in `freeIds`. */
  readonly table: (Span | undefined)[] = [];
  readonly freeIds: number[] = [];
  /**
   * The span of the last free that looked one up (or `none`): a free in the same span skips the
   * page table. A run of frees in one span is common (a structure freed in the order it was built;
   * a malloc/free pair), and the check is one subtraction and two comparisons.
   */
  last: Span;
  /** A span of no pages that holds no address: `last` before any free, and a page of no span. */
  readonly none: Span;
  spanCount = 0;
  spanBytes = 0;
  readonly large: Mappings;
  readonly released = new ReleasedRanges();
  readonly counters = new Counters();
  closed = false;

  constructor(os: Os, spanCacheBytes: number) {
    this.os = this.calls = new CountingOs(os);
    this.pageSize = this.os.pageSize();
    this.pageScale = 1 / this.pageSize;

    this.cache = new SpanCache(spanCacheBytes);
    this.large = new Mappings(this.os, { label: "large block", cache: true, idleTimer });
    this.classes = SIZE_CLASSES.map((size, index) => new SpanClass(index, size, this.pageSize));
    // A span of no pages that holds no address: `last` before any free, and after its span goes.
    this.last = this.none = new Span(-1, 0, this.classes[0]!, new Uint8Array(0));
    this.pages = new PageTable(this.pageSize, this.none);
  }

  /** Every span mapped now, in id order. */
  spans(): Span[] {
    return this.table.filter((span) => span !== undefined);
  }

  /** Bytes mapped: spans and large blocks. */
  get mappedBytes(): number {
    return this.spanBytes + this.large.mappedBytes + this.large.cachedBytes;
  }

  /** The error for an address on no span's page that is not a live large block either. */
  rejection(address: number, verb: string): Error {
    return rejection(this.released, this.large, address, verb);
  }

  /**
   * Unmaps every span and large block, then the heap is closed. When the OS refuses a `munmap`,
   * it stays open with what is left, and the blocks of what was unmapped count as freed.
   */
  close(): void {
    if (this.closed) return;
    try {
      for (const span of this.spans()) this.unmapSpan(span);
      this.large.close();
    } catch (error) {
      const left = tallySpans(this.spans());
      const counters = this.counters;
      counters.totalFrees += counters.liveAllocations - (left.live + this.large.count);
      counters.liveBytes = left.requested + this.large.requestedBytes;
      throw error;
    }
    this.closed = true;
    this.released.clear();
  }

  // --- small blocks -----------------------------------------------------------------------------

  /** The span whose pages hold `address`, if any. */
  spanOf(address: number): Span | undefined {
    const span = this.pages.get(Math.floor(address * this.pageScale));
    return span === this.none ? undefined : span;
  }

  /** The index of the live block at `address` in `span`; throws the error that says why not. */
  block(span: Span, address: number, verb: string): number {
    const sizeClass = span.sizeClass;
    const offset = address - span.base;
    const index = (offset * sizeClass.inverse) | 0;
    if (
      typeof address === "number" && index * sizeClass.size === offset &&
      index < span.capacity && span.blocks[index] !== 0
    ) {
      return index;
    }
    throw spanRejection(span, address, verb);
  }

  /** malloc off its fast path: on a closed heap, of a bad size, or of a large block; counted. */
  mallocOther(size: number): number {
    if (this.closed) throw new HeapClosedError("malloc");
    checkSize(size, "allocate");
    const address = size <= LARGEST ? this.mallocSmall(size) : this.mallocLarge(size);
    this.counters.allocated(size);
    this.counters.notePeaks(this.mappedBytes);
    return address;
  }

  /** free off its fast path: of 0, a large block or a bad address, or on a closed heap. */
  freeOther(address: number): void {
    if (this.closed) throw new HeapClosedError("free");
    if (address === 0) return;
    if (typeof address !== "number") throw notAnAddress(address, "free");
    if (this.large.lengthOf(address) < 0) throw this.rejection(address, "free");
    this.counters.freed(this.large.unmap(address));
  }

  /** A block for `size` bytes (at most LARGEST) from a span of its class; not counted. */
  mallocSmall(size: number): number {
    const sizeClass = this.classes[CLASS_OF[(size + 15) >>> 4]!]!;
    const span = sizeClass.head ?? this.#mapSpan(sizeClass);
    const blocks = span.blocks;
    const index = span.top > span.capacity ? blocks[--span.top]! : span.bump++;
    blocks[index] = size + 1;
    if (span.live++ === 0) this.cache.bytes -= span.length; // left the cache (or fresh)
    if (span.live === span.capacity) sizeClass.unlist(span);
    return span.base + index * sizeClass.size;
  }

  /**
   * free of an address not on the last span, given as `high * 2^24 + low` (two small integers,
   * passed without boxing when V8 does not inline this call): finds its span through the page
   * table and frees the block there (see `freeIn`); false when no span holds it.
   */
  freeSplit(high: number, low: number): boolean {
    const span = this.pages.find(high, low);
    if (span === this.none) return false;
    this.last = span;
    this.freeIn(span, high * WINDOW - span.base + low);
    return true;
  }

  /**
   * The fast path of free, once the caller found the span (`last`, or through the page table) and
   * the block's offset in it: frees and counts the block, or throws when the offset is not a live
   * block's. Takes the offset rather than the address: a small integer, passed without boxing
   * when V8 does not inline this call.
   */
  freeIn(span: Span, offset: number): void {
    const sizeClass = span.sizeClass;
    const index = (offset * sizeClass.inverse) | 0;
    if (!(index * sizeClass.size === offset && index < span.capacity && span.blocks[index] !== 0)) {
      throw spanRejection(span, span.base + offset, "free");
    }
    // freeSmall, inline (one call less on the fast path).
    const blocks = span.blocks;
    const tag = blocks[index]!;
    blocks[index] = 0;
    const live = --span.live;
    if (live === 0) {
      this.#emptied(span, index, tag);
    } else {
      if (live === span.capacity - 1) sizeClass.pushFront(span);
      blocks[span.top++] = index;
    }
    const counters = this.counters;
    counters.totalFrees++;
    counters.liveBytes -= tag - 1;
  }

  /**
   * Frees live block `index` of `span`: pushes it on the span's stack, relists a span that was
   * full; a span that empties goes to `#emptied`. Returns the block's requested size; not counted.
   */
  freeSmall(span: Span, index: number): number {
    const blocks = span.blocks;
    const tag = blocks[index]!;
    blocks[index] = 0;
    const live = --span.live;
    if (live === 0) {
      this.#emptied(span, index, tag);
    } else {
      if (live === span.capacity - 1) span.sizeClass.pushFront(span);
      blocks[span.top++] = index;
    }
    return tag - 1;
  }

  /**
   * The last block of `span`, `index` (tagged `tag`), was just freed: the span starts over (stack
   * empty, bump at 0) and goes to the tail of its list and into the cache as its newest span (it
   * may be there already, from when it was last empty: when it is the newest, it stays put, so a
   * malloc/free pair of one class makes no list changes at all).
   */
  #emptied(span: Span, index: number, tag: number): void {
    const cache = this.cache;
    cache.bytes += span.length;
    if (cache.bytes > cache.limit) {
      this.#overBudget(span, index, tag);
      return;
    }
    if (span.bump > span.touched) span.touched = span.bump;
    span.top = span.capacity;
    span.bump = 0;
    const sizeClass = span.sizeClass;
    if (sizeClass.tail !== span) {
      if (span.listed) sizeClass.unlist(span); // not listed: it was full (a span of one block)
      sizeClass.pushBack(span);
    }
    if (cache.newest !== span) {
      if (span.cached) cache.remove(span);
      cache.add(span);
    }
  }

  /**
   * `#emptied` when the emptied span does not fit in the cache: unmaps the spans emptied longest
   * ago until it does, or, when the span cannot fit even alone, the span itself. When the OS
   * refuses an unmap, the block is live again (spans evicted before the refusal stay unmapped) and
   * the `OsError` goes on to the caller: a refused free changes nothing.
   */
  #overBudget(span: Span, index: number, tag: number): void {
    const cache = this.cache;
    if (span.cached) cache.remove(span); // not to be evicted as one of the oldest
    try {
      if (!this.#makeRoom()) {
        this.unmapSpan(span);
        return;
      }
    } catch (error) {
      cache.bytes -= span.length;
      span.blocks[index] = tag;
      span.live = 1;
      throw error;
    }
    if (span.bump > span.touched) span.touched = span.bump;
    span.top = span.capacity;
    span.bump = 0;
    if (span.listed) span.sizeClass.unlist(span);
    span.sizeClass.pushBack(span);
    cache.add(span);
  }

  /**
   * Unmaps the spans emptied longest ago (skipping those that got a block since) until the cache
   * is within its budget; false when it cannot (the list ran out: what is over the budget is the
   * span being emptied, not on the list yet).
   */
  #makeRoom(): boolean {
    const cache = this.cache;
    while (cache.bytes > cache.limit) {
      const oldest = cache.oldest;
      if (oldest === undefined) return false;
      if (oldest.live === 0) this.unmapSpan(oldest);
      else cache.remove(oldest); // it got a block since it was cached
    }
    return true;
  }

  /** Maps a span for a class (first: a refusal changes nothing) and puts it on its list. */
  #mapSpan(sizeClass: SpanClass): Span {
    const id = this.freeIds.length > 0 ? this.freeIds[this.freeIds.length - 1]! : this.table.length;
    const span = sizeClass.map(this.os, id);
    if (id === this.table.length) this.table.push(span);
    else this.table[this.freeIds.pop()!] = span;
    const length = sizeClass.spanLength;
    const first = span.base / this.pageSize;
    for (let page = 0; page < length / this.pageSize; page++) this.pages.set(first + page, span);
    this.spanCount++;
    this.spanBytes += length;
    this.cache.bytes += length; // empty until mallocSmall takes its first block, right after
    this.counters.notePeaks(this.mappedBytes); // for malloc's fast path, which notes the live peak
    this.released.forget(span.base, span.base + length);
    sizeClass.pushFront(span);
    return span;
  }

  /**
   * Unmaps a span (first: when the OS refuses, it throws with nothing changed), takes it off its
   * list and out of the cache, and remembers it for double-free reports.
   */
  unmapSpan(span: Span): void {
    const sizeClass = span.sizeClass;
    const length = sizeClass.spanLength;
    this.os.unmap(span.base, length);
    if (span.cached) this.cache.remove(span);
    if (span.live === 0) this.cache.bytes -= length;
    if (span.listed) sizeClass.unlist(span);
    const first = span.base / this.pageSize;
    for (let page = 0; page < length / this.pageSize; page++) this.pages.delete(first + page);
    this.table[span.id] = undefined;
    if (this.last === span) this.last = this.none;
    this.freeIds.push(span.id);
    this.spanCount--;
    this.spanBytes -= length;
    this.released.add(span.base, span.base + length, sizeClass.size);
  }

  // --- calloc and realloc ----------------------------------------------------------------------

  /** calloc of `total` bytes (checked), on an open heap; counted. */
  calloc(total: number): number {
    let address: number;
    if (total > LARGEST) {
      address = this.mallocLarge(total, true); // cached pages are cleared, fresh ones are zero
    } else {
      address = this.mallocSmall(total);
      const span = this.spanOf(address)!;
      const offset = address - span.base;
      span.bytes.fill(0, offset, offset + span.sizeClass.size);
    }
    this.counters.allocated(total);
    this.counters.notePeaks(this.mappedBytes);
    return address;
  }

  /** realloc of `address` to `size` bytes past C's edge cases (see `reallocEdge`); counted. */
  realloc(address: number, size: number): number {
    const span = this.spanOf(address);
    let moved: number;
    if (span !== undefined) {
      moved = this.reallocSmall(span, address, size);
    } else {
      if (this.large.lengthOf(address) < 0) throw this.rejection(address, "reallocate");
      moved = this.reallocLarge(address, size);
    }
    this.counters.notePeaks(this.mappedBytes);
    return moved;
  }

  /** realloc of the live small block at `address` in `span`; counts what it changes. */
  reallocSmall(span: Span, address: number, size: number): number {
    const index = this.block(span, address, "reallocate");
    const sizeClass = span.sizeClass;
    const old = span.blocks[index]! - 1;
    if (size <= LARGEST && CLASS_OF[(size + 15) >>> 4] === sizeClass.index) {
      span.blocks[index] = size + 1;
      this.counters.liveBytes += size - old;
      return address;
    }
    // Move: allocate first, so that a failure leaves the old block untouched; when freeing the
    // old block then fails (the OS refused an unmap), the new one is freed again.
    const moved = size <= LARGEST ? this.mallocSmall(size) : this.mallocLarge(size);
    const offset = address - span.base;
    const kept = Math.min(sizeClass.size, size);
    this.view(moved, kept).set(span.bytes.subarray(offset, offset + kept));
    try {
      this.freeSmall(span, index);
    } catch (error) {
      this.#undo(moved, size);
      throw error;
    }
    this.counters.allocated(size);
    this.counters.freed(old);
    return moved;
  }

  /** realloc of the live large block at `address` (checked); counts what it changes. */
  reallocLarge(address: number, size: number): number {
    const counters = this.counters;
    if (size <= LARGEST) {
      const moved = this.mallocSmall(size);
      this.view(moved, size).set(this.large.view(address, size));
      let old: number;
      try {
        old = this.large.unmap(address);
      } catch (error) {
        this.#undo(moved, size);
        throw error;
      }
      counters.allocated(size);
      counters.freed(old);
      return moved;
    }
    const before = this.large.requestedBytes;
    const moved = this.large.resize(address, size);
    this.released.forget(moved, moved + this.large.lengthOf(moved));
    counters.liveBytes += this.large.requestedBytes - before;
    if (moved !== address) {
      counters.totalAllocations++;
      counters.totalFrees++;
    }
    return moved;
  }

  /**
   * Frees the block that `mallocSmall` or `mallocLarge` just made at `address` (`size` bytes),
   * after the call that wanted it failed. If the OS refuses that too, the block stays allocated,
   * counted as live, until `close`.
   */
  #undo(address: number, size: number): void {
    try {
      const span = this.spanOf(address);
      if (span === undefined) this.large.unmap(address);
      else this.freeSmall(span, ((address - span.base) * span.sizeClass.inverse) | 0);
    } catch {
      this.counters.allocated(size); // two refusals in a row: the first is the caller's error
    }
  }

  // --- large blocks -----------------------------------------------------------------------------

  /** Whole pages of its own for `size` bytes (`zeroed`: cleared); not counted. */
  mallocLarge(size: number, zeroed = false): number {
    const address = zeroed ? this.large.mapZeroed(size) : this.large.map(size);
    this.released.forget(address, address + this.large.lengthOf(address));
    return address;
  }

  /** A view of `length` bytes at a live block's address (checked by the caller). */
  view(address: number, length: number): Uint8Array {
    const span = this.spanOf(address);
    if (span !== undefined) {
      const offset = address - span.base;
      return span.bytes.subarray(offset, offset + length);
    }
    return this.large.view(address, length);
  }
}
