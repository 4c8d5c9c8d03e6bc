/**
 * The checking replayer: runs a trace through an {@linkcode Allocator} and checks every block it
 * hands out. Pure TypeScript over the `Allocator` interface; the memory it tags is reached through
 * `allocator.bytes()`.
 *
 * @module
 */

import type { Allocator, AllocatorStats } from "../allocator.ts";
import { IntervalSet } from "./_live_intervals.ts";
import { checkTag, ENDS, patternOffset, tagByte, writeTag } from "./_payload_tags.ts";
import { OP_ALLOC, OP_FREE, OP_REALLOC, type Trace } from "./trace.ts";

/**
 * Options of {@linkcode replay}.
 *
 * @example Only the ends of each payload, and a full check every 10,000 operations
 * ```ts
 * import type { ReplayOptions } from "@pseudo/malloc/trace";
 *
 * const options: ReplayOptions = { tag: "ends", validateEvery: 10_000 };
 * ```
 */
export interface ReplayOptions {
  /** Every address must be a multiple of this. @default {16} */
  alignment?: number;
  /**
   * How much of each payload is tagged (written with a pattern derived from the allocation, and
   * checked before the block is reallocated or freed): `"full"` every byte, `"ends"` the first
   * and last 16 bytes, `"none"` nothing (then only alignment, overlap and sizes are checked).
   * @default {"full"}
   */
  tag?: "full" | "ends" | "none";
  /**
   * Calls `allocator.validate()` every this many operations; it is always called after the last
   * one. 0 for only then. @default {0}
   */
  validateEvery?: number;
  /** Frees the blocks the trace leaves live, checking them first. @default {true} */
  freeRemaining?: boolean;
  /** Called with the operations done so far, every `progressEvery` operations and at the end. */
  onProgress?: (done: number, total: number) => void;
  /** Operations between two `onProgress` calls. @default {16384} */
  progressEvery?: number;
  /**
   * Called once, right after the operation that first brings the live bytes to the trace's peak
   * (`trace.peakOp`), with the allocator: the moment to take a picture of the heap.
   */
  atPeak?: (allocator: Allocator, op: number) => void;
}

/**
 * What broke during a replay: the first violation stops it.
 *
 * @example Printing one
 * ```ts
 * import type { ReplayViolation } from "@pseudo/malloc/trace";
 *
 * function show(violation: ReplayViolation): string {
 *   return `${violation.kind} at line ${violation.line}: ${violation.message}`;
 * }
 * ```
 */
export interface ReplayViolation {
  /**
   * The kind: `"throw"` (the allocator threw), `"null"` (it returned 0 or a non-address),
   * `"alignment"`, `"overlap"` (two live payloads share bytes), `"usable-size"` (smaller than
   * requested), `"corrupted"` (a live payload's tag changed), `"realloc-prefix"` (realloc lost the
   * old contents), `"stats"` (the allocator's live counters disagree with the trace), `"validate"`
   * (`validate()` threw).
   */
  kind:
    | "throw"
    | "null"
    | "alignment"
    | "overlap"
    | "usable-size"
    | "corrupted"
    | "realloc-prefix"
    | "stats"
    | "validate";
  /** The full message, starting with the position: `file:line (op): ...`. */
  message: string;
  /** Index of the operation during or after which it was found (-1 before the first). */
  op: number;
  /** Its line in the trace file (0 when not tied to an operation). */
  line: number;
}

/**
 * The outcome of {@linkcode replay}.
 *
 * @example Utilization as a percentage
 * ```ts
 * import type { ReplayResult } from "@pseudo/malloc/trace";
 *
 * const percent = (result: ReplayResult) => (result.utilization * 100).toFixed(1) + " %";
 * ```
 */
export interface ReplayResult {
  /** The trace's name. */
  trace: string;
  /** True when every check passed. */
  ok: boolean;
  /** The first violation, when `ok` is false. */
  violation?: ReplayViolation;
  /** Operations replayed (all of them when `ok`). */
  operations: number;
  /** The most bytes requested by live blocks at once: the trace's `peakLiveBytes`. */
  peakLiveBytes: number;
  /** The allocator's `stats().peakMappedBytes` after the replay (NaN when it cannot tell). */
  peakMappedBytes: number;
  /** `peakLiveBytes / peakMappedBytes`: 1 is perfect; NaN when either is unknown or 0. */
  utilization: number;
  /** The allocator's stats after the last operation, before the remaining blocks were freed. */
  stats: AllocatorStats | undefined;
  /** Wall time of the checking replay, checks included (not a throughput figure). */
  seconds: number;
}

