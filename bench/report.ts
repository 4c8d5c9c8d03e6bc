// `deno task bench:report`: runs the benchmarks (bench/alloc_bench.ts) and the allocation count
// (bench/alloc_count.ts) in subprocesses, and makes bench.json (machine, raw and derived numbers,
// every goal of issue 4 with its target, measured ratio and whether it is met), bench.md (tables
// for the README, also printed on stdout) and bench.svg (a bar chart).
//
//   deno task bench:report [--runs=N] [--skip-alloc] [--from=FILE] [--write]
//
// Where the documents go: by default into a new temporary directory (named on stderr), so that a
// run leaves the working tree as it was; with `--write`, into docs/ (the tracked copies that the
// README shows). Either way they are laid out as `deno fmt` would (docs/ is outside deno fmt's
// files, so the text goes through its standard input).
//
// Per-operation times are the median iteration time over the operations per iteration. The median
// comes from alloc_bench.ts's own timing of each iteration (Deno's JSON has no median); Deno's
// avg, min and p75 are kept in bench.json too. Options: `--runs=N` runs the benchmarks N times and
// takes the median of the N medians (steadier on a busy machine); `--skip-alloc` skips the
// allocation count; `--from=FILE` rebuilds the documents from a saved bench.json, running nothing.

import { parseArgs } from "node:util";

/** The tag of the stderr line in which alloc_bench.ts hands over its self-timed medians. */
export const BENCH_SAMPLES_TAG = "@pseudo/malloc bench samples:";

/** Flags of the benchmark run. Maglev off: see `V8_NOTE`. */
export const BENCH_FLAGS = [
  "--allow-ffi",
  "--allow-env=NODE_ENV,UMBRELLA_ASSERTS",
  "--v8-flags=--no-maglev",
];
/** Flags of the allocation count: no GC while a loop is measured, and `gc()`. */
export const ALLOC_FLAGS = [
  "--allow-ffi",
  "--allow-env=NODE_ENV,UMBRELLA_ASSERTS",
  "--v8-flags=--expose-gc,--max-semi-space-size=128,--min-semi-space-size=128",
];

const V8_NOTE = "The benchmarks run with V8's mid-tier compiler off (`--v8-flags=--no-maglev`). " +
  "Maglev code calls FFI symbols through Deno's slow path (about 150 ns per call instead of 13), " +
  "and a 0.5 s bench can stay in Maglev from start to end, so libc would be measured on its slow " +
  "path. With Maglev off, hot loops go to TurboFan directly, which is where a long-running program " +
  "ends up with default flags.";

const OUT_DIR = new URL("../docs/", import.meta.url);

// --- types ---------------------------------------------------------------------------------------

