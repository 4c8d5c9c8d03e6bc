// SegregatedAllocator over real native memory (needs --allow-ffi): the contract, then the class
// table, span geometry, page lookup, one class per span, large blocks and the checks of the tags.
import assert from "node:assert/strict";
import {
  DoubleFreeError,
  HeapClosedError,
  InvalidAddressError,
  InvalidFreeError,
  LARGEST_SIZE_CLASS,
  OsError,
  OutOfMemoryError,
  SegregatedAllocator,
  type SegregatedOptions,
  SIZE_CLASSES,
} from "../mod.ts";
import {
  CLASS_INDEX,
  MAX_SPAN_BYTES,
  MIN_BLOCKS_PER_SPAN,
} from "../src/family/segregated_allocator.ts";
import { pageSize } from "../ffi/libc.ts";
import { contractSuite, failEachCall, LiveBlocks } from "./_contract.ts";
import { FaultyOs } from "./_faulty_os.ts";

const PAGE = pageSize();
// Requests above the largest class (64 KiB): large blocks, each a mapping of its own. (The largest
// class was 2048 bytes; the tests of large blocks used 5000 bytes and 3 to 5 pages then.)
const LARGE = 100_000;
const LARGE_PAGES = 20 * PAGE;
/** Larger than the large-block cache takes (`MAX_CACHED`, 32 MiB): its free unmaps it. */
const UNCACHED = 40 << 20;

contractSuite("SegregatedAllocator", () => new SegregatedAllocator(), {
  detectsDoubleFree: true,
  detectsInvalidFree: true,
  reusesMemory: true,
});

// No cached spans: every emptied span is unmapped at once, so double frees land in released spans.
contractSuite(
  "SegregatedAllocator without cached spans",
  () => new SegregatedAllocator({ spanCacheBytes: 0 }),
  { detectsDoubleFree: true, detectsInvalidFree: true, reusesMemory: true },
);

/** The smallest class that holds `size`, found the slow way. */
function expectedClass(size: number): number {
  return SIZE_CLASSES.find((classSize) => classSize >= size)!;
}

/** Blocks a span of the class `size` is made for: 8, or what fits in MAX_SPAN_BYTES, at least 1. */
function blocksFor(size: number): number {
  return Math.max(1, Math.min(MIN_BLOCKS_PER_SPAN, Math.floor(MAX_SPAN_BYTES / size)));
}

/** Bytes of a span of the class `size`: the fewest pages holding `blocksFor(size)` blocks. */
function spanLength(size: number): number {
  return Math.ceil((blocksFor(size) * size) / PAGE) * PAGE;
}

Deno.test("SegregatedAllocator constructor checks spanCacheBytes", () => {
  for (const bad of [-1, 1.5, NaN]) {
    assert.throws(() => new SegregatedAllocator({ spanCacheBytes: bad }), RangeError);
  }
  using heap = new SegregatedAllocator({ spanCacheBytes: Infinity });
  assert.equal(heap.stats().mappedBytes, 0, "no span before the first request");
});

Deno.test("SegregatedAllocator class table maps every size to the smallest class that holds it", () => {
  assert.equal(SIZE_CLASSES.length, 44);
  assert.equal(SIZE_CLASSES.at(-1), LARGEST_SIZE_CLASS);
  assert.ok(SIZE_CLASSES.every((size) => size % 16 === 0), "every class keeps 16-byte alignment");
  for (let i = 8; i < SIZE_CLASSES.length; i++) {
    const [previous, size] = [SIZE_CLASSES[i - 1]!, SIZE_CLASSES[i]!];
    assert.ok((size - previous) / size <= 0.2, `class ${size}: at most a fifth is rounding`);
  }
  assert.equal(CLASS_INDEX.length, LARGEST_SIZE_CLASS / 16 + 1);
  using heap = new SegregatedAllocator();
  for (let size = 0; size <= LARGEST_SIZE_CLASS; size++) {
    assert.equal(SIZE_CLASSES[CLASS_INDEX[(size + 15) >> 4]!], expectedClass(size), `size ${size}`);
    assert.equal(heap.classSize(size), Math.max(16, expectedClass(size)));
  }
  // The worked examples of the module documentation.
  assert.equal(CLASS_INDEX[(100 + 15) >> 4], 6);
  assert.equal(SIZE_CLASSES[6], 112);
  assert.equal(CLASS_INDEX[(120 + 15) >> 4], 7);
  assert.equal(SIZE_CLASSES[7], 128);
  assert.equal(CLASS_INDEX[(1000 + 15) >> 4], 19);
  assert.equal(SIZE_CLASSES[19], 1024);
  assert.equal(heap.classSize(0), 16);
  assert.equal(heap.classSize(LARGEST_SIZE_CLASS + 1), LARGEST_SIZE_CLASS + PAGE);
  assert.equal(heap.classSize(LARGE_PAGES + 1), LARGE_PAGES + PAGE);
  assert.throws(() => heap.classSize(-1), RangeError);
});

