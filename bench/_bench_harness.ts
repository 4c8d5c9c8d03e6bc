// The harness of the benchmarks (alloc_bench.ts): registers each Deno.bench on its own copy of its
// loop and of its iteration function (`specialize`), checks that one iteration leaves the peer's
// live blocks as it found them, times every iteration itself into a preallocated buffer, and sums
// up the samples after Deno's warm-up (median, mean, quartiles) for the line report.ts reads. Why
// each of these: alloc_bench.ts's opening comment.

import { BENCH_SAMPLES_TAG } from "./_report_data.ts";
import { type Loop, type Peer, type Sizes, specialize } from "./_workloads.ts";

/** One workload: a Deno.bench group. */
export interface Group {
  id: string;
  /** The group name Deno prints. */
  title: string;
  /** Operations per bench iteration. */
  ops: number;
  /** What one operation is. */
  unit: string;
}

// --- self-timed samples ------------------------------------------------------------------------

export interface BenchRecord {
  group: string;
  workload: string;
  peer: string;
  name: string;
  ops: number;
  unit: string;
  baseline: boolean;
  note?: string;
  samples: Float64Array;
  count: number;
  /** Live blocks of the peer once every bench is set up; the same must be live after the run. */
  expectLive: number;
  live?: () => number;
}

export const records: BenchRecord[] = [];
const SAMPLE_CAPACITY = 1 << 18;
const DENO_WARMUP_BUDGET_MS = 10;
const DENO_WARMUP_ITERATIONS = 0;

/**
 * One bench iteration: `run(peer, cursor, ...args)`, timed into `record`. Cloned per bench with
 * `specialize` (as `run` is), so that no call site is shared between peers: a closure literal shared
 * by several peers gets one optimised code for all, and with it libc lost Deno's FFI fast path
 * (measured: 145 ns per pair instead of 13).
 */
function timedIteration(
  record: { samples: Float64Array; count: number },
  run: Loop,
  peer: unknown,
  a: unknown,
  b: unknown,
  c: unknown,
  d: unknown,
  e: unknown,
  f: unknown,
): () => void {
  let cursor = 0;
  return function iteration() {
    const start = performance.now();
    cursor = run(peer, cursor, a, b, c, d, e, f);
    const elapsed = performance.now() - start;
    if (record.count < record.samples.length) record.samples[record.count] = elapsed;
    record.count++;
  };
}

/**
 * Registers one Deno.bench: `run` (cloned for this bench) over `entry.peer` with `args`. Runs one
 * iteration first, outside timing, and checks that it leaves as many blocks live as it found.
 */
export function bench<S, A>(
  group: Group,
  entry: Entry<S, A>,
  options: { baseline?: boolean; note?: string },
  run: Loop,
  ...args: unknown[]
): void {
  const before = entry.live?.() ?? 0;
  const record: BenchRecord = {
    group: group.title,
    workload: group.id,
    peer: entry.id,
    name: entry.name,
    ops: group.ops,
    unit: group.unit,
    baseline: options.baseline ?? false,
    samples: new Float64Array(SAMPLE_CAPACITY),
    count: 0,
    expectLive: before,
  };
  if (options.note !== undefined) record.note = options.note;
  if (entry.live !== undefined) record.live = entry.live;
  records.push(record);
  const [a, b, c, d, e, f] = args;
  const iteration = specialize(timedIteration)(
    record,
    specialize(run),
    entry.peer,
    a,
    b,
    c,
    d,
    e,
    f,
  );
  iteration();
  record.count = 0;
  const after = entry.live?.() ?? 0;
  if (after !== before) {
    throw new Error(`${entry.name}: ${after} blocks live after one iteration, expected ${before}`);
  }
  Deno.bench({ name: entry.name, group: group.title, baseline: record.baseline, fn: iteration });
}

/** The median of the iterations after Deno's warm-up, and what was counted. */
export function summarize(record: BenchRecord) {
  const kept = Math.min(record.count, SAMPLE_CAPACITY);
  let warmup = 0;
  for (let spent = 0; warmup < kept && spent < DENO_WARMUP_BUDGET_MS; warmup++) {
    spent += record.samples[warmup]!;
  }
  warmup = Math.min(kept, warmup + DENO_WARMUP_ITERATIONS);
  const measured = record.samples.slice(warmup, kept).sort();
  const at = (q: number) =>
    measured[Math.min(measured.length - 1, Math.floor(q * measured.length))]!;
  const ns = (ms: number) => measured.length === 0 ? null : ms * 1e6;
  let sum = 0;
  for (const value of measured) sum += value;
  return {
    group: record.group,
    workload: record.workload,
    peer: record.peer,
    name: record.name,
    ops: record.ops,
    unit: record.unit,
    baseline: record.baseline,
    ...(record.note === undefined ? {} : { note: record.note }),
    iterations: record.count,
    warmupIterations: warmup,
    measuredIterations: measured.length,
    truncated: record.count > SAMPLE_CAPACITY,
    iterationNs: {
      median: ns(
        measured.length % 2 === 1 || measured.length === 0 ? at(0.5) : (
          measured[measured.length / 2 - 1]! + measured[measured.length / 2]!
        ) / 2,
      ),
      mean: ns(sum / Math.max(1, measured.length)),
      min: ns(measured[0] ?? 0),
      p25: ns(at(0.25)),
      p75: ns(at(0.75)),
    },
  };
}

/** A peer as one bench group sees it. `S` is its size type, `A` its address type. */
export interface Entry<S, A> {
  id: string;
  name: string;
  peer: Peer<S, A>;
  sizes(sizes: Sizes): ArrayLike<S>;
  size(bytes: number): S;
  one: S;
  /** A placeholder address, to fill handle arrays before use. */
  empty: A;
  /** Live blocks now, where the peer can tell (for the checks). */
  live?: () => number;
}

/**
 * At the end of the run (`unload`): checks that every peer holds as many blocks live as when its
 * benches were set up, writes the samples line for report.ts (with `--samples`), then `cleanup()`.
 * Call once every bench is registered: what each peer holds live then is what it must hold after.
 */
export function finishRun(cleanup: () => void): void {
  for (const record of records) record.expectLive = record.live?.() ?? 0;
  addEventListener("unload", () => {
    const problems: string[] = [];
    for (const record of records) {
      const live = record.live?.();
      if (live !== undefined && live !== record.expectLive) {
        problems.push(
          `${record.group} / ${record.name}: ${live} live, expected ${record.expectLive}`,
        );
      }
    }
    const line = JSON.stringify({
      version: 1,
      problems,
      benches: records.filter((record) => record.count > 0).map(summarize),
    });
    if (Deno.args.includes("--samples")) console.error(`${BENCH_SAMPLES_TAG} ${line}`);
    if (problems.length > 0) console.error(`bench checks failed:\n  ${problems.join("\n  ")}`);
    cleanup();
  });
}
