// `deno task bench:report`: runs the benchmarks (bench/alloc_bench.ts) and the allocation count
// (bench/alloc_count.ts) in subprocesses, and makes bench.json (machine, raw and derived numbers,
// every goal of issue 4 with its target, measured ratio and whether it is met), bench.md (tables
// for docs/performance.md, also printed on stdout) and bench.svg (a bar chart).
//
//   deno task bench:report [--runs=N] [--suite=all|small|large] [--skip-alloc] [--from=FILE]
//                          [--write]
//
// Where the documents go: by default into a new temporary directory (named on stderr), so that a
// run leaves the working tree as it was; with `--write`, into docs/ (the tracked copies that the
// docs/performance.md shows). Either way they are laid out as `deno fmt` would (docs/ is outside deno fmt's
// files, so the text goes through its standard input).
//
// Per-operation times are the median iteration time over the operations per iteration. The median
// comes from alloc_bench.ts's own timing of each iteration (Deno's JSON has no median); Deno's
// avg, min and p75 are kept in bench.json too. Options: `--runs=N` runs the benchmarks N times and
// takes the median of the N medians (steadier on a busy machine); `--skip-alloc` skips the
// allocation count; `--from=FILE` rebuilds the documents from a saved bench.json, running nothing;
// `--suite=small` runs only alloc_bench.ts (the workloads of issue 4), `--suite=large` only
// large_bench.ts (those of issue 11).
//
// The workloads of issue 11 (bench/large_bench.ts) run one process per workload, as the issue
// measured them (libc's heap then holds that workload's blocks only); with `--runs=N` each run is
// alloc_bench.ts followed by the five of them, so the processes of one workload alternate with the
// others'. bench.md shows the spread over the runs of every ratio to libc on those workloads.
//
// This file runs the benchmarks and writes the documents; the data and what is derived from it (the
// ratios, the goals) are in `_report_data.ts`, bench.md's tables in `_report_markdown.ts`, and
// bench.svg's chart in `_report_chart.ts`.

import { parseArgs } from "node:util";
import {
  type AllocCount,
  BENCH_SAMPLES_TAG,
  combineRuns,
  type DenoBenchJson,
  derivedRatios,
  goals,
  LARGE_WORKLOADS,
  type Measurement,
  measurements,
  ratiosByRun,
  type Report,
  type SamplesLine,
  V8_NOTE,
} from "./_report_data.ts";
import { markdown } from "./_report_markdown.ts";
import { svgChart } from "./_report_chart.ts";

/** Flags of the benchmark run. Maglev off: see `V8_NOTE` (`_report_data.ts`). */
export const BENCH_FLAGS = [
  "--allow-ffi",
  // CI: read by the AssemblyScript compiler when it loads (large_bench.ts's TLSF peer).
  "--allow-env=NODE_ENV,UMBRELLA_ASSERTS,CI",
  "--v8-flags=--no-maglev",
];
/** Flags of the allocation count: no GC while a loop is measured, and `gc()`. */
export const ALLOC_FLAGS = [
  "--allow-ffi",
  "--allow-env=NODE_ENV,UMBRELLA_ASSERTS",
  "--v8-flags=--expose-gc,--max-semi-space-size=128,--min-semi-space-size=128",
];

const OUT_DIR = new URL("../docs/", import.meta.url);

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

// --- main ----------------------------------------------------------------------------------------

const USAGE = "Usage: deno task bench:report [--runs=N] [--suite=all|small|large] " +
  "[--skip-alloc] [--from=FILE] [--write]";

type Suite = "all" | "small" | "large";

/** The command line; `undefined` (after a message) when it is bad. */
function options(
  args: string[],
): { runs: number; suite: Suite; skipAlloc: boolean; from?: string; write: boolean } | undefined {
  try {
    const { values } = parseArgs({
      args,
      options: {
        runs: { type: "string", default: "1" },
        suite: { type: "string", default: "all" },
        "skip-alloc": { type: "boolean", default: false },
        from: { type: "string" },
        write: { type: "boolean", default: false },
      },
    });
    const runs = Number(values.runs);
    if (!(Number.isInteger(runs) && runs >= 1)) {
      throw new Error(`--runs must be a whole number of runs, at least 1, not "${values.runs}"`);
    }
    const suite = values.suite;
    if (suite !== "all" && suite !== "small" && suite !== "large") {
      throw new Error(`--suite must be all, small or large, not "${suite}"`);
    }
    return {
      runs,
      suite,
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
  const { from, runs, suite, skipAlloc, write } = args;
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
    const largeArgs = (workload: string) => [
      "bench",
      ...BENCH_FLAGS,
      "--json",
      "bench/large_bench.ts",
      "--",
      "--samples",
      `--workload=${workload}`,
    ];
    const processes: { label: string; args: string[] }[] = [];
    if (suite !== "large") processes.push({ label: "alloc_bench.ts", args: benchArgs });
    if (suite !== "small") {
      for (const workload of LARGE_WORKLOADS) {
        processes.push({ label: `large_bench.ts ${workload}`, args: largeArgs(workload) });
      }
    }
    const problems: string[] = [];
    const lists: Measurement[][] = [];
    let cpu = "unknown";
    for (let index = 1; index <= runs; index++) {
      const list: Measurement[] = [];
      for (const process of processes) {
        console.error(
          `running${runs > 1 ? ` (${index} of ${runs})` : ""}: deno ${process.args.join(" ")}`,
        );
        const once = await benchOnce(process.args);
        cpu = once.cpu;
        list.push(...once.list);
        problems.push(
          ...once.problems.map((problem) =>
            `${runs > 1 ? `run ${index}, ` : ""}${process.label}: ${problem}`
          ),
        );
      }
      lists.push(list);
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
        command: processes.map((process) => `deno ${process.args.join(" ")}`).join("; "),
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
          "The workloads of issue 11 (bench/large_bench.ts) run one process per workload; " +
          "their MemPools are 256 MiB (medium), 512 MiB (large) and 64 MiB (realloc chain). " +
          "The write of workload 8 is libc's memset through FFI for native memory and " +
          "Uint8Array fill for a JS buffer or wasm memory (bench/_large_workloads.ts).",
          V8_NOTE,
        ],
      },
      measurements: list,
      ratios: derivedRatios(list),
      goals: goals(list, allocCount),
      allocCount,
      ...(runs > 1 ? { runRatios: ratiosByRun(lists) } : {}),
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
