// MmapAllocator over real native memory (needs --allow-ffi).
import assert from "node:assert/strict";
import {
  DoubleFreeError,
  HeapClosedError,
  InvalidAddressError,
  InvalidFreeError,
  MmapAllocator,
  OsError,
  OutOfMemoryError,
} from "../mod.ts";
import { pageSize, protectMemory } from "../ffi/libc.ts";
import { contractSuite, failEachCall, type LiveBlocks } from "./_contract.ts";
import { FaultyOs } from "./_faulty_os.ts";

const PAGE = pageSize();

/** True while the page at `address` is mapped (mprotect fails with ENOMEM on unmapped memory). */
function isMapped(address: number): boolean {
  return protectMemory(address, PAGE, "read-write");
}

Deno.test("MmapAllocator maps nothing until the first request", () => {
  using heap = new MmapAllocator();
  assert.equal(heap.pageSize, PAGE);
  assert.equal(heap.stats().mappedBytes, 0);
  heap.validate();
});

Deno.test("MmapAllocator.malloc maps each request rounded up to whole pages", () => {
  using heap = new MmapAllocator();
  const cases = [[0, PAGE], [1, PAGE], [PAGE, PAGE], [PAGE + 1, 2 * PAGE], [
    5 * PAGE - 7,
    5 * PAGE,
  ]];
  let mapped = 0;
  for (const [size, length] of cases) {
    const address = heap.malloc(size!);
    assert.equal(address % PAGE, 0);
    assert.equal(heap.usableSize(address), length);
    assert.equal(heap.bytes(address).length, length);
    mapped += length!;
    assert.equal(heap.stats().mappedBytes, mapped, `after malloc(${size})`);
  }
  const stats = heap.stats();
  assert.equal(stats.allocatedBytes, mapped);
  assert.equal(stats.liveBytes, 0 + 1 + PAGE + PAGE + 1 + 5 * PAGE - 7);
  assert.equal(stats.liveAllocations, cases.length);
  heap.validate();
});

Deno.test("MmapAllocator.malloc(0) returns a unique page that must be freed", () => {
  using heap = new MmapAllocator();
  const a = heap.malloc(0);
  const b = heap.malloc(0);
  assert.notEqual(a, 0);
  assert.notEqual(a, b);
  heap.free(a);
  heap.free(b);
  assert.equal(heap.stats().mappedBytes, 0);
  assert.equal(heap.stats().peakMappedBytes, 2 * PAGE);
});

Deno.test("MmapAllocator.free unmaps the block at once", () => {
  using heap = new MmapAllocator();
  const address = heap.malloc(3 * PAGE);
  assert.ok(isMapped(address + 2 * PAGE));
  heap.free(address);
  assert.equal(isMapped(address), false);
  assert.equal(isMapped(address + 2 * PAGE), false);
  assert.equal(heap.stats().mappedBytes, 0);
  assert.equal(heap.stats().totalFrees, 1);
});

Deno.test("MmapAllocator.calloc of a large block does not touch its pages", () => {
  using heap = new MmapAllocator();
  const before = Deno.memoryUsage().rss;
  const address = heap.calloc(1 << 18, 1024); // 256 MiB
  assert.ok(Deno.memoryUsage().rss - before < 32 << 20, "calloc wrote the pages");
  assert.ok(heap.bytes(address, PAGE).every((byte) => byte === 0));
  assert.equal(heap.stats().liveBytes, 1 << 28);
  heap.free(address);
});

