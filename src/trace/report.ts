/**
 * The replayer's report: what was measured per trace and allocator, the summary over all traces,
 * and its text and JSON renderings.
 *
 * @module
 */

import type { SystemCalls } from "../../ffi/counting_os.ts";
import type { ReplayViolation } from "./replay.ts";

/**
 * One allocator on one trace.
 *
 * @example A failed row
 * ```ts
 * import type { AllocatorRun } from "@pseudo/malloc/trace";
 *
 * const failed = (run: AllocatorRun) => !run.ok && run.skipped === undefined;
 * ```
 */
export interface AllocatorRun {
  /** `pseudo`, `mmap`, `bump`, `cell`, `firstfit`, `segregated` or `libc`. */
  allocator: string;
  /** The class or library behind it, e.g. `PseudoMalloc` or `libc malloc (FFI)`. */
  className: string;
  /** True when the checking replay passed (false when skipped). */
  ok: boolean;
  /** Why the allocator could not run the trace at all (e.g. a cell size above 1 GiB). */
  skipped?: string;
  /** The first violation of the checking replay. */
  violation?: ReplayViolation;
  /** Peak live payload over the peak footprint; NaN when unknown. */
  utilization: number;
  /** True when `peakMappedBytes` is an estimate (libc: sampled `mallinfo2`). */
  approximate: boolean;
  /** The most bytes taken from the OS at once (libc: the estimate); NaN when unknown. */
  peakMappedBytes: number;
  /**
   * Operations per second of the fastest timed run (on a warm heap, unless the report's heap mode
   * is `fresh`); NaN when not timed.
   */
  opsPerSecond: number;
  /** Seconds of that run; NaN when not timed. */
  seconds: number;
  /** `opsPerSecond` over libc's on the same trace; NaN without libc. */
  vsLibc: number;
  /** The same three on fresh heaps (a new allocator per timed run), when those were timed. */
  fresh?: { opsPerSecond: number; seconds: number; vsLibc: number };
  /**
   * The system calls of the checking replay: one replay on a new allocator, the blocks the trace
   * leaves live freed, `close()` not included. NaN counts where they are unknown (libc).
   */
  systemCalls?: SystemCalls;
  /** How the allocator was configured for the trace, when that was derived from it. */
  note?: string;
}

/**
 * One trace and every allocator's run on it.
 *
 * @example Its size
 * ```ts
 * import type { TraceRun } from "@pseudo/malloc/trace";
 *
 * const describe = (run: TraceRun) => `${run.name}: ${run.operations} operations`;
 * ```
 */
export interface TraceRun {
  /** The file name, or the built-in trace's name. */
  name: string;
  /** Where it came from. */
  source: "built-in" | "file";
  /** Operations. */
  operations: number;
  /** Distinct ids used (the id limit). */
  ids: number;
  /** The most requested bytes live at once. */
  peakLiveBytes: number;
  /** The largest single request. */
  maxRequest: number;
  /** One entry per allocator, in the order they ran. */
  runs: AllocatorRun[];
}

/**
 * One allocator over every trace.
 *
 * @example Reading it
 * ```ts
 * import type { SummaryRow } from "@pseudo/malloc/trace";
 *
 * const line = (row: SummaryRow) => `${row.allocator}: ${row.failed} failed`;
 * ```
 */
export interface SummaryRow {
  /** The allocator's name. */
  allocator: string;
  /** Traces it replayed cleanly. */
  passed: number;
  /** Traces on which a check failed. */
  failed: number;
  /** Traces it could not run. */
  skipped: number;
  /** Mean utilization over the traces where it is known. */
  meanUtilization: number;
  /** True when any utilization in the mean is an estimate. */
  approximate: boolean;
  /** All timed operations over all their time (the traces' fastest runs); NaN when untimed. */
  opsPerSecond: number;
  /** `opsPerSecond` over libc's on the same traces; NaN without libc. */
  vsLibc: number;
  /** The same ratio on fresh heaps, pooled likewise; NaN where fresh heaps were not timed. */
  freshVsLibc: number;
  /** The system calls of the checking replays, summed over the traces (NaN when unknown). */
  systemCalls: SystemCalls;
}

/**
 * Summarizes every allocator over the traces, in the order the allocators first appear.
 * Throughput pools the traces (total operations over total seconds, so long traces weigh more);
 * utilization is the plain mean of the traces, as in malloc-lab's score.
 *
 * @param traces The traces' runs.
 * @returns One row per allocator.
 *
 * @example The summary of nothing
 * ```ts
 * import { summarize } from "@pseudo/malloc/trace";
 *
 * console.log(summarize([])); // []
 * ```
 */
