// Blocks that own whole pages each: the large blocks of PseudoMalloc and SegregatedAllocator, and
// every block of MmapAllocator. No two blocks share a page; each comes from a mapping obtained
// with `mmap` and is kept in a record, keyed by its address.
//
// Without the cache (`cache: false`, MmapAllocator) every block is a mapping of its own: `malloc`
// maps, `free` unmaps, `realloc` remaps.
//
// With the cache (`cache: true`), released pages stay mapped and serve the next requests (see
// `_page_cache.ts`): a request takes the best-fitting free span, whatever size it was released
// with, and leaves the rest free; freed neighbours merge again, even across mappings. `realloc`
// grows a block in place when the span above it is free (no call, no copy), shrinks it in place
// (the tail becomes free), and otherwise copies it into other pages (up to `COPY_LIMIT`) or asks
// the OS to move it (`mremap`). So a program that allocates and frees varied large sizes makes
// almost no system call, and touches pages that are already there.
//
// A released block of at most 16 pages is parked first on a quick stack of its page count (at most
// 256 KiB each, 4 MiB in all; `_quick_stacks.ts`), and a request of that page count takes it back
// whole; the page cache gets parked blocks when it has nothing for a request, and on `trim`.
//
// What the page cache may keep (its budget), and when it gives memory back:
// - Never a block of more than `MAX_CACHED` (32 MiB): its `free` unmaps it.
// - At most the larger of `cacheFloor` (8 MiB by default) and twice the recent peak of the bytes
//   mapped for live blocks (`CACHE_PER_LIVE`; the peak decays by 1/4096 per release). A release
//   beyond it first unmaps the cached pages released longest ago, only as many as must go (a
//   merged span may be most of the cache: its top is cut off).
// - A cached span not reused within `DECAY_RELEASES` (4096) later releases is unmapped at the next
//   release: memory that the program's sizes stopped asking for goes back while it runs.
// - After one to two seconds (`IDLE_MS`, checked once a second) with no call on these blocks, all
//   of it goes back (an idle timer that does not keep the process alive; only when an
//   `idleTimer` is given), and `trim` gives it back at once.
// A cached span keeps its old contents, so `mapZeroed` (calloc) clears it; a fresh mapping is
// zero already and is not cleared.
//
// Every system call goes through the `Os` given to the constructor and is made before the records
// change: when `munmap` fails (an `OsError`; Linux refuses to split a mapping past
// `vm.max_map_count`), the block it was for is still recorded as it was, so a failed `free` leaves
// the block live and can be retried, and `trim` or `close` stop with every record true.

import {
  DoubleFreeError,
  hex,
  InvalidAddressError,
  InvalidFreeError,
  OsError,
  OutOfMemoryError,
} from "./errors.ts";
import { roundUp } from "./_size.ts";
import { isFreeing, notAnAddress } from "./_checks.ts";
import { AddressTable } from "./_address_table.ts";
import { covering, PageCache, type Region, type Span } from "./_page_cache.ts";
import { QuickStacks } from "./_quick_stacks.ts";
import type { IdleTimer } from "../ffi/idle_timer.ts";
import type { Os } from "../ffi/os.ts";

/** How many unmapped addresses are remembered to tell a double free from a foreign address. */
const RECENT_UNMAPS = 1024;

/**
 * The cache may hold this many times the recent peak of the live blocks' bytes (or the floor, if
 * more). Measured on the 64 KiB-4 MiB churn of `bench/` (16 live blocks, 13 MiB live on average):
 * with 1/8 of the live bytes, as before, one request in ten missed and made an `mmap`; with twice
 * the live bytes one in 34, and a quarter of the operations still unmapped something (the cap
 * fell whenever a large block was freed); with twice the decaying peak, one request in 3,000
 * misses and one operation in 100 makes a call (an eviction), and the heap maps 3.2x what is live
 * on average (glibc's heap: 2.0x, with no call).
 */
export const CACHE_PER_LIVE = 2;

