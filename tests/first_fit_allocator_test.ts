// FirstFitAllocator over real native memory (needs --allow-ffi): the contract, then the mechanics
// of splitting, coalescing, first fit and growth, with addresses derived from the layout constants.
import assert from "node:assert/strict";
import {
  DoubleFreeError,
  FirstFitAllocator,
  HeapClosedError,
  InvalidAddressError,
  InvalidFreeError,
  OsError,
  OutOfMemoryError,
} from "../mod.ts";
import {
  BLOCK_OVERHEAD,
  CHUNK_OVERHEAD,
  DEFAULT_CHUNK_SIZE,
  GRANULE,
  HEADER_SIZE,
  MIN_BLOCK_SIZE,
} from "../src/family/first_fit_allocator.ts";
import { memoryView, pageSize } from "../ffi/libc.ts";
import { contractSuite, failEachCall, LiveBlocks } from "./_contract.ts";
import { FaultyOs } from "./_faulty_os.ts";

const PAGE = pageSize();

/** Block size for a request of `size` bytes: header and footer, whole granules, a minimum. */
function blockFor(size: number): number {
  return Math.max(MIN_BLOCK_SIZE, Math.ceil((size + BLOCK_OVERHEAD) / GRANULE) * GRANULE);
}

/** A heap whose chunks are one page, so that growth is easy to provoke. */
function pageHeap(): FirstFitAllocator {
  return new FirstFitAllocator({ chunkSize: PAGE });
}

contractSuite("FirstFitAllocator", () => new FirstFitAllocator(), {
  detectsDoubleFree: true,
  detectsInvalidFree: true,
  reusesMemory: true,
});

// Page-sized chunks: most requests of the suite then need a chunk of their own or a second chunk.
contractSuite("FirstFitAllocator with page-sized chunks", pageHeap, {
  detectsDoubleFree: true,
  detectsInvalidFree: true,
  reusesMemory: true,
});

Deno.test("FirstFitAllocator constructor checks chunkSize", () => {
  for (const bad of [PAGE / 2, PAGE * 3, 2 ** 31, 0]) {
    assert.throws(() => new FirstFitAllocator({ chunkSize: bad }), RangeError);
  }
  using heap = new FirstFitAllocator();
  assert.equal(heap.chunkSize, DEFAULT_CHUNK_SIZE);
  assert.equal(heap.stats().mappedBytes, 0, "no chunk before the first request");
});

Deno.test("FirstFitAllocator.malloc splits the first free block at exact addresses", () => {
  using heap = pageHeap();
  const a = heap.malloc(100);
  const base = a - HEADER_SIZE - HEADER_SIZE; // prologue footer, then a's header
  assert.equal(base % PAGE, 0, "chunks are chunk-aligned");
  assert.equal(blockFor(100), 128);
  assert.equal(heap.usableSize(a), 128 - BLOCK_OVERHEAD);
  const capacity = PAGE - CHUNK_OVERHEAD;
  assert.deepEqual(heap.blocks(), [
    { address: a, size: 128, allocated: true },
    { address: a + 128, size: capacity - 128, allocated: false },
  ]);
  const b = heap.malloc(24);
  assert.equal(b, a + 128);
  assert.equal(heap.usableSize(b), blockFor(24) - BLOCK_OVERHEAD);
  const c = heap.malloc(0);
  assert.equal(c, b + blockFor(24));
  assert.equal(heap.usableSize(c), MIN_BLOCK_SIZE - BLOCK_OVERHEAD);
  assert.deepEqual(heap.blocks().map((block) => block.size), [
    128,
    48,
    MIN_BLOCK_SIZE,
    capacity - 128 - 48 - MIN_BLOCK_SIZE,
  ]);
  const stats = heap.stats();
  assert.equal(stats.allocatedBytes, 128 + 48 + MIN_BLOCK_SIZE);
  assert.equal(stats.liveBytes, 124);
  assert.equal(stats.freeBytes, capacity - stats.allocatedBytes);
  heap.validate();
});

