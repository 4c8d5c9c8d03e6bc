// SegregatedAllocator's machinery below the contract (needs --allow-ffi): the page table's windows,
// the block index found by a multiplication, the medium classes, the lazily kept cache of empty
// spans and the span of the last free.
import assert from "node:assert/strict";
import { InvalidFreeError, LARGEST_SIZE_CLASS, SegregatedAllocator, SIZE_CLASSES } from "../mod.ts";
import { CLASS_INDEX, MIN_BLOCKS_PER_SPAN } from "../src/family/segregated_allocator.ts";
import { PageTable } from "../src/family/_segregated_pages.ts";
import { pageSize } from "../ffi/libc.ts";
import { mulberry32 } from "../src/_random.ts";

const PAGE = pageSize();

Deno.test("PageTable finds pages through 16 MiB windows, and drops a window left empty", () => {
  const none = "none";
  const table = new PageTable<string>(4096, none);
  const window = 2 ** 24 / 4096; // pages per window
  const high = 0x7f1234; // the window of 0x7f12_3400_0000
  const pages = [high * window, high * window + 1, high * window + window - 1, (high + 1) * window];
  pages.forEach((page, i) => table.set(page, `span ${i}`));
  assert.equal(table.size, 4);
  for (const [i, page] of pages.entries()) {
    assert.equal(table.get(page), `span ${i}`);
    const address = page * 4096 + 123;
    const h = Math.floor(address / 2 ** 24);
    assert.equal(table.find(h, address - h * 2 ** 24), `span ${i}`, `page ${page}`);
  }
  assert.equal(table.get(high * window + 2), none, "a page of a window, held by no span");
  assert.equal(table.find(high - 1, 0), none, "a window with no page");
  assert.equal(table.find(NaN, NaN), none);
  assert.equal(table.get(0), none);
  assert.deepEqual([...table.entries()].map(([page]) => page), pages);
  table.delete(pages[3]!); // the second window goes
  assert.equal(table.find(high + 1, 0), none);
  for (const page of pages.slice(0, 3)) table.delete(page);
  assert.equal(table.size, 0);
  assert.equal(table.find(high, 0), none, "the window of the last lookup, gone");
  assert.deepEqual([...table.entries()], []);
});

Deno.test("SegregatedAllocator tells a block's start by multiplying back, in every class", () => {
  using heap = new SegregatedAllocator();
  for (const size of SIZE_CLASSES) {
    const first = heap.malloc(size);
    const span = heap.spans().find((span) => span.address === first)!;
    const blocks = [first];
    for (let i = 1; i < span.blocks; i++) blocks.push(heap.malloc(size));
    for (const [i, address] of blocks.entries()) {
      assert.equal(address, first + i * size);
      assert.equal(heap.usableSize(address), size);
      for (const off of [1, 15, size / 2 + 1, size - 1]) {
        assert.throws(
          () => heap.usableSize(address + off),
          /inside the .* block/,
          `${size} +${off}`,
        );
      }
    }
    const tail = first + span.blocks * size;
    if (tail < first + span.length) {
      assert.throws(() => heap.free(tail), /unused tail/);
    }
    for (const address of blocks) heap.free(address);
  }
  heap.validate();
});

Deno.test("SegregatedAllocator serves medium requests from spans of their classes", () => {
  using heap = new SegregatedAllocator();
  assert.equal(SIZE_CLASSES[CLASS_INDEX[(50_000 + 15) >> 4]!], 57344); // the worked example
  const medium = heap.malloc(50_000);
  assert.equal(heap.usableSize(medium), 57344);
  const span = heap.spans()[0]!;
  assert.deepEqual([span.classSize, span.blocks, span.length], [57344, 1, 57344], "one block");
  const second = heap.malloc(49_153);
  assert.notEqual(second, medium + 57344, "another span of the class");
  assert.equal(heap.stats().spans, 2);
  const small = heap.malloc(5000); // class 5120: 6 blocks in 32 KiB
  assert.equal(heap.malloc(5000), small + 5120, "the next block of its span");
  const large = heap.malloc(LARGEST_SIZE_CLASS + 1);
  assert.equal(heap.stats().largeAllocations, 1);
  assert.equal(heap.stats().systemCalls.mmap, 4, "three spans, one mapping for the large block");
  for (const address of [medium, second, large, small, small + 5120]) heap.free(address);
  heap.validate();
  assert.ok(MIN_BLOCKS_PER_SPAN === 8);
});

Deno.test("SegregatedAllocator's cache skips a span that got a block since it was emptied", () => {
  const span = PAGE; // one class-16 span
  using heap = new SegregatedAllocator({ spanCacheBytes: 2 * span });
  const perSpan = span / 16;
  const blocks = Array.from({ length: 4 * perSpan }, () => heap.malloc(16));
  const spanOf = (i: number) => blocks.slice(i * perSpan, (i + 1) * perSpan);
  for (const address of spanOf(0)) heap.free(address); // span 0: cached, the oldest
  const again = heap.malloc(16);
  assert.equal(again, blocks[0], "span 0 serves again, block 0 first");
  assert.equal(heap.stats().cachedBytes, 0, "its bytes left the cache at once");
  heap.validate();
  for (const i of [1, 2]) for (const address of spanOf(i)) heap.free(address);
  assert.equal(heap.stats().cachedBytes, 2 * span);
  for (const address of spanOf(3)) heap.free(address);
  // Over budget: span 0 is the oldest on the list but holds a block again: skipped; span 1 goes.
  const mapped = heap.spans().map((s) => s.address);
  assert.ok(mapped.includes(blocks[0]!), "span 0 stays");
  assert.ok(!mapped.includes(blocks[perSpan]!), "span 1, emptied longest ago, is unmapped");
  assert.deepEqual(heap.spans().map((s) => s.live).sort(), [0, 0, 1]);
  assert.equal(heap.stats().cachedBytes, 2 * span);
  heap.validate();
  heap.free(again); // span 0 empties again: the newest
  assert.equal(heap.stats().spans, 2, "span 2, now the oldest, made room");
  assert.ok(heap.spans().some((s) => s.address === blocks[0]));
  heap.validate();
});

Deno.test("SegregatedAllocator frees in any order across spans and classes (seed 0x5e9)", () => {
  using heap = new SegregatedAllocator({ spanCacheBytes: 4 * PAGE });
  const next = mulberry32(0x5e9);
  const live: [number, number][] = [];
  for (let step = 0; step < 20_000; step++) {
    if (live.length > 0 && next() < 0.5) {
      const [address, fill] = live.splice(Math.floor(next() * live.length), 1)[0]!;
      assert.equal(heap.bytes(address, 1)[0], fill, "no other block wrote over it");
      heap.free(address);
      assert.throws(() => heap.free(address), InvalidFreeError, "a second free");
    } else {
      const size = Math.floor(2 ** (next() * 17)); // 1 B to 128 KiB: every class, and large
      const address = heap.malloc(size);
      heap.bytes(address, Math.min(size, 8)).fill(step & 0xff);
      live.push([address, step & 0xff]);
    }
    if (step % 2000 === 0) heap.validate();
  }
  for (const [address, fill] of live) {
    assert.equal(heap.bytes(address, 1)[0], fill);
    heap.free(address);
  }
  assert.equal(heap.stats().liveAllocations, 0);
  heap.validate();
});