Deno.test("SegregatedAllocator spans: the fewest pages holding 8 blocks (or 32 KiB of them)", () => {
  using heap = new SegregatedAllocator();
  for (const size of SIZE_CLASSES) {
    const first = heap.malloc(size);
    const span = heap.spans().find((span) => span.address === first)!;
    assert.equal(span.classSize, size);
    assert.equal(span.length, spanLength(size));
    assert.equal(span.blocks, Math.floor(spanLength(size) / size));
    assert.ok(span.blocks >= blocksFor(size));
    assert.ok(size > 4096 || span.blocks >= MIN_BLOCKS_PER_SPAN, "8 blocks up to 4 KiB blocks");
    if (span.length > PAGE) {
      assert.ok((span.length - PAGE) / size < blocksFor(size), "one page fewer would not do");
    }
    assert.ok(span.length % size <= span.length / 16, `class ${size} wastes at most 1/16`);
    for (let i = 1; i < span.blocks; i++) assert.equal(heap.malloc(size), first + i * size);
  }
  assert.equal(heap.stats().spans, SIZE_CLASSES.length);
  heap.validate();
});

Deno.test("SegregatedAllocator finds a block's span by rounding its address down to the page", () => {
  using heap = new SegregatedAllocator();
  const size = 1024;
  const span = spanLength(size);
  const blocks = Array.from({ length: span / size }, () => heap.malloc(size));
  const base = blocks[0]!;
  assert.equal(base % PAGE, 0);
  // Every block, on whichever page of the span, is found from its own page.
  for (const [i, address] of blocks.entries()) {
    assert.equal(address, base + i * size);
    assert.equal(Math.floor(address / PAGE) * PAGE, base + Math.floor((i * size) / PAGE) * PAGE);
    assert.equal(heap.usableSize(address), size);
  }
  const last = blocks.at(-1)!;
  assert.throws(() => heap.free(last + 16), /inside the 1024-byte block at .*, not at its start/);
  heap.free(last);
  assert.equal(heap.malloc(size), last, "the only free block of the span");
  heap.validate();
});

Deno.test("SegregatedAllocator puts each class in spans of its own", () => {
  using heap = new SegregatedAllocator();
  const sizes = [1, 100, 17, 2000, 48, 100, 1, 640, 17, 2048, 129, 0];
  const blocks = sizes.map((size) => [heap.malloc(size), size] as const);
  const spans = heap.spans();
  assert.equal(spans.length, new Set(sizes.map((size) => heap.classSize(size))).size);
  for (const [address, size] of blocks) {
    const span = spans.find((span) =>
      address >= span.address && address < span.address + span.length
    )!;
    assert.equal(span.classSize, heap.classSize(size), `malloc(${size})`);
    assert.equal((address - span.address) % span.classSize, 0);
    assert.equal(heap.usableSize(address), span.classSize);
  }
  assert.equal(spans.reduce((sum, span) => sum + span.live, 0), sizes.length);
  heap.validate();
});

Deno.test("SegregatedAllocator gives requests above the largest class their own mapping", () => {
  using heap = new SegregatedAllocator();
  const small = heap.malloc(LARGEST_SIZE_CLASS);
  const large = heap.malloc(LARGEST_SIZE_CLASS + 1);
  assert.equal(large % PAGE, 0);
  assert.equal(heap.usableSize(large), LARGEST_SIZE_CLASS + PAGE);
  let stats = heap.stats();
  assert.equal(stats.spans, 1);
  assert.equal(stats.smallAllocations, 1);
  assert.equal(stats.largeAllocations, 1);
  assert.equal(stats.mappedBytes, spanLength(LARGEST_SIZE_CLASS) + LARGEST_SIZE_CLASS + PAGE);
  assert.equal(stats.allocatedBytes, LARGEST_SIZE_CLASS + LARGEST_SIZE_CLASS + PAGE);
  heap.free(large);
  stats = heap.stats();
  // The large block's pages stay mapped, cached for the next large request.
  assert.equal(stats.mappedBytes, spanLength(LARGEST_SIZE_CLASS) + LARGEST_SIZE_CLASS + PAGE);
  assert.equal(stats.largeAllocations, 0);
  assert.throws(() => heap.free(large), {
    name: "DoubleFreeError",
    message: /large block was already freed/,
  });
  const big = heap.malloc(LARGE_PAGES);
  assert.throws(() => heap.free(big + PAGE), /inside the large block/);
  heap.free(big);
  heap.free(small);
  heap.validate();
});