Deno.test("FirstFitAllocator.malloc does not split off less than a minimum block", () => {
  using heap = pageHeap();
  const hole = heap.malloc(32); // a 48-byte block
  heap.malloc(1); // keeps the hole apart from the rest of the chunk
  heap.free(hole);
  // 16 bytes need a 32-byte block; the other 16 bytes of the hole cannot be a block: not split.
  assert.equal(heap.malloc(16), hole);
  assert.equal(heap.usableSize(hole), blockFor(32) - BLOCK_OVERHEAD);
  assert.equal(heap.stats().allocatedBytes, blockFor(32) + MIN_BLOCK_SIZE);
  assert.equal(heap.stats().liveBytes, 17, "the requested bytes, not the block's");
  heap.validate();
});

Deno.test("FirstFitAllocator.free coalesces with both neighbours: free A, C, then B", () => {
  using heap = pageHeap();
  const size = 32;
  const block = blockFor(size);
  const [a, b, c] = [heap.malloc(size), heap.malloc(size), heap.malloc(size)];
  const d = heap.malloc(size); // keeps C apart from the rest of the chunk
  assert.deepEqual([b - a, c - b, d - c], [block, block, block]);
  heap.free(a);
  heap.free(c);
  assert.equal(heap.stats().freeBlocks, 3); // A, C and the rest of the chunk
  assert.deepEqual(heap.blocks().slice(0, 4), [
    { address: a, size: block, allocated: false },
    { address: b, size: block, allocated: true },
    { address: c, size: block, allocated: false },
    { address: d, size: block, allocated: true },
  ]);
  heap.free(b);
  assert.equal(heap.stats().freeBlocks, 2);
  assert.deepEqual(heap.blocks().slice(0, 2), [
    { address: a, size: 3 * block, allocated: false },
    { address: d, size: block, allocated: true },
  ]);
  // The merged block serves exactly its size, with nothing to split.
  assert.equal(heap.malloc(3 * block - BLOCK_OVERHEAD), a);
  assert.equal(heap.stats().freeBlocks, 1);
  heap.validate();
});

Deno.test("FirstFitAllocator.free merges the last block of a chunk with the rest", () => {
  using heap = pageHeap();
  const keep = heap.malloc(8);
  const a = heap.malloc(100);
  heap.free(a);
  assert.deepEqual(heap.blocks(), [
    { address: keep, size: MIN_BLOCK_SIZE, allocated: true },
    { address: a, size: PAGE - CHUNK_OVERHEAD - MIN_BLOCK_SIZE, allocated: false },
  ]);
  heap.validate();
});

Deno.test("FirstFitAllocator.malloc takes the first hole that fits, not the best one", () => {
  using heap = pageHeap();
  const big = heap.malloc(200);
  heap.malloc(8);
  const small = heap.malloc(40);
  heap.malloc(8);
  heap.free(small);
  heap.free(big); // the free list is LIFO: big, small, rest of the chunk
  // Best fit would take `small`, an exact fit; first fit takes `big` and splits it.
  assert.equal(heap.malloc(40), big);
  const blocks = heap.blocks();
  assert.deepEqual(blocks[0], { address: big, size: blockFor(40), allocated: true });
  assert.deepEqual(blocks[1], {
    address: big + blockFor(40),
    size: blockFor(200) - blockFor(40),
    allocated: false,
  });
  assert.deepEqual(blocks[3], { address: small, size: blockFor(40), allocated: false });
  // The next request of that size still finds the rest of `big` first (it took big's place).
  assert.equal(heap.malloc(40), big + blockFor(40));
  heap.validate();
});

