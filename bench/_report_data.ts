// The data of `deno task bench:report` (report.ts): the shapes of what it reads (Deno's bench JSON,
// the line of self-timed samples alloc_bench.ts writes to stderr, alloc_count.ts's JSON) and of the
// bench.json it writes, and what it derives from the measurements: the ratios of medians and the
// goals of issue 4, each with its target and whether it is met.

/** The tag of the stderr line in which alloc_bench.ts hands over its self-timed medians. */
export const BENCH_SAMPLES_TAG = "@pseudo/malloc bench samples:";

/**
 * The workloads of issue 11 (bench/large_bench.ts), each run in a process of its own, as the issue
 * measured them: libc's heap then holds only that workload's blocks.
 */
export const LARGE_WORKLOADS = [
  "medium",
  "medium-written",
  "large-mixed",
  "realloc-chain",
  "new-heap",
] as const;

/** Workload 11's goal: a new heap, its first malloc(16) and free, and close, in at most this. */
export const NEW_HEAP_TARGET_NS = 20_000;

/** Why the benchmarks run with Maglev off: a note of bench.json's method and of bench.md. */
export const V8_NOTE =
  "The benchmarks run with V8's mid-tier compiler off (`--v8-flags=--no-maglev`). " +
  "Maglev code calls FFI symbols through Deno's slow path (about 150 ns per call instead of 13), " +
  "and a 0.5 s bench can stay in Maglev from start to end, so libc would be measured on its slow " +
  "path. With Maglev off, hot loops go to TurboFan directly, which is where a long-running program " +
  "ends up with default flags.";

// --- types ---------------------------------------------------------------------------------------

export interface DenoBenchJson {
  version: number;
  runtime: string;
  cpu: string;
  benches: {
    origin: string;
    group: string | null;
    name: string;
    baseline: boolean;
    results: {
      ok?: {
        n: number;
        min: number;
        max: number;
        avg: number;
        p75: number;
        p99: number;
        highPrecision: boolean;
      };
      failed?: unknown;
    }[];
  }[];
}

export interface SampleSummary {
  group: string;
  workload: string;
  peer: string;
  name: string;
  ops: number;
  unit: string;
  baseline: boolean;
  note?: string;
  iterations: number;
  warmupIterations: number;
  measuredIterations: number;
  truncated: boolean;
  iterationNs: {
    median: number | null;
    mean: number | null;
    min: number | null;
    p25: number | null;
    p75: number | null;
  };
}

export interface SamplesLine {
  version: number;
  problems: string[];
  benches: SampleSummary[];
}

/** One bench, per operation. */
export interface Measurement {
  workload: string;
  group: string;
  peer: string;
  name: string;
  unit: string;
  opsPerIteration: number;
  baseline: boolean;
  note?: string;
  /** Median ns per operation: the figure every ratio uses. */
  medianNs: number;
  /** With `--runs=N`: each run's median, sorted (`medianNs` is their median). */
  runsNs?: number[];
  /** Where the median came from: this harness's own timing, or Deno's avg when it is missing. */
  medianSource: "self-timed" | "deno-avg";
  deno: { avgNs: number; minNs: number; p75Ns: number; p99Ns: number; n: number } | null;
  self: {
    meanNs: number | null;
    p25Ns: number | null;
    p75Ns: number | null;
    measuredIterations: number;
    warmupIterations: number;
    /** Iterations this harness kept after warm-up vs what Deno says it measured (null: unknown). */
    matchesDeno: boolean | null;
    /** More iterations than the sample buffer holds: the median is that of the first ones. */
    truncated: boolean;
  } | null;
}

export interface Goal {
  id: string;
  /** The issue that set it (4 when absent). */
  issue?: number;
  /** A few words, for the table. */
  short: string;
  goal: string;
  workload: string;
  numerator: string;
  denominator: string;
  target: number;
  /** How to read the target. */
  comparison: "<=" | "<";
  ratio: number | null;
  met: boolean | null;
  detail?: string;
}

