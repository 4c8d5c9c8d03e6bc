// PseudoMalloc over real native memory (needs --allow-ffi).
import assert from "node:assert/strict";
import {
  CACHE_ORDER_BYTES,
  calloc,
  DEFAULT_ARENA_SIZE,
  defaultHeap,
  DoubleFreeError,
  free,
  HeapClosedError,
  InvalidAddressError,
  InvalidFreeError,
  malloc,
  MAX_SIZE,
  OutOfMemoryError,
  PseudoMalloc,
  realloc,
  usableSize,
} from "../mod.ts";
import { protectMemory } from "../ffi/libc.ts";
import { contractSuite } from "./_contract.ts";

const ARENA = DEFAULT_ARENA_SIZE;
const libc = Deno.dlopen(Deno.build.os === "darwin" ? "/usr/lib/libSystem.B.dylib" : "libc.so.6", {
  strlen: { parameters: ["pointer"], result: "usize" },
});

/** Fills a block with a byte pattern derived from `seed`. */
function stamp(heap: PseudoMalloc, address: number, length: number, seed: number): void {
  const view = heap.bytes(address, length);
  for (let i = 0; i < length; i++) view[i] = (seed + i * 7) & 0xff;
}

/** Asserts that a block still holds the pattern of `stamp`. */
function assertStamp(heap: PseudoMalloc, address: number, length: number, seed: number): void {
  const view = heap.bytes(address, length);
  for (let i = 0; i < length; i++) {
    if (view[i] !== ((seed + i * 7) & 0xff)) {
      assert.fail(`byte ${i} of block ${address.toString(16)} changed`);
    }
  }
}

Deno.test("PseudoMalloc defaults: quarter-page threshold, no arena until first use", () => {
  using heap = new PseudoMalloc();
  assert.equal(heap.mmapThreshold, heap.pageSize / 4);
  assert.equal(heap.stats().arenas, 0);
  assert.equal(heap.stats().mappedBytes, 0);
});

Deno.test("PseudoMalloc.malloc serves small requests from a 1 MiB-aligned arena", () => {
  using heap = new PseudoMalloc();
  const a = heap.malloc(100);
  const b = heap.malloc(1);
  assert.equal(a % ARENA, 0, "the first block is the arena's start");
  assert.equal(b % 16, 0);
  assert.equal(heap.usableSize(a), 128);
  assert.equal(heap.usableSize(b), 16);
  const stats = heap.stats();
  assert.equal(stats.arenas, 1);
  assert.equal(stats.mappedBytes, ARENA);
  assert.equal(stats.smallAllocations, 2);
  assert.equal(stats.liveBytes, 101);
  assert.equal(stats.allocatedBytes, 144);
  heap.validate();
});

Deno.test("PseudoMalloc.malloc gives requests at the threshold their own page-aligned mapping", () => {
  using heap = new PseudoMalloc();
  const below = heap.malloc(heap.mmapThreshold - 1);
  const at = heap.malloc(heap.mmapThreshold);
  const big = heap.malloc(3 * heap.pageSize + 1);
  assert.equal(heap.usableSize(below), heap.mmapThreshold);
  assert.equal(at % heap.pageSize, 0);
  assert.equal(heap.usableSize(at), heap.pageSize);
  assert.equal(heap.usableSize(big), 4 * heap.pageSize);
  const stats = heap.stats();
  assert.equal(stats.largeAllocations, 2);
  assert.equal(stats.smallAllocations, 1);
  assert.equal(stats.mappedBytes, ARENA + 5 * heap.pageSize);
  heap.free(at);
  heap.free(big);
  // Released mappings stay mapped in the reuse cache until trim.
  assert.equal(heap.stats().mappedBytes, ARENA + 5 * heap.pageSize);
  assert.equal(heap.stats().allocatedBytes, heap.mmapThreshold);
  heap.validate();
  assert.equal(heap.trim(), 5 * heap.pageSize);
  assert.equal(heap.stats().mappedBytes, ARENA);
  assert.equal(heap.stats().peakMappedBytes, ARENA + 5 * heap.pageSize);
  heap.validate();
});

Deno.test("PseudoMalloc reuses released large mappings of the same page count", () => {
  using heap = new PseudoMalloc();
  const a = heap.malloc(64 * 1024);
  heap.bytes(a).fill(0x77);
  heap.free(a);
  assert.throws(() => heap.free(a), DoubleFreeError, "a cached mapping is still freed");
  const b = heap.malloc(64 * 1024 - 100); // the same 16 pages
  assert.equal(b, a);
  assert.equal(heap.stats().mappedBytes, 64 * 1024);
  // calloc takes the cached pages too, and clears them: they were used.
  heap.bytes(b).fill(0x77);
  heap.free(b);
  const calls = heap.stats().systemCalls;
  const c = heap.calloc(1, 64 * 1024);
  assert.equal(c, a);
  assert.ok(heap.bytes(c).every((byte) => byte === 0));
  assert.equal(heap.stats().mappedBytes, 64 * 1024);
  assert.deepEqual(heap.stats().systemCalls, calls, "a warm calloc makes no system call");
  heap.validate();
});

