/**
 * The allocators the replayer knows by name, each configured for the trace at hand.
 *
 * @module
 */

import type { Allocator } from "../allocator.ts";
import { BumpAllocator } from "../family/bump_allocator.ts";
import { CellAllocator } from "../family/cell_allocator.ts";
import { FirstFitAllocator } from "../family/first_fit_allocator.ts";
import { MmapAllocator } from "../family/mmap_allocator.ts";
import { PseudoMalloc } from "../heap/pseudo_malloc.ts";
import { SegregatedAllocator } from "../family/segregated_allocator.ts";
import { roundUp } from "../_size.ts";
import { OP_ALLOC, OP_REALLOC, type Trace } from "./trace.ts";

/** The names of the allocators of the family, in the order the replayer runs them. */
export const ALLOCATOR_NAMES: readonly string[] = Object.freeze([
  "pseudo",
  "mmap",
  "bump",
  "cell",
  "firstfit",
  "segregated",
]);

/**
 * How an allocator of the family is made for one trace.
 *
 * @example Making one
 * ```ts
 * import { configureAllocator, generateTrace } from "@pseudo/malloc/trace";
 *
 * const trace = generateTrace("binary-tree", { scale: 0.01 });
 * const setup = configureAllocator("cell", trace);
 * console.log(setup.note); // how the cell size was chosen
 * using cells = setup.create();
 * ```
 */
export interface AllocatorSetup {
  /** The allocator's name: one of {@linkcode ALLOCATOR_NAMES}. */
  name: string;
  /** The class used, e.g. `PseudoMalloc`. */
  className: string;
  /** Makes a fresh allocator configured for the trace. */
  create: () => Allocator;
  /** How the configuration was derived from the trace, when it was (shown under the table). */
  note?: string;
  /**
   * What a warm replay does after each replay, once the blocks the trace left live are freed
   * (`bump`: `reset()`, since its `free` never makes memory reusable).
   */
  afterReplay?: (allocator: Allocator) => void;
}

const CELL_CHUNK = 64 * 1024;
const MAX_CELL_CHUNK = 2 ** 30;

function nextPowerOfTwo(value: number): number {
  return 2 ** Math.ceil(Math.log2(Math.max(1, value)));
}

/**
 * The smallest `BumpAllocator` pool that runs the trace: replays it once (no checks) on a pool
 * large enough for any order of events (every block of the run, with its header) and returns the
 * highest `usedBytes` seen, rounded up to 4 KiB.
 */
function bumpPoolFor(trace: Trace): number {
  let bound = 4096;
  for (let i = 0; i < trace.length; i++) {
    if (trace.kinds[i] === OP_ALLOC || trace.kinds[i] === OP_REALLOC) {
      bound += roundUp(trace.sizes[i]!, 16) + 16;
    }
  }
  const pool = new BumpAllocator({ size: bound });
  const slots = new Float64Array(trace.idLimit);
  let high = 0;
  try {
    for (let i = 0; i < trace.length; i++) {
      const id = trace.ids[i]!;
      const kind = trace.kinds[i];
      if (kind === OP_ALLOC) slots[id] = pool.malloc(trace.sizes[i]!);
      else if (kind === OP_REALLOC) slots[id] = pool.realloc(slots[id]!, trace.sizes[i]!);
      else if (id >= 0) pool.free(slots[id]!);
      if (kind !== 2) high = Math.max(high, pool.stats().usedBytes);
    }
  } finally {
    pool.close();
  }
  return roundUp(Math.max(high, 1), 4096);
}

/**
 * Makes the setup of one allocator of the family for a trace. Default options everywhere, except:
 * - `cell`: a `CellAllocator` serves one size, so its cell is the trace's largest request rounded
 *   up to 16 bytes (at least 16), and its chunk the larger of 64 KiB and 8 cells (a power of two);
 *   a trace with a request above 128 MiB cannot run on it.
 * - `bump`: a `BumpAllocator` never reuses memory, so its pool is the smallest that runs the
 *   trace (found by a first, unchecked replay). Its default 64 MiB would be too small for long
 *   traces and would make its utilization meaningless for short ones. Timed on a warm heap, it is
 *   `reset()` after each replay (`afterReplay`).
 *
 * @param name One of {@linkcode ALLOCATOR_NAMES}.
 * @param trace The trace it will replay.
 * @returns The setup.
 * @throws {RangeError} For an unknown name, or a trace the allocator cannot serve at all.
 *
 * @example The pool of a bump allocator
 * ```ts
 * import { configureAllocator, parseTrace } from "@pseudo/malloc/trace";
 *
 * const trace = parseTrace("0 2 3 1\na 0 100\na 1 100\nf 0\n", "t.rep");
 * console.log(configureAllocator("bump", trace).note);
 * ```
 */
export function configureAllocator(name: string, trace: Trace): AllocatorSetup {
  switch (name) {
    case "pseudo":
      return { name, className: "PseudoMalloc", create: () => new PseudoMalloc() };
    case "mmap":
      return { name, className: "MmapAllocator", create: () => new MmapAllocator() };
    case "firstfit":
      return { name, className: "FirstFitAllocator", create: () => new FirstFitAllocator() };
    case "segregated":
      return { name, className: "SegregatedAllocator", create: () => new SegregatedAllocator() };
    case "cell": {
      const cellSize = Math.max(16, roundUp(trace.maxRequest, 16));
      const chunkSize = Math.max(CELL_CHUNK, nextPowerOfTwo(cellSize * 8));
      if (chunkSize > MAX_CELL_CHUNK) {
        throw new RangeError(
          `CellAllocator cannot serve ${trace.name}: its largest request (${trace.maxRequest} bytes) does not fit 8 cells in a 1 GiB chunk`,
        );
      }
      return {
        name,
        className: "CellAllocator",
        create: () => new CellAllocator({ cellSize, chunkSize }),
        note: `cell: cellSize ${cellSize} (the largest request, ${trace.maxRequest} bytes, ` +
          `rounded up to 16), chunkSize ${chunkSize}`,
      };
    }
    case "bump": {
      const size = bumpPoolFor(trace);
      return {
        name,
        className: "BumpAllocator",
        create: () => new BumpAllocator({ size }),
        note: `bump: pool of ${size} bytes, the smallest that runs the trace (freed memory is ` +
          `never reused; a warm heap is reset() after each replay)`,
        afterReplay: (allocator) => (allocator as BumpAllocator).reset(),
      };
    }
    default:
      throw new RangeError(
        `Unknown allocator "${name}": expected one of ${ALLOCATOR_NAMES.join(", ")} or libc`,
      );
  }
}