interface DenoBenchJson {
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

interface SampleSummary {
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

interface SamplesLine {
  version: number;
  problems: string[];
  benches: SampleSummary[];
}

/** One bench, per operation. */
interface Measurement {
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

interface Goal {
  id: string;
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

interface AllocCount {
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

interface Report {
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
  problems: string[];
}

// --- running -------------------------------------------------------------------------------------

async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args,
    stdout: "piped",
    stderr: "piped",
    cwd: new URL("..", import.meta.url).pathname,
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** `read()`, or null when it throws (a permission of `--allow-sys` not given). */
function tryRead<T>(read: () => T): T | null {
  try {
    return read();
  } catch {
    return null;
  }
}

/** The machine. Deno reads /proc only with --allow-all, so this uses `Deno` APIs instead. */
function machine(cpuFromDeno: string): Report["machine"] {
  const bytes = tryRead(() => Deno.systemMemoryInfo().total);
  return {
    cpu: cpuFromDeno,
    cores: navigator.hardwareConcurrency,
    memoryGiB: bytes === null ? null : Math.round(bytes / 2 ** 30),
    os: `${Deno.build.os} ${Deno.build.arch}`,
    kernel: tryRead(() => Deno.osRelease()),
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    typescript: Deno.version.typescript,
    loadAverageBefore: null,
  };
}

// --- deriving --------------------------------------------------------------------------------------

function measurements(deno: DenoBenchJson, samples: SamplesLine | null): Measurement[] {
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

function find(list: Measurement[], workload: string, peer: string): Measurement | undefined {
  return list.find((m) => m.workload === workload && m.peer === peer);
}

function ratioOf(list: Measurement[], workload: string, top: string, bottom: string) {
  const a = find(list, workload, top);
  const b = find(list, workload, bottom);
  return a === undefined || b === undefined ? null : a.medianNs / b.medianNs;
}

function goals(list: Measurement[], alloc: AllocCount | null): Goal[] {
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

function derivedRatios(list: Measurement[]): Record<string, number | null> {
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

// --- formatting --------------------------------------------------------------------------------------

/** A time in ns, with a sensible unit and 3 significant digits. */
export function formatNs(ns: number): string {
  const [value, unit] = ns >= 1e6 ? [ns / 1e6, "ms"] : ns >= 1e3 ? [ns / 1e3, "µs"] : [ns, "ns"];
  const digits = value >= 100 ? 0 : value >= 10 ? 1 : 2;
  return `${value.toFixed(digits)} ${unit}`;
}

function formatRatio(ratio: number | null): string {
  if (ratio === null) return "n/a";
  if (ratio >= 100) return `${ratio.toFixed(0)}x`;
  if (ratio >= 10) return `${ratio.toFixed(1)}x`;
  return ratio >= 0.01 ? `${ratio.toFixed(2)}x` : `${ratio.toPrecision(2)}x`;
}

/** Column order and labels of the main table. */
const COLUMNS = [
  { peers: ["pseudo"], label: "PseudoMalloc" },
  { peers: ["libc"], label: "libc via FFI" },
  { peers: ["thing"], label: "@thi.ng/malloc" },
  { peers: ["u8"], label: "`new Uint8Array(n)`" },
  { peers: ["mmap"], label: "mmap + munmap" },
  { peers: ["floor"], label: "JS floor" },
  { peers: ["floor-checked"], label: "JS floor + checks" },
  { peers: ["minimal"], label: "minimal JS allocator" },
];

const ROWS = [
  { workload: "pair", label: "1. 64 B malloc + free" },
  { workload: "batch", label: "2. 256 mixed 16-1008 B, shuffled frees" },
  { workload: "churn", label: "3. churn, 10,000 live (free + malloc)" },
  { workload: "large", label: "4. large 4 KiB-1 MiB, sizes repeat" },
  { workload: "calloc-small", label: "5a. calloc 16-1008 B + free" },
  { workload: "calloc-large", label: "5b. calloc 4 KiB-1 MiB + free" },
  { workload: "calloc-fresh", label: "5c. calloc 64 MiB + free (fresh)" },
  { workload: "realloc", label: "5d. realloc 16 B → 1 MiB (per chain)" },
];

function markdown(report: Report): string {
  const m = report.machine;
  const list = report.measurements;
  const lines: string[] = [];
  lines.push(
    `Measured by \`deno task bench:report\` on ${report.generated.slice(0, 10)}: ${m.cpu}, ` +
      `${m.cores} cores${m.memoryGiB === null ? "" : `, ${m.memoryGiB} GiB`}, ${m.os}` +
      `${m.kernel === null ? "" : ` (kernel ${m.kernel})`}, Deno ${m.deno} (V8 ${m.v8}). ` +
      `Median time per operation${
        list[0]?.runsNs === undefined ? "" : ` (median of ${list[0].runsNs.length} runs)`
      }; lower is better.`,
  );
  if (m.loadAverageBefore !== null && m.loadAverageBefore[0]! > m.cores * 0.5) {
    lines.push(
      "",
      `_The machine was busy (load average ${
        m.loadAverageBefore[0]!.toFixed(2)
      } on ${m.cores} cores before ` +
        `the run): expect noise._`,
    );
  }
  lines.push("");
  lines.push(`| workload | ${COLUMNS.map((c) => c.label).join(" | ")} |`);
  lines.push(`| --- | ${COLUMNS.map(() => "---:").join(" | ")} |`);
  for (const row of ROWS) {
    const cells = COLUMNS.map((column) => {
      const measured = column.peers.map((peer) => find(list, row.workload, peer)).find(Boolean);
      return measured === undefined ? "" : formatNs(measured.medianNs);
    });
    if (cells.every((cell) => cell === "")) continue;
    lines.push(`| ${row.label} | ${cells.join(" | ")} |`);
  }
  const freshMalloc = find(list, "calloc-fresh", "pseudo-malloc");
  if (freshMalloc !== undefined) {
    lines.push(
      "",
      `5c: PseudoMalloc \`malloc(64 MiB)\` + free costs ${formatNs(freshMalloc.medianNs)}` +
        `${
          find(list, "calloc-fresh", "libc-malloc")
            ? `, libc's ${formatNs(find(list, "calloc-fresh", "libc-malloc")!.medianNs)}`
            : ""
        }: calloc of a fresh block costs what malloc costs when it does no memset.`,
    );
  }

  const scaleRows = ["scale-pair", "scale-churn"].map((workload) => ({
    workload,
    one: find(list, workload, "pseudo-1"),
    scaled: find(list, workload, "pseudo-scaled"),
  })).filter((row) => row.one && row.scaled);
  if (scaleRows.length > 0) {
    lines.push("", "Flat cost with scale (PseudoMalloc):", "");
    lines.push("| workload | 1 arena | 256 MiB of small blocks live | ratio |");
    lines.push("| --- | ---: | ---: | ---: |");
    for (const row of scaleRows) {
      lines.push(
        `| ${row.workload === "scale-pair" ? "64 B malloc + free" : "churn step"} | ${
          formatNs(row.one!.medianNs)
        } | ${formatNs(row.scaled!.medianNs)} | ${
          formatRatio(row.scaled!.medianNs / row.one!.medianNs)
        } |`,
      );
    }
    const note = scaleRows[0]!.scaled!.note;
    if (note !== undefined) lines.push("", `256 MiB heap: ${note}.`);
  }

  lines.push("", "Goals of issue 4 (ratios of medians from the same run):", "");
  lines.push("| goal | workload | target | measured | met |");
  lines.push("| --- | --- | ---: | ---: | :---: |");
  for (const goal of report.goals) {
    const measured = goal.id === "no-allocation"
      ? `${goal.ratio === null ? "n/a" : goal.ratio.toFixed(2)} B/op`
      : formatRatio(goal.ratio);
    const target = goal.id === "no-allocation" ? `< ${goal.target} B/op` : `≤ ${goal.target}x`;
    const met = goal.met === null ? "?" : goal.met ? "yes" : "**no**";
    lines.push(
      `| ${goal.short} | ${goal.workload} | ${target} | ${measured} | ${met} |`,
    );
  }
  if (report.allocCount !== null) {
    lines.push(
      "",
      `Allocation count: ${report.allocCount.verdict}: ${report.allocCount.explanation}.`,
    );
  }
  const bounds = ["pair", "batch", "churn"].map((workload) => ({
    workload,
    pseudo: ratioOf(list, workload, "pseudo", "libc"),
    checked: ratioOf(list, workload, "floor-checked", "libc"),
    minimal: ratioOf(list, workload, "minimal", "libc"),
  }));
  if (bounds.some((row) => row.minimal !== null)) {
    lines.push(
      "",
      "The small-request goal against what the least JS allocators reach (time / libc's time):",
      "",
      "| workload | PseudoMalloc | JS floor + checks | minimal JS allocator (+ slow paths) |",
      "| --- | ---: | ---: | ---: |",
      ...bounds.map((row) =>
        `| ${row.workload} | ${formatRatio(row.pseudo)} | ${
          row.checked === null ? "" : formatRatio(row.checked)
        } | ${formatRatio(row.minimal)} |`
      ),
    );
  }
  lines.push("", `${V8_NOTE}`, "", "![Benchmark chart](docs/bench.svg)", "");
  return lines.join("\n");
}

// --- the chart ---------------------------------------------------------------------------------------

const COLORS: Record<string, string> = {
  pseudo: "#1f6fd1",
  "pseudo-1": "#1f6fd1",
  "pseudo-scaled": "#79aef0",
  "pseudo-malloc": "#79aef0",
  libc: "#e07b20",
  "libc-malloc": "#f2b57d",
  thing: "#2c9a48",
  u8: "#8a55c4",
  mmap: "#7a7a7a",
  floor: "#c9c9c9",
  "floor-checked": "#a0a0a0",
  minimal: "#5f5f5f",
};

const LEGEND = [
  { color: COLORS.pseudo!, label: "PseudoMalloc" },
  { color: COLORS.libc!, label: "libc via FFI" },
  { color: COLORS.thing!, label: "@thi.ng/malloc" },
  { color: COLORS.u8!, label: "new Uint8Array(n)" },
  { color: COLORS.mmap!, label: "mmap + munmap" },
  { color: COLORS.floor!, label: "JS floor (pop + push)" },
  { color: COLORS["floor-checked"]!, label: "JS floor + checks" },
  { color: COLORS.minimal!, label: "minimal JS allocator (floor + checks + slow paths)" },
  { color: COLORS["pseudo-scaled"]!, label: "PseudoMalloc: malloc (5c) / 256 MiB live (6)" },
  { color: COLORS["libc-malloc"]!, label: "libc: malloc (5c)" },
];

const CHART_GROUPS = [
  { workload: "pair", label: ["1. 64 B", "pair"] },
  { workload: "batch", label: ["2. mixed", "batches"] },
  { workload: "churn", label: ["3. churn", "step"] },
  { workload: "large", label: ["4. large", "repeating"] },
  { workload: "calloc-small", label: ["5a. calloc", "small"] },
  { workload: "calloc-large", label: ["5b. calloc", "large"] },
  { workload: "calloc-fresh", label: ["5c. fresh", "64 MiB"] },
  { workload: "realloc", label: ["5d. realloc", "chain"] },
  { workload: "scale-pair", label: ["6a. scale:", "pair"] },
  { workload: "scale-churn", label: ["6b. scale:", "churn"] },
];

/** 1 ns, 10 ns, ..., 1 µs, ...: an axis tick. */
function formatDecade(ns: number): string {
  const [value, unit] = ns >= 1e6 ? [ns / 1e6, "ms"] : ns >= 1e3 ? [ns / 1e3, "µs"] : [ns, "ns"];
  return `${Number(value.toPrecision(1))} ${unit}`;
}

function escapeXml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

export function svgChart(report: Report): string {
  const list = report.measurements;
  const groups = CHART_GROUPS.map((group) => ({
    ...group,
    bars: list.filter((m) => m.workload === group.workload),
  })).filter((group) => group.bars.length > 0);
  const values = groups.flatMap((group) => group.bars.map((bar) => bar.medianNs));
  const low = 10 ** Math.floor(Math.log10(Math.max(0.1, Math.min(...values))));
  // Headroom above the tallest bar for its label.
  const high = 10 ** Math.ceil(Math.log10(Math.max(...values) * 4));
  const decades = Math.max(1, Math.round(Math.log10(high / low)));

  const bar = 16;
  const gap = 3;
  const groupGap = 26;
  const left = 78;
  const groupWidths = groups.map((group) => group.bars.length * (bar + gap) - gap);
  const plotWidth = groupWidths.reduce((sum, width) => sum + width + groupGap, groupGap);
  // Legend rows, wrapped to the chart's width (at most about 7.4 px per character at 12 px, and a gap).
  const itemWidth = (label: string) => 34 + label.length * 7.4;
  const rows: (typeof LEGEND)[] = [[]];
  for (const item of LEGEND) {
    const row = rows[rows.length - 1]!;
    const used = row.reduce((sum, other) => sum + itemWidth(other.label), 0);
    if (row.length > 0 && used + itemWidth(item.label) > plotWidth) rows.push([item]);
    else row.push(item);
  }
  const top = 56 + rows.length * 18;
  const plotHeight = 320;
  const width = left + plotWidth + 20;
  const height = top + plotHeight + 78;
  const y = (ns: number) => top + plotHeight * (1 - Math.log10(ns / low) / decades);

  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
      `viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${left}" y="22" font-size="15" font-weight="bold">@pseudo/malloc: median time ` +
      `per operation (log scale, lower is better)</text>`,
    `<text x="${left}" y="40" fill="#555">${
      escapeXml(
        `${report.machine.cpu}, ${report.machine.cores} cores, Deno ${report.machine.deno}, ` +
          `${report.generated.slice(0, 10)}`,
      )
    }</text>`,
  );
  // Legend.
  for (const [index, row] of rows.entries()) {
    let lx = left;
    const ly = 58 + index * 18;
    for (const item of row) {
      out.push(
        `<rect x="${lx}" y="${ly - 10}" width="12" height="12" fill="${item.color}"/>`,
        `<text x="${lx + 16}" y="${ly}">${escapeXml(item.label)}</text>`,
      );
      lx += itemWidth(item.label);
    }
  }
  // Axes and decade grid.
  for (let d = 0; d <= decades; d++) {
    const value = low * 10 ** d;
    const gy = y(value);
    out.push(
      `<line x1="${left}" y1="${gy}" x2="${left + plotWidth}" y2="${gy}" stroke="#e3e3e3"/>`,
      `<text x="${left - 6}" y="${gy + 4}" text-anchor="end">${formatDecade(value)}</text>`,
    );
  }
  out.push(
    `<line x1="${left}" y1="${top}" x2="${left}" y2="${top + plotHeight}" stroke="#333"/>`,
    `<line x1="${left}" y1="${top + plotHeight}" x2="${left + plotWidth}" ` +
      `y2="${top + plotHeight}" stroke="#333"/>`,
    `<text transform="translate(16 ${top + plotHeight / 2}) rotate(-90)" text-anchor="middle">` +
      `time per operation (log scale)</text>`,
  );
  // Bars.
  let x = left + groupGap;
  for (const [index, group] of groups.entries()) {
    for (const measured of group.bars) {
      const by = y(measured.medianNs);
      const color = COLORS[measured.peer] ?? "#999";
      out.push(
        `<rect x="${x}" y="${by.toFixed(1)}" width="${bar}" ` +
          `height="${(top + plotHeight - by).toFixed(1)}" fill="${color}">` +
          `<title>${escapeXml(`${measured.name}: ${formatNs(measured.medianNs)}`)}</title></rect>`,
        `<text x="${x + bar / 2 + 3}" y="${(by - 4).toFixed(1)}" font-size="9" ` +
          `text-anchor="start" transform="rotate(-90 ${x + bar / 2 + 3} ${(by - 4).toFixed(1)})">` +
          `${escapeXml(formatNs(measured.medianNs))}</text>`,
      );
      x += bar + gap;
    }
    const center = x - gap - groupWidths[index]! / 2;
    for (const [line, text] of group.label.entries()) {
      out.push(
        `<text x="${center}" y="${top + plotHeight + 18 + line * 14}" text-anchor="middle">${
          escapeXml(text)
        }</text>`,
      );
    }
    x += groupGap - gap;
  }
  out.push(
    `<text x="${left + plotWidth / 2}" y="${height - 12}" text-anchor="middle">` +
      `workload (one operation: a malloc+free pair, a churn step, or a realloc chain)</text>`,
    `</svg>`,
    "",
  );
  return out.join("\n");
}

// --- one benchmark run ---------------------------------------------------------------------------

async function benchOnce(
  benchArgs: string[],
): Promise<{ list: Measurement[]; problems: string[]; cpu: string }> {
  const bench = await run(benchArgs);
  const tagged = bench.stderr.split("\n").find((line) => line.startsWith(BENCH_SAMPLES_TAG));
  const samples = tagged === undefined
    ? null
    : JSON.parse(tagged.slice(BENCH_SAMPLES_TAG.length)) as SamplesLine;
  let deno: DenoBenchJson;
  try {
    deno = JSON.parse(bench.stdout.slice(bench.stdout.indexOf("{"))) as DenoBenchJson;
  } catch (error) {
    console.error(bench.stderr);
    throw new Error(`deno bench exited with ${bench.code} and no JSON on stdout`, { cause: error });
  }
  const problems = [...(samples?.problems ?? [])];
  if (bench.code !== 0) problems.push(`deno bench exited with code ${bench.code}`);
  if (samples === null) problems.push("no self-timed samples: medians fall back to Deno's avg");
  for (const b of deno.benches) {
    if (b.results[0]?.failed !== undefined) {
      problems.push(`bench failed: ${b.group} / ${b.name}: ${JSON.stringify(b.results[0].failed)}`);
    }
  }
  const list = measurements(deno, samples);
  for (const m of list) {
    if (m.self?.matchesDeno === false) {
      problems.push(
        `${m.group} / ${m.name}: kept ${m.self.measuredIterations} iterations, Deno measured ` +
          `${m.deno?.n}`,
      );
    }
  }
  return { list, problems, cpu: deno.cpu };
}

/** One run: as is. Several: the first run's record, with the median of every run's median. */
function combineRuns(lists: Measurement[][]): Measurement[] {
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

// --- main ----------------------------------------------------------------------------------------

const USAGE = "Usage: deno task bench:report [--runs=N] [--skip-alloc] [--from=FILE] [--write]";

/** The command line; `undefined` (after a message) when it is bad. */
function options(
  args: string[],
): { runs: number; skipAlloc: boolean; from?: string; write: boolean } | undefined {
  try {
    const { values } = parseArgs({
      args,
      options: {
        runs: { type: "string", default: "1" },
        "skip-alloc": { type: "boolean", default: false },
        from: { type: "string" },
        write: { type: "boolean", default: false },
      },
    });
    const runs = Number(values.runs);
    if (!(Number.isInteger(runs) && runs >= 1)) {
      throw new Error(`--runs must be a whole number of runs, at least 1, not "${values.runs}"`);
    }
    return {
      runs,
      skipAlloc: values["skip-alloc"],
      ...(values.from === undefined ? {} : { from: values.from }),
      write: values.write,
    };
  } catch (error) {
    console.error(`error: ${error instanceof Error ? error.message : String(error)}\n${USAGE}`);
    return undefined;
  }
}

/**
 * `text` laid out as `deno fmt` lays out a file of type `ext`, with the project's settings. Through
 * standard input: deno.json excludes docs/ from deno fmt, so `deno fmt docs/bench.md` finds "No
 * target files".
 */
async function formatted(text: string, ext: "json" | "md" | "svg"): Promise<string> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["fmt", `--ext=${ext}`, "-"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    cwd: new URL("..", import.meta.url).pathname,
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(text));
  await writer.close();
  const output = await child.output();
  const decoder = new TextDecoder();
  if (output.code === 0) return decoder.decode(output.stdout);
  console.error(`warning: deno fmt --ext=${ext} failed: ${decoder.decode(output.stderr).trim()}`);
  return text;
}

async function main(): Promise<void> {
  const args = options(Deno.args);
  if (args === undefined) Deno.exit(2);
  const { from, runs, skipAlloc, write } = args;
  let report: Report;
  if (from !== undefined) {
    report = JSON.parse(await Deno.readTextFile(from)) as Report;
    report.ratios = derivedRatios(report.measurements);
    report.goals = goals(report.measurements, report.allocCount);
  } else {
    const loadBefore = tryRead(() => Deno.loadavg());
    const benchArgs = [
      "bench",
      ...BENCH_FLAGS,
      "--json",
      "bench/alloc_bench.ts",
      "--",
      "--samples",
    ];
    const problems: string[] = [];
    const lists: Measurement[][] = [];
    let cpu = "unknown";
    for (let index = 1; index <= runs; index++) {
      console.error(
        `running${runs > 1 ? ` (${index} of ${runs})` : ""}: deno ${benchArgs.join(" ")} ` +
          "(about half a minute)",
      );
      const once = await benchOnce(benchArgs);
      cpu = once.cpu;
      lists.push(once.list);
      problems.push(
        ...once.problems.map((problem) => runs > 1 ? `run ${index}: ${problem}` : problem),
      );
    }
    const list = combineRuns(lists);

    let allocCount: AllocCount | null = null;
    const allocArgs = ["run", ...ALLOC_FLAGS, "bench/alloc_count.ts", "--json"];
    if (!skipAlloc) {
      console.error(`running: deno ${allocArgs.join(" ")}`);
      const alloc = await run(allocArgs);
      try {
        allocCount = JSON.parse(alloc.stdout) as AllocCount;
      } catch {
        problems.push(`alloc_count.ts exited with ${alloc.code}: ${alloc.stderr.trim()}`);
      }
    }

    report = {
      version: 1,
      generated: new Date().toISOString(),
      machine: { ...machine(cpu), loadAverageBefore: loadBefore },
      method: {
        command: `deno ${benchArgs.join(" ")}`,
        allocCommand: allocCount === null ? null : `deno ${allocArgs.join(" ")}`,
        notes: [
          `${runs} benchmark run${
            runs > 1 ? "s: each figure is the median of the runs' medians" : ""
          }.`,
          "Per-operation time = median iteration time / operations per iteration " +
          "(self-timed in alloc_bench.ts, Deno's warm-up iterations dropped); Deno's avg, min, " +
          "p75 and p99 per operation are kept as `deno`.",
          "Workloads are generated once from a fixed seed (bench/_workloads.ts) and are the same " +
          "for every peer; libc gets sizes as bigints, which keeps Deno's FFI fast call path.",
          "@thi.ng/malloc: one MemPool of 64 MiB per workload, library defaults (compact: true, " +
          "split: true, minSplit: 16, align: 8).",
          V8_NOTE,
        ],
      },
      measurements: list,
      ratios: derivedRatios(list),
      goals: goals(list, allocCount),
      allocCount,
      problems,
    };
  }

  const outDir = write
    ? OUT_DIR
    : new URL(`${await Deno.makeTempDir({ prefix: "pseudo-malloc-bench-" })}/`, "file:///");
  await Deno.mkdir(outDir, { recursive: true });
  const json = await formatted(JSON.stringify(report, null, 2) + "\n", "json");
  const md = await formatted(markdown(report), "md");
  const svg = await formatted(svgChart(report), "svg");
  await Deno.writeTextFile(new URL("bench.json", outDir), json);
  await Deno.writeTextFile(new URL("bench.md", outDir), md);
  await Deno.writeTextFile(new URL("bench.svg", outDir), svg);
  console.log(md);
  for (const problem of report.problems) console.error(`warning: ${problem}`);
  const where = write ? "docs/" : outDir.pathname;
  console.error(`wrote bench.json, bench.md and bench.svg in ${where}`);
  if (!write) console.error("docs/ left as it was: --write puts them there");
}

if (import.meta.main) await main();