Deno.test("PseudoMalloc's large-block cache keeps what a peak freed until trim", () => {
  using heap = new PseudoMalloc();
  const blocks = Array.from({ length: 12 }, () => heap.malloc(1 << 20)); // 12 MiB live
  const calls = heap.stats().systemCalls;
  for (const address of blocks) heap.free(address);
  // Nothing is live, but the peak was 12 MiB: the cap is 24 MiB, and all 12 stay mapped.
  assert.deepEqual(heap.stats().systemCalls, calls, "no munmap");
  assert.equal(heap.stats().largeCachedBytes, 12 << 20);
  assert.equal(heap.trim(), 12 << 20);
  assert.equal(heap.stats().mappedBytes, 0);
  heap.validate();
});

Deno.test("PseudoMalloc.malloc(0) returns a unique minimal block that can be freed", () => {
  using heap = new PseudoMalloc();
  const a = heap.malloc(0);
  const b = heap.malloc(0);
  assert.notEqual(a, 0);
  assert.notEqual(a, b);
  assert.equal(heap.usableSize(a), 16);
  heap.free(a);
  heap.free(b);
  assert.equal(heap.stats().liveAllocations, 0);
  heap.validate();
});

Deno.test("PseudoMalloc fits exactly 2048 blocks of 512 bytes in one arena, then maps another", () => {
  using heap = new PseudoMalloc();
  const first = heap.malloc(512);
  for (let i = 1; i < 2048; i++) assert.equal(heap.malloc(512), first + i * 512);
  assert.equal(heap.stats().arenas, 1);
  const next = heap.malloc(512);
  assert.equal(heap.stats().arenas, 2);
  assert.equal(next % ARENA, 0);
  heap.validate();
});

Deno.test({
  name: "PseudoMalloc maps arenas below 2^31 by default: small addresses are small integers",
  ignore: Deno.build.os !== "linux",
  fn() {
    using heap = new PseudoMalloc();
    const blocks = Array.from({ length: 3000 }, () => heap.malloc(512)); // two arenas
    assert.equal(heap.stats().arenas, 2);
    for (const address of blocks) assert.ok(address > 0 && address + 512 <= 2 ** 31);
    heap.validate();
  },
});

Deno.test({
  name: "PseudoMalloc with lowAddresses false maps arenas where the OS chooses",
  ignore: Deno.build.os !== "linux",
  fn() {
    using heap = new PseudoMalloc({ lowAddresses: false });
    const address = heap.malloc(100);
    assert.ok(address >= 2 ** 31, "Linux places mappings high when given no hint");
    assert.equal(address % ARENA, 0);
    heap.bytes(address, 100).fill(7);
    heap.free(address);
    assert.equal(heap.malloc(100), address);
    heap.validate();
  },
});

Deno.test({
  name: "PseudoMalloc in a worker finds low arenas of its own past the main thread's",
  ignore: Deno.build.os !== "linux",
  async fn() {
    const fixtures = new URL("./fixtures/", import.meta.url);
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-ffi",
        `--allow-read=${new URL("../", import.meta.url).pathname}`, // a worker loads its modules
        new URL("low_worker_main.ts", fixtures).pathname,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(code, 0, new TextDecoder().decode(stderr));
    const result = JSON.parse(new TextDecoder().decode(stdout)) as {
      main: number[];
      worker: number[];
      workerArenas: number;
    };
    assert.equal(result.workerArenas, 3);
    const arenaOf = (address: number) => address - (address % ARENA);
    const mainArenas = new Set(result.main.map(arenaOf));
    for (const address of [...result.main, ...result.worker]) {
      assert.ok(address > 0 && address + ARENA <= 2 ** 31, `${address.toString(16)} is low`);
    }
    for (const address of result.worker) assert.ok(!mainArenas.has(arenaOf(address)));
  },
});

Deno.test({
  name: "PseudoMalloc keeps every invariant with arenas both below and above 2^31",
  ignore: Deno.build.os !== "linux",
  async fn() {
    // In a child process: the low window must be fresh for its layout to be known.
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-ffi", new URL("./fixtures/mixed_arenas.ts", import.meta.url).pathname],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(code, 0, new TextDecoder().decode(stderr));
    const { arenas } = JSON.parse(new TextDecoder().decode(stdout)) as { arenas: number[] };
    assert.equal(arenas.length, 2);
    assert.ok(arenas[0]! < 2 ** 31, "the first arena is low");
    assert.ok(arenas[1]! >= 2 ** 31, "the second arena, once the window is taken, is high");
  },
});

Deno.test("PseudoMalloc.free rejects a block of another heap in the same low window", () => {
  using first = new PseudoMalloc();
  using second = new PseudoMalloc();
  const mine = first.malloc(64);
  const theirs = second.malloc(64);
  assert.ok(theirs < 2 ** 31 && mine < 2 ** 31);
  assert.throws(() => first.free(theirs), InvalidFreeError);
  assert.throws(() => first.usableSize(theirs), InvalidAddressError);
  assert.equal(second.usableSize(theirs), 64, "still live in its own heap");
  first.free(mine);
  second.free(theirs);
  first.validate();
  second.validate();
});

