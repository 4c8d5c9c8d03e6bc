// The benchmarks of issue 11, beyond small blocks: medium churn (7), the same written once (8),
// large mixed churn (9), the realloc chain (10) and a new heap (11), on the workloads of
// `_large_workloads.ts`. Peers: libc malloc through FFI (the baseline of 7-10), PseudoMalloc with
// default options, the family allocators that fit (Segregated, FirstFit and Mmap on 7-10; all
// five on 11), `@thi.ng/malloc`'s MemPool, and two WebAssembly allocators from npm
// (`_wasm_peers.ts`): Emscripten's dlmalloc in sql.js (no realloc exported: not on 10) and
// AssemblyScript's TLSF.
//
//   deno bench --allow-ffi --allow-env=NODE_ENV,UMBRELLA_ASSERTS,CI --v8-flags=--no-maglev \
//     bench/large_bench.ts [-- --samples] [-- --workload=medium,realloc-chain]
//
// `--workload=ID,...` registers only those workloads: `deno task bench:report` runs each in a
// process of its own, as the issue measured (libc's heap then holds only that workload's blocks:
// glibc's realloc chain costs 0.8-4 µs in a process of its own and 17-25 µs after the small and
// large workloads of alloc_bench.ts, where it can no longer grow the block in place at the top of
// its heap and copies it at every step). Everything else is as in alloc_bench.ts (its opening
// comment): batches of operations per iteration, one copy of each loop per bench (`specialize`),
// one iteration run and checked before timing, the live counts checked again at the end, the
// self-timed medians on stderr with `--samples`.

import {
  BumpAllocator,
  CellAllocator,
  FirstFitAllocator,
  MmapAllocator,
  PseudoMalloc,
  SegregatedAllocator,
} from "../mod.ts";
import { closeLibcMalloc, libcMalloc } from "../ffi/libc_malloc.ts";
import { bench, type Entry, finishRun, type Group } from "./_bench_harness.ts";
import {
  BigintMemset,
  BufferFill,
  type ChurnData,
  closeMemset,
  FIRST_SIZE,
  generateLarge,
  type HeapMaker,
  LARGE_LIVE,
  MEDIUM_LIVE,
  MEDIUM_MAX,
  NumberMemset,
  runChurnWritten,
  runNewHeaps,
  runWrites,
  type Writer,
} from "./_large_workloads.ts";
import {
  fillLive,
  generate,
  MemPoolPeer,
  type Peer,
  runChurn,
  runReallocChains,
  type Sizes,
  specialize,
} from "./_workloads.ts";
import { compiledTlsf, dlmalloc, TlsfPeer, type WasmAllocator } from "./_wasm_peers.ts";

// --- groups ------------------------------------------------------------------------------------

const GROUPS = {
  medium: {
    id: "medium",
    title: "7. medium 1-64 KiB churn, 1,000 live, x256 steps",
    ops: 256,
    unit: "step (free + malloc)",
  },
  written: {
    id: "medium-written",
    title: "8. medium churn, each new block written once, x256 steps",
    ops: 256,
    unit: "step (free + malloc + write)",
  },
  large: {
    id: "large-mixed",
    title: "9. large 64 KiB-4 MiB churn, 16 live, x64 steps",
    ops: 64,
    unit: "step (free + malloc)",
  },
  realloc: {
    id: "realloc-chain",
    title: "10. malloc(16), realloc doubling to 1 MiB, free, x16 (own process)",
    ops: 16,
    unit: "chain (16 reallocs)",
  },
  newHeap: {
    id: "new-heap",
    title: "11. new heap + malloc(16) + free + close",
    ops: 1,
    unit: "heap",
  },
} as const satisfies Record<string, Group>;

const selected = (() => {
  const arg = Deno.args.find((a) => a.startsWith("--workload="));
  if (arg === undefined) return null;
  const ids = arg.slice("--workload=".length).split(",");
  const known: string[] = Object.values(GROUPS).map((group) => group.id);
  for (const id of ids) {
    if (!known.includes(id)) throw new Error(`Cannot run workload "${id}": not one of ${known}`);
  }
  return ids;
})();
const wanted = (group: Group) => selected === null || selected.includes(group.id);

// --- peers ---------------------------------------------------------------------------------------

const data = generateLarge();
const chain = generate().reallocSizes;
const libc = libcMalloc();
const closers: (() => void)[] = [];

const asNumbers = {
  sizes: (sizes: Sizes) => sizes.numbers,
  size: (bytes: number) => bytes,
  one: 1,
  empty: 0,
};

function libcPeer(name = "libc malloc/free (FFI)"): Entry<bigint, bigint> {
  return {
    id: "libc",
    name,
    peer: libc,
    sizes: (sizes) => sizes.bigints,
    size: BigInt,
    one: 1n,
    empty: 0n,
  };
}