Deno.test("SegregatedAllocator.free detects a double free with the block's tag", () => {
  using heap = new SegregatedAllocator();
  const keep = heap.malloc(8);
  const a = heap.malloc(8);
  heap.bytes(keep).fill(9);
  heap.free(a);
  const before = heap.stats();
  assert.throws(() => heap.free(a), {
    name: "DoubleFreeError",
    message: /this 16-byte block was already freed/,
  });
  assert.throws(() => heap.realloc(a, 100), DoubleFreeError);
  assert.throws(() => heap.usableSize(a), (e) => {
    return e instanceof InvalidAddressError && !(e instanceof InvalidFreeError);
  });
  // The block after `a` is free too, but was never handed out: an invalid free, not a double one.
  assert.throws(() => heap.free(a + 16), (e) => {
    assert.ok(e instanceof InvalidFreeError && !(e instanceof DoubleFreeError), String(e));
    assert.match((e as Error).message, /never handed out/);
    return true;
  });
  assert.deepEqual(heap.stats(), before);
  assert.ok(heap.bytes(keep).every((byte) => byte === 9));
  // Once handed out again, the block is live and can be freed once more.
  assert.equal(heap.malloc(16), a);
  heap.free(a);
  heap.validate();
});

Deno.test("SegregatedAllocator.free rejects interior, tail and foreign addresses intact", () => {
  using heap = new SegregatedAllocator();
  const a = heap.malloc(48);
  heap.malloc(48);
  const before = heap.stats();
  const rejects = (address: number, pattern: RegExp) =>
    assert.throws(() => heap.free(address), (e) => {
      assert.ok(e instanceof InvalidFreeError && !(e instanceof DoubleFreeError), String(e));
      assert.equal(e.address, address);
      assert.match(e.message, pattern);
      return true;
    });
  rejects(a + 16, /inside the 48-byte block/);
  rejects(a + 1, /inside the 48-byte block/);
  const span = heap.spans()[0]!;
  if (span.length % 48 !== 0) {
    rejects(span.address + span.blocks * 48, /unused tail of the 48-byte span/);
  }
  rejects(12345, /not an address of this heap/);
  rejects(a - PAGE * 1000, /not an address of this heap/);
  assert.throws(() => heap.free(NaN), InvalidFreeError);
  assert.throws(() => heap.free(String(a) as unknown as number), TypeError);
  assert.deepEqual(heap.stats(), before);
  heap.validate();
});

Deno.test("SegregatedAllocator.malloc takes the lowest free block, from a span with room", () => {
  using heap = new SegregatedAllocator();
  const size = 64;
  const perSpan = spanLength(size) / size;
  const first = Array.from({ length: perSpan }, () => heap.malloc(size));
  const second = heap.malloc(size); // the first span is full: a new one
  assert.equal(heap.stats().spans, 2);
  assert.ok(second < first[0]! || second >= first[0]! + spanLength(size));
  heap.free(first[7]!);
  heap.free(first[3]!);
  // The span that got room back is used before the other one, lowest block first.
  assert.equal(heap.malloc(size), first[3]);
  assert.equal(heap.malloc(size), first[7]);
  assert.equal(heap.malloc(size), second + size);
  heap.validate();
});

