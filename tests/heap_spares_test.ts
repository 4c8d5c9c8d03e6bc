// What a closed heap leaves for the next one (src/heap/_spares.ts): its shadow tag table and its
// empty arenas, kept mapped and clean within a budget, so that a new heap's first block makes no
// system call. Counted with FaultyOs registered to keep spares (tests/_faulty_os.ts counts every
// call and every mapped byte), and once with the default OS through `stats().systemCalls`.

import assert from "node:assert/strict";
import {
  DoubleFreeError,
  HeapClosedError,
  InvalidFreeError,
  OsError,
  PseudoMalloc,
} from "../mod.ts";
import { keepSpares, releaseSpares, SPARE_BYTES, SPARE_TABLES } from "../src/heap/_spares.ts";
import { LOW_LIMIT } from "../src/heap/_low_memory.ts";
import { FaultyOs } from "./_faulty_os.ts";

const KiB = 1 << 10;
const MiB = 1 << 20;
/** The default shadow table: 2^31 / 16 slots of 2 bytes. */
const TABLE = (LOW_LIMIT / 16) * 2;

/** A FaultyOs whose heaps keep spares within `budget` bytes of arenas. */
function sparingOs(budget = SPARE_BYTES): FaultyOs {
  const os = new FaultyOs();
  keepSpares(os, budget);
  return os;
}

/** `new PseudoMalloc()` + `malloc(16)` + `free` + `close()`: the calls it made. */
function shortLived(os: FaultyOs, options = {}): Record<string, number> {
  const before = { ...os.calls };
  const heap = new PseudoMalloc({ ...options, os });
  heap.free(heap.malloc(16));
  heap.close();
  return Object.fromEntries(
    Object.entries(os.calls).map((
      [call, count],
    ) => [call, count - before[call as keyof typeof before]]),
  );
}

const NONE = { map: 0, mapAt: 0, reserve: 0, unmap: 0, remap: 0, adviseDontNeed: 0, protect: 0 };

/**
 * Asserts the calls of a cold short-lived heap: the table reserved, the arena mapped low, and
 * `unmap` times `unmaps`. `mapAt` counts at least one: a hint is missed where another test
 * module's arenas (in this process, but not this realm's window) are still mapped.
 */
function assertCold(calls: Record<string, number>, unmaps: number, message?: string): void {
  assert.ok(calls.mapAt! >= 1, message);
  assert.deepEqual(
    { ...calls, mapAt: 1 },
    { ...NONE, reserve: 1, mapAt: 1, unmap: unmaps },
    message,
  );
}

Deno.test("spares: a heap made after another closed makes no system call for its first block", () => {
  const os = sparingOs();
  // The first heap of the Os reserves the table and maps the arena; its close keeps both.
  assertCold(shortLived(os), 0);
  assert.equal(os.mappedBytes, TABLE + MiB, "the table and the empty arena are kept");
  // Every heap after it: nothing at all, table, arena and block cache taken from the spares.
  for (let i = 0; i < 5; i++) assert.deepEqual(shortLived(os), NONE, `heap ${i + 2}`);
  assert.equal(releaseSpares(os), MiB);
  assert.equal(os.mappedBytes, 0, "releaseSpares leaves nothing mapped");
  assertCold(shortLived(os), 0, "cold again");
  assert.equal(releaseSpares(os), MiB);
  assert.equal(os.mappedBytes, 0);
});

Deno.test("spares: an Os that keeps none (FaultyOs) unmaps everything on close, as before", () => {
  const os = new FaultyOs();
  assertCold(shortLived(os), 2);
  assertCold(shortLived(os), 2);
  assert.equal(os.mappedBytes, 0);
});

Deno.test("spares: on the default OS the second heap's stats count no mmap for table or arena", () => {
  const first = new PseudoMalloc();
  first.free(first.malloc(16));
  first.close();
  using second = new PseudoMalloc();
  const address = second.malloc(16);
  second.free(address);
  assert.deepEqual(second.stats().systemCalls, {
    mmap: 0,
    munmap: 0,
    mremap: 0,
    madvise: 0,
    mprotect: 0,
  });
  assert.ok(address < 2 ** 31, "a low arena: the fast paths' table is there");
});

Deno.test("spares: a reused arena accepts none of the closed heap's addresses as live", () => {
  const os = sparingOs();
  const first = new PseudoMalloc({ os });
  const blocks = [16, 100, 500, 16].map((size) => first.malloc(size));
  for (const address of blocks) first.free(address); // cached, then flushed by close
  first.close();
  const second = new PseudoMalloc({ os });
  assert.equal(second.stats().arenas, 0, "a spare is taken on first use, not before");
  const mine = second.malloc(64);
  assert.equal(second.stats().arenaDetails[0]!.address, blocks[0]! - (blocks[0]! % MiB));
  for (const address of blocks.filter((address) => address !== mine)) {
    assert.throws(() => second.free(address), InvalidFreeError, `free ${address}`);
    assert.throws(() => second.realloc(address, 8), InvalidFreeError);
    assert.throws(() => first.free(address), HeapClosedError);
  }
  assert.equal(second.stats().liveAllocations, 1);
  second.validate();
  second.free(mine);
  assert.throws(() => second.free(mine), DoubleFreeError);
  second.close();
  releaseSpares(os);
  assert.equal(os.mappedBytes, 0);
});