/**
 * The recent peak of the live bytes after one more release: the old peak less 1/4096 of it (a
 * half-life of about 2,800 releases), or `live` if that is more. A program whose live bytes swing
 * (a 4 MiB block freed, another taken) keeps the cache its peaks need; measured on the 64 KiB-4
 * MiB churn, a cap that followed the live bytes down unmapped and mapped again a quarter of the
 * time. Example: a peak of 8 MiB with 1 MiB live decays to 8 MiB - 2 KiB.
 */
export function decayedPeak(peak: number, live: number): number {
  return Math.max(live, peak - peak / 4096);
}

/**
 * A released block larger than this is unmapped at once, never cached: as glibc unmaps a chunk
 * above its largest mmap threshold (32 MiB on 64-bit systems). Holding one costs more memory than
 * mapping it again costs time (a fresh mapping's page faults are paid on first touch anyway).
 */
export const MAX_CACHED = 32 << 20;

/**
 * A block that cannot grow in place is copied into other pages (cached ones when they fit) up to
 * this size, and moved by the OS (`mremap`) beyond it. On the built-in `realloc` trace (buffers
 * growing by half to 64 KiB) `mremap` moved nearly every growing block out of reach of the cache:
 * 3,314 calls, 3.7 % utilization and 0.17x libc's throughput; copying made 26 calls, 22.7 % and
 * 0.72x. Beyond it, copying costs more than the call.
 */
export const COPY_LIMIT = 256 << 10;

/** A cached span not reused within this many later releases goes back to the OS. */
export const DECAY_RELEASES = 4096;

/** With no call for this long, the cache goes back to the OS (with an idle timer). */
export const IDLE_MS = 1000;

/** Options of {@linkcode Mappings}. */
export interface MappingsOptions {
  /** What error messages call a block. @default {"block"} */
  label?: string;
  /** Keep released pages for reuse (see the file comment). @default {false} */
  cache?: boolean;
  /** The cache may always hold this many bytes. @default {8 MiB} */
  cacheFloor?: number;
  /** Gives the cache back after `IDLE_MS` without a call. @default {undefined: never} */
  idleTimer?: IdleTimer;
  /** Called after the idle timer gave cached pages back (the owner recounts what is mapped). */
  onIdleTrim?: () => void;
}

/** Blocks of whole pages, keyed by address; see the file comment. */
export class Mappings {
  #pageSize: number;
  #label: string;
  #blocks: AddressTable<Span>;
  #recentUnmaps = new Set<number>();
  #mappedBytes = 0;
  #requestedBytes = 0;
  #caching: boolean;
  #cacheFloor: number;
  #cache: PageCache;
  #quick: QuickStacks;
  #idleTimer: IdleTimer | undefined;
  #onIdleTrim: () => void;
  #idleHandle: unknown = undefined;
  /** Calls so far, for the idle timer to see whether any came. */
  #calls = 0;
  /** The live bytes' recent peak, see `#cap`. */
  #highWater = 0;
  #os: Os;

  /**
   * @param os The system calls; every mapping is a whole number of its pages.
   * @param options Error label and the release cache; see {@linkcode MappingsOptions}.
   */
  constructor(os: Os, options: MappingsOptions = {}) {
    this.#os = os;
    this.#pageSize = os.pageSize();
    this.#blocks = new AddressTable(this.#pageSize);
    this.#label = options.label ?? "block";
    this.#caching = options.cache ?? false;
    this.#cacheFloor = options.cacheFloor ?? 8 << 20;
    this.#cache = new PageCache(this.#pageSize);
    this.#quick = new QuickStacks(this.#pageSize);
    this.#idleTimer = options.idleTimer;
    this.#onIdleTrim = options.onIdleTrim ?? (() => {});
  }

  /** Bytes of released pages kept for reuse (still mapped). */
  get cachedBytes(): number {
    return this.#cache.bytes + this.#quick.bytes;
  }

  /** Live blocks. */
  get count(): number {
    return this.#blocks.size;
  }

  /** Bytes mapped by the live blocks. */
  get mappedBytes(): number {
    return this.#mappedBytes;
  }

  /** Bytes requested by the live blocks. */
  get requestedBytes(): number {
    return this.#requestedBytes;
  }

  /** The mapped length of the live block at `address`, or -1 when there is none. */
  lengthOf(address: number): number {
    return this.#blocks.get(address)?.length ?? -1;
  }