Deno.test("SegregatedAllocator caches empty spans up to spanCacheBytes, oldest out first", () => {
  const size = 16;
  const span = spanLength(size);
  using heap = new SegregatedAllocator({ spanCacheBytes: 2 * span });
  const perSpan = span / size;
  const blocks = Array.from({ length: 4 * perSpan }, () => heap.malloc(size));
  const spanOf = (i: number) => blocks.slice(i * perSpan, (i + 1) * perSpan);
  assert.equal(heap.stats().spans, 4);
  for (const i of [2, 0]) for (const address of spanOf(i)) heap.free(address);
  assert.equal(heap.stats().spans, 4, "two empty spans fit the cache");
  assert.equal(heap.stats().cachedBytes, 2 * span);
  for (const address of spanOf(3)) heap.free(address);
  // Three empty spans: span 2, emptied first, is unmapped; spans 0 and 3 stay.
  assert.equal(heap.stats().spans, 3);
  assert.equal(heap.stats().cachedBytes, 2 * span);
  assert.equal(heap.stats().mappedBytes, 3 * span);
  assert.equal(heap.stats().peakMappedBytes, 4 * span);
  const mapped = heap.spans().map((s) => s.address);
  assert.ok(!mapped.includes(blocks[2 * perSpan]!) && mapped.includes(blocks[0]!));
  // A double free into the unmapped span is still recognised.
  const lost = blocks[2 * perSpan + 5]!;
  assert.throws(() => heap.free(lost), /given back to the OS .* \(double free\?\)/);
  assert.throws(() => heap.free(lost), DoubleFreeError);
  // A cached span that gets a block leaves the cache; span 1 (partly used) is filled first.
  heap.free(blocks[perSpan]!);
  assert.equal(heap.malloc(size), blocks[perSpan]);
  assert.equal(heap.malloc(size) % span, 0, "then block 0 of a cached span");
  assert.equal(heap.stats().cachedBytes, span);
  heap.validate();
});

Deno.test("SegregatedAllocator: a full cache does not make a malloc/free loop map each turn", () => {
  using heap = new SegregatedAllocator({ spanCacheBytes: spanLength(16) });
  heap.free(heap.malloc(16)); // the cache is full of a class-16 span
  for (let i = 0; i < 50; i++) heap.free(heap.malloc(100));
  // Each free of the 112-byte span evicts the older class-16 span, not itself; then it stays.
  assert.deepEqual(heap.spans().map((span) => span.classSize), [112]);
  assert.equal(heap.stats().peakMappedBytes, spanLength(16) + spanLength(112));
  heap.validate();
});

Deno.test("SegregatedAllocator with spanCacheBytes 0 unmaps every emptied span", () => {
  using heap = new SegregatedAllocator({ spanCacheBytes: 0 });
  const a = heap.malloc(100);
  const b = heap.malloc(1000);
  heap.free(a);
  heap.free(b);
  assert.equal(heap.stats().mappedBytes, 0);
  assert.equal(heap.stats().spans, 0);
  assert.throws(() => heap.free(a), DoubleFreeError);
  heap.validate();
});

Deno.test("SegregatedAllocator.realloc stays in its class, moves across classes and to pages", () => {
  using heap = new SegregatedAllocator();
  let address = heap.malloc(100); // class 112
  heap.bytes(address, 100).fill(5);
  assert.equal(heap.realloc(address, 112), address);
  address = heap.realloc(address, 113); // class 128: moves
  assert.equal(heap.usableSize(address), 128);
  assert.equal(heap.realloc(address, 113), address, "113 is still class 128");
  assert.equal(heap.realloc(address, 128), address);
  assert.equal(heap.stats().liveBytes, 128);
  address = heap.realloc(address, 129);
  assert.equal(heap.usableSize(address), 160);
  assert.ok(heap.bytes(address, 100).every((byte) => byte === 5));
  address = heap.realloc(address, LARGE); // to a mapping of its own
  assert.equal(address % PAGE, 0);
  assert.ok(heap.bytes(address, 100).every((byte) => byte === 5));
  heap.bytes(address, 50_000).fill(6);
  address = heap.realloc(address, 3_000_000); // mremap on Linux
  assert.ok(heap.bytes(address, 50_000).every((byte) => byte === 6));
  address = heap.realloc(address, 2000); // back to a class
  assert.equal(heap.usableSize(address), 2048);
  assert.ok(heap.bytes(address, 2000).every((byte) => byte === 6));
  const stats = heap.stats();
  assert.equal(stats.liveAllocations, 1);
  assert.equal(stats.liveBytes, 2000);
  assert.equal(stats.largeAllocations, 0);
  heap.validate();
});