Deno.test("spares: close with live blocks unmaps their arena; the kept table has no tag of them", () => {
  const os = sparingOs();
  const first = new PseudoMalloc({ os });
  const live = [first.malloc(24), first.malloc(300)];
  first.close();
  assert.equal(os.calls.unmap, 1, "the arena with live blocks is unmapped");
  assert.equal(os.mappedBytes, TABLE, "the table is kept");
  const second = new PseudoMalloc({ os });
  const reserves = os.calls.reserve;
  const mine = second.malloc(24);
  assert.equal(os.calls.reserve, reserves, "the table is the spare one");
  // The new arena is mapped where the old one was: its live tags must be gone from the table.
  assert.equal(second.stats().arenaDetails[0]!.address, live[0]! - (live[0]! % MiB));
  for (const address of live.filter((address) => address !== mine)) {
    assert.throws(() => second.free(address), InvalidFreeError, `free ${address}`);
  }
  second.validate();
  second.free(mine);
  second.close();
  releaseSpares(os);
  assert.equal(os.mappedBytes, 0);
});

Deno.test("spares: close keeps empty arenas up to the budget and unmaps the rest", () => {
  const arenaSize = 64 * KiB;
  const os = sparingOs(2 * arenaSize);
  const heap = new PseudoMalloc({ os, arenaSize, mmapThreshold: 2 * KiB });
  const blocks = Array.from({ length: 4 * 64 }, () => heap.malloc(1000)); // four full arenas
  assert.equal(heap.stats().arenas, 4);
  for (const address of blocks) heap.free(address);
  const before = { ...os.calls };
  heap.close();
  assert.equal(os.calls.unmap - before.unmap, 2, "two arenas beyond the budget");
  // Each gives its 8 KiB of tags back to the kept table.
  assert.equal(os.calls.adviseDontNeed - before.adviseDontNeed, 2);
  assert.equal(os.mappedBytes, TABLE + 2 * arenaSize);
  // The next heap takes the two, then maps a third.
  const next = new PseudoMalloc({ os, arenaSize, mmapThreshold: 2 * KiB });
  const mapped = os.mappedBytes;
  const again = Array.from({ length: 3 * 64 }, () => next.malloc(1000));
  assert.equal(os.mappedBytes - mapped, arenaSize, "one arena mapped");
  assert.equal(next.stats().arenas, 3);
  for (const address of again) next.free(address);
  next.validate();
  next.close();
  assert.equal(releaseSpares(os), 2 * arenaSize);
  assert.equal(os.mappedBytes, 0);
});

Deno.test("spares: heaps open at the same time hold tables of their own, kept up to the bound", () => {
  const os = sparingOs();
  const open = () => Array.from({ length: SPARE_TABLES + 1 }, () => new PseudoMalloc({ os }));
  const heaps = open();
  const blocks = heaps.map((heap) => heap.malloc(64));
  assert.equal(os.calls.reserve, SPARE_TABLES + 1, "one table per open heap");
  // Each heap refuses the others' live blocks (its table has no tag of them).
  assert.throws(() => heaps[0]!.free(blocks[1]!), InvalidFreeError);
  assert.throws(() => heaps[1]!.free(blocks[0]!), InvalidFreeError);
  heaps.forEach((heap, i) => heap.free(blocks[i]!));
  const unmaps = os.calls.unmap;
  for (const heap of heaps) heap.close();
  // SPARE_TABLES tables kept; the one beyond is unmapped, with the arena beyond nothing (budget).
  assert.equal(os.calls.unmap - unmaps, 1);
  assert.equal(os.mappedBytes, SPARE_TABLES * TABLE + (SPARE_TABLES + 1) * MiB);
  // As many heaps again: only the one beyond the kept tables reserves.
  const again = open();
  for (const heap of again) heap.free(heap.malloc(64));
  assert.equal(os.calls.reserve, SPARE_TABLES + 2);
  for (const heap of again) heap.close();
  releaseSpares(os);
  assert.equal(os.mappedBytes, 0);
});

Deno.test("spares: a failed munmap beyond the budget leaves the heap open and consistent", () => {
  const arenaSize = 64 * KiB;
  const os = sparingOs(arenaSize);
  const heap = new PseudoMalloc({ os, arenaSize, mmapThreshold: 2 * KiB });
  const blocks = Array.from({ length: 2 * 64 }, () => heap.malloc(1000));
  const kept = heap.malloc(100); // in the third arena
  for (const address of blocks) heap.free(address);
  os.fail("unmap", 0);
  assert.throws(() => heap.close(), OsError);
  // The first arena became a spare; the second's munmap failed: it is still the heap's.
  assert.equal(heap.stats().arenas, 2);
  assert.equal(heap.usableSize(kept), 128);
  heap.validate();
  heap.free(heap.malloc(40));
  heap.close();
  assert.throws(() => heap.malloc(1), HeapClosedError);
  // releaseSpares fails the same way and keeps what it could not unmap.
  os.fail("unmap", 0);
  assert.throws(() => releaseSpares(os), OsError);
  assert.ok(os.mappedBytes > 0);
  assert.equal(releaseSpares(os), arenaSize);
  assert.equal(os.mappedBytes, 0);
});

Deno.test("spares: a heap with lowAddresses: false takes no low spare", () => {
  const os = sparingOs();
  shortLived(os);
  const heap = new PseudoMalloc({ os, lowAddresses: false });
  const address = heap.malloc(16);
  assert.ok(address >= 2 ** 31, "mapped anywhere, as asked");
  heap.free(address);
  heap.close();
  // Its high arena is a spare too, for the next such heap; the low one still for a low heap.
  assert.deepEqual(shortLived(os, { lowAddresses: false }), NONE);
  assert.deepEqual(shortLived(os), NONE);
  assert.equal(releaseSpares(os), 2 * MiB);
  assert.equal(os.mappedBytes, 0);
});
