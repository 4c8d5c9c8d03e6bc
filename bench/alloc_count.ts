// Does PseudoMalloc's small path create JS objects? `deno task bench:alloc`.
//
// Method: V8's young generation is made larger than anything the measurement allocates
// (`--max-semi-space-size=128 --min-semi-space-size=128`, in MiB), so no garbage collection runs
// while a loop is measured, and every object the loop creates stays counted in
// `Deno.memoryUsage().heapUsed`. Each loop is warmed up (so that its optimised code is what runs),
// then `gc()` (`--expose-gc`) clears the heap, and heapUsed is read every `SEGMENT` operations.
// Bytes per operation is the median over the segments of (growth / operations): a segment in which
// a collection did run anyway (heapUsed went down) is dropped, and the others are unaffected.
//
// Sensitivity is shown in the same run: the same 64-byte loop through an adapter that creates one
// small object (`{ size }`) per malloc must measure at least 8 bytes more per pair than the bare
// loop; and libc through FFI, whose churn keeps each returned address (a bigint) in an array, shows
// what a bigint per call costs; calloc and churn on a heap with `lowAddresses: false` show what an
// address above 2^31 costs (a heap number each time one leaves optimised code). A JS object costs
// at least 12 bytes, a heap number or bigint 12-16, a closure 32: the 1 byte-per-operation
// threshold misses none of them, even one per operation.
//
// Output: a table and a verdict (PASS, FAIL or INCONCLUSIVE; exit code 0, 1, 2); with `--json`,
// the same as JSON on stdout (for report.ts).

import { PseudoMalloc } from "../mod.ts";
import { closeLibcMalloc, libcMalloc } from "../ffi/libc_malloc.ts";
import {
  BATCH_COUNT,
  BATCH_SIZE,
  CHURN_LIVE,
  fillLive,
  generate,
  type Loop,
  PAIR_SIZE,
  type Peer,
  runBatches,
  runCallocSequence,
  runChurn,
  runPairs,
  runReallocChains,
  specialize,
} from "./_workloads.ts";

/** Operations between two heapUsed readings. */
const SEGMENT = 100_000;
/** Readings per measurement. */
const SEGMENTS = 10;
/** Operations run before measuring, to reach optimised code. */
const WARMUP = 2_000_000;
/** Measurements per loop; the median is reported. */
const REPEATS = 3;
/** A loop allocation-free when it grows the heap by less than this many bytes per operation. */
const THRESHOLD = 1;
/** The control must measure at least this much more than the bare loop. */
const SENSITIVITY = 8;

const json = Deno.args.includes("--json");
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) {
  console.error(
    "alloc_count.ts needs V8 flags: run `deno task bench:alloc`, or\n" +
      "deno run --allow-ffi --allow-env=NODE_ENV,UMBRELLA_ASSERTS " +
      "--v8-flags=--expose-gc,--max-semi-space-size=128,--min-semi-space-size=128 " +
      "bench/alloc_count.ts",
  );
  Deno.exit(2);
}

/** Calls `run` once per segment, reading heapUsed before and after each. Cloned per loop. */
function measureSegments(
  run: Loop,
  peer: unknown,
  state: { cursor: number },
  readings: Float64Array,
  a: unknown,
  b: unknown,
  c: unknown,
  d: unknown,
  e: unknown,
): void {
  readings[0] = Deno.memoryUsage().heapUsed;
  for (let i = 1; i < readings.length; i++) {
    state.cursor = run(peer, state.cursor, a, b, c, d, e);
    readings[i] = Deno.memoryUsage().heapUsed;
  }
}

interface Row {
  id: string;
  label: string;
  kind: "subject" | "control" | "reference";
  /** What one operation is, and how many allocator calls it makes. */
  op: string;
  callsPerOp: number;
  bytesPerOp: number;
  /** Each repeat's bytes per operation. */
  repeats: number[];
  /** Segments dropped because a collection ran in them. */
  droppedSegments: number;
}

/**
 * Measures one loop: `run(peer, cursor, ...args)` where the arguments make one call do `SEGMENT`
 * operations.
 */
