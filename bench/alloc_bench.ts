// The benchmarks of issue 4: PseudoMalloc against libc malloc through FFI, `@thi.ng/malloc`'s
// MemPool, `new Uint8Array(n)` and raw mmap, on the seeded workloads of `_workloads.ts`, all in one
// run. `deno task bench` prints Deno's table; `deno task bench:report` turns the same run into
// docs/bench.{json,md,svg}.
//
// - Every bench iteration is a batch of operations (`ops` in each group), so Deno.bench's own
//   per-iteration overhead is small; per-operation times are the iteration time over `ops`.
// - Both tasks run with `--v8-flags=--no-maglev`: code compiled by V8's mid tier (Maglev) calls FFI
//   symbols through Deno's slow path (about 150 ns per call instead of 13), and a 0.5 s bench can
//   stay in Maglev throughout. Without Maglev, hot loops reach TurboFan, the steady state.
// - Each bench runs its own copy of its loop and of its iteration function (see `specialize` in
//   `_workloads.ts`): shared call sites make V8 compile one polymorphic loop for all peers, which
//   slows some peers down and, measured, took libc off the FFI fast path altogether.
// - Deno's JSON gives min, avg, p75 and p99 per bench but no median. To report ratios of medians,
//   each iteration is also timed here with `performance.now()` (80 ns resolution; iterations take
//   1 µs to 250 ms) into a preallocated buffer, Deno's warm-up iterations are dropped (Deno 2.9 warms
//   up until 10 ms are spent), and the median and quartiles of the rest are written to stderr as one
//   line tagged `BENCH_SAMPLES_TAG` when the script gets the argument `--samples`
//   (`deno bench ... bench/alloc_bench.ts -- --samples`), which `report.ts` reads.
// - Before any timing, each bench runs one iteration and checks that the peer's live block count is
//   unchanged; after the run, the counts are checked again (a `MemPool` that runs out of room
//   returns 0 silently, which would otherwise go unnoticed).
//
// The harness that does this (registering, timing, checking, summing up) is `_bench_harness.ts`;
// this file has the groups, the peers and the benches.

import type { PseudoMalloc } from "../mod.ts";
import { bench, type Entry, finishRun, type Group } from "./_bench_harness.ts";
import { CheckedFloorPeer, FloorPeer, MinimalPeer } from "./_floors.ts";
import { closeLibcMalloc, type LibcMalloc, libcMalloc } from "../ffi/libc_malloc.ts";
import {
  BATCH_COUNT,
  BATCH_SIZE,
  CHURN_LIVE,
  fillLive,
  FRESH_SIZE,
  generate,
  MEMPOOL_SIZE,
  MemPoolPeer,
  MmapPeer,
  PAIR_SIZE,
  pseudoMalloc,
  runBatches,
  runCallocSequence,
  runChurn,
  runPairs,
  runPairSequence,
  runReallocChains,
  SCALE_BYTES,
  type Sizes,
  specialize,
  TypedArrayPeer,
} from "./_workloads.ts";

// --- groups ------------------------------------------------------------------------------------

const GROUPS = {
  pair: { id: "pair", title: "1. 64 B malloc+free, x1000", ops: 1000, unit: "pair" },
  batch: {
    id: "batch",
    title: "2. 4 batches of 256 mixed 16-1008 B, shuffled frees",
    ops: 4 * BATCH_SIZE,
    unit: "pair",
  },
  churn: {
    id: "churn",
    title: "3. churn over 10,000 live blocks, x1000 steps",
    ops: 1000,
    unit: "step (free + malloc)",
  },
  large: {
    id: "large",
    title: "4. large 4 KiB-1 MiB, 16 sizes repeating, x64",
    ops: 64,
    unit: "pair",
  },
  callocSmall: {
    id: "calloc-small",
    title: "5a. calloc 16-1008 B + free, x1000",
    ops: 1000,
    unit: "pair",
  },
  callocLarge: {
    id: "calloc-large",
    title: "5b. calloc 4 KiB-1 MiB + free, x64",
    ops: 64,
    unit: "pair",
  },
  callocFresh: {
    id: "calloc-fresh",
    title: "5c. fresh 64 MiB block + free, x8",
    ops: 8,
    unit: "pair",
  },
  // The same chain as large_bench.ts's workload 10, but in this process, after workloads 1-5c:
  // libc's heap then holds their blocks, and its chain costs 17-25 µs instead of 1-4 µs (it can no
  // longer grow the block in place at the top of its heap). Kept to show that dependence.
  realloc: {
    id: "realloc",
    title: "5d. malloc(16), realloc doubling to 1 MiB, free, x16, after 1-5c",
    ops: 16,
    unit: "chain (16 reallocs)",
  },
  scalePair: {
    id: "scale-pair",
    title: "6a. scale: 64 B malloc+free, x1000",
    ops: 1000,
    unit: "pair",
  },
  scaleChurn: {
    id: "scale-churn",
    title: "6b. scale: churn over 10,000 live blocks, x1000 steps",
    ops: 1000,
    unit: "step (free + malloc)",
  },
} as const satisfies Record<string, Group>;