Deno.test("FirstFitAllocator grows by mapping chunks and gives them back when empty", () => {
  using heap = pageHeap();
  const capacity = PAGE - CHUNK_OVERHEAD;
  const a = heap.malloc(capacity - BLOCK_OVERHEAD); // fills the first chunk exactly
  assert.equal(heap.usableSize(a), capacity - BLOCK_OVERHEAD);
  assert.equal(heap.stats().freeBlocks, 0);
  const b = heap.malloc(1); // no room: a second chunk
  assert.equal(heap.stats().chunks, 2);
  assert.equal(b % PAGE, 2 * HEADER_SIZE, "the first payload of a chunk-aligned chunk");
  // Larger than a chunk: a chunk of its own, whole pages, the rest of it free for others.
  const big = heap.malloc(3 * PAGE);
  const bigChunk = Math.ceil((blockFor(3 * PAGE) + CHUNK_OVERHEAD) / PAGE) * PAGE;
  assert.equal(bigChunk, 4 * PAGE);
  assert.equal(big % PAGE, 2 * HEADER_SIZE);
  assert.equal(heap.stats().mappedBytes, 2 * PAGE + bigChunk);
  assert.equal(heap.stats().chunks, 3);
  const filler = heap.malloc(8);
  assert.equal(filler, big + blockFor(3 * PAGE), "a small request uses the big chunk's rest");
  heap.free(filler);
  heap.validate();
  // A wholly free chunk larger than chunkSize is unmapped at once.
  heap.free(big);
  assert.equal(heap.stats().mappedBytes, 2 * PAGE);
  assert.throws(() => heap.free(big), DoubleFreeError);
  assert.throws(() => heap.usableSize(big), InvalidAddressError);
  // The first standard chunk to become empty is kept as a spare; the next one is unmapped.
  heap.free(b);
  assert.equal(heap.stats().mappedBytes, 2 * PAGE);
  heap.free(a);
  assert.equal(heap.stats().mappedBytes, PAGE);
  assert.equal(heap.stats().chunks, 1);
  assert.equal(heap.stats().peakMappedBytes, 2 * PAGE + bigChunk);
  assert.throws(() => heap.free(a), DoubleFreeError);
  heap.validate();
  // The spare serves the next request without a new mapping.
  const again = heap.malloc(1);
  assert.equal(again, b);
  assert.equal(heap.stats().mappedBytes, PAGE);
  heap.validate();
});

Deno.test("FirstFitAllocator.malloc/free at a chunk's edge does not map and unmap each time", () => {
  using heap = pageHeap();
  const first = heap.malloc(PAGE);
  for (let i = 0; i < 100; i++) heap.free(heap.malloc(PAGE));
  assert.equal(heap.stats().chunks, 1);
  heap.free(first);
  assert.equal(heap.stats().mappedBytes, 0, "a chunk larger than chunkSize is no spare");
  heap.validate();
});

Deno.test("FirstFitAllocator.realloc grows in place, shrinks by splitting, else moves", () => {
  using heap = pageHeap();
  const a = heap.malloc(100);
  const b = heap.malloc(100);
  const c = heap.malloc(8);
  heap.bytes(a, 100).fill(7);
  heap.free(b);
  // Grow into the free successor; the rest (a minimum block) is split off.
  assert.equal(heap.realloc(a, 200), a);
  assert.equal(heap.usableSize(a), blockFor(200) - BLOCK_OVERHEAD);
  assert.deepEqual(heap.blocks().slice(0, 3), [
    { address: a, size: blockFor(200), allocated: true },
    { address: a + blockFor(200), size: 256 - blockFor(200), allocated: false },
    { address: c, size: MIN_BLOCK_SIZE, allocated: true },
  ]);
  // Shrink: the rest is split off and merged with the free successor.
  assert.equal(heap.realloc(a, 20), a);
  assert.deepEqual(heap.blocks().slice(0, 3), [
    { address: a, size: blockFor(20), allocated: true },
    { address: a + blockFor(20), size: 256 - blockFor(20), allocated: false },
    { address: c, size: MIN_BLOCK_SIZE, allocated: true },
  ]);
  assert.equal(heap.stats().liveBytes, 20 + 8);
  assert.equal(heap.stats().allocatedBytes, blockFor(20) + MIN_BLOCK_SIZE);
  // Too large for the hole after it: moves, keeping the contents, and frees the old block.
  const moved = heap.realloc(a, 1000);
  assert.ok(moved > c);
  assert.ok(heap.bytes(moved, 20).every((byte) => byte === 7));
  assert.deepEqual(heap.blocks()[0], { address: a, size: 256, allocated: false });
  assert.equal(heap.stats().totalAllocations, 4, "three mallocs and one move");
  assert.equal(heap.stats().totalFrees, 2, "one free and one move");
  // Within one granule: stays, only the recorded request changes.
  assert.equal(heap.realloc(moved, 1001), moved);
  assert.equal(heap.stats().liveBytes, 1001 + 8);
  heap.validate();
});

