// The mmapThreshold table: PseudoMalloc with mmapThreshold 1 KiB, 4 KiB, 64 KiB and 1 MiB (arenaSize
// 1 MiB, the default, in every case) on every built-in trace, against libc, so that a user can
// choose. For each threshold and trace: the warm throughput and its ratio to libc's (both timed on
// a warm heap, as `deno task trace` does), the utilization as the trace report defines it (the
// trace's peak live payload over the heap's peak mapped bytes), and the system calls of one replay
// on a new heap.
//
//   deno task thresholds [--time=SECONDS] [--scale=X] [--runs=N] [--write]
//
// --time: least time spent timing each heap on each trace (default 0.2). --scale: size of the
// built-in traces (default 1). --runs: rounds of the whole table; each row is the round with the
// median ratio to libc (default 3). --write: also write docs/thresholds.md (the tracked copy; not
// by default, so a run leaves the tree as it was).
//
// What the threshold decides: a request below it is a buddy block in a 1 MiB arena (a power of two
// at least the request: up to half of it lost to rounding, none to a page), a request at or above
// it a mapping of its own (whole pages, an `mmap` and a `munmap` unless the mapping cache serves
// it). Example: with the default quarter page (1 KiB on 4 KiB pages) a 3,000-byte buffer is one
// page of its own; with 4 KiB it is a 4 KiB buddy block, and so are 2,049 bytes.

import { PseudoMalloc } from "../mod.ts";
import { builtinTraces, replay, timeLibcReplay, timeReplay, type Trace } from "../src/trace/cli.ts";
import type { SystemCalls } from "../ffi/counting_os.ts";
import {
  formatBytes,
  formatCount,
  formatSystemCalls,
  totalSystemCalls,
} from "../src/trace/report.ts";

/** The thresholds of the table, in bytes. */
export const THRESHOLDS: readonly number[] = [1024, 4096, 64 * 1024, 1024 * 1024];

/** The arena size every row uses: PseudoMalloc's default. */
export const ARENA_SIZE = 1024 * 1024;

/** One threshold on one trace. */
export interface ThresholdRow {
  /** `mmapThreshold`, in bytes. */
  threshold: number;
  /** The trace's name. */
  trace: string;
  /** Operations of the trace. */
  operations: number;
  /** True when the checking replay passed. */
  ok: boolean;
  /** The trace's peak live payload over the heap's peak mapped bytes (NaN when not `ok`). */
  utilization: number;
  /** The heap's peak mapped bytes in the checking replay. */
  peakMappedBytes: number;
  /** The system calls of the checking replay (a new heap, what the trace leaves live freed). */
  systemCalls: SystemCalls;
  /** Seconds of the fastest warm replay; NaN when not timed. */
  seconds: number;
  /** Seconds of libc's fastest warm replay of the same trace, timed just before; NaN untimed. */
  libcSeconds: number;
}

/** Options of {@linkcode thresholdRows}. */
export interface ThresholdOptions {
  /** Least seconds of timing per heap and trace; 0 with `timing: false` skips the clock. */
  time?: number;
  /** Time the replays (default true); false: utilization and system calls only. */
  timing?: boolean;
  /** Called as each row is done. */
  onRow?: (row: ThresholdRow) => void;
}

/** A heap with the given threshold and the default 1 MiB arenas. */
export function heapWith(threshold: number): PseudoMalloc {
  // A cold heap for every row: the spares a closed heap leaves would serve the next one, whose
  // system calls would then depend on the row before it.
  PseudoMalloc.releaseSpares();
  return new PseudoMalloc({ mmapThreshold: threshold, arenaSize: ARENA_SIZE });
}

/**
 * Measures every threshold on every trace: a checking replay on a new heap (utilization, system
 * calls), then, when timing, libc's warm replays and the heap's warm replays, one after the other.
 */
