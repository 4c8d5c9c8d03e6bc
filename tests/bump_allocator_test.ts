// BumpAllocator over real native memory (needs --allow-ffi).
import assert from "node:assert/strict";
import {
  BumpAllocator,
  DoubleFreeError,
  HeapClosedError,
  InvalidAddressError,
  InvalidFreeError,
  OsError,
  OutOfMemoryError,
} from "../mod.ts";
import { memoryView, pageSize, protectMemory } from "../ffi/libc.ts";
import { contractSuite, failEachCall } from "./_contract.ts";
import { FaultyOs } from "./_faulty_os.ts";

const PAGE = pageSize();
/** Bytes of header before every block. */
const HEADER = 16;
/** Block alignment and size granule. */
const ALIGN = 16;
const DEFAULT_POOL = 64 * 1024 * 1024;

/** The native bytes of a block's header, read directly (not through the allocator). */
function header(address: number): { size: number; state: string; check: number } {
  const words = new Uint32Array(memoryView(address - HEADER, HEADER));
  const state = new TextDecoder().decode(new Uint8Array(words.buffer, 8, 4));
  return { size: words[0]! + words[1]! * 2 ** 32, state, check: words[3]! };
}

/** The address of the pool's first block: right after the first header, at the pool's start. */
function firstBlock(arena: BumpAllocator): number {
  const address = arena.malloc(0);
  arena.reset();
  return address;
}

Deno.test("BumpAllocator maps its whole pool up front, 64 MiB by default", () => {
  using arena = new BumpAllocator();
  assert.equal(arena.poolSize, DEFAULT_POOL);
  const stats = arena.stats();
  assert.equal(stats.mappedBytes, DEFAULT_POOL);
  assert.equal(stats.usedBytes, 0);
  using small = new BumpAllocator({ size: PAGE + 1 });
  assert.equal(small.poolSize, 2 * PAGE);
});

Deno.test("BumpAllocator constructor rejects sizes that are not positive integers", () => {
  for (const bad of [0, -1, 1.5, NaN, Infinity, 2 ** 48]) {
    assert.throws(() => new BumpAllocator({ size: bad }), RangeError, String(bad));
  }
  assert.throws(() => new BumpAllocator({ size: "1" as unknown as number }), RangeError);
});

Deno.test("BumpAllocator.malloc places header and block one after another", () => {
  using arena = new BumpAllocator();
  const a = arena.malloc(1);
  assert.equal(a % PAGE, HEADER, "the first block follows the first header at the pool start");
  const b = arena.malloc(100);
  const c = arena.malloc(0);
  const d = arena.malloc(16);
  assert.equal(b, a + ALIGN + HEADER);
  assert.equal(c, b + 112 + HEADER);
  assert.equal(d, c + 0 + HEADER);
  assert.deepEqual([a, b, c, d].map((x) => arena.usableSize(x)), [16, 112, 0, 16]);
  assert.equal(arena.bytes(c).length, 0);
  const stats = arena.stats();
  assert.equal(stats.usedBytes, d + 16 - (a - HEADER));
  assert.equal(stats.allocatedBytes, stats.usedBytes);
  assert.equal(stats.liveBytes, 117);
  arena.validate();
});

Deno.test("BumpAllocator headers live in native memory before each block", () => {
  using arena = new BumpAllocator();
  const a = arena.malloc(100);
  const b = arena.malloc(5);
  assert.equal(header(a).size, 100);
  assert.equal(header(a).state, "LIVE");
  assert.equal(header(b).size, 5);
  arena.free(a);
  assert.equal(header(a).state, "FREE");
  assert.equal(header(a).size, 100, "free keeps the size, for the double-free check");
  assert.equal(arena.stats().usedBytes, 2 * HEADER + 112 + 16);
});

Deno.test("BumpAllocator.free reuses nothing and detects a double free until reset", () => {
  using arena = new BumpAllocator();
  const a = arena.malloc(40);
  arena.free(a);
  const b = arena.malloc(40);
  assert.equal(b, a + 48 + HEADER);
  const before = arena.stats();
  assert.throws(() => arena.free(a), { name: "DoubleFreeError", message: /already freed/ });
  assert.throws(() => arena.realloc(a, 10), DoubleFreeError);
  assert.throws(() => arena.usableSize(a), { name: "InvalidAddressError", message: /freed/ });
  assert.deepEqual(arena.stats(), before);
  arena.validate();
});

Deno.test("BumpAllocator.reset starts the addresses over and clears the live counters", () => {
  using arena = new BumpAllocator();
  const first = [arena.malloc(10), arena.malloc(200), arena.malloc(3000)];
  arena.free(first[1]!);
  arena.reset();
  const stats = arena.stats();
  assert.equal(stats.liveAllocations, 0);
  assert.equal(stats.liveBytes, 0);
  assert.equal(stats.allocatedBytes, 0);
  assert.equal(stats.usedBytes, 0);
  assert.equal(stats.resets, 1);
  assert.equal(stats.totalAllocations, 3);
  assert.equal(stats.totalFrees, 3, "reset counts the two live blocks as freed");
  assert.equal(stats.peakLiveBytes, 3210);
  assert.equal(stats.mappedBytes, DEFAULT_POOL);
  arena.validate();
  assert.equal(arena.malloc(10), first[0]);
  assert.equal(arena.malloc(200), first[1]);
  assert.equal(arena.malloc(3000), first[2]);
  arena.validate();
});