function pseudo(): Entry<number, number> {
  const heap = new PseudoMalloc();
  closers.push(() => heap.close());
  return {
    id: "pseudo",
    name: "PseudoMalloc",
    peer: heap,
    ...asNumbers,
    live: () => heap.stats().liveAllocations,
  };
}

interface Closable extends Peer<number, number> {
  close(): void;
  stats(): { liveAllocations: number };
}

function family(id: string, name: string, make: () => Closable): () => Entry<number, number> {
  return () => {
    const heap = make();
    closers.push(() => heap.close());
    return { id, name, peer: heap, ...asNumbers, live: () => heap.stats().liveAllocations };
  };
}

const segregated = family("segregated", "SegregatedAllocator", () => new SegregatedAllocator());
const firstFit = family("first-fit", "FirstFitAllocator", () => new FirstFitAllocator());
const mmapAllocator = family("mmap-allocator", "MmapAllocator", () => new MmapAllocator());

function memPool(size: number): Entry<number, number> & { pool: MemPoolPeer } {
  const pool = new MemPoolPeer(size);
  return {
    id: "thing",
    name: "@thi.ng/malloc MemPool",
    peer: pool,
    pool,
    ...asNumbers,
    live: () => pool.live,
  };
}

function wasmPeer<P extends WasmAllocator>(
  id: string,
  name: string,
  peer: P,
): Entry<number, number> {
  return { id, name, peer, ...asNumbers };
}

const needsDlmalloc = [GROUPS.medium, GROUPS.written, GROUPS.large].some(wanted);
const needsTlsf = [GROUPS.medium, GROUPS.written, GROUPS.large, GROUPS.realloc, GROUPS.newHeap]
  .some(wanted);
const dl = needsDlmalloc ? await dlmalloc() : null;
const tlsfModule = needsTlsf ? await compiledTlsf() : null;
const dlmallocPeer = () => wasmPeer("dlmalloc", "dlmalloc (sql.js, wasm)", dl!);
const tlsfPeer = () => wasmPeer("tlsf", "TLSF (AssemblyScript, wasm)", new TlsfPeer(tlsfModule!));

/** A packed (not holey) array of `length` copies of `value`. */
function filled<T>(length: number, value: T): T[] {
  const array: T[] = [];
  for (let i = 0; i < length; i++) array.push(value);
  return array;
}

/** MemPool sizes: room for the live set many times over (it fragments; it returns 0 when full). */
const MEDIUM_POOL = 256 << 20;
const LARGE_POOL = 512 << 20;

// --- 7. medium churn (and 9) ------------------------------------------------------------------

function churn<S, A>(group: Group, churnData: ChurnData, live: number, entry: Entry<S, A>) {
  const blocks = filled(live, entry.empty);
  specialize(fillLive)(entry.peer, 0, entry.sizes(churnData.initial), blocks);
  const sizes = entry.sizes(churnData.sizes);
  const baseline = entry.id === "libc";
  bench(group, entry, { baseline }, runChurn, blocks, churnData.indices, sizes, group.ops);
}

function churnAll(group: Group, churnData: ChurnData, live: number, pool: number): void {
  churn(group, churnData, live, pseudo());
  churn(group, churnData, live, libcPeer());
  churn(group, churnData, live, segregated());
  churn(group, churnData, live, firstFit());
  churn(group, churnData, live, mmapAllocator());
  churn(group, churnData, live, memPool(pool));
  churn(group, churnData, live, dlmallocPeer());
  churn(group, churnData, live, tlsfPeer());
}

if (wanted(GROUPS.medium)) churnAll(GROUPS.medium, data.medium, MEDIUM_LIVE, MEDIUM_POOL);

// --- 8. medium churn, written once ---------------------------------------------------------------

function written<S, A, W>(entry: Entry<S, A>, writer: Writer<A, W>, writeSizes: ArrayLike<W>) {
  const group = GROUPS.written;
  const blocks = filled(MEDIUM_LIVE, entry.empty);
  specialize(fillLive)(entry.peer, 0, entry.sizes(data.medium.initial), blocks);
  const sizes = entry.sizes(data.medium.sizes);
  const indices = data.medium.indices;
  const options = { baseline: entry.id === "libc" };
  bench(
    group,
    entry,
    options,
    runChurnWritten,
    blocks,
    indices,
    sizes,
    group.ops,
    writer,
    writeSizes,
  );
}

