// SharedPseudoMalloc in one thread, through several attachments: stats per attachment, heapMap,
// blocks crossing attachments (freed, resized, read by another), detach and close, reclaim's
// checks, bad handles and options, the limits (maxAttachments, maxArenas, the large table).
import assert from "node:assert/strict";
import {
  DoubleFreeError,
  HeapClosedError,
  InvalidFreeError,
  OsError,
  OutOfMemoryError,
  SharedPseudoMalloc,
} from "../mod.ts";
import { FaultyOs } from "./_faulty_os.ts";
import { libcOs } from "../ffi/libc.ts";
import { W_LOCK } from "../src/shared/_layout.ts";

Deno.test("SharedPseudoMalloc: blocks cross attachments; stats per attachment add up", () => {
  using heap = new SharedPseudoMalloc();
  const a = SharedPseudoMalloc.attach(heap.handle);
  const b = SharedPseudoMalloc.attach(heap.handle);
  assert.deepEqual(new Set([heap.id, a.id, b.id]), new Set([0, 1, 2]));
  const small = a.malloc(100);
  const large = a.malloc(10_000);
  a.bytes(small, 3).set([7, 8, 9]);
  a.bytes(large, 3).set([1, 2, 3]);
  const moved = b.realloc(small, 500); // resized by another attachment
  assert.deepEqual([...b.bytes(moved, 3)], [7, 8, 9]);
  assert.equal(b.usableSize(large), 12_288);
  const grown = b.realloc(large, 20_000);
  assert.deepEqual([...heap.bytes(grown, 3)], [1, 2, 3]);
  let stats = heap.stats();
  assert.equal(stats.liveAllocations, 2);
  assert.equal(stats.liveBytes, 20_500);
  assert.equal(stats.largeAllocations, 1);
  assert.equal(stats.attachments.length, 3);
  const byId = new Map(stats.attachments.map((s) => [s.id, s]));
  assert.equal(byId.get(a.id)!.allocations, 2);
  assert.equal(byId.get(b.id)!.allocations, 2); // realloc's moves count one each
  assert.equal(byId.get(b.id)!.frees, 2);
  heap.free(moved);
  heap.free(grown);
  assert.throws(() => a.free(moved), DoubleFreeError);
  assert.throws(() => b.free(grown), DoubleFreeError);
  heap.validate();
  a.detach();
  b.detach();
  assert.throws(() => a.malloc(1), HeapClosedError);
  stats = heap.stats();
  assert.equal(stats.liveAllocations, 0);
  assert.equal(stats.totalAllocations, 4);
  assert.equal(stats.attachments.length, 1);
  assert.equal(stats.allocatedBytes, 0);
  heap.validate();
});

Deno.test("SharedPseudoMalloc: heapMap shows live, cached and large blocks", () => {
  using heap = new SharedPseudoMalloc();
  const other = SharedPseudoMalloc.attach(heap.handle);
  heap.malloc(100);
  other.free(other.malloc(64));
  heap.malloc(50_000);
  const text = heap.heapMap();
  assert.match(text, /arena 0 at 0x[0-9a-f]+: \d+ of 1048576 bytes free/);
  assert.match(text, /1 large mappings, 53248 bytes/);
  assert.match(heap.heapMap({ format: "svg" }), /^<svg/);
  other.detach();
});

Deno.test("SharedPseudoMalloc: closing the creator with attachments left", () => {
  const heap = new SharedPseudoMalloc();
  const other = SharedPseudoMalloc.attach(heap.handle);
  const address = other.malloc(10);
  heap.close();
  heap.close();
  assert.throws(() => heap.stats(), HeapClosedError);
  // The memory stays until `other` lets go: its next call throws, and releases it.
  assert.throws(() => other.realloc(address, 20), HeapClosedError);
  assert.throws(() => other.usableSize(address), HeapClosedError);
  assert.throws(() => SharedPseudoMalloc.attach(heap.handle), HeapClosedError);
  other.detach(); // nothing more to do
});

Deno.test("SharedPseudoMalloc: reclaim, detach and attach reject what they cannot do", () => {
  using heap = new SharedPseudoMalloc({ maxAttachments: 2 });
  const other = SharedPseudoMalloc.attach(heap.handle);
  assert.throws(() => SharedPseudoMalloc.attach(heap.handle), /all 2 slots are taken/);
  assert.throws(() => heap.reclaim(heap.id), RangeError);
  assert.throws(() => heap.reclaim(7), RangeError);
  assert.throws(() => heap.detach(), TypeError);
  assert.equal(heap.reclaim(other.id), 0);
  assert.throws(() => heap.reclaim(other.id), /not attached/);
  assert.throws(
    () => SharedPseudoMalloc.attach({ kind: "nope" } as unknown as SharedPseudoMalloc["handle"]),
    TypeError,
  );
  const third = SharedPseudoMalloc.attach(heap.handle); // the reclaimed slot is free again
  third.detach();
});