Deno.test("PseudoMalloc gives a trimmed low arena's range to the next arena", () => {
  const first = new PseudoMalloc();
  const base = first.malloc(16);
  first.free(base);
  first.trim();
  using second = new PseudoMalloc();
  assert.equal(second.malloc(16), base);
  first.close();
});

for (const arenaSize of [1 << 14, 1 << 16]) {
  Deno.test(`PseudoMalloc.trim of a middle arena keeps its neighbours' tags (${arenaSize} B arenas)`, () => {
    using heap = new PseudoMalloc({ arenaSize });
    const perArena = arenaSize / 512;
    const blocks = Array.from({ length: 3 * perArena }, () => heap.malloc(512));
    assert.equal(heap.stats().arenas, 3);
    const middle = blocks.splice(perArena, perArena);
    for (const address of middle) heap.free(address);
    assert.equal(heap.trim(), arenaSize);
    assert.equal(heap.stats().arenas, 2);
    heap.validate();
    for (const address of blocks) assert.equal(heap.usableSize(address), 512);
    for (const address of blocks) heap.free(address);
    assert.throws(() => heap.free(blocks[0]!), DoubleFreeError);
    heap.validate();
  });
}

Deno.test("PseudoMalloc.free caches blocks of any arena, not only the last one looked up", () => {
  using heap = new PseudoMalloc();
  const first = Array.from({ length: 2048 }, () => heap.malloc(512));
  const second = heap.malloc(512); // the second arena
  heap.free(first[5]!);
  heap.free(second);
  heap.free(first[6]!);
  heap.validate();
  assert.equal(heap.stats().smallCachedBytes, 3 * 512);
  assert.equal(heap.malloc(512), first[6]);
  assert.equal(heap.malloc(512), second);
  assert.equal(heap.malloc(512), first[5]);
  heap.validate();
});

Deno.test("PseudoMalloc.free rejects the address just below the last arena looked up", () => {
  using heap = new PseudoMalloc({ maxArenas: 1 });
  const base = heap.malloc(16);
  heap.free(heap.malloc(16)); // the arena is the last one looked up
  assert.throws(() => heap.free(base - 16), InvalidFreeError);
  assert.throws(() => heap.free(base + ARENA), InvalidFreeError);
  assert.equal(heap.stats().liveAllocations, 1);
  heap.validate();
});

Deno.test("PseudoMalloc with maxArenas 1 throws OutOfMemoryError when the arena is full", () => {
  using heap = new PseudoMalloc({ maxArenas: 1 });
  const blocks: number[] = [];
  for (let i = 0; i < 2048; i++) {
    blocks.push(heap.malloc(512));
    stamp(heap, blocks[i]!, 512, i);
  }
  const before = heap.stats();
  assert.throws(() => heap.malloc(16), (e) => {
    assert.ok(e instanceof OutOfMemoryError);
    assert.match(e.message, /Cannot allocate 16 bytes: all 1 arenas are full/);
    return true;
  });
  assert.deepEqual(heap.stats(), before);
  heap.validate();
  blocks.forEach((address, i) => assertStamp(heap, address, 512, i));
  // Large requests still work: they do not use arenas.
  heap.free(heap.malloc(1 << 20));
  // Freeing one block makes room again.
  heap.free(blocks[5]!);
  assert.equal(heap.malloc(300), blocks[5]);
});

Deno.test("PseudoMalloc.free parks blocks in a cache that malloc of the same order reuses", () => {
  using heap = new PseudoMalloc();
  const keep = heap.malloc(16);
  const a = heap.malloc(64);
  heap.free(a);
  assert.equal(heap.stats().allocatedBytes, 16, "a cached block is not allocated");
  assert.match(heap.heapMap(), /: 1048560 of 1048576 bytes free/);
  assert.throws(() => heap.usableSize(a), /already freed/);
  assert.throws(() => heap.free(a), DoubleFreeError);
  assert.equal(heap.malloc(33), a, "33 bytes take a 64-byte block too");
  heap.free(a);
  heap.free(keep);
  heap.validate();
});

Deno.test("PseudoMalloc cache holds 64 KiB per order and returns the last freed first", () => {
  using heap = new PseudoMalloc();
  const depth = CACHE_ORDER_BYTES / 32; // 2048 blocks of 32 bytes
  const blocks = Array.from({ length: depth + 36 }, () => heap.malloc(32));
  for (const address of blocks) heap.free(address);
  assert.equal(heap.stats().smallCachedBytes, CACHE_ORDER_BYTES);
  heap.validate();
  // The cache took the first 2048; the other 36 went back to the buddy (and merged).
  const again = Array.from({ length: depth }, () => heap.malloc(32));
  assert.deepEqual(again, blocks.slice(0, depth).reverse());
  assert.equal(heap.stats().smallCachedBytes, 0);
  heap.validate();
});

