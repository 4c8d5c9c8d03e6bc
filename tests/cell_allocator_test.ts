// CellAllocator over real native memory (needs --allow-ffi).
import assert from "node:assert/strict";
import {
  CellAllocator,
  DoubleFreeError,
  HeapClosedError,
  InvalidAddressError,
  InvalidFreeError,
  OsError,
  OutOfMemoryError,
} from "../mod.ts";
import { memoryView, protectMemory } from "../ffi/libc.ts";
import { contractSuite, failEachCall, type LiveBlocks } from "./_contract.ts";
import { FaultyOs } from "./_faulty_os.ts";

/** The defaults, spelled out: 32-byte cells in 64 KiB chunks. */
const CELL = 32;
const CHUNK = 64 * 1024;
const CELLS = CHUNK / CELL;

/** The free-list link stored in a cell's first 8 bytes, read from native memory directly. */
function linkAt(address: number): number {
  const words = new Uint32Array(memoryView(address, 8));
  return words[0]! + words[1]! * 2 ** 32;
}

/** Overwrites a cell's link, as a use-after-free write would. */
function writeLink(address: number, value: number): void {
  const words = new Uint32Array(memoryView(address, 8));
  words[0] = value >>> 0;
  words[1] = Math.floor(value / 2 ** 32);
}

Deno.test("CellAllocator defaults: 32-byte cells, 64 KiB chunks, nothing mapped before use", () => {
  using cells = new CellAllocator();
  assert.equal(cells.cellSize, CELL);
  assert.equal(cells.chunkSize, CHUNK);
  assert.equal(cells.cellsPerChunk, CELLS);
  assert.equal(cells.stats().chunks, 0);
  assert.equal(cells.stats().mappedBytes, 0);
  cells.validate();
});

Deno.test("CellAllocator maps a second chunk when the first chunk's cells run out", () => {
  using cells = new CellAllocator();
  const first = cells.malloc(1);
  assert.equal(first % CHUNK, 0, "a chunk is aligned to its size; its first cell is its start");
  for (let i = 1; i < CELLS; i++) assert.equal(cells.malloc(CELL), first + i * CELL);
  let stats = cells.stats();
  assert.equal(stats.chunks, 1);
  assert.equal(stats.freeCells, 0);
  assert.equal(stats.mappedBytes, CHUNK);
  const next = cells.malloc(0);
  assert.equal(next % CHUNK, 0);
  assert.ok(next >= first + CHUNK || next + CHUNK <= first, "the new chunk is a new mapping");
  assert.equal(cells.malloc(5), next + CELL);
  stats = cells.stats();
  assert.equal(stats.chunks, 2);
  assert.equal(stats.mappedBytes, 2 * CHUNK);
  assert.equal(stats.freeCells, CELLS - 2);
  assert.equal(stats.liveAllocations, CELLS + 2);
  assert.equal(stats.allocatedBytes, (CELLS + 2) * CELL);
  // Cells of both chunks are found by their address.
  assert.equal(cells.usableSize(first + (CELLS - 1) * CELL), CELL);
  assert.equal(cells.usableSize(next), CELL);
  cells.free(first + 7 * CELL);
  assert.equal(cells.malloc(3), first + 7 * CELL, "a freed cell of the old chunk comes back first");
  cells.validate();
});

Deno.test("CellAllocator keeps the free list in the free cells' first 8 bytes", () => {
  using cells = new CellAllocator();
  const [a, b, c] = [cells.malloc(CELL), cells.malloc(CELL), cells.malloc(CELL)];
  const fresh = a + 3 * CELL; // the head of the list: the first untouched cell
  assert.equal(linkAt(fresh), fresh + CELL, "a fresh chunk is linked in address order");
  cells.bytes(a).fill(0xaa);
  cells.bytes(c).fill(0xcc);
  cells.free(a);
  cells.free(c);
  // head -> c -> a -> fresh -> fresh + 32 -> ...
  assert.equal(linkAt(c), a);
  assert.equal(linkAt(a), fresh);
  const rest = new Uint8Array(memoryView(c + 8, CELL - 8));
  assert.ok(rest.every((byte) => byte === 0xcc), "free writes only the link");
  assert.equal(cells.malloc(1), c);
  assert.equal(cells.malloc(1), a);
  assert.equal(cells.malloc(1), fresh);
  assert.equal(cells.usableSize(b), CELL);
  cells.validate();
});