// --- replay --------------------------------------------------------------------------------------

function hex(value: number): string {
  return Number.isSafeInteger(value) && value >= 0 ? `0x${value.toString(16)}` : String(value);
}

function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/** The text of operation `i`, as in the file. */
function opText(trace: Trace, i: number): string {
  const kind = trace.kinds[i];
  return kind === OP_ALLOC
    ? `a ${trace.ids[i]} ${trace.sizes[i]}`
    : kind === OP_REALLOC
    ? `r ${trace.ids[i]} ${trace.sizes[i]}`
    : `f ${trace.ids[i]}`;
}

/** Signals a violation out of the replay loop. */
class Violation extends Error {
  constructor(readonly violation: ReplayViolation) {
    super(violation.message);
  }
}

/**
 * Replays a trace through an allocator, checking as it goes, and measures its memory utilization.
 *
 * For every operation: `a` calls `malloc`, `r` calls `realloc`, `f` calls `free` (`f -1` is
 * `free(0)`). Checked:
 * - every address returned is a non-zero multiple of `alignment` (16), and `usableSize` of it is
 *   at least the size requested;
 * - live payloads never overlap (an interval set of every live block's requested bytes; a 0-byte
 *   block counts as 1 byte, since it must be unique);
 * - every payload is tagged with a pattern derived from its allocation (the whole payload, or its
 *   ends: `options.tag`), and the tag is verified before the block is reallocated or freed, and for
 *   every live block after the last operation, so a write by the allocator into a live block is
 *   found;
 * - `realloc` keeps the old contents up to the smaller of the two sizes;
 * - after the last operation the allocator's `liveAllocations` and `liveBytes` match the trace's,
 *   and `validate()` passes; then the remaining blocks are freed (`options.freeRemaining`) and no
 *   live block may remain.
 *
 * The first violation stops the replay; the result says what and where. The allocator is not
 * closed: the caller owns it, and after a violation it may be in any state.
 *
 * Utilization is the trace's peak live payload (`trace.peakLiveBytes`: the most requested bytes
 * live at once) over the allocator's `stats().peakMappedBytes` (the most bytes it had taken from
 * the OS at once).
 *
 * @param trace The trace.
 * @param allocator A fresh allocator (its peak counters should cover this replay only).
 * @param options Checks and hooks.
 * @returns What happened.
 *
 * @example A clean replay
 * ```ts
 * import { PseudoMalloc } from "@pseudo/malloc";
 * import { parseTrace, replay } from "@pseudo/malloc/trace";
 * import assert from "node:assert/strict";
 *
 * const trace = parseTrace("0 2 4 1\na 0 100\na 1 300\nr 0 500\nf 1\n", "small.rep");
 * using heap = new PseudoMalloc();
 * const result = replay(trace, heap);
 * assert.ok(result.ok);
 * assert.equal(result.peakLiveBytes, 800);
 * ```
 */