Deno.test("PseudoMalloc flushes the cache before mapping an arena or giving up", () => {
  using heap = new PseudoMalloc({ maxArenas: 1 });
  const blocks = Array.from({ length: ARENA / 512 }, () => heap.malloc(512));
  heap.free(blocks[10]!); // cached at order 5
  heap.free(blocks[11]!);
  // 16 bytes need order 0: nothing is free in the buddy, so the cache is merged back first.
  const small = heap.malloc(16);
  assert.equal(small, blocks[10]);
  assert.equal(heap.stats().arenas, 1);
  heap.validate();
});

Deno.test("PseudoMalloc.trim merges the cache and unmaps arenas with no live block", () => {
  using heap = new PseudoMalloc();
  const first = Array.from({ length: ARENA / 1000 + 1 }, () => heap.malloc(1000)); // 1 arena + 1
  const second = heap.malloc(100);
  stamp(heap, second, 100, 5);
  assert.equal(heap.stats().arenas, 2);
  for (const address of first) heap.free(address);
  assert.equal(heap.trim(), ARENA, "the first arena is empty once its cached blocks merge");
  assert.equal(heap.stats().arenas, 1);
  assert.equal(heap.stats().mappedBytes, ARENA);
  assertStamp(heap, second, 100, 5);
  heap.validate();
  const more = heap.malloc(100);
  assert.equal(heap.stats().arenas, 1);
  heap.free(more);
  heap.free(second);
  assert.equal(heap.trim(), ARENA);
  assert.equal(heap.stats().mappedBytes, 0);
  assert.equal(heap.trim(), 0);
  heap.validate();
});

Deno.test("PseudoMalloc.malloc rejects sizes that are not non-negative integers", () => {
  using heap = new PseudoMalloc();
  const keep = heap.malloc(40);
  stamp(heap, keep, 40, 3);
  const before = heap.stats();
  for (const bad of ["8", null, undefined, 8n, {}]) {
    assert.throws(() => heap.malloc(bad as unknown as number), TypeError);
  }
  assert.throws(() => heap.malloc(-1), {
    name: "RangeError",
    message: "Cannot allocate -1 bytes: size must be a non-negative integer",
  });
  for (const bad of [NaN, Infinity, -Infinity, 1.5, -0.5]) {
    assert.throws(() => heap.malloc(bad), (e) => {
      assert.ok(e instanceof RangeError);
      assert.ok(e.message.includes(String(bad)), e.message);
      return true;
    });
  }
  assert.throws(() => heap.malloc(MAX_SIZE + 1), /exceeds the largest possible mapping/);
  assert.throws(() => heap.malloc(2 ** 60), RangeError);
  assert.deepEqual(heap.stats(), before);
  assertStamp(heap, keep, 40, 3);
  heap.validate();
});

Deno.test("PseudoMalloc.malloc reports the OS error when mmap fails", () => {
  using heap = new PseudoMalloc();
  const keep = heap.malloc(2000);
  stamp(heap, keep, 2000, 9);
  const before = heap.stats();
  // 64 TiB is a valid size but more than any machine here can back.
  assert.throws(() => heap.malloc(2 ** 46), (e) => {
    assert.ok(e instanceof OutOfMemoryError);
    assert.equal(e.errno, 12);
    assert.match(e.message, /ENOMEM/);
    return true;
  });
  // Only the refused mmap is new.
  const calls = before.systemCalls;
  assert.deepEqual(heap.stats(), { ...before, systemCalls: { ...calls, mmap: calls.mmap + 1 } });
  assertStamp(heap, keep, 2000, 9);
  heap.validate();
});

Deno.test("PseudoMalloc.calloc returns zeroed memory, also when reusing a dirty block", () => {
  using heap = new PseudoMalloc();
  const dirty = heap.malloc(200);
  heap.bytes(dirty).fill(0xff);
  heap.free(dirty);
  const zeroed = heap.calloc(25, 8);
  assert.equal(zeroed, dirty);
  assert.ok(heap.bytes(zeroed).every((byte) => byte === 0));
  const large = heap.calloc(1000, 100);
  assert.ok(heap.bytes(large).every((byte) => byte === 0));
  assert.equal(heap.calloc(0, 8) !== 0, true);
  assert.equal(heap.stats().liveBytes, 200 + 100_000);
  heap.validate();
});

Deno.test("PseudoMalloc.calloc rejects overflowing products and bad arguments", () => {
  using heap = new PseudoMalloc();
  assert.throws(() => heap.calloc(2 ** 40, 2 ** 10), {
    name: "RangeError",
    message: /Cannot allocate 1099511627776 × 1024 bytes: the product exceeds/,
  });
  assert.throws(() => heap.calloc(-1, 8), RangeError);
  assert.throws(() => heap.calloc(8, 0.5), RangeError);
  assert.throws(() => heap.calloc("1" as unknown as number, 8), TypeError);
  assert.equal(heap.stats().totalAllocations, 0);
});

