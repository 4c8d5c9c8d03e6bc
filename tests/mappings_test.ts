// Large blocks (src/_mappings.ts) with the page cache on, through a FaultyOs that counts every
// system call: what a warm cache saves is a count, so these tests pin it. PseudoMalloc's large
// blocks and SegregatedAllocator's are these.

import assert from "node:assert/strict";
import { OsError, OutOfMemoryError, PseudoMalloc } from "../mod.ts";
import { DECAY_RELEASES, decayedPeak, IDLE_MS, Mappings } from "../src/_mappings.ts";
import { QUICK_BYTES, QUICK_PAGES } from "../src/_quick_stacks.ts";
import type { IdleTimer } from "../ffi/idle_timer.ts";
import { FaultyOs } from "./_faulty_os.ts";
import { mulberry32 } from "../src/_random.ts";

const PAGE = 4096;
const KiB = 1024;
const MiB = 1 << 20;

/** All system calls made so far. */
function calls(os: FaultyOs): number {
  return Object.values(os.calls).reduce((sum, n) => sum + n, 0);
}

function cached(os = new FaultyOs(), options: { cacheFloor?: number; idleTimer?: IdleTimer } = {}) {
  return { os, blocks: new Mappings(os, { cache: true, ...options }) };
}

Deno.test("Mappings: a warm round of the same sizes, in another order, makes no system call", () => {
  const seed = 0x5173;
  const next = mulberry32(seed);
  const { os, blocks } = cached();
  const sizes = Array.from({ length: 200 }, () => Math.floor(KiB * 64 ** next()));
  for (const size of sizes) blocks.unmap(blocks.map(size)); // warm: one of each
  const held = sizes.map((size) => blocks.map(size));
  for (const address of held) blocks.unmap(address);
  const before = calls(os);
  const shuffled = sizes.map((size) => [next(), size]).sort((a, b) => a[0]! - b[0]!);
  const again = shuffled.map(([, size]) => blocks.map(size!));
  for (const address of again.reverse()) blocks.unmap(address);
  assert.equal(calls(os) - before, 0, `seed ${seed}`);
  blocks.validate();
  blocks.close();
  assert.equal(os.mappedBytes, 0);
});

Deno.test("Mappings: a block takes the front of a free span, grows into the rest and shrinks back, all without a call", () => {
  const { os, blocks } = cached();
  blocks.unmap(blocks.map(64 * KiB)); // 16 free pages
  const before = calls(os);
  const a = blocks.map(4 * KiB);
  assert.equal(blocks.cachedBytes, 15 * PAGE, "the rest stays free");
  new Uint8Array(blocks.view(a, 4 * KiB).fill(9));
  assert.equal(blocks.resize(a, 32 * KiB), a, "grown in place");
  assert.equal(blocks.resize(a, 64 * KiB), a, "all of it");
  assert.equal(blocks.cachedBytes, 0);
  assert.ok(blocks.view(a, 4 * KiB).every((byte) => byte === 9));
  assert.equal(blocks.resize(a, 8 * KiB), a, "shrunk in place");
  assert.equal(blocks.cachedBytes, 14 * PAGE, "the tail is free again");
  assert.equal(blocks.lengthOf(a), 2 * PAGE);
  blocks.validate();
  assert.equal(calls(os) - before, 0);
  blocks.unmap(a);
  assert.equal(blocks.cachedBytes, 16 * PAGE, "merged back into one span");
  blocks.validate();
  blocks.close();
  assert.equal(os.mappedBytes, 0);
});

Deno.test("Mappings: growth with nothing free above copies into cached pages, or asks the OS", () => {
  const { os, blocks } = cached();
  // Up to COPY_LIMIT a block that cannot grow in place is copied: into cached pages when some fit.
  blocks.unmap(blocks.map(64 * KiB)); // 64 KiB cached
  const small = blocks.map(8 * KiB); // the front of them; 56 KiB free above it
  blocks.view(small, 8 * KiB).fill(1);
  const apart = blocks.map(56 * KiB); // takes the rest: nothing free above `small` any more
  blocks.unmap(blocks.map(40 * KiB)); // 40 KiB cached elsewhere
  const before = calls(os);
  const copied = blocks.resize(small, 40 * KiB);
  assert.notEqual(copied, small);
  assert.equal(calls(os), before, "copied into the cached 40 KiB: no call");
  assert.ok(blocks.view(copied, 8 * KiB).every((byte) => byte === 1));
  blocks.unmap(apart);
  // Beyond COPY_LIMIT the OS moves it (mremap), and when it refuses, the block is copied.
  const a = blocks.map(300 * KiB);
  blocks.view(a, 8 * KiB).fill(3);
  const grown = blocks.resize(a, 400 * KiB);
  assert.equal(os.calls.remap, 1);
  assert.ok(blocks.view(grown, 8 * KiB).every((byte) => byte === 3));
  os.fail("remap", 0);
  const moved = blocks.resize(grown, 4 * MiB); // refused: mapped anew and copied
  assert.notEqual(moved, grown);
  assert.ok(blocks.view(moved, 8 * KiB).every((byte) => byte === 3));
  blocks.validate();
  blocks.close();
  assert.equal(os.mappedBytes, 0);
  // Where there is no mremap, and no memory either: the block stays as it was.
  const bare = cached(new FaultyOs({ remap: false }));
  const b = bare.blocks.map(300 * KiB);
  bare.blocks.view(b, 8 * KiB).fill(4);
  bare.os.fail("map", 0);
  assert.throws(() => bare.blocks.resize(b, 4 * MiB), OutOfMemoryError);
  assert.ok(bare.blocks.view(b, 8 * KiB).every((byte) => byte === 4), "untouched");
  assert.equal(bare.blocks.lengthOf(b), 300 * KiB);
  bare.blocks.validate();
  bare.blocks.close();
  assert.equal(bare.os.mappedBytes, 0);
});