Deno.test("MmapAllocator.realloc stays in place within the page count and keeps contents", () => {
  using heap = new MmapAllocator();
  let address = heap.malloc(100);
  heap.bytes(address, 4).set([1, 2, 3, 4]);
  assert.equal(heap.realloc(address, PAGE), address);
  assert.equal(heap.realloc(address, 1), address);
  assert.equal(heap.stats().liveBytes, 1);
  assert.equal(heap.stats().totalAllocations, 1);
  address = heap.realloc(address, 300 * PAGE);
  assert.equal(heap.bytes(address, 1)[0], 1);
  assert.equal(heap.usableSize(address), 300 * PAGE);
  heap.bytes(address).fill(7, 0, 300 * PAGE);
  address = heap.realloc(address, 2 * PAGE + 1);
  assert.equal(heap.usableSize(address), 3 * PAGE);
  assert.ok(heap.bytes(address).every((byte) => byte === 7));
  const stats = heap.stats();
  assert.equal(stats.mappedBytes, 3 * PAGE);
  assert.equal(stats.liveBytes, 2 * PAGE + 1);
  assert.equal(stats.totalAllocations - stats.totalFrees, 1);
  heap.validate();
});

Deno.test("MmapAllocator.realloc and malloc leave everything as it was when the OS refuses", () => {
  using heap = new MmapAllocator();
  const address = heap.malloc(10_000);
  heap.bytes(address).fill(0x5a);
  const before = heap.stats();
  // 64 TiB is a valid size but more than any machine here can back.
  assert.throws(() => heap.malloc(2 ** 46), (e) => {
    assert.ok(e instanceof OutOfMemoryError);
    assert.equal(e.errno, 12);
    return true;
  });
  assert.throws(() => heap.realloc(address, 2 ** 46), OutOfMemoryError);
  assert.throws(() => heap.calloc(2 ** 23, 2 ** 23), OutOfMemoryError);
  // Only the three refused calls are new: two mmap and one mremap.
  const calls = before.systemCalls;
  assert.deepEqual(heap.stats(), {
    ...before,
    systemCalls: { ...calls, mmap: calls.mmap + 2, mremap: calls.mremap + 1 },
  });
  assert.ok(heap.bytes(address).every((byte) => byte === 0x5a));
  heap.validate();
});

Deno.test("MmapAllocator.free names interior, foreign and already freed addresses", () => {
  using heap = new MmapAllocator();
  const block = heap.malloc(3 * PAGE);
  const gone = heap.malloc(10);
  heap.free(gone);
  const before = heap.stats();
  assert.throws(() => heap.free(block + PAGE), {
    name: "InvalidFreeError",
    message: /inside the block at 0x[0-9a-f]+, not at its start/,
  });
  assert.throws(() => heap.free(12345), {
    name: "InvalidFreeError",
    message: /not an address of this heap/,
  });
  assert.throws(() => heap.free(gone), { name: "DoubleFreeError", message: /already freed/ });
  assert.throws(() => heap.realloc(gone, 1), DoubleFreeError);
  assert.throws(() => heap.realloc(block + 1, 1), InvalidFreeError);
  assert.throws(() => heap.usableSize(gone), InvalidAddressError);
  assert.throws(() => heap.bytes(block, 3 * PAGE + 1), new RegExp(`holds ${3 * PAGE} bytes`));
  assert.deepEqual(heap.stats(), before);
  heap.validate();
});

Deno.test("MmapAllocator.stats counts requested and page-rounded bytes", () => {
  using heap = new MmapAllocator();
  const a = heap.malloc(10);
  const b = heap.calloc(3, PAGE);
  heap.free(a);
  assert.deepEqual(heap.stats(), {
    mappedBytes: 3 * PAGE,
    peakMappedBytes: 4 * PAGE,
    liveAllocations: 1,
    liveBytes: 3 * PAGE,
    peakLiveBytes: 3 * PAGE + 10,
    allocatedBytes: 3 * PAGE,
    totalAllocations: 2,
    totalFrees: 1,
    systemCalls: { mmap: 2, munmap: 1, mremap: 0, madvise: 0, mprotect: 0 }, // a call per block
  });
  heap.free(b);
});

Deno.test("MmapAllocator.close unmaps every block and later calls throw HeapClosedError", () => {
  const heap = new MmapAllocator();
  const a = heap.malloc(10);
  const b = heap.malloc(5 * PAGE);
  heap.close();
  assert.equal(isMapped(a), false);
  assert.equal(isMapped(b + 4 * PAGE), false);
  assert.throws(() => heap.validate(), HeapClosedError);
  assert.throws(() => heap.free(a), { name: "HeapClosedError", message: /Cannot call free/ });
  heap.close();
});

