// Reading a SegregatedAllocator from the outside, on the slow paths: the walk of `validate()`
// over every span, list and counter, and the diagnosis of an address that is not a live block.

import { DoubleFreeError, hex, InvalidAddressError, InvalidFreeError } from "../errors.ts";
import { isFreeing, notAnAddress } from "../_checks.ts";
import type { Mappings } from "../_mappings.ts";
import type { ReleasedRanges } from "../_released.ts";
import { CLASS_INDEX } from "./_size_classes.ts";
import type { Span, SpanCache, SpanClass } from "./_spans.ts";

/** What {@linkcode checkSpans} reads of a SegregatedAllocator. */
export interface SegregatedState {
  pageSize: number;
  spans: ReadonlySet<Span>;
  spanByPage: ReadonlyMap<number, Span>;
  classes: readonly SpanClass[];
  cache: SpanCache;
  large: Mappings;
  spanBytes: number;
  small: number;
  smallAllocated: number;
  liveAllocations: number;
  liveBytes: number;
}

/**
 * Checks every invariant: each span's bitmap against its live count, its hint and its high-water
 * mark; the recorded requests against the class; the page table; each class's list (exactly the
 * spans with room, linked both ways); the cache (exactly the empty spans, oldest first, within its
 * budget); and the counters. Throws an `Error` naming the first broken one.
 */
export function checkSpans(state: SegregatedState): void {
  const pageSize = state.pageSize;
  const fail = (what: string): never => {
    throw new Error(`SegregatedAllocator invariant broken: ${what}`);
  };
  const expect = (what: string, actual: number, expected: number): void => {
    if (actual !== expected) fail(`${what} is ${actual}, spans say ${expected}`);
  };
  let live = 0;
  let requested = 0;
  let allocated = 0;
  let bytes = 0;
  let pages = 0;
  for (const span of state.spans) {
    const { size, capacity, spanLength, index } = span.sizeClass;
    const at = `span ${hex(span.base)} (class ${size})`;
    if (span.base % pageSize !== 0) fail(`${at} is not page-aligned`);
    for (let page = 0; page < spanLength / pageSize; page++) {
      if (state.spanByPage.get(span.base / pageSize + page) !== span) {
        fail(`${at}: page ${page} is not in the page table`);
      }
    }
    pages += spanLength / pageSize;
    let free = 0;
    for (let w = 0; w < span.free.length; w++) {
      const word = span.free[w]!;
      if (w < span.hint && word !== 0) {
        fail(`${at}: a free block below the hint word ${span.hint}`);
      }
      for (let bit = 0; bit < 32; bit++) {
        const i = w * 32 + bit;
        const isFree = (word >>> bit & 1) === 1;
        if (i >= capacity) {
          if (isFree) fail(`${at}: bit ${i} is set past the last block`);
        } else if (isFree) {
          free++;
        } else {
          if (i >= span.touched) fail(`${at}: block ${i} is live but above the high-water mark`);
          const slack = span.slack[i]!;
          const asked = size - slack;
          if (asked < 0 || CLASS_INDEX[(asked + 15) >>> 4] !== index) {
            fail(`${at}: block ${i} records a request of ${asked} bytes`);
          }
          requested += asked;
        }
      }
    }
    if (free !== capacity - span.live) {
      fail(`${at}: bitmap has ${free} free blocks, live count says ${capacity - span.live}`);
    }
    if (span.touched > capacity) fail(`${at}: high-water mark past the last block`);
    if (span.listed !== span.live < capacity) {
      fail(`${at} is ${span.listed ? "listed but full" : "not listed but has room"}`);
    }
    if (span.cached !== (span.live === 0)) {
      fail(`${at} is ${span.cached ? "cached but in use" : "empty but not cached"}`);
    }
    live += span.live;
    allocated += span.live * size;
    bytes += spanLength;
  }
  for (const sizeClass of state.classes) {
    let previous: Span | undefined;
    let count = 0;
    for (let span = sizeClass.head; span !== undefined; span = span.next) {
      if (span.sizeClass !== sizeClass || !state.spans.has(span) || !span.listed) {
        fail(`class ${sizeClass.size} lists a span that is not one of its own`);
      }
      if (span.prev !== previous) fail(`class ${sizeClass.size}: bad back link`);
      if (++count > state.spans.size) fail(`class ${sizeClass.size}: the list has a cycle`);
      previous = span;
    }
    if (sizeClass.tail !== previous) fail(`class ${sizeClass.size}: bad tail`);
  }
  let cached = 0;
  let older: Span | undefined;
  let count = 0;
  for (let span = state.cache.oldest; span !== undefined; span = span.newer) {
    if (!state.spans.has(span) || !span.cached) fail("the cache holds a span that is not empty");
    if (span.older !== older) fail("the cache has a bad back link");
    if (++count > state.spans.size) fail("the cache has a cycle");
    cached += span.sizeClass.spanLength;
    older = span;
  }
  if (state.cache.newest !== older) fail("the cache has a bad newest end");
  if (cached > state.cache.limit) fail(`the cache holds ${cached} bytes, over its budget`);
  expect("cachedBytes", state.cache.bytes, cached);
  for (const span of state.spans) {
    if (!span.listed) continue;
    let found = false;
    for (let s = span.sizeClass.head; s !== undefined; s = s.next) found ||= s === span;
    if (!found) fail(`span ${hex(span.base)} is marked listed but is on no list`);
  }
  for (const [, length, size] of state.large.entries()) {
    requested += size;
    allocated += length;
  }
  expect("page table size", state.spanByPage.size, pages);
  expect("span bytes", state.spanBytes, bytes);
  expect("smallAllocations", state.small, live);
  expect("liveAllocations", state.liveAllocations, live + state.large.count);
  expect("liveBytes", state.liveBytes, requested);
  expect("allocatedBytes", state.smallAllocated + state.large.mappedBytes, allocated);
}