Deno.test("Mappings: a shrink's tail is under the budget: beyond MAX_CACHED it is unmapped", () => {
  const { os, blocks } = cached();
  const a = blocks.map(40 * MiB);
  assert.equal(blocks.resize(a, 100 * KiB), a, "in place");
  assert.equal(blocks.cachedBytes, 0, "the 40 MiB tail went back to the OS");
  assert.equal(os.calls.unmap, 1);
  blocks.validate();
  blocks.close();
  assert.equal(os.mappedBytes, 0);
});

Deno.test("Mappings: a move whose old block and copy both cannot be unmapped keeps every record true", () => {
  const os = new FaultyOs({ remap: false });
  const blocks = new Mappings(os, {}); // no cache: the old block must be unmapped
  const a = blocks.map(8 * KiB);
  blocks.view(a, 8 * KiB).fill(5);
  os.fail("unmap", 0, { sticky: true });
  assert.throws(() => blocks.resize(a, 64 * KiB), OsError);
  os.heal();
  assert.equal(blocks.count, 1, "only the old block is recorded");
  assert.equal(blocks.mappedBytes, 8 * KiB);
  assert.ok(blocks.view(a, 8 * KiB).every((byte) => byte === 5));
  blocks.validate();
  blocks.close();
});

Deno.test("Mappings: calloc's pages are zero, cleared when they were used", () => {
  const { blocks } = cached();
  const a = blocks.map(16 * KiB);
  blocks.view(a, 16 * KiB).fill(0xee);
  blocks.unmap(a);
  const b = blocks.mapZeroed(16 * KiB);
  assert.equal(b, a, "the cached pages");
  assert.ok(blocks.view(b, 16 * KiB).every((byte) => byte === 0));
  blocks.close();
});

Deno.test("Mappings: the cache keeps what was freed after a peak, and trim gives it all back", () => {
  const { os, blocks } = cached(new FaultyOs(), { cacheFloor: 64 * KiB });
  const freed = Array.from({ length: 6 }, () => blocks.map(32 * KiB));
  for (const address of freed) blocks.unmap(address);
  assert.equal(os.calls.unmap, 0, "under twice the peak (192 KiB): all kept");
  assert.equal(blocks.cachedBytes, 192 * KiB);
  blocks.validate();
  assert.equal(blocks.trim(), 192 * KiB);
  assert.equal(blocks.cachedBytes, 0);
  blocks.close();
  assert.equal(os.mappedBytes, 0);
});

Deno.test("decayedPeak: the cap's peak falls by 1/4096 per release, never below what is live", () => {
  assert.equal(decayedPeak(8 * MiB, MiB), 8 * MiB - 2 * KiB);
  assert.equal(decayedPeak(8 * MiB, 9 * MiB), 9 * MiB, "a new peak");
  let peak = 8 * MiB;
  for (let i = 0; i < 2839; i++) peak = decayedPeak(peak, 0);
  assert.ok(Math.abs(peak - 4 * MiB) < 4 * KiB, `half after 2,839 releases: ${peak}`);
  for (let i = 0; i < 100_000; i++) peak = decayedPeak(peak, MiB);
  assert.equal(peak, MiB);
});

Deno.test("Mappings: a cached span not reused for DECAY_RELEASES releases goes back", () => {
  const { os, blocks } = cached();
  const old = blocks.map(80 * KiB); // above QUICK_PAGES: in the page cache, not a quick stack
  // The churning block: too large for the old span, and not its neighbour (the kernel decides
  // where mappings go: a neighbour would merge with it), so the old span is never reused.
  const touches = (a: number) => a + 160 * KiB === old || old + 80 * KiB === a;
  const apart: number[] = [];
  let churn = blocks.map(160 * KiB);
  while (touches(churn)) {
    apart.push(churn);
    churn = blocks.map(160 * KiB);
  }
  blocks.unmap(old);
  blocks.unmap(churn);
  const before = os.calls.unmap;
  for (let i = 0; i < DECAY_RELEASES; i++) blocks.unmap(blocks.map(160 * KiB));
  assert.equal(os.calls.unmap, before + 1, "the idle span, once");
  assert.equal(blocks.cachedBytes, 160 * KiB, "the churning block's pages stay");
  for (const address of apart) blocks.unmap(address);
  blocks.validate();
  blocks.close();
  assert.equal(os.mappedBytes, 0);
});