export interface AllocCount {
  verdict: string;
  explanation: string;
  thresholdBytesPerOp: number;
  sensitivityBytesPerPair: number;
  method: string;
  rows: {
    id: string;
    label: string;
    kind: string;
    op: string;
    callsPerOp: number;
    bytesPerOp: number;
    repeats: number[];
    droppedSegments: number;
  }[];
}

export interface Report {
  version: 1;
  generated: string;
  machine: {
    cpu: string;
    cores: number;
    memoryGiB: number | null;
    os: string;
    kernel: string | null;
    deno: string;
    v8: string;
    typescript: string;
    loadAverageBefore: number[] | null;
  };
  method: {
    command: string;
    allocCommand: string | null;
    notes: string[];
  };
  measurements: Measurement[];
  ratios: Record<string, number | null>;
  goals: Goal[];
  allocCount: AllocCount | null;
  /** With `--runs=N`: each ratio of `runRatioKeys` in every run, in run order. */
  runRatios?: Record<string, (number | null)[]>;
  problems: string[];
}

// --- deriving --------------------------------------------------------------------------------------

export function measurements(deno: DenoBenchJson, samples: SamplesLine | null): Measurement[] {
  const out: Measurement[] = [];
  for (const bench of deno.benches) {
    const ok = bench.results[0]?.ok;
    const self = samples?.benches.find((s) => s.group === bench.group && s.name === bench.name);
    if (self === undefined) continue; // not one of ours
    const ops = self.ops;
    const perOp = (ns: number | null) => ns === null ? null : ns / ops;
    const denoMeasured = ok === undefined ? null : ok.highPrecision ? ok.n : ok.n * 1e4;
    const selfMedian = perOp(self.iterationNs.median);
    const denoAvg = ok === undefined ? null : ok.avg / ops;
    const medianNs = selfMedian ?? denoAvg;
    if (medianNs === null) continue;
    const measurement: Measurement = {
      workload: self.workload,
      group: self.group,
      peer: self.peer,
      name: self.name,
      unit: self.unit,
      opsPerIteration: ops,
      baseline: self.baseline,
      medianNs,
      medianSource: selfMedian !== null ? "self-timed" : "deno-avg",
      deno: ok === undefined ? null : {
        avgNs: ok.avg / ops,
        minNs: ok.min / ops,
        p75Ns: ok.p75 / ops,
        p99Ns: ok.p99 / ops,
        n: ok.n,
      },
      self: {
        meanNs: perOp(self.iterationNs.mean),
        p25Ns: perOp(self.iterationNs.p25),
        p75Ns: perOp(self.iterationNs.p75),
        measuredIterations: self.measuredIterations,
        warmupIterations: self.warmupIterations,
        truncated: self.truncated,
        matchesDeno: denoMeasured === null || self.truncated
          ? null
          : Math.abs(self.measuredIterations - denoMeasured) <= Math.max(2, denoMeasured * 0.01),
      },
    };
    if (self.note !== undefined) measurement.note = self.note;
    out.push(measurement);
  }
  return out;
}

export function find(list: Measurement[], workload: string, peer: string): Measurement | undefined {
  return list.find((m) => m.workload === workload && m.peer === peer);
}

export function ratioOf(list: Measurement[], workload: string, top: string, bottom: string) {
  const a = find(list, workload, top);
  const b = find(list, workload, bottom);
  return a === undefined || b === undefined ? null : a.medianNs / b.medianNs;
}

