// The block cache's memory budget (src/heap/_block_cache.ts): 64 KiB of blocks per order, whatever
// the block size and the minimum block, with the stacks laid out one after another; long bursts of
// frees stay cached up to the budget, and trim() and close() give every cached block back.
import assert from "node:assert/strict";
import { CACHE_DEPTH, CACHE_ORDER_BYTES, PseudoMalloc } from "../mod.ts";
import { BlockCache, cacheBase, cacheLimit } from "../src/heap/_block_cache.ts";

Deno.test("block cache: the stacks lie one after another, each 64 KiB of its blocks", () => {
  // 16-byte minimum blocks: 4096, 2048, ... entries, starting at 0, 4096, 6144, ...
  assert.deepEqual(
    Array.from({ length: 8 }, (_, order) => [cacheLimit(4, order), cacheBase(4, order)]),
    [[4096, 0], [2048, 4096], [1024, 6144], [512, 7168], [256, 7680], [128, 7936], [64, 8064], [
      32,
      8128,
    ]],
  );
  for (const minShift of [3, 4, 6]) {
    const orders = 30 - minShift + 1;
    const cache = new BlockCache(orders, 1 << minShift);
    for (let order = 0; order < orders; order++) {
      const limit = cacheLimit(minShift, order);
      assert.equal(cache.limit[order], limit);
      assert.ok(limit * (1 << (minShift + order)) <= CACHE_ORDER_BYTES, `${minShift}/${order}`);
      // Each stack ends where the next begins, within the arrays.
      if (order + 1 < orders) {
        assert.ok(cacheBase(minShift, order) + limit <= cacheBase(minShift, order + 1));
      }
      assert.ok(cacheBase(minShift, order) + limit <= cache.block.length);
    }
    assert.equal(cache.block.length, 2 * (CACHE_ORDER_BYTES >> minShift));
    assert.ok(cache.block.length <= 2 * CACHE_DEPTH);
  }
});

Deno.test("block cache: a burst of frees stays cached up to 64 KiB per order", () => {
  using heap = new PseudoMalloc();
  const sizes = [16, 24, 64, 100, 256, 1000];
  const blocks = sizes.map((size) => Array.from({ length: 5000 }, () => heap.malloc(size)));
  for (const list of blocks) for (const address of list) heap.free(address);
  // Every order took exactly its budget; the rest merged in the buddy.
  assert.equal(heap.stats().smallCachedBytes, sizes.length * CACHE_ORDER_BYTES);
  heap.validate();
  // The 16-byte stack holds 4096: the last 4096 freed come back first, newest first.
  const again = Array.from({ length: 4096 }, () => heap.malloc(16));
  assert.deepEqual(again, blocks[0]!.slice(0, 4096).reverse());
  for (const address of again) heap.free(address);
  assert.ok(heap.trim() > 0);
  assert.equal(heap.stats().smallCachedBytes, 0);
  assert.equal(heap.stats().arenas, 0, "every cached block went back and the arenas were empty");
  heap.validate();
});

Deno.test("block cache: with 64-byte minimum blocks each order still holds 64 KiB", () => {
  using heap = new PseudoMalloc({ minBlockSize: 64 });
  for (const size of [8, 64, 200, 1000]) {
    const list = Array.from({ length: 2000 }, () => heap.malloc(size));
    const before = heap.stats().smallCachedBytes;
    for (const address of list) heap.free(address);
    assert.equal(heap.stats().smallCachedBytes - before, CACHE_ORDER_BYTES, `${size}`);
    heap.validate();
  }
});

Deno.test("block cache: close() flushes a full cache, and the next heap starts with it empty", () => {
  const first = new PseudoMalloc();
  const list = Array.from({ length: 5000 }, () => first.malloc(32));
  for (const address of list) first.free(address);
  assert.equal(first.stats().smallCachedBytes, CACHE_ORDER_BYTES);
  first.close();
  using next = new PseudoMalloc();
  assert.equal(next.stats().smallCachedBytes, 0);
  const a = next.malloc(32);
  next.free(a);
  assert.equal(next.stats().smallCachedBytes, 32);
  assert.equal(next.malloc(32), a);
  next.free(a);
  next.validate();
});
