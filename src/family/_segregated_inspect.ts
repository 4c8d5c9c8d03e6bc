// Reading a SegregatedAllocator from the outside, on the slow paths: the walk of `validate()`
// over every span, list, table and counter, the snapshots of `stats()` and `spans()`, and the
// diagnosis of an address that is not a live block.

import { DoubleFreeError, hex, InvalidAddressError, InvalidFreeError } from "../errors.ts";
import { isFreeing, notAnAddress } from "../_checks.ts";
import type { Mappings } from "../_mappings.ts";
import type { ReleasedRanges } from "../_released.ts";
import { CLASS_INDEX } from "./_segregated_classes.ts";
import type { SegregatedHeap } from "./_segregated_heap.ts";
import type { SegregatedSpan, SegregatedStats } from "./_segregated_options.ts";
import type { Span } from "./_spans.ts";

/**
 * Checks every invariant: each span's tags, free stack and bump index against its live count and
 * its high-water mark; the recorded requests against the class; the page table and the table of
 * spans; each class's list (exactly the spans with room, linked both ways); the cache (exactly the
 * empty spans, oldest first, within its budget); and the counters. Throws an `Error` naming the
 * first broken one.
 */
export function checkSpans(heap: SegregatedHeap): void {
  const pageSize = heap.pageSize;
  const fail = (what: string): never => {
    throw new Error(`SegregatedAllocator invariant broken: ${what}`);
  };
  const expect = (what: string, actual: number, expected: number): void => {
    if (actual !== expected) fail(`${what} is ${actual}, spans say ${expected}`);
  };
  heap.large.validate(); // the large blocks and the page cache behind them
  const spans = new Set(heap.spans());
  let live = 0;
  let requested = 0;
  let bytes = 0;
  let pages = 0;
  let cached = 0;
  for (const [id, span] of heap.table.entries()) {
    if (span === undefined) {
      if (!heap.freeIds.includes(id)) fail(`span id ${id} is neither used nor free`);
      continue;
    }
    const { size, capacity, spanLength, index } = span.sizeClass;
    const at = `span ${hex(span.base)} (class ${size})`;
    if (span.id !== id) fail(`${at} has id ${span.id} at ${id}`);
    if (heap.freeIds.includes(id)) fail(`${at}: its id is also free`);
    if (span.base % pageSize !== 0) fail(`${at} is not page-aligned`);
    for (let page = 0; page < spanLength / pageSize; page++) {
      if (heap.pages.get(span.base / pageSize + page) !== span) {
        fail(`${at}: page ${page} is not in the page table`);
      }
    }
    pages += spanLength / pageSize;
    const stackDepth = span.top - capacity;
    if (span.capacity !== capacity || span.blocks.length !== 2 * capacity) {
      fail(`${at}: its capacity or block array does not match its class`);
    }
    if (!(stackDepth >= 0 && stackDepth <= span.bump && span.bump <= capacity)) {
      fail(`${at}: stack depth ${stackDepth} and bump ${span.bump} out of order`);
    }
    if (span.touched > capacity) fail(`${at}: high-water mark past the last block`);
    const stacked = new Set<number>();
    for (let i = 0; i < stackDepth; i++) {
      const block = span.blocks[capacity + i]!;
      if (block >= span.bump || stacked.has(block)) {
        fail(`${at}: stack entry ${i} (block ${block}) is above the bump or twice`);
      }
      stacked.add(block);
    }
    let free = 0;
    for (let i = 0; i < capacity; i++) {
      const tag = span.blocks[i]!;
      if (i >= span.bump || stacked.has(i)) {
        if (tag !== 0) fail(`${at}: block ${i} is free but tagged ${tag}`);
        free++;
        continue;
      }
      const asked = tag - 1;
      if (asked < 0 || CLASS_INDEX[(asked + 15) >>> 4] !== index) {
        fail(`${at}: block ${i} records a request of ${asked} bytes`);
      }
      requested += asked;
    }
    if (free !== capacity - span.live) {
      fail(`${at}: ${free} blocks are free, live count says ${capacity - span.live}`);
    }
    if (span.live === 0 && span.bump !== 0) fail(`${at} is empty but did not start over`);
    if (span.listed !== span.live < capacity) {
      fail(`${at} is ${span.listed ? "listed but full" : "not listed but has room"}`);
    }
    if (span.live === 0 && !span.cached) fail(`${at} is empty but not cached`);
    if (span.live === 0) cached += spanLength;
    live += span.live;
    bytes += spanLength;
  }
  for (const sizeClass of heap.classes) {
    let previous: Span | undefined;
    let count = 0;
    for (let span = sizeClass.head; span !== undefined; span = span.next) {
      if (span.sizeClass !== sizeClass || !spans.has(span) || !span.listed) {
        fail(`class ${sizeClass.size} lists a span that is not one of its own`);
      }
      if (span.prev !== previous) fail(`class ${sizeClass.size}: bad back link`);
      if (++count > spans.size) fail(`class ${sizeClass.size}: the list has a cycle`);
      previous = span;
    }
    if (sizeClass.tail !== previous) fail(`class ${sizeClass.size}: bad tail`);
  }
  let older: Span | undefined;
  let count = 0;
  for (let span = heap.cache.oldest; span !== undefined; span = span.newer) {
    if (!spans.has(span) || !span.cached) fail("the cache lists a span that is not one");
    if (span.older !== older) fail("the cache has a bad back link");
    if (++count > spans.size) fail("the cache has a cycle");
    older = span;
  }
  if (count !== [...spans].filter((span) => span.cached).length) {
    fail("a span marked cached is not on the cache's list");
  }
  if (heap.cache.newest !== older) fail("the cache has a bad newest end");
  if (cached > heap.cache.limit) fail(`the cache holds ${cached} bytes, over its budget`);
  expect("cachedBytes", heap.cache.bytes, cached);
  for (const span of spans) {
    if (!span.listed) continue;
    let found = false;
    for (let s = span.sizeClass.head; s !== undefined; s = s.next) found ||= s === span;
    if (!found) fail(`span ${hex(span.base)} is marked listed but is on no list`);
  }
  for (const [page, span] of heap.pages.entries()) {
    if (!spans.has(span) || page < span.base / pageSize) fail(`page ${page} has no span`);
  }
  for (const [, , size] of heap.large.entries()) requested += size;
  expect("page table size", heap.pages.size, pages);
  expect("span count", heap.spanCount, spans.size);
  expect("span bytes", heap.spanBytes, bytes);
  expect("liveAllocations", heap.counters.liveAllocations, live + heap.large.count);
  expect("liveBytes", heap.counters.liveBytes, requested);
}