export function summarize(traces: readonly TraceRun[]): SummaryRow[] {
  const names: string[] = [];
  for (const trace of traces) {
    for (const run of trace.runs) if (!names.includes(run.allocator)) names.push(run.allocator);
  }
  const pooled = (
    name: string,
    among: readonly TraceRun[],
    secondsOf: (run: AllocatorRun) => number = (run) => run.seconds,
  ) => {
    let operations = 0;
    let seconds = 0;
    for (const trace of among) {
      const run = trace.runs.find((r) => r.allocator === name);
      if (run && secondsOf(run) > 0) {
        operations += trace.operations;
        seconds += secondsOf(run);
      }
    }
    return seconds > 0 ? operations / seconds : NaN;
  };
  const freshSeconds = (run: AllocatorRun) => run.fresh?.seconds ?? NaN;
  return names.map((name) => {
    const runs = traces.flatMap((trace) => trace.runs.filter((run) => run.allocator === name));
    const known = runs.filter((run) => Number.isFinite(run.utilization));
    const timed = traces.filter((trace) =>
      trace.runs.some((run) => run.allocator === name && run.seconds > 0)
    );
    // Against libc on the same traces only.
    const both = timed.filter((trace) =>
      trace.runs.some((run) => run.allocator === "libc" && run.seconds > 0)
    );
    const freshBoth = traces.filter((trace) =>
      trace.runs.some((run) => run.allocator === name && freshSeconds(run) > 0) &&
      trace.runs.some((run) => run.allocator === "libc" && freshSeconds(run) > 0)
    );
    const calls: SystemCalls = { mmap: 0, munmap: 0, mremap: 0, madvise: 0, mprotect: 0 };
    for (const run of runs) {
      for (const kind of SYSTEM_CALLS) calls[kind] += run.systemCalls?.[kind] ?? NaN;
    }
    return {
      allocator: name,
      passed: runs.filter((run) => run.ok).length,
      failed: runs.filter((run) => !run.ok && run.skipped === undefined).length,
      skipped: runs.filter((run) => run.skipped !== undefined).length,
      meanUtilization: known.length > 0
        ? known.reduce((sum, run) => sum + run.utilization, 0) / known.length
        : NaN,
      approximate: known.some((run) => run.approximate),
      opsPerSecond: pooled(name, timed),
      vsLibc: both.length > 0 ? pooled(name, both) / pooled("libc", both) : NaN,
      freshVsLibc: freshBoth.length > 0
        ? pooled(name, freshBoth, freshSeconds) / pooled("libc", freshBoth, freshSeconds)
        : NaN,
      systemCalls: calls,
    };
  });
}

/** The system calls counted, in the order the report lists them. */
export const SYSTEM_CALLS: readonly (keyof SystemCalls)[] = [
  "mmap",
  "munmap",
  "mremap",
  "madvise",
  "mprotect",
];

/** All the calls together: NaN when unknown (libc), undefined when not measured. */
export function totalSystemCalls(calls: SystemCalls | undefined): number {
  if (calls === undefined) return NaN;
  return SYSTEM_CALLS.reduce((sum, kind) => sum + calls[kind], 0);
}

/** `{ mmap: 3, munmap: 1, ... }` → `3 mmap, 1 munmap`; the calls of no kind are left out. */
export function formatSystemCalls(calls: SystemCalls): string {
  const made = SYSTEM_CALLS.filter((kind) => calls[kind] > 0);
  return made.length === 0 ? "none" : made.map((kind) => `${formatCount(calls[kind])} ${kind}`)
    .join(", ");
}

// --- text ----------------------------------------------------------------------------------------

