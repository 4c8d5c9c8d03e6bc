// binary-trees (the Computer Language Benchmarks Game program) with every tree node in native
// memory, run on each allocator of the family, on libc malloc through FFI, and on plain JS objects
// as the garbage-collected reference. It prints a table (time, peak memory, ratio to libc) and
// makes binarytrees.svg (bar chart) and binarytrees.md (the table, for docs/performance.md). Each
// allocator's row also counts the system calls of its run (mmap, munmap, mremap, madvise,
// mprotect): mapping every node is what makes MmapAllocator slow.
//
//   deno task binarytrees [--depth=N] [--budget=SECONDS] [--no-warmup] [--only=name,name] [--write]
//
// --depth: the benchmark's argument (default 16). --budget: a timed run that takes longer stops,
// frees what is live and is reported as a lower bound with the fraction of nodes done (default 60
// s, 0 for no limit; MmapAllocator, a system call per node, needs about 4-5 minutes at depth 16).
// --only: run the variants whose names contain one of the fragments (no chart or table file then).
// --write: put binarytrees.svg and binarytrees.md in docs/ (the tracked copies docs/performance.md shows);
// without it they go to a new temporary directory, named at the end, and the tree stays as it was.
//
// The program (https://benchmarksgame-team.pages.debian.net/benchmarksgame/description/binarytrees.html):
// build and check a "stretch" tree of depth max+1, then a long-lived tree of depth max; then for
// depths 4, 6, …, max build, check and drop 2^(max-depth+4) trees; finally check the long-lived tree.
// The check of a tree is its node count.
//
// Time is measured from creating the allocator to freeing the long-lived tree (close excluded).
// Every variant must print the JS objects' check lines; the CLI exits with 1 when one does not.
//
// The parts: `_binarytrees_program.ts`, the program on native nodes and on JS objects (the node
// layout, how the memory is reached); `_binarytrees_variants.ts`, the variants and how each is run
// fairly, and libc's access cost; `_binarytrees_report.ts`, the table and the chart.

import {
  DEFAULT_DEPTH,
  effectiveDepth,
  NODE_SIZE,
  nodeCount,
  peakNodes,
} from "./_binarytrees_program.ts";
import { closeLibc, measureLibcAccess, Runner, variants } from "./_binarytrees_variants.ts";
import {
  accessReport,
  formatBytes,
  markdownTable,
  renderSvg,
  type Row,
  sameChecks,
  systemCallsText,
  timeText,
} from "./_binarytrees_report.ts";

// --- CLI ---------------------------------------------------------------------------------------

interface Args {
  depth: number;
  warmup: boolean;
  /** Milliseconds a timed run may take before it stops; undefined: no limit. */
  budgetMs: number | undefined;
  /** Lower-case name fragments; a variant runs when its name contains one (all when empty). */
  only: string[];
  /** Write the chart and the table into docs/ (else into a temporary directory). */
  write: boolean;
}

/** Seconds a timed run may take by default before it is stopped and reported as a lower bound. */
export const DEFAULT_BUDGET_SECONDS = 60;

const USAGE = "use --depth=N (default 16), --budget=SECONDS (default 60, 0 for none), " +
  "--no-warmup, --only=name,name, --write";

function parseArgs(args: string[]): Args {
  const parsed: Args = {
    depth: DEFAULT_DEPTH,
    warmup: true,
    budgetMs: DEFAULT_BUDGET_SECONDS * 1000,
    only: [],
    write: false,
  };
  for (const arg of args) {
    const [, key, value] = /^--([a-z-]+)(?:=(.*))?$/.exec(arg) ?? [];
    if (key === "depth" && /^\d+$/.test(value ?? "") && Number(value) <= 24) {
      parsed.depth = Number(value);
    } else if (key === "budget" && /^\d+(\.\d+)?$/.test(value ?? "")) {
      parsed.budgetMs = Number(value) === 0 ? undefined : Number(value) * 1000;
    } else if (key === "only" && value) {
      parsed.only = value.toLowerCase().split(",");
    } else if (key === "no-warmup" && value === undefined) {
      parsed.warmup = false;
    } else if (key === "write" && value === undefined) {
      parsed.write = true;
    } else {
      throw new Error(`Cannot use the argument ${arg}: ${USAGE} (depth at most 24)`);
    }
  }
  if (parsed.write && parsed.only.length > 0) {
    throw new Error("Cannot use --write with --only: docs/ shows every variant");
  }
  return parsed;
}