Deno.test(
  { name: "PseudoMalloc.calloc of a fresh large block does not touch its pages" },
  () => {
    using heap = new PseudoMalloc();
    const before = Deno.memoryUsage().rss;
    const address = heap.calloc(1 << 20, 1024); // 1 GiB
    const after = Deno.memoryUsage().rss;
    // A memset would make all 1 GiB resident; the fresh mapping is already zero.
    assert.ok(after - before < 64 << 20, `resident grew by ${after - before} bytes`);
    assert.equal(heap.bytes(address, 4096).every((byte) => byte === 0), true);
    heap.free(address);
  },
);

Deno.test("PseudoMalloc.realloc follows C: realloc(0, n) allocates, realloc(a, 0) frees", () => {
  using heap = new PseudoMalloc();
  const a = heap.realloc(0, 50);
  assert.equal(heap.usableSize(a), 64);
  assert.equal(heap.realloc(a, 0), 0);
  assert.throws(() => heap.usableSize(a), InvalidAddressError);
  assert.equal(heap.stats().liveAllocations, 0);
  assert.equal(heap.stats().totalFrees, 1);
  heap.validate();
});

Deno.test("PseudoMalloc.realloc stays in place when the block still fits", () => {
  using heap = new PseudoMalloc();
  const a = heap.malloc(100);
  stamp(heap, a, 100, 1);
  assert.equal(heap.realloc(a, 128), a);
  assert.equal(heap.realloc(a, 20), a); // shrinks to a 32-byte block in place
  assert.equal(heap.usableSize(a), 32);
  assertStamp(heap, a, 20, 1);
  assert.equal(heap.stats().liveBytes, 20);
  assert.equal(heap.stats().allocatedBytes, 32);
  const big = heap.malloc(5000);
  assert.equal(heap.realloc(big, 6000), big, "same number of pages");
  assert.equal(heap.stats().liveBytes, 6020);
  heap.validate();
});

Deno.test("PseudoMalloc.realloc moves between small and large keeping the contents", () => {
  using heap = new PseudoMalloc();
  let address = heap.malloc(300);
  stamp(heap, address, 300, 5);
  address = heap.realloc(address, 700); // small -> larger small
  assertStamp(heap, address, 300, 5);
  stamp(heap, address, 700, 6);
  address = heap.realloc(address, 50_000); // small -> large
  assert.equal(address % heap.pageSize, 0);
  assertStamp(heap, address, 700, 6);
  stamp(heap, address, 50_000, 7);
  address = heap.realloc(address, 3_000_000); // large -> large (mremap on Linux)
  assertStamp(heap, address, 50_000, 7);
  stamp(heap, address, 3_000_000, 8);
  address = heap.realloc(address, 200_000); // large shrinks
  assertStamp(heap, address, 200_000, 8);
  address = heap.realloc(address, 500); // large -> small
  assert.equal(heap.usableSize(address), 512);
  assertStamp(heap, address, 500, 8);
  const stats = heap.stats();
  assert.equal(stats.liveAllocations, 1);
  assert.equal(stats.liveBytes, 500);
  assert.equal(stats.largeAllocations, 0);
  assert.equal(stats.mappedBytes - heap.trim(), ARENA);
  heap.validate();
});

Deno.test("PseudoMalloc.realloc leaves the old block untouched when it fails", () => {
  using heap = new PseudoMalloc({ maxArenas: 1 });
  const large = heap.malloc(10_000);
  stamp(heap, large, 10_000, 2);
  const small = heap.malloc(100);
  stamp(heap, small, 100, 4);
  const before = heap.stats();
  assert.throws(() => heap.realloc(large, 2 ** 46), OutOfMemoryError);
  assert.throws(() => heap.realloc(small, 2 ** 46), OutOfMemoryError);
  assert.throws(() => heap.realloc(small, -5), RangeError);
  // Fill the arena, then ask a large block to move into it.
  while (true) {
    try {
      heap.malloc(16);
    } catch (e) {
      assert.ok(e instanceof OutOfMemoryError);
      break;
    }
  }
  assert.throws(() => heap.realloc(large, 100), OutOfMemoryError);
  assert.throws(() => heap.realloc(small, 200), OutOfMemoryError);
  assertStamp(heap, large, 10_000, 2);
  assertStamp(heap, small, 100, 4);
  assert.equal(heap.stats().largeAllocations, before.largeAllocations);
  heap.validate();
});

Deno.test("PseudoMalloc.realloc rejects freed and foreign addresses", () => {
  using heap = new PseudoMalloc();
  const small = heap.malloc(64);
  const large = heap.malloc(8192);
  heap.malloc(64); // keeps the arena split, so the freed block stays a block of its own
  heap.free(small);
  heap.free(large);
  assert.throws(() => heap.realloc(small, 10), DoubleFreeError);
  assert.throws(() => heap.realloc(small, 5000), DoubleFreeError);
  assert.throws(() => heap.realloc(large, 10), DoubleFreeError);
  assert.throws(() => heap.realloc(12345, 10), InvalidFreeError);
  assert.equal(heap.stats().liveAllocations, 1);
  heap.validate();
});