Deno.test("SharedPseudoMalloc: options are checked; maxArenas and the large table bound it", () => {
  assert.throws(() => new SharedPseudoMalloc({ maxArenas: "2" as unknown as number }), TypeError);
  assert.throws(() => new SharedPseudoMalloc({ maxArenas: 0 }), RangeError);
  assert.throws(() => new SharedPseudoMalloc({ arenaSize: 3000 }), RangeError);
  assert.throws(() => new SharedPseudoMalloc({ mmapThreshold: -1 }), RangeError);
  using heap = new SharedPseudoMalloc({ maxArenas: 1, arenaSize: 4096, mmapThreshold: 4096 });
  const kept = heap.malloc(4000);
  assert.throws(() => heap.malloc(16), OutOfMemoryError);
  heap.free(kept);
  heap.free(heap.malloc(16));
  heap.validate();
  using small = new SharedPseudoMalloc({ largeCapacity: 3 });
  const large = [small.malloc(5000), small.malloc(5000), small.malloc(5000)];
  assert.throws(() => small.malloc(5000), OutOfMemoryError);
  assert.equal(small.stats().largeAllocations, 3);
  for (const address of large) small.free(address);
  assert.throws(() => small.free(large[0]!), InvalidFreeError);
  small.validate();
});

Deno.test("SharedPseudoMalloc: small blocks above 64 KiB (no cache stack) go straight back", () => {
  using heap = new SharedPseudoMalloc({ mmapThreshold: 512 * 1024 });
  const blocks = [100_000, 200_000, 70_000].map((size) => heap.malloc(size));
  for (const address of blocks) assert.equal(heap.usableSize(address) >= 70_000, true);
  for (const address of blocks) heap.free(address);
  heap.validate();
  const again = heap.malloc(100_000);
  assert.ok(Number.isInteger(again) && again > 0, `malloc gave ${again}`);
  heap.bytes(again).fill(1);
  heap.free(again);
  assert.throws(() => heap.free(again), DoubleFreeError);
  heap.validate();
  assert.equal(heap.stats().liveAllocations, 0);
});

Deno.test("SharedPseudoMalloc: a refused munmap keeps a large block live, in free and in realloc", () => {
  const os = new FaultyOs();
  using heap = new SharedPseudoMalloc({ os });
  const a = heap.malloc(50_000);
  heap.bytes(a, 3).set([4, 5, 6]);
  os.fail("unmap");
  assert.throws(() => heap.free(a), OsError);
  assert.deepEqual([...heap.bytes(a, 3)], [4, 5, 6]);
  assert.equal(heap.stats().liveAllocations, 1);
  os.fail("unmap"); // the old block's munmap, after the move's copy
  assert.throws(() => heap.realloc(a, 200_000), OsError);
  assert.equal(heap.stats().liveAllocations, 1, "the new block was taken back");
  assert.deepEqual([...heap.bytes(a, 3)], [4, 5, 6]);
  heap.validate();
  heap.free(a);
  assert.throws(() => heap.free(a), DoubleFreeError);
  heap.validate();
  assert.equal(heap.stats().liveAllocations, 0);
});

Deno.test("SharedPseudoMalloc: calls that cannot get the lock lose nothing (a free's tag, a large mapping)", () => {
  const os = new FaultyOs();
  using heap = new SharedPseudoMalloc({ os });
  const holder = SharedPseudoMalloc.attach(heap.handle);
  const words = new Int32Array(libcOs.view(heap.handle.header, 4096));
  // Fill the cache of order 0 (4,096 blocks of 16 bytes) so that the next free must take the lock.
  const blocks: number[] = [];
  for (let i = 0; i < 9000; i++) blocks.push(heap.malloc(16));
  const cached = () => heap.stats().attachments.find((a) => a.id === heap.id)!.cachedBytes / 16;
  let next = 0;
  while (cached() < 4096) heap.free(blocks[next++]!);
  const victim = blocks[next++]!;
  const mapped = os.mappedBytes;
  Atomics.store(words, W_LOCK, holder.id + 1); // as if the holder died in a call
  assert.throws(() => heap.free(victim), /has held the heap's lock/);
  assert.throws(() => heap.malloc(50_000), /has held the heap's lock/);
  assert.equal(os.mappedBytes, mapped, "the large block's mapping was given back");
  Atomics.store(words, W_LOCK, 0);
  assert.equal(heap.usableSize(victim), 16, "the block whose free failed is live");
  heap.free(victim);
  for (const address of blocks.slice(next)) heap.free(address);
  holder.detach();
  heap.validate();
  assert.equal(heap.stats().liveAllocations, 0);
});
