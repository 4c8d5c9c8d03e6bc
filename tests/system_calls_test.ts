// `stats().systemCalls`: every allocator counts the system calls it makes, exactly. Each allocator
// runs one workload on a FaultyOs (tests/_faulty_os.ts), which counts every call it is asked for;
// the allocator's own counts must equal it after every step. A count is deterministic: these
// tests also pin how many calls the common cases make.

import assert from "node:assert/strict";
import {
  type Allocator,
  BumpAllocator,
  CellAllocator,
  CountingOs,
  FirstFitAllocator,
  MmapAllocator,
  PseudoMalloc,
  SegregatedAllocator,
  type SystemCalls,
} from "../mod.ts";
import type { Os } from "../ffi/os.ts";
import { FaultyOs } from "./_faulty_os.ts";

/** What the allocator should report: FaultyOs's counts, by C function. */
function expected(os: FaultyOs): SystemCalls {
  const { map, mapAt, reserve, unmap, remap, adviseDontNeed, protect } = os.calls;
  return {
    mmap: map + mapAt + reserve,
    munmap: unmap,
    mremap: remap,
    madvise: adviseDontNeed,
    mprotect: protect,
  };
}

const makers: [string, (os: Os) => Allocator][] = [
  ["PseudoMalloc", (os) => new PseudoMalloc({ os })],
  ["MmapAllocator", (os) => new MmapAllocator({ os })],
  ["BumpAllocator", (os) => new BumpAllocator({ os })],
  ["CellAllocator", (os) => new CellAllocator({ os, cellSize: 256 })],
  ["FirstFitAllocator", (os) => new FirstFitAllocator({ os })],
  ["SegregatedAllocator", (os) => new SegregatedAllocator({ os })],
];

for (const [name, make] of makers) {
  Deno.test(`${name}: stats().systemCalls equals the calls the OS was asked for`, () => {
    const os = new FaultyOs();
    const heap = make(os);
    const check = (step: string) =>
      assert.deepEqual(heap.stats().systemCalls, expected(os), `${name} after ${step}`);
    check("creation");
    const small = Array.from({ length: 100 }, (_, i) => heap.malloc(16 + (i % 7) * 24));
    check("small mallocs");
    const big = heap.malloc(200);
    const grown = heap.realloc(big, 240);
    check("realloc");
    for (const address of small) heap.free(address);
    heap.free(grown);
    check("frees");
    heap.close();
    assert.ok(os.calls.map + os.calls.mapAt > 0, `${name} mapped nothing`);
    assert.equal(os.mappedBytes, 0, `${name} leaked mappings`);
  });
}

Deno.test("PseudoMalloc and MmapAllocator: large blocks count their mmap and munmap", () => {
  for (
    const make of [(os: Os) => new PseudoMalloc({ os }), (os: Os) => new MmapAllocator({ os })]
  ) {
    const os = new FaultyOs();
    const heap = make(os);
    const address = heap.malloc(100_000);
    const moved = heap.realloc(address, 300_000);
    assert.deepEqual(heap.stats().systemCalls, expected(os));
    assert.ok(heap.stats().systemCalls.mmap >= 1);
    assert.ok(heap.stats().systemCalls.mremap >= 1, "a page-count change is an mremap");
    heap.free(moved);
    heap.close();
    assert.equal(os.mappedBytes, 0);
  }
});

Deno.test("CountingOs: counts by C function, a refused call too, and passes results through", () => {
  const inner = new FaultyOs();
  const os = new CountingOs(inner);
  const page = os.pageSize();
  const a = os.map(page);
  const b = os.reserve(4 * page);
  const c = os.remap(a, page, 2 * page)!;
  assert.ok(os.adviseDontNeed(b, page));
  assert.ok(os.protect(b, page, "none"));
  inner.fail("unmap", 0);
  assert.throws(() => os.unmap(c, 2 * page));
  os.unmap(c, 2 * page);
  os.unmap(b, 4 * page);
  assert.deepEqual(os.snapshot(), { mmap: 2, munmap: 3, mremap: 1, madvise: 1, mprotect: 1 });
  assert.deepEqual(os.snapshot(), expected(inner));
  assert.equal(inner.mappedBytes, 0);
  const noRemap = new CountingOs(new FaultyOs({ remap: false }));
  const d = noRemap.map(page);
  assert.equal(noRemap.remap(d, page, 2 * page), undefined);
  assert.equal(noRemap.counts.mremap, 0, "no mremap on this system: no call made");
  noRemap.unmap(d, page);
});
