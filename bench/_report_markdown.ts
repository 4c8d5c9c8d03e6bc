// bench.md, the tables of `deno task bench:report` (report.ts) for docs/performance.md: time per
// operation of every peer on every workload, the workloads of issue 11 with their spread over runs,
// flat cost with scale, the goals of issues 4 and 11 and the small-request goal against the JS
// floors.

import {
  find,
  type Goal,
  type Measurement,
  ratioOf,
  type Report,
  V8_NOTE,
} from "./_report_data.ts";

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
  {
    workload: "realloc",
    label: "5d. realloc 16 B → 1 MiB (per chain), after workloads 1-5c in one process",
  },
];

/** The columns of the table of issue 11's workloads (bench/large_bench.ts). */
const LARGE_COLUMNS = [
  { peer: "pseudo", label: "PseudoMalloc" },
  { peer: "libc", label: "libc via FFI" },
  { peer: "segregated", label: "Segregated" },
  { peer: "first-fit", label: "FirstFit" },
  { peer: "mmap-allocator", label: "Mmap" },
  { peer: "bump", label: "Bump" },
  { peer: "cell", label: "Cell" },
  { peer: "thing", label: "@thi.ng/malloc" },
  { peer: "dlmalloc", label: "dlmalloc (sql.js)" },
  { peer: "tlsf", label: "TLSF (AssemblyScript)" },
];

const LARGE_ROWS = [
  { workload: "medium", label: "7. 1-64 KiB churn, 1,000 live (free + malloc)" },
  { workload: "medium-written", label: "8. the same, each block written once" },
  { workload: "large-mixed", label: "9. 64 KiB-4 MiB churn, 16 live" },
  { workload: "realloc-chain", label: "10. realloc 16 B → 1 MiB (per chain), own process" },
  { workload: "new-heap", label: "11. new heap + malloc(16) + free + close" },
];

/** A ratio's median over runs, with the lowest and highest: "0.52x (0.49-0.60)". */
function spread(values: (number | null)[]): string {
  const known = values.filter((v): v is number => v !== null).sort((a, b) => a - b);
  if (known.length === 0) return "n/a";
  const middle = known.length >> 1;
  const median = known.length % 2 === 1
    ? known[middle]!
    : (known[middle - 1]! + known[middle]!) / 2;
  const range = known.length > 1
    ? ` (${formatRatio(known[0]!).slice(0, -1)}-${formatRatio(known.at(-1)!)})`
    : "";
  return `${formatRatio(median)}${range}`;
}

/** The tables of issue 11's workloads: times, then each ratio to libc's with its spread. */
function largeTables(report: Report, lines: string[]): void {
  const list = report.measurements;
  const rows = LARGE_ROWS.filter((row) => list.some((m) => m.workload === row.workload));
  if (rows.length === 0) return;
  const columns = LARGE_COLUMNS.filter((c) => rows.some((r) => find(list, r.workload, c.peer)));
  lines.push(
    "",
    "Beyond small blocks (issue 11; bench/large_bench.ts, one process per workload). Median time " +
      "per operation; `ratio` is PseudoMalloc / libc (workload 11: the time itself):",
    "",
    `| workload | ${columns.map((c) => c.label).join(" | ")} | ratio |`,
    `| --- | ${columns.map(() => "---:").join(" | ")} | ---: |`,
  );
  for (const row of rows) {
    const cells = columns.map((column) => {
      const measured = find(list, row.workload, column.peer);
      return measured === undefined ? "" : formatNs(measured.medianNs);
    });
    const ratio = row.workload === "new-heap"
      ? ""
      : formatRatio(ratioOf(list, row.workload, "pseudo", "libc"));
    lines.push(`| ${row.label} | ${cells.join(" | ")} | ${ratio} |`);
  }
  const floors = ["write-memset", "write-memset-number", "write-fill"]
    .map((peer) => find(list, "medium-written", peer))
    .filter((m): m is Measurement => m !== undefined);
  if (floors.length > 0) {
    lines.push(
      "",
      "Workload 8's write alone (the same sizes at one address, no allocator): " +
        floors.map((m) => `${m.name} ${formatNs(m.medianNs)}`).join(", ") +
        ". Native peers write with memset through FFI, @thi.ng/malloc and the wasm peers " +
        "with `Uint8Array.prototype.fill` over their buffer.",
    );
  }
  const runs = report.runRatios;
  if (runs !== undefined && Object.keys(runs).length > 0) {
    const peers = columns.filter((c) => c.peer !== "libc");
    lines.push(
      "",
      `Ratios to libc (workload 11: to PseudoMalloc), median of ${
        list[0]?.runsNs?.length ?? "the"
      } runs with the lowest and highest run:`,
      "",
      `| workload | ${peers.map((c) => c.label).join(" | ")} |`,
      `| --- | ${peers.map(() => "---:").join(" | ")} |`,
    );
    for (const row of rows) {
      const bottom = row.workload === "new-heap" ? "pseudo" : "libc";
      const cells = peers.map((column) => {
        const values = runs[`${row.workload}: ${column.peer} / ${bottom}`];
        return values === undefined ? "" : spread(values);
      });
      lines.push(`| ${row.label} | ${cells.join(" | ")} |`);
    }
  }
}

/** One table of goals. */
function goalTable(goals: Goal[], lines: string[]): void {
  lines.push("| goal | workload | target | measured | met |");
  lines.push("| --- | --- | ---: | ---: | :---: |");
  for (const goal of goals) {
    const measured = goal.id === "no-allocation"
      ? `${goal.ratio === null ? "n/a" : goal.ratio.toFixed(2)} B/op`
      : goal.id === "new-heap"
      ? goal.ratio === null ? "n/a" : formatNs(goal.ratio)
      : formatRatio(goal.ratio);
    const target = goal.id === "no-allocation"
      ? `< ${goal.target} B/op`
      : goal.id === "new-heap"
      ? `≤ ${formatNs(goal.target)}`
      : `≤ ${goal.target}x`;
    const met = goal.met === null ? "?" : goal.met ? "yes" : "**no**";
    lines.push(`| ${goal.short} | ${goal.workload} | ${target} | ${measured} | ${met} |`);
  }
}

export function markdown(report: Report): string {
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

  largeTables(report, lines);

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

  const goals4 = report.goals.filter((goal) => (goal.issue ?? 4) === 4);
  const goals11 = report.goals.filter((goal) => goal.issue === 11);
  lines.push("", "Goals of issue 4 (ratios of medians from the same run):", "");
  goalTable(goals4, lines);
  if (goals11.length > 0) {
    lines.push("", "Goals of issue 11 (ratios of medians from the same process):", "");
    goalTable(goals11, lines);
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
  lines.push("", `${V8_NOTE}`, "", "![Benchmark chart](bench.svg)", "");
  return lines.join("\n");
}
