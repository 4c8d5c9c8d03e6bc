// The parts behind large blocks, without the OS: the address hash table (src/_address_table.ts)
// and the cache of free page ranges (src/_page_cache.ts). Randomized tests compare against a model
// and give their seed; every step of them runs `validate()`.

import assert from "node:assert/strict";
import { AddressTable } from "../src/_address_table.ts";
import { covering, newSpan, PageCache, type Region, type Span } from "../src/_page_cache.ts";
import { mulberry32 } from "../src/_random.ts";

const PAGE = 4096;

Deno.test("AddressTable agrees with a Map under random set, get and delete", () => {
  const seed = 0x7ab1e;
  const next = mulberry32(seed);
  const table = new AddressTable<number>(PAGE);
  const model = new Map<number, number>();
  // Addresses above 2^31 like real mappings, some 2^44 apart: the same low 32 bits of the page
  // number, so the same home slot (collisions on purpose).
  const address = () =>
    0x7f00_0000_0000 + Math.floor(next() * 4096) * PAGE +
    (next() < 0.3 ? 2 ** 44 : 0);
  for (let step = 0; step < 50_000; step++) {
    const key = address();
    const roll = next();
    if (roll < 0.45) {
      table.set(key, step);
      model.set(key, step);
    } else if (roll < 0.9) {
      assert.equal(table.delete(key), model.get(key), `seed ${seed}, step ${step}`);
      model.delete(key);
    } else {
      assert.equal(table.get(key), model.get(key), `seed ${seed}, step ${step}`);
    }
    assert.equal(table.size, model.size);
  }
  for (const [key, value] of model) assert.equal(table.get(key), value);
  assert.deepEqual(
    [...table.entries()].sort((a, b) => a[0] - b[0]),
    [...model.entries()].sort((a, b) => a[0] - b[0]),
  );
});

Deno.test("AddressTable: an empty table finds nothing and deletes nothing", () => {
  const table = new AddressTable<string>(PAGE);
  assert.equal(table.get(PAGE), undefined);
  assert.equal(table.delete(PAGE), undefined);
  table.set(PAGE, "a");
  assert.equal(table.get(PAGE), "a");
  assert.equal(table.delete(PAGE), "a");
  assert.equal(table.size, 0);
});

/** A region of `pages` pages at `base`, as one live span. */
function regionSpan(base: number, pages: number): Span {
  const region: Region = { base, length: pages * PAGE, bytes: undefined };
  return newSpan(base, pages * PAGE, pages * PAGE, region);
}

Deno.test("PageCache: the worked example of its file comment", () => {
  const cache = new PageCache(PAGE);
  const block = regionSpan(0x10_0000, 10); // a 40 KiB block, freed
  cache.release(block);
  assert.deepEqual([cache.count, cache.bytes], [1, 10 * PAGE]);
  const taken = cache.take(3 * PAGE, 12_000)!; // malloc(12_000): 3 pages off its front
  assert.equal(taken.address, 0x10_0000);
  assert.equal(taken.length, 3 * PAGE);
  assert.deepEqual([cache.count, cache.bytes], [1, 7 * PAGE]);
  assert.equal(cache.freeAt(0x10_0000 + 3 * PAGE)?.length, 7 * PAGE);
  cache.validate();
  cache.release(taken); // merges with the 7 again
  assert.deepEqual([cache.count, cache.bytes], [1, 10 * PAGE]);
  assert.equal(cache.freeAt(0x10_0000)?.length, 10 * PAGE);
  cache.validate();
});

Deno.test("PageCache.take is best fit: the smallest free span that is long enough", () => {
  const cache = new PageCache(PAGE);
  const spans = [12, 5, 300, 7, 600].map((pages, i) => regionSpan(0x1000_0000 * (i + 1), pages));
  for (const span of spans) cache.release(span);
  assert.equal(cache.take(6 * PAGE, 1)!.address, spans[3]!.address, "7 pages for 6");
  assert.equal(cache.take(5 * PAGE, 1)!.address, spans[1]!.address, "5 pages exactly");
  assert.equal(cache.take(13 * PAGE, 1)!.address, spans[2]!.address, "300 for 13 (bin 0)");
  assert.equal(cache.take(400 * PAGE, 1)!.address, spans[4]!.address, "600 for 400");
  assert.equal(cache.take(400 * PAGE, 1), undefined, "nothing is long enough");
  cache.validate();
});

Deno.test("PageCache merges across regions that touch, and lists spans oldest first", () => {
  const cache = new PageCache(PAGE);
  const low = regionSpan(0x20_0000, 4);
  const high = regionSpan(0x20_0000 + 4 * PAGE, 4); // another mapping, right above
  const far = regionSpan(0x90_0000, 2);
  cache.release(far);
  cache.release(high);
  cache.release(low); // merges with the free span above it at once
  assert.equal(cache.count, 2);
  assert.equal(cache.freeAt(0x20_0000)?.length, 8 * PAGE);
  assert.deepEqual([...cache.spans()].map((span) => span.address), [0x90_0000, 0x20_0000]);
  assert.equal(cache.oldest?.address, 0x90_0000);
  cache.validate();
});