Deno.test("BumpAllocator.reset invalidates every old address", () => {
  using arena = new BumpAllocator();
  const a = arena.malloc(100);
  const b = arena.malloc(8);
  arena.reset();
  // Beyond the bump pointer.
  assert.throws(() => arena.free(a), {
    name: "InvalidFreeError",
    message: /beyond the bump pointer .*reset/,
  });
  // A new block covers b's old header without writing it: the reset count in the check word
  // tells the stale header from a live one.
  const big = arena.malloc(1000);
  assert.equal(big, a);
  assert.equal(header(b).state, "LIVE", "the stale header is still in memory");
  assert.throws(() => arena.free(b), { name: "InvalidFreeError", message: /no block header/ });
  assert.throws(() => arena.usableSize(b), InvalidAddressError);
  assert.equal(arena.stats().liveAllocations, 1);
  arena.validate();
});

Deno.test("BumpAllocator throws OutOfMemoryError when the pool is full, changing nothing", () => {
  using arena = new BumpAllocator({ size: PAGE });
  const blocks: number[] = [];
  for (let i = 0; i < PAGE / 64; i++) blocks.push(arena.malloc(48)); // 64 bytes each with header
  const last = blocks.at(-1)!;
  const older = blocks.at(-2)!;
  arena.bytes(last).fill(7);
  arena.bytes(older).fill(9);
  const before = arena.stats();
  assert.equal(before.usedBytes, PAGE);
  assert.throws(() => arena.malloc(0), {
    name: "OutOfMemoryError",
    message: new RegExp(`the pool has 0 of ${PAGE} bytes left.*reset\\(\\) frees it`),
  });
  assert.throws(() => arena.calloc(1, 1), OutOfMemoryError);
  assert.throws(() => arena.realloc(last, 49), OutOfMemoryError); // newest: grow in place
  assert.throws(() => arena.realloc(older, 49), OutOfMemoryError); // older: must move
  assert.deepEqual(arena.stats(), before);
  assert.ok(arena.bytes(last).every((byte) => byte === 7));
  assert.ok(arena.bytes(older).every((byte) => byte === 9));
  arena.validate();
  // Shrinking still works, and so does everything after a reset.
  assert.equal(arena.realloc(last, 32), last);
  assert.equal(arena.malloc(0), last + 32 + HEADER);
  arena.reset();
  assert.equal(arena.malloc(PAGE - HEADER), blocks[0]);
  assert.throws(() => arena.malloc(0), OutOfMemoryError);
});

Deno.test("BumpAllocator.realloc moves the bump pointer for the newest block", () => {
  using arena = new BumpAllocator();
  const a = arena.malloc(10);
  const b = arena.malloc(10);
  arena.bytes(b, 10).fill(3);
  assert.equal(arena.realloc(b, 5000), b);
  assert.equal(arena.stats().usedBytes, 2 * HEADER + 16 + 5008);
  assert.equal(arena.realloc(b, 20), b);
  assert.equal(arena.stats().usedBytes, 2 * HEADER + 16 + 32);
  assert.ok(arena.bytes(b, 10).every((byte) => byte === 3));
  assert.equal(arena.malloc(1), b + 32 + HEADER);
  assert.equal(arena.stats().totalAllocations, 3);
  assert.equal(arena.usableSize(a), 16);
  arena.validate();
});

Deno.test("BumpAllocator.realloc shrinks older blocks in place and moves them to grow", () => {
  using arena = new BumpAllocator();
  const a = arena.malloc(100);
  arena.malloc(1); // a is no longer the newest
  arena.bytes(a).fill(5);
  assert.equal(arena.realloc(a, 40), a);
  assert.equal(arena.usableSize(a), 48);
  // The cut-off 64 bytes became a dead record: 16 header + 48 bytes.
  const pad = a + 48 + HEADER;
  assert.equal(header(pad).state, "PAD_");
  assert.throws(() => arena.free(pad), { name: "InvalidFreeError", message: /tail of a block/ });
  arena.validate();
  const moved = arena.realloc(a, 200);
  assert.notEqual(moved, a);
  assert.ok(arena.bytes(moved, 48).every((byte) => byte === 5));
  assert.equal(header(a).state, "FREE");
  assert.throws(() => arena.free(a), DoubleFreeError);
  const stats = arena.stats();
  assert.equal(stats.liveAllocations, 2);
  assert.equal(stats.liveBytes, 201);
  assert.equal(stats.allocatedBytes, HEADER + 16 + HEADER + 208);
  assert.equal(stats.totalAllocations - stats.totalFrees, 2);
  arena.validate();
});