export function goals(list: Measurement[], alloc: AllocCount | null): Goal[] {
  const out: Goal[] = [];
  const ratioGoal = (
    id: string,
    short: string,
    goal: string,
    workload: string,
    top: string,
    bottom: string,
    target: number,
    detail?: string,
  ) => {
    const ratio = ratioOf(list, workload, top, bottom);
    const entry: Goal = {
      id,
      short,
      goal,
      workload,
      numerator: find(list, workload, top)?.name ?? top,
      denominator: find(list, workload, bottom)?.name ?? bottom,
      target,
      comparison: "<=",
      ratio,
      met: ratio === null ? null : ratio <= target,
    };
    if (detail !== undefined) entry.detail = detail;
    out.push(entry);
  };
  for (const workload of ["pair", "batch", "churn"]) {
    ratioGoal(
      `small-vs-libc/${workload}`,
      "small: PseudoMalloc / libc",
      "Small requests: at most 0.5x libc malloc/free through FFI",
      workload,
      "pseudo",
      "libc",
      0.5,
    );
  }
  for (const workload of ["batch", "churn"]) {
    ratioGoal(
      `small-vs-thing/${workload}`,
      "small: PseudoMalloc / @thi.ng/malloc",
      "Small requests: at most 0.2x @thi.ng/malloc",
      workload,
      "pseudo",
      "thing",
      0.2,
    );
  }
  ratioGoal(
    "large-vs-mmap",
    "large, sizes repeat: PseudoMalloc / mmap+munmap",
    "Large requests that repeat sizes: at most 0.1x a raw mmap+munmap pair through FFI",
    "large",
    "pseudo",
    "mmap",
    0.1,
  );
  ratioGoal(
    "calloc-fresh-no-memset",
    "fresh 64 MiB: calloc / malloc (no memset)",
    "calloc of a fresh large block costs no memset: calloc(64 MiB) at most 1.5x malloc(64 MiB) " +
      "(a memset of 64 MiB would cost thousands of times more)",
    "calloc-fresh",
    "pseudo",
    "pseudo-malloc",
    1.5,
  );
  for (const workload of ["scale-pair", "scale-churn"]) {
    const scaled = find(list, workload, "pseudo-scaled");
    ratioGoal(
      `flat-scale/${workload}`,
      "scale: 256 MiB live / 1 arena",
      "Flat cost with scale: with 256 MiB of live small blocks, at most 1.5x the cost with one arena",
      workload,
      "pseudo-scaled",
      "pseudo-1",
      1.5,
      scaled?.note,
    );
  }
  const issue11 = (
    id: string,
    short: string,
    goal: string,
    workload: string,
    top: string,
    bottom: string,
    target: number,
  ) => {
    ratioGoal(id, short, goal, workload, top, bottom, target);
    out[out.length - 1]!.issue = 11;
  };
  issue11(
    "medium-vs-libc",
    "1-64 KiB churn: PseudoMalloc / libc",
    "1 KiB-64 KiB churn, 1,000 live: at most 0.8x libc malloc/free through FFI",
    "medium",
    "pseudo",
    "libc",
    0.8,
  );
  issue11(
    "medium-written-vs-libc",
    "the same, written once: PseudoMalloc / libc",
    "1 KiB-64 KiB churn, every block written once: at most 1.0x libc",
    "medium-written",
    "pseudo",
    "libc",
    1.0,
  );
  issue11(
    "large-mixed-vs-libc",
    "64 KiB-4 MiB churn: PseudoMalloc / libc",
    "64 KiB-4 MiB mixed, 16 live: at most 1.0x libc",
    "large-mixed",
    "pseudo",
    "libc",
    1.0,
  );
  issue11(
    "realloc-chain-vs-libc",
    "realloc chain: PseudoMalloc / libc",
    "realloc chain 16 B to 1 MiB, doubling (a process of its own): at most 2x libc",
    "realloc-chain",
    "pseudo",
    "libc",
    2,
  );
  issue11(
    "segregated-medium",
    "1-64 KiB churn: Segregated / PseudoMalloc",
    "SegregatedAllocator within 2x of PseudoMalloc on the medium workload",
    "medium",
    "segregated",
    "pseudo",
    2,
  );
  const newHeap = find(list, "new-heap", "pseudo");
  out.push({
    id: "new-heap",
    issue: 11,
    short: "new heap + malloc(16) + free + close",
    goal: "new PseudoMalloc() + first malloc(16) + free + close(): at most 20 µs",
    workload: "new-heap",
    numerator: newHeap?.name ?? "pseudo",
    denominator: "1 ns",
    target: NEW_HEAP_TARGET_NS,
    comparison: "<=",
    ratio: newHeap?.medianNs ?? null,
    met: newHeap === undefined ? null : newHeap.medianNs <= NEW_HEAP_TARGET_NS,
  });
  if (alloc !== null) {
    const subjects = alloc.rows.filter((row) => row.kind === "subject");
    const worst = subjects.reduce((a, b) => (b.bytesPerOp > a.bytesPerOp ? b : a));
    out.push({
      id: "no-allocation",
      short: "JS heap growth per small-path operation",
      goal: "No JS object, bigint or closure created per call on the small path " +
        "(JS heap growth per operation, bench/alloc_count.ts)",
      workload: "alloc-count",
      numerator: `worst small-path loop: ${worst.label} (B/${worst.op})`,
      denominator: "1 (bytes per operation)",
      target: alloc.thresholdBytesPerOp,
      comparison: "<",
      ratio: worst.bytesPerOp,
      met: alloc.verdict === "PASS" ? true : alloc.verdict === "FAIL" ? false : null,
      detail: `${alloc.verdict}: ${alloc.explanation}`,
    });
  }
  return out;
}

