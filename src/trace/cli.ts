/**
 * Malloc trace replay: runs CMU malloc-lab traces (or built-in synthetic ones) through every
 * allocator of `@pseudo/malloc` and through libc's malloc, checks every block handed out, and
 * reports memory utilization and throughput.
 *
 * As a program:
 *
 * ```sh
 * # in a clone of the repository
 * deno task trace                                   # the built-in traces, every allocator
 * deno task trace --allocator=pseudo,segregated my.rep other.rep
 * # anywhere, from JSR (the flags of the task)
 * deno run --allow-ffi --allow-read --allow-write --v8-flags=--no-maglev \
 *   jsr:@pseudo/malloc/trace --json
 * ```
 *
 * As a library: {@linkcode parseTrace}, {@linkcode generateTrace}, {@linkcode replay} (the
 * checking replay of one trace on one allocator), {@linkcode timeReplay}, and {@linkcode main}.
 *
 * ```ts
 * import { PseudoMalloc } from "@pseudo/malloc";
 * import { generateTrace, replay } from "@pseudo/malloc/trace";
 *
 * const trace = generateTrace("binary-tree", { scale: 0.05 });
 * using heap = new PseudoMalloc();
 * const result = replay(trace, heap);
 * console.log(result.ok, result.utilization);
 * ```
 *
 * Needs `--allow-ffi`; `--allow-read` to read trace files, `--allow-write` for `--svg`.
 *
 * @module
 */

import type { Allocator } from "../allocator.ts";
import { type Options, parseOptions, USAGE, UsageError } from "./_args.ts";
import { builtinTraces } from "./generate.ts";
import { LibcAllocator, measureLibcFootprint } from "./libc.ts";
import { parseTrace, TraceSyntaxError } from "./parse.ts";
import { replay, type ReplayOptions } from "./replay.ts";
import {
  type AllocatorRun,
  formatNotes,
  formatRun,
  formatSummary,
  formatTableHeader,
  formatTraceHeader,
  jsonReplacer,
  summarize,
  type TraceRun,
} from "./report.ts";
import { type AllocatorSetup, configureAllocator } from "./targets.ts";
import {
  type HeapMode,
  timeLibcReplay,
  timeReplay,
  type Timing,
  type TimingOptions,
} from "./timing.ts";
import type { SystemCalls } from "../../ffi/counting_os.ts";
import type { Trace } from "./trace.ts";

export {
  formatTrace,
  OP_ALLOC,
  OP_FREE,
  OP_REALLOC,
  TraceBuilder,
  TraceSemanticsError,
} from "./trace.ts";
export type { Allocator, AllocatorStats } from "../allocator.ts";
export type { SystemCalls } from "../../ffi/counting_os.ts";
export type { Trace } from "./trace.ts";
export { parseTrace, TraceSyntaxError } from "./parse.ts";
export { BUILTIN_TRACES, builtinTraces, DEFAULT_SEED, generateTrace } from "./generate.ts";
export type { GenerateOptions } from "./generate.ts";
export { replay } from "./replay.ts";
export type { ReplayOptions, ReplayResult, ReplayViolation } from "./replay.ts";
export { timeLibcReplay, timeReplay } from "./timing.ts";
export type { HeapMode, Timing, TimingOptions } from "./timing.ts";
export { LibcAllocator, libcSymbols, measureLibcFootprint } from "./libc.ts";
export type { LibcFootprint, LibcSymbols } from "./libc.ts";
export { ALLOCATOR_NAMES, configureAllocator } from "./targets.ts";
export type { AllocatorSetup } from "./targets.ts";
export { summarize, SYSTEM_CALLS } from "./report.ts";
export type { AllocatorRun, SummaryRow, TraceRun } from "./report.ts";

/** Timed runs per allocator and trace, at least: the fastest of two or more is reported. */
const MIN_RUNS = 2;

/** A progress bar on a terminal, shown only for stages that take more than a moment. */
class Progress {
  #enabled: boolean;
  #label = "";
  #started = 0;
  #drawn = 0;
  #visible = false;
  #encoder = new TextEncoder();

  constructor(enabled: boolean) {
    this.#enabled = enabled;
  }

  begin(label: string): void {
    this.#label = label;
    this.#started = performance.now();
  }

