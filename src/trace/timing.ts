/**
 * Throughput: a trace replayed with nothing but the allocator calls, timed, on fresh heaps or on
 * a warm one.
 *
 * - Fresh (`heap: "fresh"`, the default here): every timed run makes a new allocator (not timed),
 *   replays the trace once (timed) and closes it (not timed). The run pays what a new heap costs
 *   on its first use: its first arena or chunk mapped, its pages touched for the first time, its
 *   caches empty.
 * - Warm (`heap: "warm"`): one allocator for every run. The trace is replayed once untimed (the
 *   warm-up), then again and again, timed; after each replay the blocks the trace leaves live are
 *   freed (not timed), so every replay starts from an empty heap that has already served the whole
 *   trace once: its arenas mapped, its caches full. This is the steady state of a program that
 *   keeps its heap, and the state libc's heap is always in (it is the process's).
 *
 * Example: a trace of 100,000 operations timed warm with `minRuns: 3` makes one allocator and
 * replays it 4 times: 1 untimed, then 3 timed (more while `minTime` is not reached); the fastest
 * timed replay gives `opsPerSecond`.
 *
 * @module
 */

import type { Allocator } from "../allocator.ts";
import { libcSymbols } from "./libc.ts";
import { OP_ALLOC, OP_REALLOC, type Trace } from "./trace.ts";

/**
 * Options of {@linkcode timeReplay} and {@linkcode timeLibcReplay}.
 *
 * @example A quick measurement
 * ```ts
 * import type { TimingOptions } from "@pseudo/malloc/trace";
 *
 * const options: TimingOptions = { minTime: 0.05, minRuns: 2 };
 * ```
 */
export interface TimingOptions {
  /** Keep running until this many seconds were spent in timed runs... @default {0.25} */
  minTime?: number;
  /** ...and at least this many runs were made. @default {3} */
  minRuns?: number;
  /** Never more than this many runs. @default {100} */
  maxRuns?: number;
  /** Called after each run with the runs done and the seconds spent so far. */
  onRun?: (runs: number, seconds: number) => void;
  /**
   * `"fresh"`: each timed run on a new allocator; `"warm"`: every run on one allocator, after an
   * untimed warm-up replay (see the module documentation). @default {"fresh"}
   */
  heap?: HeapMode;
  /**
   * {@linkcode timeReplay} on a warm heap: called with the allocator after each replay, once the
   * blocks the trace left live are freed (not timed). For an allocator whose `free` does not make
   * memory reusable, e.g. a `BumpAllocator`'s `reset()`.
   */
  afterReplay?: (allocator: Allocator) => void;
}

/**
 * How the timed runs meet the heap: a new allocator per run, or one warm allocator for all.
 *
 * @example Both, one after the other
 * ```ts
 * import type { HeapMode } from "@pseudo/malloc/trace";
 *
 * const modes: HeapMode[] = ["warm", "fresh"];
 * ```
 */
export type HeapMode = "fresh" | "warm";

/**
 * What {@linkcode timeReplay} measured.
 *
 * @example Nanoseconds per operation
 * ```ts
 * import type { Timing } from "@pseudo/malloc/trace";
 *
 * const nanoseconds = (timing: Timing) => 1e9 / timing.opsPerSecond;
 * ```
 */
export interface Timing {
  /** Timed runs made (warm: not counting the warm-up replay). */
  runs: number;
  /** Fresh allocators, or one warm allocator. */
  heap: HeapMode;
  /** The fastest run, in seconds. */
  bestSeconds: number;
  /** All timed runs together, in seconds. */
  totalSeconds: number;
  /** Operations per second of the fastest run. */
  opsPerSecond: number;
}

/** The allocator calls a timed loop makes; sizes and addresses are numbers or bigints. */
interface Peer<S, A> {
  malloc(size: S): A;
  realloc(address: A, size: S): A;
  free(address: A): unknown;
}

/**
 * The timed loop. It must refer to nothing but its parameters: it is compiled again for every
 * allocator (see `specialize`). `ALLOC` and `REALLOC` are passed in for that reason.
 */
function runTrace<S, A>(
  peer: Peer<S, A>,
  kinds: Uint8Array,
  ids: Int32Array,
  sizes: ArrayLike<S>,
  slots: { [index: number]: A },
  nil: A,
  alloc: number,
  reallocate: number,
): void {
  const n = kinds.length;
  for (let i = 0; i < n; i++) {
    const kind = kinds[i];
    const id = ids[i]!;
    if (kind === alloc) slots[id] = peer.malloc(sizes[i]!);
    else if (kind === reallocate) slots[id] = peer.realloc(slots[id]!, sizes[i]!);
    else peer.free(id < 0 ? nil : slots[id]!);
  }
}

let copies = 0;

/**
 * A copy of `runTrace` with its own V8 type feedback. One loop shared by every allocator would run
 * megamorphic and charge each allocator for the others' call sites; a copy compiled from the same
 * source sees only one, as a program using one allocator would. Each copy's source differs by a
 * comment, since V8 caches compiled code (and its feedback) by source.
 */
function specialize(): typeof runTrace {
  const Compile = Function as unknown as new (body: string) => () => typeof runTrace;
  return new Compile(`"use strict"; return (${runTrace.toString()}); // copy ${++copies}`)();
}