Deno.test("CellAllocator.malloc refuses a corrupted link instead of handing out a cell twice", () => {
  using cells = new CellAllocator();
  const [a, b, c] = [cells.malloc(CELL), cells.malloc(CELL), cells.malloc(CELL)];
  cells.free(a);
  cells.free(b); // head -> b -> a -> fresh
  writeLink(b, c); // use after free: b now links to the live cell c
  const before = cells.stats();
  assert.throws(() => cells.validate(), /free list reaches 0x[0-9a-f]+, which is not a free cell/);
  assert.throws(() => cells.malloc(8), /free list corrupted: the free cell .* links to/);
  assert.deepEqual(cells.stats(), before);
  writeLink(b, a); // repaired: everything works again
  assert.equal(cells.malloc(8), b);
  assert.equal(cells.malloc(8), a);
  cells.validate();
});

Deno.test("CellAllocator notices a free list cut short when it runs dry", () => {
  using cells = new CellAllocator({ chunkSize: 4096 });
  const a = cells.malloc(1);
  cells.free(a);
  writeLink(a, 0); // the list now ends at a, losing the chunk's other cells
  assert.throws(() => cells.validate(), /free list holds 1 of the 128 free cells/);
  assert.equal(cells.malloc(1), a);
  assert.throws(() => cells.malloc(1), /free list corrupted: it ends but 127 cells are free/);
  assert.equal(cells.stats().chunks, 1, "no chunk is mapped over a damaged list");
});

Deno.test("CellAllocator with maxChunks throws OutOfMemoryError when every cell is live", () => {
  using cells = new CellAllocator({ chunkSize: 4096, maxChunks: 1 });
  const blocks = Array.from({ length: 4096 / CELL }, (_, i) => cells.malloc(i % (CELL + 1)));
  cells.bytes(blocks[5]!).fill(5);
  const before = cells.stats();
  assert.throws(() => cells.malloc(1), {
    name: "OutOfMemoryError",
    message: "Cannot allocate 1 bytes: all 1 chunks are full (maxChunks is 1)",
  });
  assert.throws(() => cells.calloc(1, 1), OutOfMemoryError);
  assert.deepEqual(cells.stats(), before);
  assert.ok(cells.bytes(blocks[5]!).every((byte) => byte === 5));
  cells.free(blocks[9]!);
  assert.equal(cells.malloc(1), blocks[9]);
  cells.validate();
});

Deno.test("CellAllocator rejects requests larger than a cell, leaving blocks untouched", () => {
  using cells = new CellAllocator();
  const address = cells.malloc(20);
  cells.bytes(address).fill(0x11);
  const before = cells.stats();
  assert.throws(() => cells.malloc(CELL + 1), {
    name: "RangeError",
    message: "Cannot allocate 33 bytes: a cell holds at most 32 bytes",
  });
  assert.throws(() => cells.calloc(11, 3), /Cannot allocate 11 × 3 bytes: a cell holds/);
  assert.throws(() => cells.realloc(address, CELL + 1), /Cannot reallocate 33 bytes/);
  assert.throws(() => cells.realloc(0, 1000), RangeError);
  assert.deepEqual(cells.stats(), before);
  assert.ok(cells.bytes(address).every((byte) => byte === 0x11));
  cells.validate();
});

Deno.test("CellAllocator.realloc within the cell stays in place", () => {
  using cells = new CellAllocator();
  const address = cells.malloc(4);
  cells.bytes(address, 4).set([1, 2, 3, 4]);
  assert.equal(cells.realloc(address, CELL), address);
  assert.equal(cells.realloc(address, 2), address);
  assert.deepEqual([...cells.bytes(address, 4)], [1, 2, 3, 4]);
  const stats = cells.stats();
  assert.equal(stats.liveBytes, 2);
  assert.equal(stats.peakLiveBytes, CELL);
  assert.equal(stats.totalAllocations, 1);
  cells.validate();
});