Deno.test("PseudoMalloc.free(0) does nothing", () => {
  using heap = new PseudoMalloc();
  heap.free(0);
  assert.equal(heap.stats().totalFrees, 0);
});

Deno.test("PseudoMalloc.free rejects foreign, interior and misaligned addresses intact", () => {
  using heap = new PseudoMalloc();
  const small = heap.malloc(256);
  const large = heap.malloc(20_000);
  stamp(heap, small, 256, 11);
  stamp(heap, large, 20_000, 12);
  const before = heap.stats();
  const rejects = (address: number, pattern: RegExp) =>
    assert.throws(() => heap.free(address), (e) => {
      assert.ok(e instanceof InvalidFreeError, String(e));
      assert.ok(!(e instanceof DoubleFreeError), String(e));
      assert.equal(e.address, address);
      assert.match(e.message, pattern);
      return true;
    });
  rejects(small + 32, /inside the block/);
  rejects(small + 8, /16-byte aligned/);
  rejects(large + 4096, /inside the large block/);
  rejects(12345, /not an address of this heap/);
  rejects(small - ARENA, /not an address of this heap/);
  assert.throws(() => heap.free("1" as unknown as number), TypeError);
  assert.throws(() => heap.free(NaN), InvalidFreeError);
  assert.deepEqual(heap.stats(), before);
  assertStamp(heap, small, 256, 11);
  assertStamp(heap, large, 20_000, 12);
  heap.validate();
});

Deno.test("PseudoMalloc.free detects double frees of small and large blocks", () => {
  using heap = new PseudoMalloc();
  const keep = heap.malloc(48);
  stamp(heap, keep, 48, 1);
  const small = heap.malloc(48);
  const large = heap.malloc(100_000);
  heap.free(small);
  heap.free(large);
  const before = heap.stats();
  assert.throws(() => heap.free(small), DoubleFreeError);
  assert.throws(() => heap.free(large), {
    name: "DoubleFreeError",
    message: /large block was already freed/,
  });
  assert.deepEqual(heap.stats(), before);
  assertStamp(heap, keep, 48, 1);
  heap.validate();
});

Deno.test("PseudoMalloc.usableSize and bytes reject addresses that are not live blocks", () => {
  using heap = new PseudoMalloc();
  const a = heap.malloc(64);
  assert.throws(() => heap.usableSize(a + 16), InvalidAddressError);
  assert.throws(() => heap.bytes(999), InvalidAddressError);
  assert.throws(() => heap.bytes(a, 65), /Cannot view 65 bytes .* holds 64 bytes/);
  assert.throws(() => heap.bytes(a, -1), RangeError);
  heap.free(a);
  assert.throws(() => heap.bytes(a), InvalidAddressError);
});

Deno.test("PseudoMalloc.bytes shares one buffer per arena", () => {
  using heap = new PseudoMalloc();
  const a = heap.malloc(32);
  const b = heap.malloc(32);
  const va = heap.bytes(a);
  const vb = heap.bytes(b);
  assert.equal(va.buffer, vb.buffer);
  assert.equal(vb.byteOffset - va.byteOffset, b - a);
  assert.equal(heap.bytes(a, 0).length, 0);
});

Deno.test("PseudoMalloc.pointer hands a block to C and addressOf maps it back", () => {
  using heap = new PseudoMalloc();
  const text = new TextEncoder().encode("native memory\0");
  const address = heap.malloc(text.length);
  heap.bytes(address, text.length).set(text);
  const pointer = heap.pointer(address);
  assert.equal(libc.symbols.strlen(pointer), 13n);
  assert.equal(heap.addressOf(pointer), address);
  assert.equal(heap.pointer(0), null);
  assert.equal(heap.addressOf(null), 0);
  assert.throws(() => heap.pointer(-1), RangeError);
});

Deno.test("PseudoMalloc.stats counts totals, peaks and live bytes", () => {
  using heap = new PseudoMalloc();
  const a = heap.malloc(10);
  // What the table and the first arena cost depends on the process (spares of closed heaps, other
  // open heaps, where the kernel puts mappings): counted from here, the large block is one mmap.
  const calls = heap.stats().systemCalls;
  const b = heap.malloc(5000);
  heap.free(a);
  const c = heap.calloc(3, 3);
  const stats = heap.stats();
  assert.deepEqual(stats, {
    arenas: 1,
    mappedBytes: ARENA + 8192,
    peakMappedBytes: ARENA + 8192,
    liveAllocations: 2,
    liveBytes: 5009,
    peakLiveBytes: 5010,
    allocatedBytes: 8192 + 16,
    smallAllocations: 1,
    largeAllocations: 1,
    totalAllocations: 3,
    totalFrees: 1,
    smallCachedBytes: 0, // calloc took the cached 16-byte block back
    largeCachedBytes: 0,
    internalFragmentation: 1 - 5009 / (8192 + 16),
    arenaDetails: [{
      address: c - (c % ARENA),
      freeBytes: ARENA - 16,
      largestFreeBlock: ARENA / 2,
      externalFragmentation: 1 - (ARENA / 2) / (ARENA - 16),
      // Splitting 1 MiB down to 16 bytes left one free block at each order below the arena's.
      freeBlocks: [...Array(16).fill(1), 0],
    }],
    systemCalls: { ...calls, mmap: calls.mmap + 1 },
  });
  heap.free(b);
  heap.free(c);
  const after = heap.stats();
  assert.equal(after.liveBytes, 0);
  assert.equal(after.smallCachedBytes, 16);
  assert.equal(after.largeCachedBytes, 8192);
  assert.equal(after.allocatedBytes, 0);
});

