// PseudoMalloc's options checked by type, calloc's argument checks, and the block cache's bound in
// bytes (64 KiB per order; src/heap/_block_cache.ts).

import assert from "node:assert/strict";
import { CACHE_ORDER_BYTES, PseudoMalloc, type PseudoMallocOptions } from "../mod.ts";

Deno.test("PseudoMalloc rejects an option of the wrong type with a TypeError naming it", () => {
  const bad: [string, unknown][] = [
    ["maxArenas", "2"],
    ["arenaSize", "1048576"],
    ["minBlockSize", 16n],
    ["mmapThreshold", null],
    ["lowAddresses", "no"],
    ["lowAddresses", 0],
    ["debug", "yes"],
    ["debug", 1],
    ["onLeaks", "console"],
    ["os", "libc"],
    ["os", {}],
  ];
  for (const [name, value] of bad) {
    const options = { [name]: value } as unknown as PseudoMallocOptions;
    assert.throws(
      () => new PseudoMalloc(options),
      (error: Error) => error instanceof TypeError && error.message.includes(name),
      `${name}: ${String(value)}`,
    );
  }
  // The right types still work, and undefined means the default.
  using heap = new PseudoMalloc({ maxArenas: 2, lowAddresses: false, debug: false });
  heap.free(heap.malloc(8));
});

Deno.test("PseudoMalloc.calloc checks the types of its arguments before multiplying", () => {
  using heap = new PseudoMalloc();
  for (const [count, size] of [[2n, 8], [2, 8n], ["2", 8], [2, {}]] as const) {
    assert.throws(
      () => heap.calloc(count as unknown as number, size as unknown as number),
      (error: Error) => error instanceof TypeError && !/BigInt/.test(error.message),
      `${typeof count} x ${typeof size}`,
    );
  }
  heap.validate();
});

Deno.test("PseudoMalloc's block cache holds at most 64 KiB of each order", () => {
  // A threshold of 1 MiB makes blocks up to 1 MiB small; each order keeps at most 64 KiB cached.
  using heap = new PseudoMalloc({ mmapThreshold: 1 << 20, arenaSize: 1 << 22 });
  for (const size of [1000, 2000, 40_000, 100_000, 600_000]) {
    const blocks = Array.from({ length: 64 }, () => heap.malloc(size));
    const block = heap.usableSize(blocks[0]!);
    const before = heap.stats().smallCachedBytes;
    for (const address of blocks) heap.free(address);
    const cached = heap.stats().smallCachedBytes - before;
    assert.equal(cached, Math.min(64, Math.floor(CACHE_ORDER_BYTES / block)) * block, `${size}`);
    heap.validate();
  }
  // Nothing live: what is cached is bounded by the orders, not by what was freed.
  const orders = Math.log2((1 << 22) / 16) + 1;
  assert.ok(heap.stats().smallCachedBytes <= orders * CACHE_ORDER_BYTES);
});