  /**
   * Maps a block of `size` bytes (at least one page) and returns its address: cached pages when
   * some fit (old contents), else a fresh zeroed mapping.
   */
  map(size: number): number {
    this.#calls++;
    const length = this.#lengthFor(size);
    const span = this.#quick.take(length, size) ?? this.#takeCached(length, size);
    return span === undefined ? this.#mapFresh(length, size) : this.#track(span, size);
  }

  /** Like {@linkcode Mappings.prototype.map}, but zeroed: cached pages are cleared if used. */
  mapZeroed(size: number): number {
    this.#calls++;
    const length = this.#lengthFor(size);
    const span = this.#quick.take(length, size) ?? this.#takeCached(length, size);
    if (span === undefined) return this.#mapFresh(length, size);
    this.#bytesOf(span).fill(0); // cached pages hold what their last block left there
    return this.#track(span, size);
  }

  /**
   * Unmaps (or caches) the live block at `address` and returns its requested size; throws
   * (changing nothing) when there is no live block there, or when `munmap` fails (`OsError`; the
   * block then stays live, and cached spans given back before the failure stay unmapped).
   */
  unmap(address: number): number {
    this.#calls++;
    const span = this.#blocks.delete(address); // one probe, put back if a call fails
    if (span === undefined) throw this.rejection(address, "free");
    const requested = span.requested;
    if (this.#caching && this.#park(span)) return requested;
    let kept: boolean;
    try {
      kept = this.#caching && this.#makeRoom(span.length);
      if (!kept) this.#os.unmap(address, span.length);
    } catch (error) {
      this.#blocks.set(address, span);
      throw error;
    }
    this.#mappedBytes -= span.length;
    this.#requestedBytes -= span.requested;
    if (kept) {
      this.#cache.release(span);
      this.#armIdleTimer();
    } else {
      this.#remember(address);
    }
    return requested;
  }

  /**
   * Resizes the live block at `address` to `size` bytes and returns its address. With the cache,
   * in place when it shrinks or the span above is free; otherwise the OS moves it (`mremap`), or,
   * where there is no `mremap`, a new block is mapped, the bytes copied and the old block freed.
   * Throws, changing nothing, when the block is not live or the OS refuses.
   */
  resize(address: number, size: number): number {
    this.#calls++;
    const span = this.#blocks.get(address);
    if (span === undefined) throw this.rejection(address, "reallocate");
    const length = this.#lengthFor(size);
    if (length === span.length || (this.#caching && this.#resizeInPlace(span, length))) {
      this.#requestedBytes += size - span.requested;
      span.requested = size;
      return address;
    }
    // Up to COPY_LIMIT, copying into cached pages beats asking the OS to move the block.
    if (this.#caching && length <= COPY_LIMIT) return this.#moveByCopy(span, size, true);
    let moved: number | undefined;
    try {
      moved = this.#os.remap(address, span.length, length);
    } catch (error) {
      // Refused (out of memory, or the pages span two kernel mappings): copy instead, when the
      // cache may have pages for it; without the cache the refusal is the answer.
      if (!this.#caching || !(error instanceof OutOfMemoryError || error instanceof OsError)) {
        throw error;
      }
    }
    if (moved === undefined) return this.#moveByCopy(span, size);
    this.#blocks.delete(address);
    this.#mappedBytes += length - span.length;
    this.#requestedBytes += size - span.requested;
    if (moved !== address) this.#remember(address);
    const region: Region = { base: moved, length, bytes: undefined };
    span.address = moved;
    span.length = length;
    span.requested = size;
    span.region = region;
    this.#blocks.set(moved, span);
    return moved;
  }

  /** A view of the first `length` bytes of the live block at `address` (checked by the caller). */
  view(address: number, length: number): Uint8Array {
    const span = this.#blocks.get(address)!;
    return this.#bytesOf(span).subarray(0, length);
  }

  /** The live blocks as `[address, mapped length, requested bytes]`, in address order. */
  *entries(): IterableIterator<[number, number, number]> {
    for (const span of this.#live()) yield [span.address, span.length, span.requested];
  }

  /**
   * Checks the records: every live block is whole pages holding its request, listed at its
   * address; the cache's bins, index and ages agree; no pages overlap; the byte counts add up. Throws an
   * `Error` naming the first broken invariant.
   */
  validate(): void {
    let mapped = 0;
    let requested = 0;
    for (const [address, span] of this.#blocks.entries()) {
      if (span.address !== address || span.requested < 0 || span.region.length === 0) {
        throw new Error(`${this.#label} ${hex(address)} is recorded wrongly`);
      }
      if (span.length !== this.#lengthFor(span.requested)) {
        const request = `a request of ${span.requested}`;
        throw new Error(`${this.#label} ${hex(address)} maps ${span.length} bytes for ${request}`);
      }
      mapped += span.length;
      requested += span.requested;
    }
    if (mapped !== this.#mappedBytes || requested !== this.#requestedBytes) {
      throw new Error(
        `the ${this.#label}s count ${this.#mappedBytes} bytes mapped, ${this.#requestedBytes} requested; ` +
          `they hold ${mapped} and ${requested}`,
      );
    }
    this.#cache.validate();
    // No two spans, live or cached, overlap: in address order each ends before the next starts.
    this.#quick.validate();
    const spans = [...this.#live(), ...this.#cache.spans(), ...this.#quick.spans()];
    spans.sort((a, b) => a.address - b.address);
    for (let i = 1; i < spans.length; i++) {
      const [low, high] = [spans[i - 1]!, spans[i]!];
      if (low.address + low.length > high.address) {
        throw new Error(`the pages at ${hex(low.address)} and ${hex(high.address)} overlap`);
      }
    }
  }

  /**
   * The error for an address that is not a live block here: a double free when it was unmapped
   * recently or lies in cached pages, an interior address when it falls inside a block, otherwise
   * a foreign address.
   */
  rejection(address: number, verb: string): Error {
    if (typeof address !== "number") return notAnAddress(address, verb);
    const where = `Cannot ${verb} ${hex(address)}`;
    const Invalid = isFreeing(verb) ? InvalidFreeError : InvalidAddressError;
    if (
      this.#recentUnmaps.has(address) || this.#cache.holding(address) !== undefined ||
      this.#quick.has(address)
    ) {
      const message = `${where}: this ${this.#label} was already freed`;
      return isFreeing(verb)
        ? new DoubleFreeError(message, address)
        : new InvalidAddressError(message, address);
    }
    for (const [start, span] of this.#blocks.entries()) {
      if (address > start && address < start + span.length) {
        return new Invalid(
          `${where}: it is inside the ${this.#label} at ${hex(start)}, not at its start`,
          address,
        );
      }
    }
    const gone = this.#caching
      ? " (or of a block freed long ago, whose pages went back to the OS)"
      : "";
    return new Invalid(`${where}: it is not an address of this heap${gone}`, address);
  }

  /**
   * Unmaps every cached span, oldest first; returns the bytes unmapped. When `munmap` fails it
   * throws `OsError`, and the spans not unmapped yet stay cached.
   */
  trim(): number {
    this.#quick.flush(this.#release);
    const bytes = this.#cache.bytes;
    while (this.#cache.oldest !== null) this.#evictOldest();
    this.#disarmIdleTimer();
    return bytes;
  }

  /**
   * Unmaps every block, cached ones too. When `munmap` fails it throws `OsError`; the blocks not
   * unmapped yet stay recorded (live or cached), so `close` can be called again.
   */
  close(): void {
    this.trim();
    for (const span of this.#live()) {
      const address = span.address;
      this.#os.unmap(address, span.length);
      this.#blocks.delete(address);
      this.#mappedBytes -= span.length;
      this.#requestedBytes -= span.requested;
    }
    this.#recentUnmaps.clear();
  }

  // --- private -----------------------------------------------------------------------------------

  /** The live blocks' records, in address order (a copy: the table may change meanwhile). */
  #live(): Span[] {
    const spans = Array.from(this.#blocks.entries(), ([, span]) => span);
    return spans.sort((a, b) => a.address - b.address);
  }

  #lengthFor(size: number): number {
    return roundUp(Math.max(size, 1), this.#pageSize);
  }

  /** From the page cache; when it has nothing, after handing it the parked blocks. */
  #takeCached(length: number, size: number): Span | undefined {
    const span = this.#cache.take(length, size);
    if (span !== undefined || this.#quick.bytes === 0) return span;
    this.#quick.flush(this.#release);
    return this.#cache.take(length, size);
  }

  /**
   * Parks the released `span` (just unrecorded) on its quick stack if it has room; false when it
   * does not, or when the block is too large for one.
   */
  #park(span: Span): boolean {
    const { length, requested } = span;
    if (!this.#quick.park(span)) return false;
    this.#mappedBytes -= length;
    this.#requestedBytes -= requested;
    this.#armIdleTimer();
    return true;
  }

  /** Hands a parked block to the page cache (no call: the budget is checked at releases). */
  #release = (span: Span): void => this.#cache.release(span);

  /** Maps a fresh region for a new block; throws `OutOfMemoryError` (changing nothing). */
  #mapFresh(length: number, size: number): number {
    const base = this.#os.map(length);
    this.#recentUnmaps.delete(base);
    const region: Region = { base, length, bytes: undefined };
    return this.#track(this.#cache.make(base, length, size, region), size);
  }

  /** Records `span` as the live block for `size` bytes; returns its address. */
  #track(span: Span, size: number): number {
    this.#blocks.set(span.address, span);
    this.#mappedBytes += span.length;
    this.#requestedBytes += size;
    return span.address;
  }

  /**
   * A view of all of `span`, cut from the view of its region. A span merged from two regions is
   * covered by neither: it gets a region (a view window) of its own first.
   */
  #bytesOf(span: Span): Uint8Array {
    let region = span.region;
    let start = span.address - region.base;
    if (start < 0 || start + span.length > region.length) {
      region = span.region = { base: span.address, length: span.length, bytes: undefined };
      start = 0;
    }
    region.bytes ??= new Uint8Array(this.#os.view(region.base, region.length));
    return region.bytes.subarray(start, start + span.length);
  }

  /**
   * Resizes the live `span` to `length` bytes without a call: a shrink frees its tail, a growth
   * takes the front of the free span above. False when it cannot grow here.
   */
  #resizeInPlace(span: Span, length: number): boolean {
    const change = length - span.length;
    if (change < 0) {
      // The tail is released as a block would be: under the budget (room made first), or unmapped
      // at once (more than MAX_CACHED); either call comes before anything changes.
      const tailAddress = span.address + length;
      const cache = this.#makeRoom(-change);
      if (!cache) this.#os.unmap(tailAddress, -change);
      span.length = length;
      this.#mappedBytes += change;
      if (cache) {
        this.#cache.addTail(this.#cache.make(tailAddress, -change, -1, span.region));
        this.#armIdleTimer();
      }
      return true;
    }
    const above = this.#cache.freeAt(span.address + span.length);
    if (above === undefined || above.length < change) return false;
    span.region = covering(span.region, above.region);
    this.#cache.shorten(above, change);
    span.length = length;
    this.#mappedBytes += change;
    return true;
  }

  /** Moves the block of `span` to a new block of `size` bytes by copying; frees the old one. */
  #moveByCopy(span: Span, size: number, roomy = false): number {
    const old = span.address;
    const kept = Math.min(span.length, size); // all the old pages hold (usableSize promises them)
    const moved = roomy ? this.#mapRoomy(size) : this.map(size);
    this.view(moved, kept).set(this.view(old, kept));
    try {
      this.unmap(old);
    } catch (error) {
      this.#giveBack(moved);
      throw error;
    }
    return moved;
  }

  /**
   * A block for a growing buffer: the front of a cached span at least twice as long, the rest left
   * free right above it, so that the next growth is in place (no copy, no call). Without such a
   * span, as `map`. On a warm realloc chain (16 B doubling to 1 MiB), blocks taken whole off the
   * quick stacks were copied at 6 of its 17 steps; with the room above, at 3 (1 KiB: small to
   * large; 8 KiB; 256 KiB).
   */
  #mapRoomy(size: number): number {
    const length = this.#lengthFor(size);
    const span = this.#cache.take(2 * length, size);
    if (span === undefined) return this.map(size);
    this.#calls++;
    const upper = this.#cache.make(span.address + length, span.length - length, -1, span.region);
    span.length = length;
    this.#cache.addTail(upper);
    return this.#track(span, size);
  }

  /**
   * Takes back the block just mapped at `address` for a move that failed, with no call that can
   * fail: with the cache its pages are cached (even past the budget: the next release makes
   * room); without it, they are unmapped, or, if the OS refuses that too, forgotten (leaked, but
   * every record stays true).
   */
  #giveBack(address: number): void {
    const span = this.#blocks.delete(address)!;
    this.#mappedBytes -= span.length;
    this.#requestedBytes -= span.requested;
    if (this.#caching) {
      this.#cache.release(span);
      this.#armIdleTimer();
      return;
    }
    try {
      this.#os.unmap(address, span.length);
    } catch { /* the first error is the one to report */ }
  }