// --- peers ---------------------------------------------------------------------------------------

const data = generate();
const libc = libcMalloc();
const heaps: PseudoMalloc[] = [];

const asNumbers = {
  sizes: (sizes: Sizes) => sizes.numbers,
  size: (bytes: number) => bytes,
  one: 1,
};
const asBigints = {
  sizes: (sizes: Sizes) => sizes.bigints,
  size: (bytes: number) => BigInt(bytes),
  one: 1n,
};

function pseudo(name = "PseudoMalloc"): Entry<number, number> & { heap: PseudoMalloc } {
  const heap = pseudoMalloc();
  heaps.push(heap);
  return {
    id: "pseudo",
    name,
    peer: heap,
    heap,
    ...asNumbers,
    empty: 0,
    live: () => heap.stats().liveAllocations,
  };
}

function libcPeer(name = "libc malloc/free (FFI)"): Entry<bigint, bigint> {
  return { id: "libc", name, peer: libc, ...asBigints, empty: 0n };
}

function memPool(): Entry<number, number> {
  const peer = new MemPoolPeer(MEMPOOL_SIZE);
  return {
    id: "thing",
    name: "@thi.ng/malloc MemPool",
    peer,
    ...asNumbers,
    empty: 0,
    live: () => peer.live,
  };
}

function typedArray(): Entry<number, Uint8Array> {
  return {
    id: "u8",
    name: "new Uint8Array(n)",
    peer: new TypedArrayPeer(),
    ...asNumbers,
    empty: new Uint8Array(0),
  };
}

function floorPeer(): Entry<number, number> {
  return {
    id: "floor",
    name: "JS floor: typed-array pop + push",
    peer: new FloorPeer(),
    ...asNumbers,
    empty: 0,
  };
}

function checkedFloorPeer(): Entry<number, number> {
  return {
    id: "floor-checked",
    name: "JS floor with the contract's checks and stats",
    peer: new CheckedFloorPeer(),
    ...asNumbers,
    empty: 0,
  };
}

function minimalPeer(): Entry<number, number> {
  const peer = new MinimalPeer();
  return {
    id: "minimal",
    name: "minimal JS allocator: floor + checks + slow paths",
    peer,
    ...asNumbers,
    empty: 0,
    live: () => peer.live,
  };
}

function mmapPeer(symbols: LibcMalloc): Entry<bigint, bigint> {
  return {
    id: "mmap",
    name: "mmap + munmap (FFI)",
    peer: new MmapPeer(symbols),
    ...asBigints,
    empty: 0n,
  };
}

/** A packed (not holey) array of `length` copies of `value`. */
function filled<T>(length: number, value: T): T[] {
  const array: T[] = [];
  for (let i = 0; i < length; i++) array.push(value);
  return array;
}

// --- 1. the same 64-byte pair ----------------------------------------------------------------

function pairs<S, A>(group: Group, entry: Entry<S, A>, baseline: boolean, note?: string): void {
  const options = note === undefined ? { baseline } : { baseline, note };
  bench(group, entry, options, runPairs, entry.size(PAIR_SIZE), group.ops);
}

pairs(GROUPS.pair, pseudo(), false);
pairs(GROUPS.pair, libcPeer(), true);
pairs(GROUPS.pair, memPool(), false);
pairs(GROUPS.pair, typedArray(), false);
pairs(GROUPS.pair, floorPeer(), false, "lower bound for any JS allocator");
pairs(GROUPS.pair, checkedFloorPeer(), false, "lower bound for a JS allocator with these checks");
pairs(GROUPS.pair, minimalPeer(), false, "the same with slow paths: the least a complete one does");

// --- 2. batches of mixed sizes, shuffled frees -------------------------------------------------

function batches<S, A>(entry: Entry<S, A>, baseline: boolean): void {
  bench(
    GROUPS.batch,
    entry,
    { baseline },
    runBatches,
    entry.sizes(data.batchSizes),
    data.batchOrders,
    filled(BATCH_SIZE, entry.empty),
    BATCH_SIZE,
    BATCH_COUNT,
    GROUPS.batch.ops / BATCH_SIZE,
  );
}

batches(pseudo(), false);
batches(libcPeer(), true);
batches(memPool(), false);
batches(typedArray(), false);
batches(minimalPeer(), false);

// --- 3. churn ----------------------------------------------------------------------------------