Deno.test("SegregatedAllocator.realloc leaves the block untouched when it fails", () => {
  using heap = new SegregatedAllocator();
  const small = heap.malloc(100);
  const large = heap.malloc(LARGE);
  heap.bytes(small, 100).fill(1);
  heap.bytes(large, LARGE).fill(2);
  const before = heap.stats();
  assert.throws(() => heap.realloc(small, 2 ** 46), OutOfMemoryError);
  assert.throws(() => heap.realloc(large, 2 ** 46), OutOfMemoryError);
  assert.throws(() => heap.realloc(small, -1), RangeError);
  // Only the refused calls are new: the small block's mmap; the large block's mremap, then the
  // mmap of the copy it falls back to.
  const calls = before.systemCalls;
  assert.deepEqual(heap.stats(), {
    ...before,
    systemCalls: { ...calls, mmap: calls.mmap + 2, mremap: calls.mremap + 1 },
  });
  assert.ok(heap.bytes(small, 100).every((byte) => byte === 1));
  assert.ok(heap.bytes(large, LARGE).every((byte) => byte === 2));
  heap.validate();
});

Deno.test("SegregatedAllocator.stats counts class sizes, pages and spans", () => {
  using heap = new SegregatedAllocator();
  const a = heap.malloc(10);
  heap.malloc(LARGE);
  heap.free(a);
  heap.calloc(3, 3);
  assert.deepEqual(heap.stats(), {
    mappedBytes: spanLength(16) + Math.ceil(LARGE / PAGE) * PAGE,
    peakMappedBytes: spanLength(16) + Math.ceil(LARGE / PAGE) * PAGE,
    liveAllocations: 2,
    liveBytes: LARGE + 9,
    peakLiveBytes: LARGE + 10,
    allocatedBytes: 16 + Math.ceil(LARGE / PAGE) * PAGE,
    totalAllocations: 3,
    totalFrees: 1,
    spans: 1,
    cachedBytes: 0,
    smallAllocations: 1,
    largeAllocations: 1,
    systemCalls: { mmap: 2, munmap: 0, mremap: 0, madvise: 0, mprotect: 0 }, // a span, a block
  });
});

Deno.test("SegregatedAllocator methods throw HeapClosedError after close", () => {
  const heap = new SegregatedAllocator();
  heap.malloc(8);
  heap.close();
  assert.throws(() => heap.spans(), HeapClosedError);
  assert.throws(() => heap.validate(), HeapClosedError);
  heap.close();
});

// --- when the OS says no -------------------------------------------------------------------------

/** A heap over `os` (and `options`) with a live block of each of `sizes`, recorded in `live`. */
function oneOfEach(
  os: FaultyOs,
  live: LiveBlocks,
  sizes: number[],
  options: SegregatedOptions = {},
): SegregatedAllocator {
  const heap = new SegregatedAllocator({ ...options, os });
  for (const size of sizes) live.malloc(heap, size);
  return heap;
}

/** Frees the `n`-th recorded block and forgets it. */
function freeNth(heap: SegregatedAllocator, live: LiveBlocks, n: number): void {
  const address = live.addresses()[n]!;
  heap.free(address);
  live.delete(address);
}

Deno.test("SegregatedAllocator makes every system call through its os", () => {
  const os = new FaultyOs();
  const heap = new SegregatedAllocator({ os, spanCacheBytes: 0 });
  assert.equal(heap.pageSize, os.pageSize());
  const small = heap.malloc(100);
  // Grown beyond COPY_LIMIT (256 KiB): moved by mremap, not copied.
  const large = heap.realloc(heap.malloc(LARGE), 300 << 10);
  assert.deepEqual([os.calls.map, os.calls.remap, os.calls.unmap], [2, 1, 0]);
  heap.free(small); // an emptied span, with no cache: unmapped
  heap.free(large); // cached: large blocks' pages are kept for reuse
  assert.deepEqual([os.calls.map, os.calls.remap, os.calls.unmap], [2, 1, 1]);
  heap.malloc(16);
  heap.close();
  assert.deepEqual([os.calls.map, os.calls.remap, os.calls.unmap], [3, 1, 3]);
});

for (const [what, size] of [["a span", 100], ["a large block", LARGE_PAGES]] as const) {
  Deno.test(`SegregatedAllocator.malloc and calloc that need ${what} the OS refuses`, () => {
    for (const zeroed of [false, true]) {
      const failed = failEachCall({
        call: "map",
        setup: (os, live) => oneOfEach(os, live, [16, LARGE]),
        act(heap, live) {
          live.add(heap, zeroed ? heap.calloc(1, size) : heap.malloc(size), size);
        },
      });
      assert.equal(failed, 1);
    }
  });
}