/** `1234567` → `1,234,567`. */
export function formatCount(value: number): string {
  return Math.round(value).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/** Bytes in B, KiB, MiB or GiB with one decimal. */
export function formatBytes(value: number): string {
  if (!Number.isFinite(value)) return "n/a";
  if (value < 1024) return `${value} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let scaled = value / 1024;
  let unit = 0;
  while (scaled >= 1024 && unit < units.length - 1) {
    scaled /= 1024;
    unit++;
  }
  return `${scaled.toFixed(1)} ${units[unit]}`;
}

function percent(value: number, approximate: boolean): string {
  if (!Number.isFinite(value)) return "n/a";
  const points = value * 100;
  const text = points >= 1 || points === 0 ? points.toFixed(1) : points.toPrecision(2);
  return `${approximate ? "≈" : ""}${text} %`;
}

function throughput(opsPerSecond: number): string {
  if (!Number.isFinite(opsPerSecond)) return "n/a";
  return opsPerSecond >= 1e6
    ? `${(opsPerSecond / 1e6).toFixed(2)} Mop/s`
    : `${(opsPerSecond / 1e3).toFixed(1)} kop/s`;
}

function ratio(value: number): string {
  return Number.isFinite(value) ? `${value.toFixed(2)}×` : "n/a";
}

const COLUMNS = [
  ["allocator", 11, "left"],
  ["check", 6, "left"],
  ["utilization", 12, "right"],
  ["peak memory", 12, "right"],
  ["throughput", 14, "right"],
  ["vs libc", 8, "right"],
  ["fresh", 7, "right"],
  ["sys calls", 10, "right"],
] as const;

function count(value: number): string {
  return Number.isFinite(value) ? formatCount(value) : "n/a";
}

function row(cells: readonly string[]): string {
  return "  " + cells.map((cell, i) => {
    const [, width, align] = COLUMNS[i]!;
    return align === "left" ? cell.padEnd(width) : cell.padStart(width);
  }).join(" ").trimEnd();
}

/**
 * The first line of a trace's section.
 *
 * @param trace The trace (its runs are not used).
 * @returns The line.
 */
export function formatTraceHeader(trace: TraceRun): string {
  return `${trace.name} (${trace.source}): ${formatCount(trace.operations)} operations, ${
    formatCount(trace.ids)
  } ids, peak live ${formatBytes(trace.peakLiveBytes)}, largest request ${
    formatBytes(trace.maxRequest)
  }`;
}

/**
 * The column titles of a trace's table.
 *
 * @returns The line.
 */
export function formatTableHeader(): string {
  return row(COLUMNS.map(([title]) => title));
}

/**
 * One allocator's row of a trace's table.
 *
 * @param run The run.
 * @returns The line.
 */
export function formatRun(run: AllocatorRun): string {
  return row([
    run.allocator,
    run.skipped !== undefined ? "skip" : run.ok ? "ok" : "FAIL",
    percent(run.utilization, run.approximate),
    (run.approximate ? "≈" : "") + formatBytes(run.peakMappedBytes),
    throughput(run.opsPerSecond),
    ratio(run.vsLibc),
    ratio(run.fresh?.vsLibc ?? NaN),
    count(totalSystemCalls(run.systemCalls)),
  ]);
}

/**
 * The lines under a trace's table: failures, skips and configuration notes.
 *
 * @param trace The trace's runs.
 * @returns The lines (possibly none).
 */
export function formatNotes(trace: TraceRun): string[] {
  const lines: string[] = [];
  for (const run of trace.runs) {
    if (run.violation) {
      lines.push(`  ${run.allocator} FAILED (${run.violation.kind}): ${run.violation.message}`);
    }
    if (run.skipped !== undefined) lines.push(`  ${run.allocator} skipped: ${run.skipped}`);
  }
  const counted = trace.runs.filter((run) =>
    run.systemCalls !== undefined && Number.isFinite(totalSystemCalls(run.systemCalls))
  );
  if (counted.length > 0) {
    lines.push(
      `  system calls: ${
        counted.map((run) => `${run.allocator} ${formatSystemCalls(run.systemCalls!)}`).join("; ")
      }`,
    );
  }
  for (const run of trace.runs) if (run.note) lines.push(`  note: ${run.note}`);
  return lines;
}

/**
 * The summary table.
 *
 * @param rows The summary.
 * @param traces How many traces it covers.
 * @returns The lines.
 */
export function formatSummary(rows: readonly SummaryRow[], traces: number): string[] {
  const lines = [
    `summary over ${traces} trace${traces === 1 ? "" : "s"}: mean utilization, throughput of all ` +
    `operations over all time`,
    row(["allocator", "check", "utilization", "", "throughput", "vs libc", "fresh", "sys calls"]),
  ];
  for (const r of rows) {
    const check = r.failed > 0
      ? `FAIL ${r.failed}`
      : r.passed === 0 && r.skipped > 0
      ? "skip"
      : "ok";
    lines.push(row([
      r.allocator,
      check,
      percent(r.meanUtilization, r.approximate),
      "",
      throughput(r.opsPerSecond),
      ratio(r.vsLibc),
      ratio(r.freshVsLibc),
      count(totalSystemCalls(r.systemCalls)),
    ]));
  }
  return lines;
}

/** Replaces non-finite numbers (NaN, Infinity) by `null`, which JSON can hold. */
export function jsonReplacer(_key: string, value: unknown): unknown {
  return typeof value === "number" && !Number.isFinite(value) ? null : value;
}