Deno.test("CellAllocator.calloc clears the whole cell, link included", () => {
  using cells = new CellAllocator();
  const a = cells.malloc(CELL);
  cells.malloc(CELL);
  cells.free(a); // a now holds a link to the next fresh cell
  assert.notEqual(linkAt(a), 0);
  const zeroed = cells.calloc(2, 8);
  assert.equal(zeroed, a);
  assert.ok(cells.bytes(zeroed).every((byte) => byte === 0));
  assert.equal(cells.stats().liveBytes, 16 + CELL);
});

Deno.test("CellAllocator names foreign, interior, tail and freed addresses", () => {
  using cells = new CellAllocator({ cellSize: 48 });
  const a = cells.malloc(48);
  const b = cells.malloc(1);
  cells.free(b);
  const before = cells.stats();
  const lastCell = a + (cells.cellsPerChunk - 1) * 48;
  assert.equal(cells.cellsPerChunk, 1365);
  const rejects = (address: number, pattern: RegExp, Error = InvalidFreeError) =>
    assert.throws(() => cells.free(address), (e) => {
      assert.equal((e as Error).constructor, Error, String(e));
      assert.match((e as Error).message, pattern);
      return true;
    });
  rejects(12345, /not an address of this heap/);
  rejects(a + CHUNK, /not an address of this heap/);
  rejects(a + 16, /inside the cell at 0x[0-9a-f]+, not at its start/);
  rejects(a + 1, /inside the cell/);
  rejects(lastCell + 48, /past the last cell of its chunk/);
  rejects(b, /this cell was already freed/, DoubleFreeError);
  assert.throws(() => cells.realloc(b, 4), DoubleFreeError);
  assert.throws(() => cells.usableSize(b), InvalidAddressError);
  assert.throws(() => cells.bytes(a + 48 * 5), InvalidAddressError);
  assert.throws(() => cells.bytes(a, 49), /Cannot view 49 bytes .* holds 48 bytes/);
  assert.throws(() => cells.free(1n as unknown as number), /an address must be a number/);
  assert.deepEqual(cells.stats(), before);
  cells.validate();
});

Deno.test("CellAllocator constructor rejects bad options", () => {
  assert.throws(() => new CellAllocator({ cellSize: 24 }), /cellSize 24/);
  assert.throws(() => new CellAllocator({ cellSize: 0 }), /cellSize 0/);
  assert.throws(() => new CellAllocator({ cellSize: 2 * CHUNK }), /cellSize/);
  assert.throws(() => new CellAllocator({ chunkSize: 3000 }), /chunkSize 3000/);
  assert.throws(() => new CellAllocator({ chunkSize: 1024 }), /from the page size/);
  assert.throws(() => new CellAllocator({ chunkSize: 2 ** 31 }), /chunkSize/);
  assert.throws(() => new CellAllocator({ maxChunks: -1 }), /maxChunks/);
  assert.throws(() => new CellAllocator({ maxChunks: 0.5 }), /maxChunks/);
  using whole = new CellAllocator({ cellSize: CHUNK, chunkSize: CHUNK });
  const a = whole.malloc(CHUNK);
  const b = whole.malloc(0);
  assert.equal(whole.stats().chunks, 2);
  whole.free(a);
  whole.free(b);
  whole.validate();
});

Deno.test("CellAllocator.close unmaps every chunk and later calls throw HeapClosedError", () => {
  const cells = new CellAllocator({ chunkSize: 4096 });
  const blocks = Array.from({ length: 200 }, () => cells.malloc(8));
  assert.equal(cells.stats().chunks, 2);
  const chunks = blocks.map((address) => address - (address % 4096));
  cells.close();
  for (const chunk of new Set(chunks)) {
    assert.equal(protectMemory(chunk, 4096, "read-write"), false);
  }
  assert.throws(() => cells.malloc(1), HeapClosedError);
  assert.throws(() => cells.validate(), HeapClosedError);
  cells.close();
});

// --- when the OS says no -------------------------------------------------------------------------