if (wanted(GROUPS.written)) {
  const bigints = data.medium.sizes.bigints;
  const numbers = data.medium.sizes.numbers;
  written(pseudo(), new NumberMemset(), bigints);
  written(libcPeer(), new BigintMemset(), bigints);
  written(segregated(), new NumberMemset(), bigints);
  written(firstFit(), new NumberMemset(), bigints);
  written(mmapAllocator(), new NumberMemset(), bigints);
  const pool = memPool(MEDIUM_POOL);
  written(pool, new BufferFill(() => pool.pool.buf), numbers);
  const dlEntry = dlmallocPeer();
  written(dlEntry, new BufferFill(() => dl!.memory.buffer), numbers);
  const tlsfEntry = tlsfPeer();
  const tlsfMemory = (tlsfEntry.peer as TlsfPeer).memory;
  written(tlsfEntry, new BufferFill(() => tlsfMemory.buffer), numbers);

  // The write alone, at one address, with no allocator: what each way of writing costs.
  const block = libc.malloc(BigInt(MEDIUM_MAX));
  closers.push(() => libc.free(block));
  const floor = (id: string, name: string, writer: unknown, address: unknown, sizes: unknown) =>
    bench(
      GROUPS.written,
      { id, name, peer: writer as Peer<number, number>, ...asNumbers },
      { note: "the write alone: no allocator" },
      runWrites,
      address,
      sizes,
      GROUPS.written.ops,
    );
  floor("write-memset", "memset alone (FFI, bigint address)", new BigintMemset(), block, bigints);
  floor(
    "write-memset-number",
    "memset alone (FFI, number address)",
    new NumberMemset(),
    Number(block),
    bigints,
  );
  const buffer = new ArrayBuffer(MEDIUM_MAX);
  floor("write-fill", "Uint8Array fill alone", new BufferFill(() => buffer), 0, numbers);
}

// --- 9. large mixed churn ------------------------------------------------------------------------

if (wanted(GROUPS.large)) churnAll(GROUPS.large, data.large, LARGE_LIVE, LARGE_POOL);

// --- 10. realloc chain ---------------------------------------------------------------------------

function reallocs<S, A>(entry: Entry<S, A>): void {
  const sizes = entry.sizes(chain);
  const options = { baseline: entry.id === "libc" };
  bench(GROUPS.realloc, entry, options, runReallocChains, sizes, GROUPS.realloc.ops);
}

if (wanted(GROUPS.realloc)) {
  reallocs(pseudo());
  reallocs(libcPeer("libc malloc/realloc/free (FFI)"));
  reallocs(segregated());
  reallocs(firstFit());
  reallocs(mmapAllocator());
  reallocs(memPool(64 << 20));
  reallocs(tlsfPeer());
}

// --- 11. new heap --------------------------------------------------------------------------------

function newHeaps<H extends Peer<number, number>>(id: string, name: string, maker: HeapMaker<H>) {
  const entry = { id, name, peer: maker as unknown as Peer<number, number>, ...asNumbers };
  bench(GROUPS.newHeap, entry, {}, runNewHeaps, FIRST_SIZE, GROUPS.newHeap.ops);
}

// Each maker is an object literal of its own, so that its functions are its own too: closures made
// by one shared helper would share V8's feedback, and the loop's calls would see every kind.
if (wanted(GROUPS.newHeap)) {
  newHeaps("pseudo", "new PseudoMalloc()", {
    make: () => new PseudoMalloc(),
    close: (heap: PseudoMalloc) => heap.close(),
  });
  newHeaps("segregated", "new SegregatedAllocator()", {
    make: () => new SegregatedAllocator(),
    close: (heap: SegregatedAllocator) => heap.close(),
  });
  newHeaps("first-fit", "new FirstFitAllocator()", {
    make: () => new FirstFitAllocator(),
    close: (heap: FirstFitAllocator) => heap.close(),
  });
  newHeaps("mmap-allocator", "new MmapAllocator()", {
    make: () => new MmapAllocator(),
    close: (heap: MmapAllocator) => heap.close(),
  });
  newHeaps("bump", "new BumpAllocator()", {
    make: () => new BumpAllocator(),
    close: (heap: BumpAllocator) => heap.close(),
  });
  newHeaps("cell", "new CellAllocator()", {
    make: () => new CellAllocator(),
    close: (heap: CellAllocator) => heap.close(),
  });
  const module = tlsfModule!;
  newHeaps("tlsf", "new TLSF instance (AssemblyScript, wasm)", {
    make: () => new TlsfPeer(module),
    close: (_heap: TlsfPeer) => {},
  });
  newHeaps("thing", "new MemPool({ size: 1 MiB }) + release()", {
    make: () => new MemPoolPeer(1 << 20),
    close: (pool: MemPoolPeer) => void pool.release(),
  });
}

// --- end of run ----------------------------------------------------------------------------------

finishRun(() => {
  for (const close of closers) close();
  closeMemset();
  closeLibcMalloc();
});