Deno.test("PseudoMalloc.close unmaps everything and later calls throw HeapClosedError", () => {
  const heap = new PseudoMalloc();
  const a = heap.malloc(10);
  const large = heap.malloc(100_000);
  const arena = a - (a % ARENA);
  assert.ok(protectMemory(arena, heap.pageSize, "read-write"), "mapped before close");
  heap.close();
  // mprotect fails (ENOMEM) on memory that is no longer mapped.
  assert.equal(protectMemory(arena, heap.pageSize, "read-write"), false);
  assert.equal(protectMemory(arena + ARENA - heap.pageSize, heap.pageSize, "read-write"), false);
  assert.equal(protectMemory(large, heap.pageSize, "read-write"), false);
  assert.throws(() => heap.malloc(1), {
    name: "HeapClosedError",
    message: "Cannot call malloc: the heap is closed",
  });
  assert.throws(() => heap.free(a), HeapClosedError);
  assert.throws(() => heap.calloc(1, 1), HeapClosedError);
  assert.throws(() => heap.realloc(a, 1), HeapClosedError);
  assert.throws(() => heap.usableSize(a), HeapClosedError);
  assert.throws(() => heap.bytes(a), HeapClosedError);
  assert.throws(() => heap.pointer(a), HeapClosedError);
  assert.throws(() => heap.addressOf(null), HeapClosedError);
  assert.throws(() => heap.stats(), HeapClosedError);
  assert.throws(() => heap.validate(), HeapClosedError);
  assert.throws(() => heap.heapMap(), HeapClosedError);
  assert.throws(() => heap.trim(), HeapClosedError);
  heap.close(); // closing twice is harmless
});

Deno.test("PseudoMalloc works with using and disposes at the end of the scope", () => {
  let escaped: PseudoMalloc;
  {
    using heap = new PseudoMalloc();
    heap.malloc(10);
    escaped = heap;
  }
  assert.throws(() => escaped.malloc(1), HeapClosedError);
});

Deno.test("PseudoMalloc constructor rejects bad options", () => {
  assert.throws(() => new PseudoMalloc({ arenaSize: 3000 }), /arenaSize 3000/);
  assert.throws(() => new PseudoMalloc({ arenaSize: 1024 }), /at least the page size/);
  assert.throws(() => new PseudoMalloc({ arenaSize: 2 ** 31 }), RangeError);
  assert.throws(() => new PseudoMalloc({ minBlockSize: 12 }), /minBlockSize 12/);
  assert.throws(() => new PseudoMalloc({ mmapThreshold: ARENA + 1 }), /mmapThreshold/);
  assert.throws(() => new PseudoMalloc({ mmapThreshold: -1 }), /mmapThreshold/);
  assert.throws(() => new PseudoMalloc({ maxArenas: -1 }), /maxArenas/);
  assert.throws(() => new PseudoMalloc({ maxArenas: 1.5 }), /maxArenas/);
});

Deno.test("PseudoMalloc options: bigger blocks and a higher threshold", () => {
  using heap = new PseudoMalloc({ arenaSize: 1 << 16, minBlockSize: 64, mmapThreshold: 1 << 16 });
  const a = heap.malloc(1);
  const b = heap.malloc(40_000);
  assert.equal(heap.usableSize(a), 64);
  assert.equal(heap.usableSize(b), 1 << 16); // a whole arena of its own
  assert.equal(heap.stats().arenas, 2);
  assert.equal(heap.stats().largeAllocations, 0);
  assert.equal(heap.stats().liveBytes, 40_001);
  heap.validate();
});

Deno.test("PseudoMalloc.heapMap draws each arena's occupancy", () => {
  using heap = new PseudoMalloc();
  for (let i = 0; i < 64; i++) heap.malloc(1000); // 64 KiB = the first row of 64 cells
  const lines = heap.heapMap().split("\n");
  assert.match(lines[0]!, /^arena 0 at 0x[0-9a-f]+: 983040 of 1048576 bytes free$/);
  assert.equal(lines.length, 1 + 16);
  assert.equal(lines[1], "█".repeat(64));
  assert.equal(lines[2], "·".repeat(64));
});

Deno.test("malloc, calloc, realloc, free and usableSize use one default heap", () => {
  const before = defaultHeap().stats().liveAllocations;
  const a = malloc(100);
  const b = calloc(4, 4);
  assert.equal(usableSize(a), 128);
  const c = realloc(a, 3000);
  assert.equal(defaultHeap().stats().liveAllocations, before + 2);
  free(b);
  free(c);
  free(0);
  assert.equal(defaultHeap().stats().liveAllocations, before);
  defaultHeap().validate();
});