Deno.test("PageCache merges a span with a free one below it when a request needs it", () => {
  const cache = new PageCache(PAGE);
  const low = regionSpan(0x30_0000, 4);
  const high = regionSpan(0x30_0000 + 4 * PAGE, 4);
  cache.release(low);
  cache.release(high); // the free span below is not looked up on release
  assert.equal(cache.count, 2);
  assert.equal(cache.take(6 * PAGE, 1)?.address, 0x30_0000, "merged, then taken");
  assert.equal(cache.count, 1);
  assert.equal(cache.freeAt(0x30_0000 + 6 * PAGE)?.length, 2 * PAGE);
  cache.validate();
});

Deno.test("PageCache keeps its bins, indexes and ages right under random use", () => {
  const seed = 0xcace;
  const next = mulberry32(seed);
  const cache = new PageCache(PAGE);
  const live: Span[] = [];
  let base = 0x4000_0000;
  let mapped = 0;
  for (let step = 0; step < 20_000; step++) {
    const roll = next();
    const pages = 1 + Math.floor(300 * next() ** 3);
    if (roll < 0.3) {
      // A new region, sometimes right above the last one (so that neighbours merge).
      if (next() < 0.5) base += Math.floor(next() * 8) * PAGE;
      live.push(regionSpan(base, pages));
      base += pages * PAGE;
      mapped += pages * PAGE;
    } else if (roll < 0.6 && live.length > 0) {
      const [span] = live.splice(Math.floor(next() * live.length), 1);
      cache.release(span!);
    } else if (roll < 0.9) {
      const span = cache.take(pages * PAGE, pages * PAGE);
      if (span !== undefined) {
        assert.equal(span.length, pages * PAGE, `seed ${seed}, step ${step}`);
        live.push(span);
      }
    } else if (cache.oldest !== null) {
      const oldest = cache.oldest;
      if (next() < 0.5 && oldest.length > PAGE) cache.cutTop(oldest, PAGE);
      else cache.forget(oldest); // the caller unmapped it: its bytes leave the cache
    }
    cache.validate();
    const liveBytes = live.reduce((sum, span) => sum + span.length, 0);
    assert.ok(liveBytes + cache.bytes <= mapped, `seed ${seed}, step ${step}: bytes appeared`);
    assert.ok(live.every((span) => span.requested >= 0 && span.bin === -1));
    // No live span overlaps a free one.
    for (const span of live.slice(-4)) {
      assert.equal(cache.holding(span.address), undefined, `seed ${seed}, step ${step}`);
    }
  }
});

Deno.test("PageCache counts pages of spans of 4 GiB and more exactly (no 32-bit wrap)", () => {
  const cache = new PageCache(PAGE);
  cache.release(regionSpan(0x100_0000, 25)); // 100 KiB
  // 2^32 + 4096 bytes is 2^20 + 1 pages: a 32-bit shift would make it 1 page.
  assert.equal(cache.take(2 ** 32 + PAGE, 1), undefined, "100 KiB does not serve 4 GiB");
  const huge = regionSpan(0x7000_0000_0000, 2 ** 20 + 1);
  cache.release(huge);
  assert.equal(cache.take(2 ** 32, 1)?.address, 0x7000_0000_0000, "the huge span serves 4 GiB");
  assert.equal(cache.freeAt(0x7000_0000_0000 + 2 ** 32)?.length, PAGE, "one page left");
  cache.validate();
});

Deno.test("covering: one region whose view spans two, or the one that already does", () => {
  const a: Region = { base: 0x10_0000, length: 4 * PAGE, bytes: undefined };
  const b: Region = { base: 0x10_0000 + 4 * PAGE, length: 2 * PAGE, bytes: undefined };
  const inside: Region = { base: 0x10_0000 + PAGE, length: PAGE, bytes: undefined };
  assert.equal(covering(a, a), a);
  assert.equal(covering(a, inside), a);
  assert.equal(covering(inside, a), a);
  const both = covering(a, b);
  assert.deepEqual([both.base, both.length], [0x10_0000, 6 * PAGE]);
  assert.equal(both.bytes, undefined, "a view of its own, made on first use");
});

Deno.test("PageCache: merged spans cover their pages' regions (consolidated ones too)", () => {
  const cache = new PageCache(PAGE);
  const low = regionSpan(0x50_0000, 4);
  const high = regionSpan(0x50_0000 + 4 * PAGE, 4); // another mapping
  cache.release(low);
  cache.release(high); // not merged on release (the span below is not looked up)
  const taken = cache.take(8 * PAGE, 1)!; // consolidated, then taken whole
  assert.equal(taken.length, 8 * PAGE);
  assert.deepEqual([taken.region.base, taken.region.length], [0x50_0000, 8 * PAGE]);
  cache.validate();
});