  update(fraction: number): void {
    if (!this.#enabled) return;
    const now = performance.now();
    if (now - this.#started < 300 || now - this.#drawn < 100) return;
    this.#drawn = now;
    const width = 30;
    const filled = Math.round(Math.min(1, Math.max(0, fraction)) * width);
    const bar = "█".repeat(filled) + "░".repeat(width - filled);
    this.#write(`\r\x1b[2K  ${this.#label} ${bar} ${Math.floor(fraction * 100)}%`);
    this.#visible = true;
  }

  clear(): void {
    if (this.#visible) this.#write("\r\x1b[2K");
    this.#visible = false;
  }

  #write(text: string): void {
    Deno.stderr.writeSync(this.#encoder.encode(text));
  }
}

/** The SVG path for one trace: `FILE` alone, or with the trace's name before the extension. */
function svgPath(base: string, trace: string, several: boolean): string {
  if (!several) return base;
  const safe = trace.replace(/^.*[\\/]/, "").replace(/[^A-Za-z0-9._-]+/g, "_");
  const dot = base.lastIndexOf(".");
  const slash = Math.max(base.lastIndexOf("/"), base.lastIndexOf("\\"));
  return dot > slash ? `${base.slice(0, dot)}-${safe}${base.slice(dot)}` : `${base}-${safe}`;
}

/** The heap map of an allocator that can draw one (duck-typed: `heapMap({ format: "svg" })`). */
function svgOf(allocator: Allocator): string | undefined {
  const heapMap = (allocator as { heapMap?: unknown }).heapMap;
  if (typeof heapMap !== "function") return undefined;
  const svg: unknown = heapMap.call(allocator, { format: "svg" });
  return typeof svg === "string" ? svg : undefined;
}

async function loadTraces(
  options: Options,
): Promise<{ trace: Trace; source: TraceRun["source"] }[]> {
  if (options.files.length === 0) {
    return builtinTraces({ seed: options.seed, scale: options.scale }).map((trace) => ({
      trace,
      source: "built-in" as const,
    }));
  }
  const traces = [];
  for (const file of options.files) {
    let text: string;
    try {
      text = file === "-"
        ? await new Response(Deno.stdin.readable).text()
        : await Deno.readTextFile(file);
    } catch (error) {
      throw new UsageError(
        `cannot read ${file}: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
    traces.push({
      trace: parseTrace(text, file === "-" ? "stdin" : file),
      source: "file" as const,
    });
  }
  return traces;
}

function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/** libc's counts: its calls are not seen (the process shares its heap). */
const UNKNOWN_CALLS: SystemCalls = {
  mmap: NaN,
  munmap: NaN,
  mremap: NaN,
  madvise: NaN,
  mprotect: NaN,
};

/** The system calls an allocator has made so far; undefined when its stats cannot say. */
function callsOf(allocator: Allocator): SystemCalls | undefined {
  try {
    const calls = allocator.stats().systemCalls;
    return calls === undefined ? undefined : { ...calls };
  } catch {
    return undefined; // a broken allocator: its failure is already reported
  }
}

function closeQuietly(allocator: Allocator): void {
  try {
    allocator.close();
  } catch {
    // A broken allocator may not close cleanly; its failure is already reported.
  }
}

/**
 * Options of {@linkcode main} for programs that embed the replayer.
 *
 * @example Comparing an allocator of your own with the family
 * ```ts
 * import { PseudoMalloc } from "@pseudo/malloc";
 * import { main, type MainOptions } from "@pseudo/malloc/trace";
 *
 * const options: MainOptions = {
 *   allocators: {
 *     tuned: () => ({ name: "tuned", className: "PseudoMalloc", create: () => new PseudoMalloc() }),
 *   },
 * };
 * await main(["--allocator=tuned,pseudo", "--scale=0.01", "--no-timing"], options);
 * ```
 */
export interface MainOptions {
  /**
   * More allocators, by name: each makes the setup of a fresh allocator for a trace. They run
   * after the family's (selected by `--allocator` like the others) and are checked the same way.
   */
  allocators?: Record<string, (trace: Trace) => AllocatorSetup>;
}

/**
 * Runs the trace replayer with command-line arguments, printing to stdout (and a progress bar and
 * errors to stderr), and returns the exit status: 0 when every check passed, 1 when one failed, 2
 * for bad arguments or unreadable trace files. See the module documentation for the options, or
 * run it with `--help`.
 *
 * @param args The arguments, e.g. `Deno.args`.
 * @param extra More allocators to offer.
 * @returns The exit status.
 *
 * @example A quick check of two allocators on small built-in traces
 * ```ts
 * import { main } from "@pseudo/malloc/trace";
 *
 * const status = await main(["--allocator=pseudo,segregated", "--scale=0.01", "--no-timing"]);
 * console.log(status); // 0
 * ```
 */
export async function main(
  args: readonly string[],
  extra: MainOptions = {},
): Promise<number> {
  const custom = extra.allocators ?? {};
  let options: Options;
  let traces: { trace: Trace; source: TraceRun["source"] }[];
  try {
    const parsed = parseOptions(args, Object.keys(custom));
    if (parsed === "help") {
      console.log(USAGE);
      return 0;
    }
    options = parsed;
    traces = await loadTraces(options);
  } catch (error) {
    if (error instanceof UsageError || error instanceof TraceSyntaxError) {
      console.error(`error: ${error.message}`);
      if (error instanceof UsageError) console.error("Run with --help for the options.");
      return 2;
    }
    throw error;
  }

  const progress = new Progress(Deno.stderr.isTerminal());
  const out = (line: string) => {
    if (options.json) return;
    progress.clear();
    console.log(line);
  };
  const timing: TimingOptions = { minTime: options.time, minRuns: MIN_RUNS };
  const svgTarget = options.svg === undefined
    ? undefined
    : options.allocators.includes("pseudo")
    ? "pseudo"
    : undefined;
  if (options.svg !== undefined && svgTarget === undefined) {
    console.error("warning: --svg draws PseudoMalloc's heap: add pseudo to --allocator");
  }
  const report: TraceRun[] = [];
  let svgWritten = false;
  let svgMissing = false;

  for (const { trace, source } of traces) {
    const traceRun: TraceRun = {
      name: trace.name,
      source,
      operations: trace.length,
      ids: trace.idLimit,
      peakLiveBytes: trace.peakLiveBytes,
      maxRequest: trace.maxRequest,
      runs: [],
    };
    report.push(traceRun);
    if (report.length > 1) out("");
    out(formatTraceHeader(traceRun));
    out(formatTableHeader());

    const checked = (label: string): ReplayOptions => ({
      tag: options.tag,
      onProgress: (done, total) => progress.update(done / total),
      progressEvery: 4096,
      ...(label === svgTarget && options.svg !== undefined
        ? {
          atPeak: (allocator: Allocator) => {
            // A picture that cannot be drawn or written is a warning, not the allocator's fault.
            const path = svgPath(options.svg!, trace.name, traces.length > 1);
            progress.clear();
            try {
              const svg = svgOf(allocator);
              if (svg === undefined) {
                svgMissing = true;
                return;
              }
              Deno.writeTextFileSync(path, svg);
              svgWritten = true;
              console.error(`wrote ${path}: the heap of ${trace.name} at its peak`);
            } catch (error) {
              svgWritten = true; // warned here
              console.error(`warning: cannot write ${path}: ${describe(error)}`);
            }
          },
        }
        : {}),
    });
    let timingFailure: string | undefined;
    const timed = (time: () => Timing): Timing | undefined => {
      if (!options.timing) return undefined;
      try {
        return time();
      } catch (error) {
        // The checking replay passed, yet an unchecked run threw: report it as a failure.
        timingFailure = `${trace.name}: a timed run threw ${describe(error)}`;
        return undefined;
      }
    };
    const failTiming = (run: AllocatorRun): void => {
      if (timingFailure === undefined) return;
      run.ok = false;
      run.violation = { kind: "throw", message: timingFailure, op: -1, line: 0 };
    };
    const timingWithProgress: TimingOptions = {
      ...timing,
      // Timing ends once both the least time and the least number of runs are reached.
      onRun: (runs, seconds) =>
        progress.update(Math.min(runs / MIN_RUNS, options.time > 0 ? seconds / options.time : 1)),
    };
    // The heap of the main columns (warm unless --heap=fresh), and whether fresh heaps are timed.
    const mainHeap: HeapMode = options.heap === "fresh" ? "fresh" : "warm";
    const timeFresh = options.heap !== "warm";
    const on = (heap: HeapMode, setup?: AllocatorSetup): TimingOptions => ({
      ...timingWithProgress,
      heap,
      ...(setup?.afterReplay ? { afterReplay: setup.afterReplay } : {}),
    });

    // libc first, so that every row can show its ratio as it is printed.
    const order = options.allocators.includes("libc")
      ? ["libc", ...options.allocators.filter((name) => name !== "libc")]
      : options.allocators;
    let libcSeconds = NaN;
    let libcFreshSeconds = NaN;
    for (const name of order) {
      let run: AllocatorRun;
      timingFailure = undefined;
      if (name === "libc") {
        progress.begin(`${trace.name} · libc · checking`);
        // The footprint first: the checking replay leaves garbage (views) in the process heap.
        const footprint = measureLibcFootprint(trace);
        const libc = new LibcAllocator();
        const result = replay(trace, libc, checked(name));
        closeQuietly(libc);
        progress.begin(`${trace.name} · libc · timing`);
        const time = result.ok ? timed(() => timeLibcReplay(trace, on(mainHeap))) : undefined;
        libcSeconds = time?.bestSeconds ?? NaN;
        if (timeFresh) progress.begin(`${trace.name} · libc · timing, fresh`);
        const fresh = result.ok && timeFresh
          ? mainHeap === "fresh" ? time : timed(() => timeLibcReplay(trace, on("fresh")))
          : undefined;
        libcFreshSeconds = fresh?.bestSeconds ?? NaN;
        const peak = footprint?.peakBytes ?? NaN;
        run = {
          allocator: "libc",
          className: "libc malloc (FFI)",
          ok: result.ok,
          utilization: peak > 0 && trace.peakLiveBytes > 0 ? trace.peakLiveBytes / peak : NaN,
          approximate: footprint !== undefined,
          peakMappedBytes: peak,
          opsPerSecond: time?.opsPerSecond ?? NaN,
          seconds: time?.bestSeconds ?? NaN,
          vsLibc: time ? 1 : NaN,
          systemCalls: result.stats?.systemCalls ?? UNKNOWN_CALLS,
        };
        if (fresh) {
          run.fresh = { opsPerSecond: fresh.opsPerSecond, seconds: fresh.bestSeconds, vsLibc: 1 };
        }
        if (result.violation) run.violation = result.violation;
        failTiming(run);
        if (footprint) {
          run.note = `libc: peak memory estimated from ${footprint.samples} mallinfo2 samples of ` +
            `the process heap's growth (${
              footprint.sampledBytes >= footprint.chunkBytes ? "above" : "below, so raised to"
            } the ${footprint.chunkBytes} bytes of chunks live at the peak)`;
        } else if (result.ok) {
          run.note = "libc: no mallinfo2 on this system: peak memory unknown";
        }
      } else {
        let setup;
        try {
          const own = Object.hasOwn(custom, name) ? custom[name] : undefined;
          setup = own ? own(trace) : configureAllocator(name, trace);
        } catch (error) {
          if (!(error instanceof RangeError)) throw error;
          run = {
            allocator: name,
            className: name,
            ok: false,
            skipped: error.message,
            utilization: NaN,
            approximate: false,
            peakMappedBytes: NaN,
            opsPerSecond: NaN,
            seconds: NaN,
            vsLibc: NaN,
          };
          traceRun.runs.push(run);
          out(formatRun(run));
          continue;
        }
        progress.begin(`${trace.name} · ${name} · checking`);
        const allocator = setup.create();
        const result = replay(trace, allocator, checked(name));
        const systemCalls = callsOf(allocator);
        closeQuietly(allocator);
        progress.begin(`${trace.name} · ${name} · timing`);
        const time = result.ok
          ? timed(() => timeReplay(trace, setup.create, on(mainHeap, setup)))
          : undefined;
        if (timeFresh) progress.begin(`${trace.name} · ${name} · timing, fresh`);
        const fresh = result.ok && timeFresh && timingFailure === undefined
          ? mainHeap === "fresh" ? time : timed(() => timeReplay(trace, setup.create, on("fresh")))
          : undefined;
        run = {
          allocator: name,
          className: setup.className,
          ok: result.ok,
          // A replay stopped by a violation measured only part of the trace.
          utilization: result.ok ? result.utilization : NaN,
          approximate: false,
          peakMappedBytes: result.ok ? result.peakMappedBytes : NaN,
          opsPerSecond: time?.opsPerSecond ?? NaN,
          seconds: time?.bestSeconds ?? NaN,
          vsLibc: time ? libcSeconds / time.bestSeconds : NaN,
        };
        if (systemCalls) run.systemCalls = systemCalls;
        if (fresh) {
          run.fresh = {
            opsPerSecond: fresh.opsPerSecond,
            seconds: fresh.bestSeconds,
            vsLibc: libcFreshSeconds / fresh.bestSeconds,
          };
        }
        if (result.violation) run.violation = result.violation;
        failTiming(run);
        if (setup.note) run.note = setup.note;
      }
      traceRun.runs.push(run);
      out(formatRun(run));
    }
    for (const line of formatNotes(traceRun)) out(line);
  }

  const summary = summarize(report);
  if (traces.length > 1) {
    out("");
    for (const line of formatSummary(summary, traces.length)) out(line);
  }
  progress.clear();
  const ok = report.every((trace) =>
    trace.runs.every((run) => run.ok || run.skipped !== undefined)
  );
  if (options.json) {
    const json = {
      ok,
      settings: {
        tag: options.tag,
        timing: options.timing,
        heap: options.heap,
        minTimeSeconds: options.time,
        ...(options.files.length === 0 ? { seed: options.seed, scale: options.scale } : {}),
      },
      traces: report,
      summary,
    };
    console.log(JSON.stringify(json, jsonReplacer, 2));
  }
  if (options.svg !== undefined && svgTarget !== undefined && !svgWritten) {
    console.error(
      svgMissing
        ? 'warning: no SVG written: this PseudoMalloc has no heapMap({ format: "svg" })'
        : "warning: no SVG written: no replay on PseudoMalloc reached its trace's peak",
    );
  }
  return ok ? 0 : 1;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