/** Ids live after the last operation (the trace leaves them allocated). */
function liveAtEnd(trace: Trace): number[] {
  const live = new Uint8Array(trace.idLimit);
  for (let i = 0; i < trace.length; i++) {
    const id = trace.ids[i]!;
    if (id < 0) continue;
    const kind = trace.kinds[i];
    live[id] = kind === OP_ALLOC || (kind === OP_REALLOC && trace.sizes[i]! > 0) ? 1 : 0;
  }
  const ids: number[] = [];
  for (let id = 0; id < live.length; id++) if (live[id]) ids.push(id);
  return ids;
}

function measure(
  trace: Trace,
  options: TimingOptions,
  heap: HeapMode,
  once: () => number,
): Timing {
  const minTime = options.minTime ?? 0.25;
  const minRuns = options.minRuns ?? 3;
  const maxRuns = options.maxRuns ?? 100;
  let runs = 0;
  let total = 0;
  let best = Infinity;
  while (runs < maxRuns && (runs < minRuns || total < minTime)) {
    const seconds = once();
    runs++;
    total += seconds;
    if (seconds < best) best = seconds;
    options.onRun?.(runs, total);
  }
  return {
    runs,
    heap,
    bestSeconds: best,
    totalSeconds: total,
    opsPerSecond: best > 0 ? trace.length / best : Infinity,
  };
}

/**
 * Times a trace on an allocator, replaying every operation with no checks and no memory access.
 * Fresh (the default): each run creates an allocator (not timed), replays the trace (timed), then
 * closes it (not timed). Warm (`options.heap: "warm"`): one allocator replays the trace once
 * untimed, then repeatedly timed, the blocks the trace leaves live freed after each replay (not
 * timed), and is closed at the end. The result is the fastest run, the usual defence against
 * noise; the first runs also warm up the JIT.
 *
 * @param trace The trace; it must be valid (as {@linkcode parseTrace} guarantees).
 * @param create Makes a fresh allocator: once per run, or once in all when warm.
 * @param options How long to measure, and on which heap.
 * @returns The measurement.
 *
 * @example Operations per second, fresh and warm
 * ```ts
 * import { PseudoMalloc } from "@pseudo/malloc";
 * import { generateTrace, timeReplay } from "@pseudo/malloc/trace";
 *
 * const trace = generateTrace("churn", { scale: 0.05 });
 * const fresh = timeReplay(trace, () => new PseudoMalloc(), { minTime: 0.02 });
 * const warm = timeReplay(trace, () => new PseudoMalloc(), { minTime: 0.02, heap: "warm" });
 * console.log(Math.round(fresh.opsPerSecond), Math.round(warm.opsPerSecond));
 * ```
 */
export function timeReplay(
  trace: Trace,
  create: () => Allocator,
  options: TimingOptions = {},
): Timing {
  const run = specialize();
  const slots = new Float64Array(trace.idLimit);
  const replayOnce = (allocator: Allocator): number => {
    slots.fill(0);
    const start = performance.now();
    run(allocator, trace.kinds, trace.ids, trace.sizes, slots, 0, OP_ALLOC, OP_REALLOC);
    return (performance.now() - start) / 1000;
  };
  if (options.heap !== "warm") {
    return measure(trace, options, "fresh", () => {
      const allocator = create();
      try {
        return replayOnce(allocator);
      } finally {
        allocator.close();
      }
    });
  }
  const leftovers = liveAtEnd(trace);
  const allocator = create();
  try {
    const warmReplay = (): number => {
      const seconds = replayOnce(allocator);
      for (const id of leftovers) allocator.free(slots[id]!);
      options.afterReplay?.(allocator);
      return seconds;
    };
    warmReplay();
    return measure(trace, options, "warm", warmReplay);
  } finally {
    allocator.close();
  }
}

/**
 * Times a trace on libc's malloc through FFI, like {@linkcode timeReplay}: sizes are passed and
 * addresses kept as bigints (Deno's fast call path), converted once before timing; blocks the
 * trace leaves live are freed after each run (not timed). libc's heap is the process's, so it is
 * never new: fresh and warm differ only in the untimed warm-up replay that warm makes first, as
 * {@linkcode timeReplay} does.
 *
 * @param trace The trace; it must be valid.
 * @param options How long to measure; `heap: "warm"` for a warm-up replay first.
 * @returns The measurement.
 *
 * @example Against libc
 * ```ts
 * import { generateTrace, timeLibcReplay } from "@pseudo/malloc/trace";
 *
 * const trace = generateTrace("churn", { scale: 0.05 });
 * console.log(Math.round(timeLibcReplay(trace, { minTime: 0.02 }).opsPerSecond));
 * ```
 */
export function timeLibcReplay(trace: Trace, options: TimingOptions = {}): Timing {
  const libc = libcSymbols();
  const run = specialize();
  const sizes = Array.from(trace.sizes, (size) => BigInt(size));
  const slots: bigint[] = new Array(trace.idLimit).fill(0n);
  const leftovers = liveAtEnd(trace);
  const once = (): number => {
    slots.fill(0n);
    const start = performance.now();
    run(libc, trace.kinds, trace.ids, sizes, slots, 0n, OP_ALLOC, OP_REALLOC);
    const seconds = (performance.now() - start) / 1000;
    for (const id of leftovers) libc.free(slots[id]!);
    return seconds;
  };
  const heap = options.heap === "warm" ? "warm" : "fresh";
  if (heap === "warm") once();
  return measure(trace, options, heap, once);
}
