// SharedPseudoMalloc across real workers (tests/_shared_worker.ts): 4 workers x 10^6 seeded random
// operations on one heap with a quarter of the frees made by another worker; a worker terminated
// between calls; a double free raced by two workers; a lock left held by a dead attachment.
import assert from "node:assert/strict";
import { HeapClosedError } from "../mod.ts";
import { libcOs } from "../ffi/libc.ts";
import { SharedPseudoMalloc } from "../src/shared/shared_pseudo_malloc.ts";
import { W_HEADS, W_LOCK } from "../src/shared/_layout.ts";

const WORKER = new URL("./_shared_worker.ts", import.meta.url);

function spawn(): Worker {
  return new Worker(WORKER, { type: "module" });
}

function reply<T>(worker: Worker): Promise<T> {
  return new Promise((resolve, reject) => {
    worker.onmessage = (event) => {
      if (event.data?.error) reject(new Error(event.data.error));
      else resolve(event.data as T);
    };
    worker.onerror = (event) => {
      event.preventDefault();
      reject(new Error(event.message));
    };
  });
}

/** A heap whose every block is free and merged: nothing live, cached or lost. */
function assertEmpty(heap: SharedPseudoMalloc): void {
  heap.validate();
  const stats = heap.stats();
  assert.equal(stats.liveAllocations, 0);
  assert.equal(stats.liveBytes, 0);
  assert.equal(stats.allocatedBytes, 0);
  assert.equal(stats.attachments.length, 1);
}

Deno.test("SharedPseudoMalloc: 4 workers x 10^6 random operations, a quarter of the frees remote", async () => {
  const heap = new SharedPseudoMalloc();
  const workers = [0, 1, 2, 3].map(spawn);
  const channels = workers.map(() => new MessageChannel());
  const ops = 1_000_000;
  const results = workers.map((worker) =>
    reply<{ remote: number; received: number; allocations: number; frees: number }>(worker)
  );
  workers.forEach((worker, i) => {
    // Worker i sends on channel i (port1) and receives on channel i - 1 (port2).
    const port = channels[(i + 3) % 4]!.port2;
    const next = channels[i]!.port1;
    worker.postMessage({
      task: "stress",
      handle: heap.handle,
      me: i,
      seed: 1000 + i,
      ops,
      port,
      next,
    }, [
      port,
      next,
    ]);
  });
  const done = await Promise.all(results);
  workers.forEach((worker) => worker.terminate());
  for (let i = 0; i < 4; i++) {
    assert.equal(
      done[i]!.received,
      done[(i + 3) % 4]!.remote,
      `worker ${i} freed what ${i - 1} sent`,
    );
    assert.ok(done[i]!.remote > 0);
  }
  const allocations = done.reduce((sum, d) => sum + d.allocations, 0);
  const frees = done.reduce((sum, d) => sum + d.frees, 0);
  assert.equal(allocations, frees);
  assert.ok(allocations > 4 * ops * 0.4, `${allocations} allocations`);
  assertEmpty(heap);
  assert.equal(heap.stats().totalAllocations, allocations);
  heap.close();
});

Deno.test("SharedPseudoMalloc: a worker terminated between calls; its cache is reclaimed", async () => {
  const heap = new SharedPseudoMalloc();
  const holder = spawn();
  const held = reply<{ id: number; live: number[]; sizes: number[] }>(holder);
  holder.postMessage({ task: "hold", handle: heap.handle, count: 400 });
  const { id, live, sizes } = await held;
  holder.terminate();
  const before = heap.stats();
  assert.equal(before.liveAllocations, 200);
  assert.ok(before.smallCachedBytes > 0);
  // Another attachment goes on meanwhile.
  const other = SharedPseudoMalloc.attach(heap.handle);
  const kept = other.malloc(100);
  const reclaimed = heap.reclaim(id);
  assert.ok(reclaimed > 0);
  assert.throws(() => heap.reclaim(id), RangeError); // not attached any more
  live.forEach((address, i) => {
    assert.equal(heap.usableSize(address), sizes[i]);
    heap.free(address);
  });
  other.free(kept);
  other.detach();
  assertEmpty(heap);
  heap.close();
});

Deno.test("SharedPseudoMalloc: a double free raced by two workers is a DoubleFreeError in one", async () => {
  const heap = new SharedPseudoMalloc();
  const addresses = Array.from({ length: 20_000 }, (_, i) => heap.malloc(8 + (i % 500)));
  const flag = new SharedArrayBuffer(8);
  const workers = [spawn(), spawn()];
  const results = workers.map((worker) =>
    reply<{ freed: number; doubles: number; others: string[] }>(worker)
  );
  for (const worker of workers) {
    worker.postMessage({ task: "race", handle: heap.handle, addresses, flag });
  }
  const words = new Int32Array(flag);
  while (Atomics.load(words, 1) < 2) await new Promise((resolve) => setTimeout(resolve, 1));
  Atomics.store(words, 0, 1);
  const [a, b] = await Promise.all(results);
  workers.forEach((worker) => worker.terminate());
  assert.deepEqual([...a!.others, ...b!.others], []);
  assert.equal(a!.freed + b!.freed, addresses.length);
  assert.equal(a!.doubles + b!.doubles, addresses.length);
  assertEmpty(heap);
  heap.close();
});

Deno.test("SharedPseudoMalloc: a lock held by a dead attachment is taken over by reclaim", () => {
  const heap = new SharedPseudoMalloc();
  const words = new Int32Array(libcOs.view(heap.handle.header, 4096));
  const dead = SharedPseudoMalloc.attach(heap.handle);
  dead.free(dead.malloc(48));
  // As if its worker died inside a call that had taken the lock, the central state intact.
  const cached = heap.stats().attachments.find((a) => a.id === dead.id)!.cachedBytes;
  assert.ok(cached >= 64);
  Atomics.store(words, W_LOCK, dead.id + 1);
  assert.equal(heap.reclaim(dead.id), cached);
  assertEmpty(heap);

  // The same, with the central state left broken: the heap is marked broken.
  const broken = SharedPseudoMalloc.attach(heap.handle);
  broken.malloc(48);
  Atomics.store(words, W_LOCK, broken.id + 1);
  const head = words[W_HEADS]!;
  words[W_HEADS] = 12345 * 16;
  assert.throws(() => heap.reclaim(broken.id), /broken/);
  assert.throws(() => heap.malloc(2000), HeapClosedError);
  words[W_HEADS] = head;
});