Deno.test("FirstFitAllocator.realloc leaves the block untouched when it fails", () => {
  using heap = pageHeap();
  const a = heap.malloc(100);
  heap.bytes(a, 100).fill(3);
  heap.malloc(8);
  const before = heap.stats();
  assert.throws(() => heap.realloc(a, 2 ** 46), OutOfMemoryError);
  assert.throws(() => heap.malloc(2 ** 46), /larger than the largest chunk/);
  assert.throws(() => heap.realloc(a, -1), RangeError);
  assert.deepEqual(heap.stats(), before);
  assert.ok(heap.bytes(a, 100).every((byte) => byte === 3));
  heap.validate();
});

Deno.test("FirstFitAllocator.free rejects foreign, interior, misaligned and freed addresses", () => {
  using heap = pageHeap();
  const a = heap.malloc(64);
  const b = heap.malloc(64);
  heap.malloc(8);
  heap.free(b);
  const before = heap.stats();
  const rejects = (address: number, type: typeof InvalidFreeError, pattern: RegExp) =>
    assert.throws(() => heap.free(address), (e) => {
      assert.ok(e instanceof type, String(e));
      if (type === InvalidFreeError) assert.ok(!(e instanceof DoubleFreeError), String(e));
      assert.equal((e as InvalidFreeError).address, address);
      assert.match((e as Error).message, pattern);
      return true;
    });
  rejects(a + 16, InvalidFreeError, /inside the block \[.*\), not at its start/);
  rejects(a + 8, InvalidFreeError, /16-byte aligned/);
  rejects(a - 16, InvalidFreeError, /prologue/);
  rejects(12345, InvalidFreeError, /not an address of this heap/);
  rejects(b, DoubleFreeError, /already freed/);
  rejects(b + 32, DoubleFreeError, /lies in free block/);
  assert.throws(
    () => heap.usableSize(b),
    (e) => e instanceof InvalidAddressError && !(e instanceof InvalidFreeError),
  );
  assert.throws(() => heap.realloc(b, 10), DoubleFreeError);
  assert.throws(() => heap.free(NaN), InvalidFreeError);
  assert.throws(() => heap.free(String(a) as unknown as number), TypeError);
  assert.deepEqual(heap.stats(), before);
  heap.validate();
});

Deno.test("FirstFitAllocator reports a freed block merged into its neighbour as a double free", () => {
  using heap = pageHeap();
  const a = heap.malloc(64);
  const b = heap.malloc(64);
  heap.malloc(8);
  heap.free(a);
  heap.free(b); // merged into a: b's header is stale, still tagged free
  assert.throws(() => heap.free(b), DoubleFreeError);
  // Once the memory is handed out again, the stale address is inside a live block.
  assert.ok(blockFor(100) > b - a + HEADER_SIZE);
  assert.equal(heap.malloc(100), a);
  assert.throws(() => heap.free(b), /inside the block/);
  heap.validate();
});

Deno.test("FirstFitAllocator detects a corrupt free neighbour before changing anything", () => {
  using heap = pageHeap();
  const a = heap.malloc(64);
  const b = heap.malloc(64);
  heap.malloc(8);
  heap.free(b);
  // A write past the end of `a` that clobbers the size in b's header.
  const raw = new Int32Array(memoryView(b - HEADER_SIZE, HEADER_SIZE));
  const saved = raw[0]!;
  raw[0] = 1000;
  const before = heap.stats();
  assert.throws(() => heap.free(a), /heap corrupt: the free block at .* disagree/);
  assert.deepEqual(heap.stats(), before);
  assert.throws(() => heap.validate(), /invariant broken/);
  raw[0] = saved;
  heap.validate();
  heap.free(a);
  heap.validate();
});