contractSuite("PseudoMalloc", () => new PseudoMalloc(), {
  detectsDoubleFree: true,
  detectsInvalidFree: true,
  reusesMemory: true,
});

contractSuite(
  "PseudoMalloc (lowAddresses false)",
  () => new PseudoMalloc({ lowAddresses: false }),
  {
    detectsDoubleFree: true,
    detectsInvalidFree: true,
    reusesMemory: true,
  },
);

Deno.test("PseudoMalloc.stats reports internal and external fragmentation", () => {
  using heap = new PseudoMalloc();
  const a = heap.malloc(100);
  assert.equal(heap.stats().internalFragmentation, 1 - 100 / 128);
  const b = heap.malloc(128);
  heap.free(b);
  heap.trim(); // merge the cached block back
  const [arena] = heap.stats().arenaDetails;
  // Free: 128 at 128, 256, 512, ... up to 512 KiB: the largest is 512 KiB of ARENA - 128 bytes.
  assert.equal(arena!.freeBytes, ARENA - 128);
  assert.equal(arena!.externalFragmentation, 1 - (ARENA / 2) / (ARENA - 128));
  assert.deepEqual(arena!.freeBlocks, [0, 0, 0, ...Array(13).fill(1), 0]);
  heap.free(a);
  heap.trim();
  assert.equal(heap.stats().internalFragmentation, 0);
});

Deno.test("PseudoMalloc.heapMap as SVG draws every block with its state", () => {
  using heap = new PseudoMalloc();
  const live = heap.malloc(100);
  const cached = heap.malloc(16);
  heap.free(cached);
  heap.malloc(5000);
  const svg = heap.heapMap({ format: "svg" });
  assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"[^>]*>/);
  assert.ok(svg.trimEnd().endsWith("</svg>"));
  // Balanced elements: every opened <g>, <rect>...</rect> and <text> is closed.
  for (const tag of ["g", "text", "title"]) {
    const opened = svg.match(new RegExp(`<${tag}[ >]`, "g"))?.length ?? 0;
    assert.equal(opened, svg.match(new RegExp(`</${tag}>`, "g"))?.length ?? 0, tag);
  }
  const blocks = [...svg.matchAll(/class="block (\w+)"/g)].map((m) => m[1]);
  // 1 live 128-byte block, 1 cached 16-byte block, and the free blocks left by the splits.
  assert.equal(blocks.filter((state) => state === "live").length, 1);
  assert.equal(blocks.filter((state) => state === "cached").length, 1);
  const freeBlocks = heap.stats().arenaDetails[0]!.freeBlocks.reduce((a, b) => a + b, 0);
  assert.equal(blocks.filter((state) => state === "free").length, freeBlocks);
  assert.equal(svg.match(/class="mapping"/g)?.length, 1);
  heap.free(live);
});

Deno.test("PseudoMalloc.liveAllocations lists live blocks, with sites in debug mode", () => {
  using heap = new PseudoMalloc();
  const a = heap.malloc(10);
  const b = heap.malloc(50_000);
  const c = heap.calloc(2, 3);
  heap.free(c);
  assert.deepEqual(heap.liveAllocations(), [{ address: a, size: 10 }, {
    address: b,
    size: 50_000,
  }]);

  let reported: { address: number; size: number; site?: string }[] = [];
  const debug = new PseudoMalloc({ debug: true, onLeaks: (leaks) => reported = leaks });
  const kept = debug.malloc(24);
  let moved = debug.realloc(debug.malloc(8), 3000);
  moved = debug.realloc(moved, 100);
  debug.free(debug.calloc(1, 1));
  const [first, second] = debug.liveAllocations();
  assert.equal(first!.address, kept);
  assert.match(first!.site!, /pseudo_malloc_test\.ts:\d+:\d+/);
  assert.equal(second!.address, moved);
  debug.close();
  assert.deepEqual(reported.map((leak) => [leak.address, leak.size]), [[kept, 24], [moved, 100]]);
});

Deno.test("PseudoMalloc in debug mode reports nothing when no block leaked", () => {
  let calls = 0;
  const heap = new PseudoMalloc({ debug: true, onLeaks: () => calls++ });
  heap.free(heap.malloc(10));
  heap.close();
  assert.equal(calls, 0);
});

// The suite leaves blocks live at close on purpose: no leak report. The quarantine holds freed
// blocks back (16 MiB), so the first heap does not reuse memory within the suite's 64 pairs.
const quiet = () => {};
contractSuite("PseudoMalloc (debug)", () => new PseudoMalloc({ debug: true, onLeaks: quiet }), {
  detectsDoubleFree: true,
  detectsInvalidFree: true,
  reusesMemory: false,
});

contractSuite(
  "PseudoMalloc (debug, no quarantine, every block guarded)",
  () => new PseudoMalloc({ debug: { quarantine: 0, guardPages: "all" }, onLeaks: quiet }),
  { detectsDoubleFree: true, detectsInvalidFree: true, reusesMemory: true },
);