// --- when the OS says no -------------------------------------------------------------------------

/** An allocator over `os` with three live blocks of 1, 3 and 2 pages. */
function threeBlocks(os: FaultyOs, live: LiveBlocks): MmapAllocator {
  const heap = new MmapAllocator({ os });
  for (const size of [100, 3 * PAGE - 5, PAGE + 1]) live.malloc(heap, size);
  return heap;
}

Deno.test("MmapAllocator makes every system call through its os: map, unmap, remap", () => {
  const os = new FaultyOs();
  const heap = new MmapAllocator({ os });
  assert.equal(heap.pageSize, os.pageSize());
  const a = heap.malloc(10);
  heap.realloc(heap.calloc(1, 10), 3 * PAGE);
  heap.free(a);
  assert.deepEqual([os.calls.map, os.calls.remap, os.calls.unmap], [2, 1, 1]);
  heap.close();
  assert.deepEqual([os.calls.map, os.calls.remap, os.calls.unmap], [2, 1, 2]);
});

for (const verb of ["malloc", "calloc"] as const) {
  Deno.test(`MmapAllocator.${verb} that the OS refuses changes nothing`, () => {
    const failed = failEachCall({
      call: "map",
      setup: threeBlocks,
      act(heap, live) {
        live.add(heap, verb === "malloc" ? heap.malloc(5000) : heap.calloc(50, 100), 5000);
      },
    });
    assert.equal(failed, 1);
  });
}

Deno.test("MmapAllocator.realloc that the OS refuses to remap changes nothing", () => {
  const failed = failEachCall({
    call: "remap",
    setup: threeBlocks,
    act(heap, live) {
      const [first] = live.addresses();
      live.moved(heap, first!, heap.realloc(first!, 5 * PAGE), 5 * PAGE);
    },
  });
  assert.equal(failed, 1);
});

Deno.test("MmapAllocator.free that the OS refuses to unmap leaves the block live", () => {
  const failed = failEachCall({
    call: "unmap",
    setup: threeBlocks,
    act(heap, live) {
      const second = live.addresses()[1]!;
      heap.free(second);
      live.delete(second);
    },
  });
  assert.equal(failed, 1);
  // A refused free is no free: the block can still be freed, and only once.
  const os = new FaultyOs();
  using heap = new MmapAllocator({ os });
  const a = heap.malloc(10);
  os.fail("unmap");
  assert.throws(() => heap.free(a), OsError);
  heap.free(a);
  assert.throws(() => heap.free(a), DoubleFreeError);
});

Deno.test("MmapAllocator.close that the OS refuses half-way stays open, whole and retryable", () => {
  const failed = failEachCall({
    call: "unmap",
    setup: threeBlocks,
    act: (heap) => heap.close(),
    closes: true,
  });
  assert.equal(failed, 3, "one munmap per block, each failed once");
  const os = new FaultyOs();
  const heap = new MmapAllocator({ os });
  const blocks = [heap.malloc(10), heap.malloc(20), heap.malloc(30)];
  os.fail("unmap", 1);
  assert.throws(() => heap.close(), OsError);
  // One block was unmapped (the lowest address: close goes in address order), two are left.
  const gone = blocks.indexOf(Math.min(...blocks));
  assert.throws(() => heap.usableSize(blocks[gone]!), InvalidAddressError);
  const left = blocks.filter((_, i) => i !== gone);
  assert.deepEqual(
    [heap.stats().liveAllocations, heap.stats().liveBytes],
    [2, 60 - 10 * (gone + 1)],
  );
  heap.free(left[0]!);
  heap.validate();
  heap.close();
  assert.throws(() => heap.stats(), HeapClosedError);
});

contractSuite("MmapAllocator", () => new MmapAllocator(), {
  detectsDoubleFree: true,
  detectsInvalidFree: true,
  reusesMemory: true,
});