Deno.test("FirstFitAllocator.calloc of a fresh chunk does not touch its pages", () => {
  using heap = new FirstFitAllocator();
  const before = Deno.memoryUsage().rss;
  const address = heap.calloc(1 << 18, 1024); // 256 MiB: a chunk of its own
  const after = Deno.memoryUsage().rss;
  assert.ok(after - before < 64 << 20, `resident grew by ${after - before} bytes`);
  assert.ok(heap.bytes(address, 4096).every((byte) => byte === 0));
  heap.free(address);
  assert.equal(heap.stats().mappedBytes, 0);
});

Deno.test("FirstFitAllocator.stats counts blocks with their headers and whole chunks", () => {
  using heap = new FirstFitAllocator();
  const a = heap.malloc(10);
  heap.malloc(5000);
  heap.free(a);
  heap.calloc(3, 3);
  assert.deepEqual(heap.stats(), {
    mappedBytes: DEFAULT_CHUNK_SIZE,
    peakMappedBytes: DEFAULT_CHUNK_SIZE,
    liveAllocations: 2,
    liveBytes: 5009,
    peakLiveBytes: 5010,
    allocatedBytes: blockFor(5000) + blockFor(9),
    totalAllocations: 3,
    totalFrees: 1,
    chunks: 1,
    freeBlocks: 1,
    freeBytes: DEFAULT_CHUNK_SIZE - CHUNK_OVERHEAD - blockFor(5000) - blockFor(9),
    systemCalls: { mmap: 1, munmap: 0, mremap: 0, madvise: 0, mprotect: 0 }, // the one chunk
  });
});

Deno.test("FirstFitAllocator methods throw HeapClosedError after close", () => {
  const heap = new FirstFitAllocator();
  heap.malloc(8);
  heap.close();
  assert.throws(() => heap.blocks(), HeapClosedError);
  assert.throws(() => heap.validate(), HeapClosedError);
  heap.close();
});

// --- when the OS says no -------------------------------------------------------------------------

/**
 * A heap of page-sized chunks over `os`: chunk 1 full of one live block, chunk 2 holding one live
 * block between two free ones, chunk 3 the empty spare. Freeing chunk 2's block empties it, and
 * with the spare taken that chunk goes back to the OS. Records both live blocks in `live`.
 */
function withSpare(os: FaultyOs, live: LiveBlocks): FirstFitAllocator {
  const heap = new FirstFitAllocator({ os, chunkSize: PAGE });
  const whole = PAGE - CHUNK_OVERHEAD - BLOCK_OVERHEAD;
  live.malloc(heap, whole);
  const before = heap.malloc(40);
  live.malloc(heap, 100);
  heap.free(before);
  heap.free(heap.malloc(whole)); // a third chunk, empty: the spare
  assert.equal(heap.stats().chunks, 3);
  return heap;
}

/** The block `withSpare` put between two free ones. */
const middle = (live: LiveBlocks) => live.addresses()[1]!;

Deno.test("FirstFitAllocator makes every system call through its os: a map per chunk, unmaps", () => {
  const os = new FaultyOs();
  const heap = new FirstFitAllocator({ os, chunkSize: PAGE });
  const a = heap.malloc(100);
  const big = heap.malloc(3 * PAGE);
  assert.deepEqual([os.calls.map, os.calls.unmap], [2, 0]);
  heap.free(big); // a chunk larger than chunkSize is no spare
  heap.free(a); // the first standard chunk to empty is the spare
  assert.deepEqual([os.calls.map, os.calls.unmap], [2, 1]);
  heap.close();
  assert.deepEqual([os.calls.map, os.calls.unmap], [2, 2]);
});