Deno.test("BumpAllocator.calloc clears memory used before a reset and only that", () => {
  using arena = new BumpAllocator();
  const a = arena.malloc(1000);
  arena.bytes(a).fill(0xee);
  arena.reset();
  const zeroed = arena.calloc(10, 100);
  assert.equal(zeroed, a);
  assert.ok(arena.bytes(zeroed).every((byte) => byte === 0));
  const before = Deno.memoryUsage().rss;
  const fresh = arena.calloc(1, 48 << 20); // beyond the high-water mark: already zero
  assert.ok(Deno.memoryUsage().rss - before < 16 << 20, "calloc wrote fresh pages");
  assert.equal(arena.bytes(fresh, 1)[0], 0);
  arena.validate();
});

Deno.test("BumpAllocator rejects foreign, misaligned and interior addresses intact", () => {
  using arena = new BumpAllocator();
  const a = arena.malloc(64);
  arena.bytes(a).fill(0x41);
  const before = arena.stats();
  const rejects = (address: number, pattern: RegExp) =>
    assert.throws(() => arena.free(address), (e) => {
      assert.ok(e instanceof InvalidFreeError && !(e instanceof DoubleFreeError), String(e));
      assert.equal(e.address, address);
      assert.match(e.message, pattern);
      return true;
    });
  rejects(12345, /not an address of this heap/);
  rejects(a + DEFAULT_POOL, /not an address of this heap/);
  rejects(a + 8, /16-byte aligned/);
  rejects(a + 32, /no block header precedes it/);
  rejects(a - HEADER, /no block header precedes it/);
  rejects(a + 1024, /beyond the bump pointer/);
  assert.throws(() => arena.free("1" as unknown as number), TypeError);
  assert.throws(() => arena.free(1n as unknown as number), /an address must be a number/);
  assert.throws(() => arena.bytes(a, 65), /Cannot view 65 bytes .* holds 64 bytes/);
  assert.deepEqual(arena.stats(), before);
  arena.validate();
});

Deno.test("BumpAllocator.validate and free notice a header overwritten by an overflow", () => {
  using arena = new BumpAllocator();
  const a = arena.malloc(16);
  const b = arena.malloc(16);
  arena.validate();
  // Write 20 bytes into a 16-byte block, as C code might: the tail hits b's header.
  new Uint8Array(memoryView(a, 20)).fill(0xff);
  assert.throws(() => arena.validate(), /header of block 0x[0-9a-f]+ is overwritten/);
  assert.throws(() => arena.free(b), { name: "InvalidFreeError", message: /overwritten header/ });
  assert.equal(arena.stats().liveAllocations, 2);
});

Deno.test("BumpAllocator.close unmaps the pool and later calls throw HeapClosedError", () => {
  const arena = new BumpAllocator();
  const start = firstBlock(arena) - HEADER;
  assert.ok(protectMemory(start, PAGE, "read-write"));
  arena.close();
  assert.equal(protectMemory(start, PAGE, "read-write"), false);
  assert.equal(protectMemory(start + DEFAULT_POOL - PAGE, PAGE, "read-write"), false);
  assert.throws(() => arena.reset(), { name: "HeapClosedError", message: /Cannot call reset/ });
  assert.throws(() => arena.validate(), HeapClosedError);
  arena.close();
});

// --- when the OS says no -------------------------------------------------------------------------

Deno.test("BumpAllocator makes every system call through its os: one map, one unmap", () => {
  const os = new FaultyOs();
  const arena = new BumpAllocator({ os, size: 1 << 20 });
  assert.equal(os.calls.map, 1);
  const a = arena.malloc(100);
  arena.realloc(a, 5000);
  arena.free(arena.calloc(10, 10));
  arena.reset();
  arena.malloc(1);
  assert.deepEqual([os.calls.map, os.calls.unmap], [1, 0], "the pool serves every request");
  arena.close();
  assert.deepEqual([os.calls.map, os.calls.unmap], [1, 1]);
});

Deno.test("BumpAllocator constructor throws the OS's OutOfMemoryError when the pool is refused", () => {
  const os = new FaultyOs().fail("map", 0, { errno: 11 });
  assert.throws(() => new BumpAllocator({ os }), (error) => {
    assert.ok(error instanceof OutOfMemoryError);
    assert.equal(error.errno, 11);
    return true;
  });
  using arena = new BumpAllocator({ os, size: 1 << 20 });
  arena.validate();
});

Deno.test("BumpAllocator.close that the OS refuses leaves the arena open and whole", () => {
  const failed = failEachCall({
    call: "unmap",
    setup(os, live) {
      const arena = new BumpAllocator({ os, size: 1 << 20 });
      live.malloc(arena, 100);
      arena.free(arena.malloc(7));
      live.malloc(arena, 3000);
      return arena;
    },
    act: (arena) => arena.close(),
    closes: true,
  });
  assert.equal(failed, 1);
  const os = new FaultyOs();
  const arena = new BumpAllocator({ os, size: 1 << 20 });
  os.fail("unmap");
  assert.throws(() => arena.close(), OsError);
  arena.reset(); // still open
  arena.close();
  assert.throws(() => arena.reset(), HeapClosedError);
});

contractSuite("BumpAllocator", () => new BumpAllocator(), {
  detectsDoubleFree: true,
  detectsInvalidFree: true,
  reusesMemory: false,
});