/** One page of cells per chunk: 128 cells of 32 bytes on 4 KiB pages. */
const PAGE_CHUNK = 4096;

/**
 * A cell allocator over `os` with `chunks` chunks full of live cells, every `hole`-th one freed
 * again (0: none), so that the free list runs through every chunk.
 */
function filled(os: FaultyOs, live: LiveBlocks, chunks: number, hole = 0): CellAllocator {
  const cells = new CellAllocator({ os, chunkSize: PAGE_CHUNK });
  const count = chunks * cells.cellsPerChunk;
  const blocks = Array.from({ length: count }, (_, i) => live.malloc(cells, i % (CELL + 1)));
  for (let i = 0; hole > 0 && i < count; i += hole) {
    cells.free(blocks[i]!);
    live.delete(blocks[i]!);
  }
  return cells;
}

Deno.test("CellAllocator makes every system call through its os: a map per chunk, an unmap each", () => {
  const os = new FaultyOs();
  const cells = new CellAllocator({ os, chunkSize: PAGE_CHUNK });
  assert.equal(os.calls.map, 0, "nothing before the first request");
  const blocks = Array.from({ length: cells.cellsPerChunk + 1 }, () => cells.malloc(8));
  assert.equal(os.calls.map, 2);
  for (const address of blocks) cells.free(address);
  cells.calloc(2, 16);
  assert.deepEqual([os.calls.map, os.calls.unmap], [2, 0], "free gives nothing back");
  cells.close();
  assert.deepEqual([os.calls.map, os.calls.unmap], [2, 2]);
});

for (const verb of ["malloc", "calloc"] as const) {
  Deno.test(`CellAllocator.${verb} that needs a chunk the OS refuses changes nothing`, () => {
    const failed = failEachCall({
      call: "map",
      setup: (os, live) => filled(os, live, 1),
      act(cells, live) {
        const address = verb === "malloc" ? cells.malloc(20) : cells.calloc(4, 5);
        if (verb === "calloc") assert.ok(cells.bytes(address).every((byte) => byte === 0));
        live.add(cells, address, 20);
      },
    });
    assert.equal(failed, 1, "the chunk's one mmap");
  });
}

Deno.test("CellAllocator.close that the OS refuses half-way stays open, whole and retryable", () => {
  const failed = failEachCall({
    call: "unmap",
    setup: (os, live) => filled(os, live, 3, 3),
    act: (cells) => cells.close(),
    closes: true,
  });
  assert.equal(failed, 3, "one munmap per chunk, each failed once");
  // The second munmap refused: the first chunk is gone, the other two stay with their free cells.
  const os = new FaultyOs();
  const cells = new CellAllocator({ os, chunkSize: PAGE_CHUNK });
  const perChunk = cells.cellsPerChunk;
  const blocks = Array.from({ length: 3 * perChunk }, () => cells.malloc(8));
  for (let i = 0; i < blocks.length; i += 2) cells.free(blocks[i]!);
  os.fail("unmap", 1);
  assert.throws(() => cells.close(), OsError);
  const stats = cells.stats();
  assert.deepEqual([stats.chunks, stats.freeCells, stats.liveAllocations], [2, perChunk, perChunk]);
  for (const address of blocks.slice(0, perChunk)) {
    assert.throws(() => cells.usableSize(address), InvalidAddressError, "in the unmapped chunk");
  }
  for (const address of blocks.slice(perChunk).filter((_, i) => i % 2 === 1)) {
    assert.equal(cells.usableSize(address), CELL, "live in a chunk that stays");
  }
  cells.validate();
  const kept = new Set(blocks.slice(perChunk).filter((_, i) => i % 2 === 0));
  for (let i = 0; i < perChunk; i++) assert.ok(kept.has(cells.malloc(8)), "a free cell left");
  assert.equal(cells.stats().chunks, 2);
  cells.validate();
  cells.close();
  assert.throws(() => cells.stats(), HeapClosedError);
});

contractSuite("CellAllocator", () => new CellAllocator(), {
  maxRequest: CELL,
  detectsDoubleFree: true,
  detectsInvalidFree: true,
  reusesMemory: true,
});