function churn<S, A>(group: Group, entry: Entry<S, A>, baseline: boolean, note?: string): void {
  const live = filled(CHURN_LIVE, entry.empty);
  specialize(fillLive)(entry.peer, 0, entry.sizes(data.churnInitial), live);
  const options = note === undefined ? { baseline } : { baseline, note };
  const sizes = entry.sizes(data.churnSizes);
  bench(group, entry, options, runChurn, live, data.churnIndices, sizes, group.ops);
}

churn(GROUPS.churn, pseudo(), false);
churn(GROUPS.churn, libcPeer(), true);
churn(GROUPS.churn, memPool(), false);
churn(GROUPS.churn, typedArray(), false);
churn(GROUPS.churn, minimalPeer(), false);

// --- 4. large blocks, repeating sizes ------------------------------------------------------------

function large<S, A>(entry: Entry<S, A>, baseline: boolean): void {
  const sizes = entry.sizes(data.largeSizes);
  bench(GROUPS.large, entry, { baseline }, runPairSequence, sizes, GROUPS.large.ops);
}

large(pseudo(), false);
large(libcPeer(), false);
large(memPool(), false);
large(mmapPeer(libc), true);

// --- 5. calloc and realloc -----------------------------------------------------------------------

function callocs<S, A>(group: Group, entry: Entry<S, A>, sizes: Sizes, baseline: boolean): void {
  const each = entry.sizes(sizes);
  bench(group, entry, { baseline }, runCallocSequence, each, group.ops, entry.one);
}

callocs(GROUPS.callocSmall, pseudo(), data.callocSizes, false);
callocs(GROUPS.callocSmall, libcPeer("libc calloc/free (FFI)"), data.callocSizes, true);
callocs(GROUPS.callocSmall, memPool(), data.callocSizes, false);
callocs(GROUPS.callocSmall, typedArray(), data.callocSizes, false);

callocs(GROUPS.callocLarge, pseudo(), data.largeSizes, false);
callocs(GROUPS.callocLarge, libcPeer("libc calloc/free (FFI)"), data.largeSizes, true);
callocs(GROUPS.callocLarge, memPool(), data.largeSizes, false);

// A block too large for any mapping cache: calloc must cost what malloc costs (no memset).
{
  const fresh: Sizes = { numbers: Uint32Array.of(FRESH_SIZE), bigints: [BigInt(FRESH_SIZE)] };
  const ops = GROUPS.callocFresh.ops;
  callocs(GROUPS.callocFresh, pseudo("PseudoMalloc calloc"), fresh, false);
  const malloc = { ...pseudo("PseudoMalloc malloc"), id: "pseudo-malloc" };
  bench(GROUPS.callocFresh, malloc, { baseline: true }, runPairSequence, fresh.numbers, ops);
  callocs(GROUPS.callocFresh, libcPeer("libc calloc (FFI)"), fresh, false);
  const libcMalloc = { ...libcPeer("libc malloc (FFI)"), id: "libc-malloc" };
  bench(GROUPS.callocFresh, libcMalloc, {}, runPairSequence, fresh.bigints, ops);
}

function reallocs<S, A>(entry: Entry<S, A>, baseline: boolean): void {
  const sizes = entry.sizes(data.reallocSizes);
  bench(GROUPS.realloc, entry, { baseline }, runReallocChains, sizes, GROUPS.realloc.ops);
}

reallocs(pseudo(), false);
reallocs(libcPeer("libc malloc/realloc/free (FFI)"), true);
reallocs(memPool(), false);

// --- 6. flat cost with scale ---------------------------------------------------------------------

{
  // One heap holding SCALE_BYTES of small blocks (requested bytes, mixed sizes), never freed.
  const scaled = { ...pseudo("PseudoMalloc, 256 MiB live"), id: "pseudo-scaled" };
  const held = new Float64Array(data.scaleSizes.length);
  for (let i = 0; i < held.length; i++) held[i] = scaled.heap.malloc(data.scaleSizes[i]!);
  const stats = scaled.heap.stats();
  if (stats.liveBytes < SCALE_BYTES) throw new Error(`scale heap holds only ${stats.liveBytes} B`);
  const note = `${held.length} blocks, ${(stats.liveBytes / 2 ** 20).toFixed(0)} MiB requested, ` +
    `${stats.arenas} arenas`;

  pairs(GROUPS.scalePair, { ...pseudo("PseudoMalloc, 1 arena"), id: "pseudo-1" }, true, "1 arena");
  pairs(GROUPS.scalePair, scaled, false, note);

  const base = { ...pseudo("PseudoMalloc, churn set only"), id: "pseudo-1" };
  churn(GROUPS.scaleChurn, base, true, "10,000 live blocks only");
  churn(GROUPS.scaleChurn, scaled, false, `${note}, plus the 10,000 churn blocks`);
}

// --- end of run ------------------------------------------------------------------------------------

finishRun(() => {
  for (const heap of heaps) heap.close();
  closeLibcMalloc();
});