function measure(
  row: Omit<Row, "bytesPerOp" | "repeats" | "droppedSegments">,
  run: Loop,
  peer: unknown,
  ...args: unknown[]
): Row {
  const [a, b, c, d, e] = args;
  const loop = specialize(run);
  const segments = specialize(measureSegments);
  const state = { cursor: 0 };
  for (let done = 0; done < WARMUP; done += SEGMENT) {
    state.cursor = loop(peer, state.cursor, ...args);
  }
  const readings = new Float64Array(SEGMENTS + 1);
  const repeats: number[] = [];
  let dropped = 0;
  for (let r = 0; r < REPEATS; r++) {
    gc!();
    gc!();
    segments(loop, peer, state, readings, a, b, c, d, e);
    const perOp: number[] = [];
    for (let i = 1; i < readings.length; i++) {
      const growth = readings[i]! - readings[i - 1]!;
      if (growth < 0) dropped++;
      else perOp.push(growth / SEGMENT);
    }
    repeats.push(median(perOp));
  }
  return { ...row, bytesPerOp: median(repeats), repeats, droppedSegments: dropped };
}

function median(values: number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((x, y) => x - y);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

// --- loops -----------------------------------------------------------------------------------------

const data = generate();
const rows: Row[] = [];
const heaps: PseudoMalloc[] = [];
function heap(): PseudoMalloc {
  const created = new PseudoMalloc();
  heaps.push(created);
  return created;
}

rows.push(measure(
  {
    id: "pair",
    label: "malloc(64) + free",
    kind: "subject",
    op: "pair",
    callsPerOp: 2,
  },
  runPairs,
  heap(),
  PAIR_SIZE,
  SEGMENT,
));

rows.push(measure(
  {
    id: "batch",
    label: "batches of 256 mixed sizes, shuffled frees",
    kind: "subject",
    op: "pair",
    callsPerOp: 2,
  },
  runBatches,
  heap(),
  data.batchSizes.numbers,
  data.batchOrders,
  new Array<number>(BATCH_SIZE).fill(0),
  BATCH_SIZE,
  BATCH_COUNT,
  // Batches per call, rounded up to whole batches: SEGMENT pairs is 390.6 batches.
  Math.ceil(SEGMENT / BATCH_SIZE),
));
// A call does whole batches: correct the operation count of that row.
{
  const row = rows[rows.length - 1]!;
  const scale = SEGMENT / (Math.ceil(SEGMENT / BATCH_SIZE) * BATCH_SIZE);
  row.bytesPerOp *= scale;
  row.repeats = row.repeats.map((value) => value * scale);
}

/** Churn steps over `CHURN_LIVE` blocks of `churnHeap`, which this fills first. */
function churnRow(id: string, label: string, kind: Row["kind"], churnHeap: PseudoMalloc): Row {
  const live = new Array<number>(CHURN_LIVE).fill(0);
  specialize(fillLive)(churnHeap, 0, data.churnInitial.numbers, live);
  const row = { id, label, kind, op: "step", callsPerOp: 2 };
  return measure(
    row,
    runChurn,
    churnHeap,
    live,
    data.churnIndices,
    data.churnSizes.numbers,
    SEGMENT,
  );
}

/** calloc(1, size) + free pairs over the seeded small sizes. */
function callocRow(id: string, label: string, kind: Row["kind"], callocHeap: PseudoMalloc): Row {
  const row = { id, label, kind, op: "pair", callsPerOp: 2 };
  return measure(row, runCallocSequence, callocHeap, data.callocSizes.numbers, SEGMENT, 1);
}

rows.push(churnRow("churn", "churn step over 10,000 live blocks", "subject", heap()));
rows.push(callocRow("calloc", "calloc(1, 16-1008) + free", "subject", heap()));

{
  // Small-only realloc chains: 16 to 512 bytes (below the 1024-byte mmap threshold), 6 reallocs.
  const chain = Uint32Array.of(16, 32, 64, 128, 256, 512);
  const chains = SEGMENT / 10;
  const row = measure(
    {
      id: "realloc",
      label: "malloc(16), realloc to 32..512, free",
      kind: "subject",
      op: "chain",
      callsPerOp: chain.length + 1,
    },
    runReallocChains,
    heap(),
    chain,
    chains,
  );
  // A call does SEGMENT / 10 chains: express per chain.
  row.bytesPerOp *= 10;
  row.repeats = row.repeats.map((value) => value * 10);
  rows.push(row);
}

// The same small-path loops on a heap whose arenas lie above 2^31 (`lowAddresses: false`): what
// the low window saves. A reference, not a subject: such addresses are doubles, boxed whenever
// one leaves optimised code as a value.
{
  const highHeap = () => {
    const created = new PseudoMalloc({ lowAddresses: false });
    heaps.push(created);
    return created;
  };
  const note = "arenas above 2^31 (lowAddresses: false)";
  rows.push(callocRow("high-calloc", `reference: calloc + free, ${note}`, "reference", highHeap()));
  rows.push(churnRow("high-churn", `reference: churn step, ${note}`, "reference", highHeap()));
}

/** The control: the bare pair loop's heap, plus one small object per malloc. */
class OneObjectPerCall implements Peer<number, number> {
  #heap: PseudoMalloc;
  last: { size: number } = { size: 0 };
  constructor(heap: PseudoMalloc) {
    this.#heap = heap;
  }
  malloc(size: number): number {
    this.last = { size };
    return this.#heap.malloc(size);
  }
  free(address: number): void {
    this.#heap.free(address);
  }
}

rows.push(measure(
  {
    id: "control",
    label: "control: malloc(64) + free, plus one { size } per malloc",
    kind: "control",
    op: "pair",
    callsPerOp: 2,
  },
  runPairs,
  new OneObjectPerCall(heap()),
  PAIR_SIZE,
  SEGMENT,
));

const libc = libcMalloc();
rows.push(measure(
  {
    id: "libc-pair",
    label: "reference: libc malloc(64n) + free through FFI",
    kind: "reference",
    op: "pair",
    callsPerOp: 2,
  },
  runPairs,
  libc,
  BigInt(PAIR_SIZE),
  SEGMENT,
));
{
  const live = new Array<bigint>(CHURN_LIVE).fill(0n);
  specialize(fillLive)(libc, 0, data.churnInitial.bigints, live);
  rows.push(measure(
    {
      id: "libc-churn",
      label: "reference: libc churn step through FFI (keeps each bigint address)",
      kind: "reference",
      op: "step",
      callsPerOp: 2,
    },
    runChurn,
    libc,
    live,
    data.churnIndices,
    data.churnSizes.bigints,
    SEGMENT,
  ));
  for (const address of live) libc.free(address);
}

for (const created of heaps) created.close();
closeLibcMalloc();

// --- verdict ---------------------------------------------------------------------------------------

const subjects = rows.filter((row) => row.kind === "subject");
const control = rows.find((row) => row.id === "control")!;
const bare = rows.find((row) => row.id === "pair")!;
const sensitivity = control.bytesPerOp - bare.bytesPerOp;
const sensitive = sensitivity >= SENSITIVITY;
const allocating = subjects.filter((row) => !(row.bytesPerOp < THRESHOLD));
const verdict = !sensitive ? "INCONCLUSIVE" : allocating.length === 0 ? "PASS" : "FAIL";
const explanation = !sensitive
  ? `the control measured only ${
    sensitivity.toFixed(2)
  } B per pair above the bare loop (need ${SENSITIVITY}): the measurement is not sensitive here`
  : allocating.length === 0
  ? `every small-path loop grows the JS heap by less than ${THRESHOLD} B per operation, ` +
    `while one object per malloc shows as ${sensitivity.toFixed(1)} B per pair`
  : `${
    allocating.map((row) => `${row.label}: ${row.bytesPerOp.toFixed(1)} B/${row.op}`).join("; ")
  } (at least one JS heap object per operation; one object per malloc shows as ${
    sensitivity.toFixed(1)
  } B per pair)`;

const result = {
  version: 1,
  method: `heapUsed growth with no GC (semi-space 128 MiB), ${SEGMENTS} segments of ${SEGMENT} ` +
    `operations after ${WARMUP} warm-up operations, median of ${REPEATS} repeats`,
  v8: Deno.version.v8,
  thresholdBytesPerOp: THRESHOLD,
  sensitivityBytesPerPair: sensitivity,
  verdict,
  explanation,
  rows,
};

if (json) {
  console.log(JSON.stringify(result, null, 2));
} else {
  console.log(`JS heap growth per operation (${result.method})\n`);
  const width = Math.max(...rows.map((row) => row.label.length));
  for (const row of rows) {
    const perCall = row.bytesPerOp / row.callsPerOp;
    console.log(
      `${row.label.padEnd(width)}  ${row.bytesPerOp.toFixed(2).padStart(7)} B/${row.op.padEnd(5)}` +
        `  ${perCall.toFixed(2).padStart(6)} B/call` +
        (row.droppedSegments > 0 ? `  (${row.droppedSegments} segments dropped: GC ran)` : ""),
    );
  }
  console.log(`\n${verdict}: ${explanation}`);
}
Deno.exit(verdict === "PASS" ? 0 : verdict === "FAIL" ? 1 : 2);