/** The error for an address on a span's page that is not a live block of it. */
export function spanRejection(span: Span, address: number, verb: string): Error {
  if (typeof address !== "number") return notAnAddress(address, verb);
  const where = `Cannot ${verb} ${hex(address)}`;
  const freeing = isFreeing(verb);
  const Invalid = freeing ? InvalidFreeError : InvalidAddressError;
  const { size, capacity } = span.sizeClass;
  const offset = address - span.base;
  const index = Math.floor(offset / size);
  if (index >= capacity) {
    return new Invalid(
      `${where}: it is in the unused tail of the ${size}-byte span at ${hex(span.base)}`,
      address,
    );
  }
  const start = span.base + index * size;
  if (address !== start) {
    return new Invalid(
      `${where}: it is inside the ${size}-byte block at ${hex(start)}, not at its start`,
      address,
    );
  }
  if (index >= span.touched) {
    return new Invalid(`${where}: this ${size}-byte block was never handed out`, address);
  }
  const message = `${where}: this ${size}-byte block was already freed`;
  return freeing
    ? new DoubleFreeError(message, address)
    : new InvalidAddressError(message, address);
}

/**
 * The error for an address on no span page that is not a live large block either: in a span given
 * back to the OS recently (`released`), else whatever `large` says of it.
 */
export function rejection(
  released: ReleasedRanges,
  large: Mappings,
  address: number,
  verb: string,
): Error {
  const index = typeof address === "number" ? released.find(address) : -1;
  if (index >= 0) {
    const size = released.note(index);
    const start = released.start(index);
    const where = `Cannot ${verb} ${hex(address)}`;
    const Invalid = isFreeing(verb) ? InvalidFreeError : InvalidAddressError;
    if ((address - start) % size !== 0) {
      return new Invalid(
        `${where}: it is inside a block of a span given back to the OS`,
        address,
      );
    }
    const message = `${where}: it lies in the ${size}-byte span at ${
      hex(start)
    }, given back to the OS when its last block was freed (double free?)`;
    return isFreeing(verb)
      ? new DoubleFreeError(message, address)
      : new InvalidAddressError(message, address);
  }
  return large.rejection(address, verb);
}

/** What the spans hold: live blocks, the bytes they requested, and their class sizes' sum. */
export interface SpanTally {
  live: number;
  requested: number;
  allocated: number;
}

/** Adds up the live blocks of `spans` from their bitmaps and slack bytes. */
export function tallySpans(spans: Iterable<Span>): SpanTally {
  const tally: SpanTally = { live: 0, requested: 0, allocated: 0 };
  for (const span of spans) {
    const { size, capacity } = span.sizeClass;
    for (let i = 0; i < capacity; i++) {
      if ((span.free[i >>> 5]! >>> (i & 31) & 1) === 0) {
        tally.live++;
        tally.requested += size - span.slack[i]!;
        tally.allocated += size;
      }
    }
  }
  return tally;
}