export function thresholdRows(
  traces: readonly Trace[],
  thresholds: readonly number[] = THRESHOLDS,
  options: ThresholdOptions = {},
): ThresholdRow[] {
  const timing = options.timing ?? true;
  const minTime = options.time ?? 0.2;
  const rows: ThresholdRow[] = [];
  for (const trace of traces) {
    for (const threshold of thresholds) {
      const heap = heapWith(threshold);
      let result;
      let systemCalls;
      try {
        result = replay(trace, heap, { tag: "ends" });
        systemCalls = heap.stats().systemCalls;
      } finally {
        heap.close();
      }
      // libc right before each heap, so that a burst of noise from elsewhere on the machine
      // moves both sides of one ratio rather than one side of four.
      const libcSeconds = timing && result.ok
        ? timeLibcReplay(trace, { heap: "warm", minTime, minRuns: 2 }).bestSeconds
        : NaN;
      const seconds = timing && result.ok
        ? timeReplay(trace, () => heapWith(threshold), { heap: "warm", minTime, minRuns: 2 })
          .bestSeconds
        : NaN;
      const row: ThresholdRow = {
        threshold,
        trace: trace.name,
        operations: trace.length,
        ok: result.ok,
        utilization: result.ok ? result.utilization : NaN,
        peakMappedBytes: result.peakMappedBytes,
        systemCalls,
        seconds,
        libcSeconds,
      };
      rows.push(row);
      options.onRow?.(row);
    }
  }
  return rows;
}