export function derivedRatios(list: Measurement[]): Record<string, number | null> {
  const ratios: Record<string, number | null> = {};
  const workloads = [...new Set(list.map((m) => m.workload))];
  for (const workload of workloads) {
    for (const other of ["libc", "thing", "u8", "mmap", "floor", "floor-checked", "minimal"]) {
      if (find(list, workload, other) && find(list, workload, "pseudo")) {
        ratios[`${workload}: PseudoMalloc / ${other}`] = ratioOf(list, workload, "pseudo", other);
      }
    }
  }
  ratios["calloc-fresh: PseudoMalloc calloc / malloc"] = ratioOf(
    list,
    "calloc-fresh",
    "pseudo",
    "pseudo-malloc",
  );
  ratios["calloc-large / large: PseudoMalloc"] = (() => {
    const a = find(list, "calloc-large", "pseudo");
    const b = find(list, "large", "pseudo");
    return a && b ? a.medianNs / b.medianNs : null;
  })();
  for (const key of runRatioKeys(list)) ratios[key.key] = key.ratio(list);
  for (const workload of ["scale-pair", "scale-churn"]) {
    ratios[`${workload}: 256 MiB / 1 arena`] = ratioOf(
      list,
      workload,
      "pseudo-scaled",
      "pseudo-1",
    );
  }
  return ratios;
}

/** One run: as is. Several: the first run's record, with the median of every run's median. */
export function combineRuns(lists: Measurement[][]): Measurement[] {
  if (lists.length === 1) return lists[0]!;
  return lists[0]!.map((first) => {
    const all = lists.map((list) => find(list, first.workload, first.peer)?.medianNs)
      .filter((value): value is number => value !== undefined)
      .sort((a, b) => a - b);
    const middle = all.length >> 1;
    const medianNs = all.length % 2 === 1 ? all[middle]! : (all[middle - 1]! + all[middle]!) / 2;
    return { ...first, medianNs, runsNs: all };
  });
}

/**
 * The ratios whose spread over runs bench.md shows: on the workloads of issue 11, every peer's time
 * over libc's (over PseudoMalloc's on the new heap, which has no libc peer).
 */
export function runRatioKeys(
  list: Measurement[],
): { key: string; ratio: (list: Measurement[]) => number | null }[] {
  const keys: { key: string; ratio: (list: Measurement[]) => number | null }[] = [];
  for (const workload of LARGE_WORKLOADS) {
    const bottom = workload === "new-heap" ? "pseudo" : "libc";
    for (const m of list.filter((m) => m.workload === workload && m.peer !== bottom)) {
      keys.push({
        key: `${workload}: ${m.peer} / ${bottom}`,
        ratio: (other) => ratioOf(other, workload, m.peer, bottom),
      });
    }
  }
  return keys;
}

/** Each run's value of every ratio of `runRatioKeys`. */
export function ratiosByRun(lists: Measurement[][]): Record<string, (number | null)[]> {
  const out: Record<string, (number | null)[]> = {};
  for (const { key, ratio } of runRatioKeys(lists[0] ?? [])) out[key] = lists.map(ratio);
  return out;
}