Deno.test("Mappings: the idle timer gives the cache back only when no call came", () => {
  const started: (() => void)[] = [];
  let stopped = 0;
  const idleTimer: IdleTimer = {
    start(callback, milliseconds) {
      assert.equal(milliseconds, IDLE_MS);
      started.push(callback);
      return started.length;
    },
    stop() {
      stopped++;
    },
  };
  const { os, blocks } = cached(new FaultyOs(), { idleTimer });
  const a = blocks.map(64 * KiB);
  assert.equal(started.length, 0, "nothing cached: no timer");
  blocks.unmap(a);
  assert.equal(started.length, 1);
  blocks.unmap(blocks.map(8 * KiB)); // a call: not idle; the timer already runs
  assert.equal(started.length, 1);
  started[0]!();
  assert.equal(blocks.cachedBytes, 64 * KiB, "a call came: kept");
  assert.equal(started.length, 2, "and watched again");
  started[1]!();
  assert.equal(blocks.cachedBytes, 0, "idle: given back");
  assert.equal(os.mappedBytes, 0);
  assert.equal(started.length, 2, "nothing left to watch");
  blocks.unmap(blocks.map(8 * KiB));
  blocks.close();
  assert.equal(stopped, 1, "close stops the timer");
});

Deno.test("PseudoMalloc: a warm realloc chain from 16 bytes to 1 MiB makes no system call", () => {
  using heap = new PseudoMalloc();
  const chain = () => {
    let address = heap.malloc(16);
    heap.bytes(address, 16).fill(5);
    for (let size = 32; size <= MiB; size *= 2) address = heap.realloc(address, size);
    assert.ok(heap.bytes(address, 16).every((byte) => byte === 5));
    heap.free(address);
  };
  chain();
  const before = heap.stats().systemCalls;
  chain();
  chain();
  assert.deepEqual(heap.stats().systemCalls, before);
  heap.validate();
});

Deno.test("PseudoMalloc.realloc grows a small block in place into free buddies above it", () => {
  using heap = new PseudoMalloc();
  const address = heap.malloc(16); // a new heap's first block: every buddy above it is free
  heap.bytes(address, 16).fill(6);
  for (const size of [32, 100, 500, 1000]) {
    assert.equal(heap.realloc(address, size), address, `grown to ${size} in place`);
    assert.ok(heap.bytes(address, 16).every((byte) => byte === 6));
    heap.validate();
  }
  assert.equal(heap.realloc(address, 16), address, "shrunk in place");
  heap.trim(); // the freed halves leave the block cache for the buddy
  const above = heap.malloc(16); // takes the 16 bytes right above the block
  assert.equal(above, address + 16);
  const moved = heap.realloc(address, 32); // its buddy is taken: it must move
  assert.notEqual(moved, address);
  assert.ok(heap.bytes(moved, 16).every((byte) => byte === 6));
  heap.validate();
});

Deno.test("PseudoMalloc gives an idle large-block cache back after IDLE_MS, and its stats follow", async () => {
  using heap = new PseudoMalloc();
  heap.free(heap.malloc(256 * KiB));
  assert.equal(heap.stats().largeCachedBytes, 256 * KiB);
  const mapped = heap.stats().mappedBytes;
  await new Promise((resolve) => setTimeout(resolve, IDLE_MS + 200));
  assert.equal(heap.stats().largeCachedBytes, 0);
  assert.equal(heap.stats().mappedBytes, mapped - 256 * KiB);
  heap.validate();
});

Deno.test("Mappings: quick stacks hold blocks of up to QUICK_PAGES pages, QUICK_BYTES each", () => {
  const { os, blocks } = cached();
  const held = Array.from({ length: 100 }, () => blocks.map(PAGE));
  for (const address of held) blocks.unmap(address);
  assert.equal(blocks.cachedBytes, 100 * PAGE, "every freed page is kept");
  blocks.validate();
  // The stack of 1-page blocks holds QUICK_BYTES of them: the last parked comes back first.
  const before = calls(os);
  assert.equal(blocks.map(100), held[QUICK_BYTES / PAGE - 1]);
  assert.equal(blocks.map(4000), held[QUICK_BYTES / PAGE - 2]);
  assert.equal(calls(os), before);
  // A block above QUICK_PAGES pages goes to the page cache (the 36 pages that did not fit their
  // stack are there too, merged where they touch); a 2-page request, which no quick stack
  // serves, is split off the page cache's spans with no call.
  blocks.unmap(blocks.map((QUICK_PAGES + 1) * PAGE));
  const calls17 = calls(os);
  const two = blocks.map(2 * PAGE);
  assert.equal(blocks.lengthOf(two), 2 * PAGE);
  assert.equal(calls(os), calls17);
  blocks.validate();
  blocks.close();
  assert.equal(os.mappedBytes, 0);
});