async function main(): Promise<void> {
  const args = parseArgs(Deno.args);
  const { depth, warmup, budgetMs, only, write } = args;
  const maxDepth = effectiveDepth(depth);
  const warmupDepth = Math.min(maxDepth - 2, 10);
  const list = variants(depth).filter((variant) =>
    only.length === 0 || only.some((part) => variant.name.toLowerCase().includes(part))
  );
  const budgetText = budgetMs === undefined
    ? "no time limit"
    : `a run stops after ${budgetMs / 1000} s and its time is then a lower bound`;
  const setup = `Depth ${maxDepth}: ${nodeCount(depth).toLocaleString("en")} nodes of ` +
    `${NODE_SIZE} bytes allocated and freed, at most ${peakNodes(depth).toLocaleString("en")} ` +
    `live (${formatBytes(peakNodes(depth) * NODE_SIZE)}). The variants ran one after another in ` +
    `one process, each on a fresh allocator and a fresh copy of the program's code, ${
      warmup ? `after one warm-up run at depth ${warmupDepth}` : "without warm-up"
    }; ${budgetText}. Time: from creating the allocator to freeing the last tree. Peak memory: ` +
    `the allocator's peakMappedBytes (bytes mapped from the OS); for libc and JS, deltas sampled ` +
    `when the most nodes are live (they include whatever else the process allocated meanwhile). ` +
    `System calls: the allocator's stats().systemCalls after the run (close not included); ` +
    `libc's and V8's are not counted.`;
  console.log(setup);
  console.log();

  const rows: Row[] = [];
  for (const variant of list) {
    const runner = new Runner(variant);
    const row: Row = { variant: variant.name, kind: variant.kind };
    try {
      if (warmup) runner.run(warmupDepth);
      const r = runner.run(depth, budgetMs === undefined ? {} : { budgetMs });
      row.result = r;
      const memory = r.memoryBytes === undefined ? "n/a" : formatBytes(r.memoryBytes);
      const calls = r.stats === undefined ? "" : `, system calls: ${systemCallsText(r)}`;
      console.log(
        `  ${variant.name.padEnd(20)} ${timeText(r, " ms")}, ${memory} (${r.memorySource})${calls}`,
      );
    } catch (error) {
      row.error = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
      console.log(`  ${variant.name.padEnd(20)} failed: ${row.error}`);
    }
    rows.push(row);
  }
  const js = rows.find((row) => row.kind === "js")?.result;
  const reference = js?.complete ? js.lines : undefined;
  for (const row of rows) {
    if (row.result && reference) row.matches = sameChecks(row.result, reference);
  }
  console.log();
  console.log(reference?.join("\n") ?? "(no complete JS run: checks not compared)");

  const table = markdownTable(rows);
  const notes = list.flatMap((variant) => variant.note === undefined ? [] : [`- ${variant.note}`]);
  const access = accessReport(
    measureLibcAccess(2 ** 17),
    depth,
    rows.find((row) => row.kind === "libc"),
  );
  console.log();
  console.log(table);
  console.log();
  console.log(notes.join("\n"));
  console.log();
  console.log(access);

  if (only.length > 0) {
    console.log("\n--only given: no chart or table file written");
  } else {
    const dir = write
      ? new URL("../docs/", import.meta.url)
      : new URL(`${await Deno.makeTempDir({ prefix: "pseudo-malloc-binarytrees-" })}/`, "file:///");
    await Deno.mkdir(dir, { recursive: true });
    const svg = new URL("binarytrees.svg", dir);
    const md = new URL("binarytrees.md", dir);
    await Deno.writeTextFile(svg, renderSvg(rows, `binary-trees, depth ${maxDepth}`));
    const environment = `Deno ${Deno.version.deno} (V8 ${Deno.version.v8}), ` +
      `${Deno.build.target}, ${navigator.hardwareConcurrency} cores`;
    const command = ["deno task binarytrees", ...Deno.args].join(" ");
    await Deno.writeTextFile(
      md,
      [
        `### binary-trees, depth ${maxDepth}`,
        "",
        `${environment}. ${setup}`,
        "",
        table,
        "",
        "Chart: `docs/binarytrees.svg` (same run).",
        "",
        ...notes,
        "",
        access,
        "",
        `Generated by \`${command}\`.`,
        "",
      ].join("\n"),
    );
    console.log(`\nwrote ${svg.pathname} and ${md.pathname}`);
    if (!write) console.log("docs/ left as it was: --write puts them there");
  }
  closeLibc();
  if (rows.some((row) => row.matches === false || row.error !== undefined)) Deno.exit(1);
}

if (import.meta.main) await main();