/** The heap's stats: its counters, and what its spans hold, added up. */
export function snapshot(heap: SegregatedHeap): SegregatedStats {
  const small = tallySpans(heap.spans());
  return {
    ...heap.counters.snapshot(
      heap.mappedBytes,
      small.allocated + heap.large.mappedBytes,
      heap.calls.counts,
    ),
    spans: heap.spanCount,
    cachedBytes: heap.cache.bytes,
    smallAllocations: small.live,
    largeAllocations: heap.large.count,
  };
}

/** Every span of the heap, in address order, as `spans()` lists them. */
export function spanRecords(heap: SegregatedHeap): SegregatedSpan[] {
  return heap.spans().sort((a, b) => a.base - b.base).map((span) => ({
    address: span.base,
    length: span.length,
    classSize: span.sizeClass.size,
    blocks: span.capacity,
    live: span.live,
  }));
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
  if (index >= span.handedOut) {
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

/** Adds up the live blocks of `spans` from their tags. */
export function tallySpans(spans: Iterable<Span>): SpanTally {
  const tally: SpanTally = { live: 0, requested: 0, allocated: 0 };
  for (const span of spans) {
    const { size, capacity } = span.sizeClass;
    for (let i = 0; i < capacity; i++) {
      const tag = span.blocks[i]!;
      if (tag !== 0) {
        tally.live++;
        tally.requested += tag - 1;
        tally.allocated += size;
      }
    }
  }
  return tally;
}