  /** The cache's cap at a release: twice the recent peak of the live bytes, or the floor. */
  #cap(): number {
    // The live bytes now, before the release, are the most since the last release (only releases
    // and shrinking reallocs lower them; after a shrink the peak is a little low, never high).
    this.#highWater = decayedPeak(this.#highWater, this.#mappedBytes);
    return Math.max(this.#cacheFloor, CACHE_PER_LIVE * this.#highWater);
  }

  /**
   * Before a live block of `length` bytes is released into the cache: unmaps the cached spans
   * that decayed, then the oldest ones until it fits under the cap. Returns false for a block of
   * more than `MAX_CACHED` bytes (the caller unmaps it).
   */
  #makeRoom(length: number): boolean {
    const cache = this.#cache;
    if (length > MAX_CACHED) return false;
    const cap = this.#cap();
    while (cache.oldest !== null && cache.clock - cache.oldest.releasedAt >= DECAY_RELEASES) {
      this.#evictOldest();
    }
    while (cache.oldest !== null && cache.bytes + length > cap) {
      this.#evictOldest(cache.bytes + length - cap);
    }
    return true;
  }

  /**
   * Unmaps the oldest cached span, or, when it is longer than `bytes` (rounded up to pages), only
   * its top `bytes`; a failed `munmap` changes nothing. Cutting only what must go matters because
   * freed neighbours merge: the oldest span may be most of the cache.
   */
  #evictOldest(bytes = Infinity): void {
    const oldest = this.#cache.oldest!;
    const cut = Math.min(oldest.length, roundUp(bytes, this.#pageSize));
    if (cut < oldest.length) {
      this.#os.unmap(oldest.address + oldest.length - cut, cut);
      this.#cache.cutTop(oldest, cut);
      return;
    }
    this.#os.unmap(oldest.address, oldest.length);
    this.#remember(oldest.address);
    this.#cache.forget(oldest); // its record is reused: read nothing from it afterwards
  }

  /** Starts the idle timer unless it runs (or there is none). */
  #armIdleTimer(): void {
    if (this.#idleTimer === undefined || this.#idleHandle !== undefined) return;
    const calls = this.#calls;
    this.#idleHandle = this.#idleTimer.start(() => this.#onIdle(calls), IDLE_MS);
  }

  #disarmIdleTimer(): void {
    if (this.#idleHandle === undefined) return;
    this.#idleTimer!.stop(this.#idleHandle);
    this.#idleHandle = undefined;
  }

  /** The idle timer fired: gives the cache back if no call came since it started, else waits. */
  #onIdle(calls: number): void {
    this.#idleHandle = undefined;
    if (this.#calls === calls) {
      try {
        this.trim();
      } catch { /* munmap refused: what is left stays cached, for trim or the next release */ }
      this.#onIdleTrim();
    }
    if (this.#cache.oldest !== null) this.#armIdleTimer();
  }

  /** Remembers an address that no longer holds a block, to call a later free of it a double free. */
  #remember(address: number): void {
    this.#recentUnmaps.add(address);
    if (this.#recentUnmaps.size > RECENT_UNMAPS) {
      this.#recentUnmaps.delete(this.#recentUnmaps.values().next().value!);
    }
  }
}