export function replay(
  trace: Trace,
  allocator: Allocator,
  options: ReplayOptions = {},
): ReplayResult {
  const alignment = options.alignment ?? 16;
  const tag = options.tag ?? "full";
  const validateEvery = options.validateEvery ?? 0;
  const progressEvery = Math.max(1, options.progressEvery ?? 16384);
  const onProgress = options.onProgress;
  const n = trace.length;
  const addresses = new Float64Array(trace.idLimit);
  const sizes = new Float64Array(trace.idLimit);
  const offsets = new Uint16Array(trace.idLimit);
  const allocLines = new Uint32Array(trace.idLimit);
  const live = new IntervalSet();
  let serial = 0;
  let liveBlocks = 0;
  let liveBytes = 0;
  let stats: AllocatorStats | undefined;
  let done = 0;
  const started = performance.now();

  const where = (i: number): string =>
    i < 0 ? `${trace.name}` : `${trace.name}:${trace.lines[i]} (${opText(trace, i)})`;
  const fail = (kind: ReplayViolation["kind"], i: number, message: string): never => {
    throw new Violation({
      kind,
      message: `${where(i)}: ${message}`,
      op: i,
      line: i < 0 ? 0 : trace.lines[i]!,
    });
  };
  const call = <T>(i: number, what: string, fn: () => T): T => {
    try {
      return fn();
    } catch (error) {
      return fail("throw", i, `${what} threw ${describe(error)}`);
    }
  };
  const block = (id: number): string =>
    `id ${id}'s block [${hex(addresses[id]!)}, +${sizes[id]}) (allocated on line ${
      allocLines[id]
    })`;

  /** Checks a fresh address and records it as the live block of `id`. */
  const accept = (i: number, id: number, address: number, size: number, what: string): void => {
    if (typeof address !== "number" || !Number.isSafeInteger(address) || address <= 0) {
      fail("null", i, `${what} returned ${String(address)}, not an address`);
    }
    if (address % alignment !== 0) {
      fail("alignment", i, `${what} returned ${hex(address)}, not aligned to ${alignment} bytes`);
    }
    const conflict = live.insert(address, address + Math.max(size, 1), id);
    if (conflict >= 0) {
      fail(
        "overlap",
        i,
        `${what} returned [${hex(address)}, +${size}), which overlaps ${
          block(live.owners[conflict]!)
        }`,
      );
    }
    const usable = call(i, `usableSize(${hex(address)})`, () => allocator.usableSize(address));
    if (!(usable >= size)) {
      fail(
        "usable-size",
        i,
        `usableSize(${hex(address)}) is ${usable}, below the ${size} requested`,
      );
    }
    addresses[id] = address;
    sizes[id] = size;
  };

  /** The payload of `id`, `length` bytes. */
  const view = (i: number, id: number, length: number): Uint8Array =>
    call(
      i,
      `bytes(${hex(addresses[id]!)}, ${length})`,
      () => allocator.bytes(addresses[id]!, length),
    );

  /** The byte ranges of a `size`-byte payload that carry the tag, as [from, to) pairs. */
  const tagged = (size: number): number[] =>
    tag === "none" || size === 0
      ? []
      : tag === "full" || size <= 2 * ENDS
      ? [0, size]
      : [0, ENDS, size - ENDS, size];

  /** Writes the tag over the tagged ranges of `id`'s payload, skipping bytes below `from`. */
  const stamp = (i: number, id: number, from: number): void => {
    const size = sizes[id]!;
    const ranges = tagged(size);
    if (ranges.length === 0 || from >= size) return;
    const bytes = view(i, id, size);
    const o = offsets[id]!;
    for (let r = 0; r < ranges.length; r += 2) {
      const start = Math.max(from, ranges[r]!);
      if (start < ranges[r + 1]!) writeTag(bytes, start, ranges[r + 1]!, o);
    }
  };

  /**
   * Verifies the tag of `id`'s payload as it was written for a `taggedSize`-byte payload, over its
   * first `length` bytes.
   */
  const verify = (
    i: number,
    id: number,
    taggedSize: number,
    length: number,
    kind: "corrupted" | "realloc-prefix",
    when: string,
  ): void => {
    const ranges = tagged(taggedSize);
    if (ranges.length === 0 || length === 0) return;
    const bytes = view(i, id, length);
    const o = offsets[id]!;
    let bad = -1;
    for (let r = 0; r < ranges.length && bad < 0; r += 2) {
      const end = Math.min(length, ranges[r + 1]!);
      if (ranges[r]! < end) bad = checkTag(bytes, ranges[r]!, end, o);
    }
    if (bad < 0) return;
    const found = `byte ${bad} is 0x${bytes[bad]!.toString(16).padStart(2, "0")}, expected 0x${
      tagByte(bad, o).toString(16).padStart(2, "0")
    }`;
    fail(
      kind,
      i,
      kind === "corrupted"
        ? `the payload of ${block(id)} was overwritten ${when}: ${found}`
        : `realloc did not keep the first ${length} bytes of id ${id}'s block (now at ${
          hex(addresses[id]!)
        }): ${found}`,
    );
  };

  const release = (i: number, id: number, when: string): void => {
    verify(i, id, sizes[id]!, sizes[id]!, "corrupted", when);
    live.remove(addresses[id]!);
    liveBlocks--;
    liveBytes -= sizes[id]!;
  };

  const validate = (i: number, when: string): void => {
    try {
      allocator.validate();
    } catch (error) {
      fail("validate", i, `validate() failed ${when}: ${describe(error)}`);
    }
  };

  let violation: ReplayViolation | undefined;
  try {
    for (let i = 0; i < n; i++) {
      const kind = trace.kinds[i];
      const id = trace.ids[i]!;
      const size = trace.sizes[i]!;
      if (kind === OP_ALLOC) {
        const address = call(i, `malloc(${size})`, () => allocator.malloc(size));
        offsets[id] = patternOffset(serial++);
        allocLines[id] = trace.lines[i]!;
        accept(i, id, address, size, `malloc(${size})`);
        liveBlocks++;
        liveBytes += size;
        stamp(i, id, 0);
      } else if (kind === OP_REALLOC) {
        const old = addresses[id]!;
        const oldSize = sizes[id]!;
        release(i, id, "before this realloc");
        const what = `realloc(${hex(old)}, ${size})`;
        const address = call(i, what, () => allocator.realloc(old, size));
        if (size === 0) {
          if (address !== 0) fail("null", i, `${what} returned ${String(address)}, not 0`);
        } else {
          accept(i, id, address, size, what);
          liveBlocks++;
          liveBytes += size;
          verify(i, id, oldSize, Math.min(oldSize, size), "realloc-prefix", "");
          stamp(i, id, tag === "full" ? oldSize : 0);
        }
      } else if (kind === OP_FREE) {
        if (id < 0) {
          call(i, "free(0)", () => allocator.free(0));
        } else {
          const address = addresses[id]!;
          release(i, id, "before this free");
          call(i, `free(${hex(address)})`, () => allocator.free(address));
        }
      }
      done = i + 1;
      if (i === trace.peakOp && options.atPeak) {
        const hook = options.atPeak;
        call(i, "the atPeak hook", () => hook(allocator, i));
      }
      if (validateEvery > 0 && done % validateEvery === 0) validate(i, "");
      if (onProgress && done % progressEvery === 0) onProgress(done, n);
    }

    // After the last operation: every live payload intact, counters right, invariants hold.
    const last = n - 1;
    const remaining: number[] = [];
    for (let k = 0; k < live.count; k++) remaining.push(live.owners[k]!);
    for (const id of remaining) {
      verify(last, id, sizes[id]!, sizes[id]!, "corrupted", "by the end of the trace");
    }
    stats = call(last, "stats()", () => allocator.stats());
    if (stats.liveAllocations !== liveBlocks || stats.liveBytes !== liveBytes) {
      fail(
        "stats",
        last,
        `after the last operation stats() reports ${stats.liveAllocations} live blocks of ${stats.liveBytes} bytes; the trace has ${liveBlocks} of ${liveBytes}`,
      );
    }
    validate(last, "after the last operation");
    if (options.freeRemaining ?? true) {
      for (const id of remaining) {
        const address = addresses[id]!;
        release(last, id, "by the end of the trace");
        call(last, `free(${hex(address)})`, () => allocator.free(address));
      }
      const after = call(last, "stats()", () => allocator.stats());
      if (after.liveAllocations !== 0) {
        fail(
          "stats",
          last,
          `after every block was freed, stats() still reports ${after.liveAllocations} live blocks`,
        );
      }
      validate(last, "after every block was freed");
    }
  } catch (error) {
    if (!(error instanceof Violation)) throw error;
    violation = error.violation;
  }
  onProgress?.(done, n);

  let peakMappedBytes = NaN;
  try {
    peakMappedBytes = allocator.stats().peakMappedBytes;
  } catch {
    // A broken allocator: leave it unknown.
  }
  const utilization = peakMappedBytes > 0 && trace.peakLiveBytes > 0
    ? trace.peakLiveBytes / peakMappedBytes
    : NaN;
  const result: ReplayResult = {
    trace: trace.name,
    ok: violation === undefined,
    operations: done,
    peakLiveBytes: trace.peakLiveBytes,
    peakMappedBytes,
    utilization,
    stats,
    seconds: (performance.now() - started) / 1000,
  };
  if (violation) result.violation = violation;
  return result;
}