for (
  // (A refused mremap is no error: the block is copied into other pages; see mappings_test.ts.)
  const [from, to, call] of [[100, 200, "map"], [100, LARGE_PAGES, "map"], [
    LARGE,
    100,
    "map",
  ]] as const
) {
  Deno.test(`SegregatedAllocator.realloc from ${from} to ${to} bytes when the OS refuses ${call}`, () => {
    const failed = failEachCall({
      call,
      setup: (os, live) => oneOfEach(os, live, [16, from]),
      act(heap, live) {
        const address = live.addresses()[1]!;
        live.moved(heap, address, heap.realloc(address, to), to);
      },
    });
    assert.equal(failed, 1);
  });
}

Deno.test("SegregatedAllocator.free of a large block the OS will not unmap leaves it live", () => {
  const failed = failEachCall({
    call: "unmap",
    setup: (os, live) => oneOfEach(os, live, [16, UNCACHED]),
    act: (heap, live) => freeNth(heap, live, 1),
  });
  assert.equal(failed, 1);
});

Deno.test("SegregatedAllocator.free that empties a span the OS will not unmap leaves it live", () => {
  const failed = failEachCall({
    call: "unmap",
    setup: (os, live) => oneOfEach(os, live, [16, 100], { spanCacheBytes: 0 }),
    act: (heap, live) => freeNth(heap, live, 1),
  });
  assert.equal(failed, 1, "no cache: the emptied span itself");
});

Deno.test("SegregatedAllocator.free whose cache evictions the OS refuses leaves the block live", () => {
  // Two one-page spans in the cache, full; emptying a two-page span evicts both, oldest first.
  const page = (size: number) => spanLength(size) === PAGE;
  assert.ok(page(16) && page(32) && spanLength(640) === 2 * PAGE);
  const failed = failEachCall({
    call: "unmap",
    setup(os, live) {
      const heap = oneOfEach(os, live, [16, 32, 640, 48], { spanCacheBytes: 2 * PAGE });
      freeNth(heap, live, 0);
      freeNth(heap, live, 0);
      assert.equal(heap.stats().cachedBytes, 2 * PAGE);
      return heap;
    },
    act: (heap, live) => freeNth(heap, live, 0),
  });
  assert.equal(failed, 2, "one munmap per evicted span, each failed once");
});

Deno.test("SegregatedAllocator.realloc out of a span the OS will not unmap stays", () => {
  for (const to of [200, LARGE_PAGES]) {
    const failed = failEachCall({
      call: "unmap",
      setup: (os, live) => oneOfEach(os, live, [16, 100], { spanCacheBytes: 0 }),
      act(heap, live) {
        const address = live.addresses()[1]!;
        live.moved(heap, address, heap.realloc(address, to), to);
      },
    });
    assert.equal(failed, 1, "the emptied span's munmap (a refused one is undone by another)");
  }
  const large = failEachCall({
    call: "unmap",
    setup: (os, live) => oneOfEach(os, live, [16, UNCACHED]),
    act(heap, live) {
      const address = live.addresses()[1]!;
      live.moved(heap, address, heap.realloc(address, 100), 100);
    },
  });
  assert.equal(large, 1, "from a large block to a class: the large block's munmap");
});

Deno.test("SegregatedAllocator.close that the OS refuses half-way stays open, whole and retryable", () => {
  const failed = failEachCall({
    call: "unmap",
    setup(os, live) {
      const heap = oneOfEach(os, live, [16, 17, 100, LARGE, LARGE_PAGES, 2000]);
      freeNth(heap, live, 0); // an empty span, cached
      heap.free(heap.malloc(18)); // a free block beside the live one of class 32
      return heap;
    },
    act: (heap) => heap.close(),
    closes: true,
  });
  assert.equal(failed, 6, "four spans and two large blocks, one munmap each");
});

Deno.test("SegregatedAllocator.realloc refused twice in a row keeps the new block, counted", () => {
  const os = new FaultyOs();
  const live = new LiveBlocks();
  const heap = oneOfEach(os, live, [16, 100], { spanCacheBytes: 0 });
  const before = heap.stats();
  os.fail("unmap", 0, { sticky: true }); // the old span's munmap, then the new span's
  assert.throws(() => heap.realloc(live.addresses()[1]!, 200), OsError);
  assert.equal(os.calls.unmap, 2);
  heap.validate();
  live.check(heap);
  const after = heap.stats();
  assert.equal(after.liveAllocations, before.liveAllocations + 1, "the new block stays live");
  assert.equal(after.spans, before.spans + 1);
  os.heal();
  heap.close();
});