for (const verb of ["malloc", "calloc", "realloc"] as const) {
  Deno.test(`FirstFitAllocator.${verb} that needs a chunk the OS refuses changes nothing`, () => {
    const failed = failEachCall({
      call: "map",
      setup: withSpare,
      act(heap, live) {
        const size = 2 * PAGE; // fits no chunk: a chunk of its own
        if (verb === "realloc") {
          live.moved(heap, middle(live), heap.realloc(middle(live), size), size);
        } else {
          live.add(heap, verb === "malloc" ? heap.malloc(size) : heap.calloc(size, 1), size);
        }
      },
    });
    assert.equal(failed, 1, "the new chunk's one mmap");
  });
}

Deno.test("FirstFitAllocator.free that empties a chunk the OS will not unmap leaves it live", () => {
  const failed = failEachCall({
    call: "unmap",
    setup: withSpare,
    act(heap, live) {
      heap.free(middle(live));
      live.delete(middle(live));
    },
  });
  assert.equal(failed, 1);
  const big = failEachCall({
    call: "unmap",
    setup(os, live) {
      const heap = new FirstFitAllocator({ os, chunkSize: PAGE });
      live.malloc(heap, 10);
      live.malloc(heap, 3 * PAGE);
      return heap;
    },
    act(heap, live) {
      const address = live.addresses()[1]!;
      heap.free(address);
      live.delete(address);
    },
  });
  assert.equal(big, 1, "a chunk larger than chunkSize is unmapped when it empties");
});

Deno.test("FirstFitAllocator.realloc that moves out of a chunk the OS will not unmap stays", () => {
  const failed = failEachCall({
    call: "unmap",
    setup: withSpare,
    act(heap, live) {
      const moved = heap.realloc(middle(live), 2 * PAGE);
      live.moved(heap, middle(live), moved, 2 * PAGE);
    },
  });
  assert.equal(failed, 1, "the emptied chunk's munmap (a refused one is undone by another)");
});

Deno.test("FirstFitAllocator.close that the OS refuses half-way stays open, whole and retryable", () => {
  const failed = failEachCall({
    call: "unmap",
    setup: withSpare,
    act: (heap) => heap.close(),
    closes: true,
  });
  assert.equal(failed, 3, "one munmap per chunk, each failed once");
  const os = new FaultyOs();
  const heap = new FirstFitAllocator({ os, chunkSize: PAGE });
  const first = heap.malloc(PAGE - CHUNK_OVERHEAD - BLOCK_OVERHEAD);
  const blocks = Array.from({ length: 9 }, () => heap.malloc(300));
  for (const address of blocks.filter((_, i) => i % 2 === 0)) heap.free(address);
  assert.equal(heap.stats().chunks, 2);
  os.fail("unmap");
  assert.throws(() => heap.close(), OsError);
  assert.equal(heap.stats().chunks, 2, "the first munmap refused: nothing unmapped");
  os.fail("unmap", 1);
  assert.throws(() => heap.close(), OsError);
  assert.equal(heap.stats().chunks, 1);
  assert.throws(() => heap.usableSize(first), InvalidAddressError);
  for (const address of blocks.filter((_, i) => i % 2 === 1)) heap.usableSize(address);
  heap.validate();
  for (let i = 0; i < 5; i++) heap.malloc(300); // the holes and the rest of the chunk left
  assert.equal(heap.stats().chunks, 1);
  heap.validate();
  heap.close();
  assert.throws(() => heap.stats(), HeapClosedError);
});

Deno.test("FirstFitAllocator.realloc refused twice in a row keeps the new block, counted", () => {
  const os = new FaultyOs();
  const live = new LiveBlocks();
  const heap = withSpare(os, live);
  const before = heap.stats();
  os.fail("unmap", 0, { sticky: true }); // the old chunk's munmap, then the new chunk's
  assert.throws(() => heap.realloc(middle(live), 2 * PAGE), OsError);
  assert.equal(os.calls.unmap, 2);
  heap.validate();
  live.check(heap);
  const after = heap.stats();
  assert.equal(after.liveAllocations, before.liveAllocations + 1, "the new block stays live");
  assert.equal(after.chunks, before.chunks + 1);
  os.heal();
  heap.close();
});