function size(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${bytes / (1024 * 1024)} MiB` : `${bytes / 1024} KiB`;
}

function ratio(value: number): string {
  return Number.isFinite(value) ? `${value.toFixed(2)}×` : "n/a";
}

function percent(value: number): string {
  return Number.isFinite(value) ? `${(value * 100).toFixed(1)} %` : "n/a";
}

/** Per threshold over every trace: pooled warm throughput over libc's, and mean utilization. */
export interface ThresholdSummary {
  threshold: number;
  /** All operations over all the fastest replays' time, over libc's likewise; NaN untimed. */
  vsLibc: number;
  /** The plain mean of the traces' utilization, as the trace report's summary. */
  meanUtilization: number;
  /** System calls of the checking replays, summed. */
  systemCalls: number;
}

/**
 * Of several rounds of the same rows, each row's median: the round whose ratio to libc is the
 * median of that row's (the lower middle one for an even count). Noise from elsewhere on the
 * machine hits a round now and then; the median keeps it out of the table.
 */
export function medianRows(rounds: readonly ThresholdRow[][]): ThresholdRow[] {
  return rounds[0]!.map((_, i) => {
    const sorted = rounds.map((round) => round[i]!).sort((a, b) =>
      b.seconds / b.libcSeconds - a.seconds / a.libcSeconds
    );
    return sorted[(sorted.length - 1) >> 1]!;
  });
}

/** The summary of each threshold, in the order of the rows. */
export function summarizeThresholds(rows: readonly ThresholdRow[]): ThresholdSummary[] {
  const thresholds = [...new Set(rows.map((row) => row.threshold))];
  return thresholds.map((threshold) => {
    const mine = rows.filter((row) => row.threshold === threshold);
    const timed = mine.filter((row) => row.seconds > 0 && row.libcSeconds > 0);
    const ops = timed.reduce((sum, row) => sum + row.operations, 0);
    const seconds = timed.reduce((sum, row) => sum + row.seconds, 0);
    const libc = timed.reduce((sum, row) => sum + row.libcSeconds, 0);
    const known = mine.filter((row) => Number.isFinite(row.utilization));
    return {
      threshold,
      vsLibc: timed.length > 0 ? (ops / seconds) / (ops / libc) : NaN,
      meanUtilization: known.length > 0
        ? known.reduce((sum, row) => sum + row.utilization, 0) / known.length
        : NaN,
      systemCalls: mine.reduce((sum, row) => sum + totalSystemCalls(row.systemCalls), 0),
    };
  });
}

/** The rows as markdown: one table per trace, then the summary. */
export function thresholdMarkdown(rows: readonly ThresholdRow[]): string {
  const out: string[] = [];
  const traces = [...new Set(rows.map((row) => row.trace))];
  out.push(
    "| trace | mmapThreshold | warm throughput | × libc (warm) | utilization | peak memory | system calls |",
    "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
  );
  for (const trace of traces) {
    for (const row of rows.filter((r) => r.trace === trace)) {
      const mops = row.seconds > 0
        ? `${(row.operations / row.seconds / 1e6).toFixed(2)} Mop/s`
        : "n/a";
      out.push(
        `| ${row.trace} | ${size(row.threshold)} | ${mops} | ${
          ratio(row.libcSeconds / row.seconds)
        } | ${row.ok ? percent(row.utilization) : "FAIL"} | ${formatBytes(row.peakMappedBytes)} | ${
          formatSystemCalls(row.systemCalls)
        } |`,
      );
    }
  }
  out.push(
    "",
    "| mmapThreshold | × libc (warm, all traces pooled) | mean utilization | system calls (all traces) |",
    "| ---: | ---: | ---: | ---: |",
  );
  for (const summary of summarizeThresholds(rows)) {
    out.push(
      `| ${size(summary.threshold)} | ${ratio(summary.vsLibc)} | ${
        percent(summary.meanUtilization)
      } | ${formatCount(summary.systemCalls)} |`,
    );
  }
  return out.join("\n");
}

const USAGE = "use --time=SECONDS (default 0.2), --scale=X (default 1), --runs=N (default 3), " +
  "--write";

function parseArgs(
  args: readonly string[],
): { time: number; scale: number; runs: number; write: boolean } {
  const parsed = { time: 0.2, scale: 1, runs: 3, write: false };
  for (const arg of args) {
    const [, key, value] = /^--([a-z]+)(?:=(.*))?$/.exec(arg) ?? [];
    if (key === "time" && value !== undefined && Number(value) >= 0 && value !== "") {
      parsed.time = Number(value);
    } else if (key === "runs" && /^[1-9]\d*$/.test(value ?? "")) {
      parsed.runs = Number(value);
    } else if (key === "scale" && value !== undefined && Number(value) > 0) {
      parsed.scale = Number(value);
    } else if (key === "write" && value === undefined) {
      parsed.write = true;
    } else {
      throw new Error(`Cannot use the argument ${arg}: ${USAGE}`);
    }
  }
  return parsed;
}

async function main(): Promise<void> {
  const { time, scale, runs, write } = parseArgs(Deno.args);
  const traces = builtinTraces({ scale });
  const rounds: ThresholdRow[][] = [];
  for (let round = 1; round <= runs; round++) {
    rounds.push(thresholdRows(traces, THRESHOLDS, {
      time,
      onRow: (row) =>
        console.error(
          `  round ${round}: ${row.trace} · ${size(row.threshold)}: ${
            ratio(row.libcSeconds / row.seconds)
          }`,
        ),
    }));
  }
  const rows = medianRows(rounds);
  const environment = `Deno ${Deno.version.deno} (V8 ${Deno.version.v8}), ${Deno.build.target}, ` +
    `${navigator.hardwareConcurrency} cores`;
  const command = ["deno task thresholds", ...Deno.args].join(" ");
  const table = thresholdMarkdown(rows);
  console.log(table);
  if (!write) return;
  const text = [
    "# Choosing `mmapThreshold`",
    "",
    "`PseudoMalloc` serves a request below `mmapThreshold` from its 1 MiB buddy arenas (a power-of-two " +
    "block) and one at or above it with a mapping of its own (whole pages, through the mapping " +
    "cache). The default is a quarter page (1 KiB on 4 KiB pages). This table measures four " +
    "thresholds on the built-in traces of `deno task trace` (see [traces.md](traces.md)), " +
    "`arenaSize` 1 MiB in every case. Back to the [README](../README.md).",
    "",
    "- **warm throughput** and **× libc**: operations per second of the fastest replay on a warm heap " +
    "(one heap, replayed once untimed, then again and again, what the trace leaves live freed after " +
    "each replay), over libc `malloc`'s through FFI timed the same way in the same process; above 1 " +
    "is faster than libc.",
    "- **utilization**: the trace's peak live payload over the heap's peak mapped bytes " +
    "(`stats().peakMappedBytes`), as `deno task trace` reports it.",
    "- **system calls**: those of one replay on a new heap (what the trace leaves live freed, " +
    "`close()` not included).",
    "",
    `${environment}; \`--v8-flags=--no-maglev\`; one process, ${runs} rounds of every row, each ` +
    "row the round with the median ratio to libc. Ratios still move by several percent from run to " +
    "run, more on a loaded machine.",
    "",
    table,
    "",
    `Generated by \`${command}\`.`,
    "",
  ].join("\n");
  const path = new URL("../docs/thresholds.md", import.meta.url);
  await Deno.writeTextFile(path, text);
  console.log(`\nwrote ${path.pathname}`);
}

if (import.meta.main) await main();
