// The variants of binary-trees (bench/binarytrees.ts): each allocator of the family, libc malloc
// through FFI and plain JS objects, each run on a fresh copy of the program
// (`_binarytrees_program.ts`) with its time and peak memory; and what reaching libc's nodes from JS
// costs, measured apart.
//
// Fair play between variants in one process:
// - Each variant runs on a fresh copy of the program's code (`freshCopy`: the same source compiled
//   again), so the JIT's type feedback from one variant (say, calls to PseudoMalloc.malloc) does not
//   make the call sites of the next one polymorphic.
// - Each variant gets a fresh allocator; by default a warm-up run at a smaller depth, on its own
//   fresh allocator, precedes the timed run (--no-warmup to skip).
// - BumpAllocator runs the same program (the trees are walked and freed; its free only marks the
//   header) with a pool sized for the whole run: it never reuses memory, so every node of the run
//   stays mapped. Resetting it between trees is not possible without changing the program: the
//   long-lived tree lives in the same pool.
// - libc: malloc(16n)/free(BigInt(address)) bound with `usize` parameters and results, Deno's fast
//   FFI call path. The time includes the FFI calls, the bigint conversions and the window access.

import {
  type Allocator,
  type AllocatorStats,
  BumpAllocator,
  CellAllocator,
  FirstFitAllocator,
  MmapAllocator,
  PseudoMalloc,
  SegregatedAllocator,
  SharedPseudoMalloc,
} from "../mod.ts";
import { closeLibcMalloc, libcMalloc, mallinfo2 } from "../ffi/libc_malloc.ts";
import {
  DEFAULT_DEPTH,
  effectiveDepth,
  freshCopy,
  jsProgram,
  type LibcSymbols,
  nativeProgram,
  NODE_SIZE,
  nodeCount,
  type ProgramResult,
} from "./_binarytrees_program.ts";
import { formatBytes } from "./_binarytrees_report.ts";

/** One way to run the program. */
export interface Variant {
  /** Shown in the table and on the chart. */
  name: string;
  /** `allocator`: nodes from an {@linkcode Allocator}; `libc`: malloc/free through FFI; `js`: objects. */
  kind: "allocator" | "libc" | "js";
  /** For `allocator` variants: a fresh allocator sized for a run of the given depth. */
  create?: (depth: number) => Allocator;
  /** How the variant is set up, when that matters for fairness (shown under the table). */
  note?: string;
}

/** What one run produced. */
export interface RunResult {
  variant: string;
  kind: Variant["kind"];
  /** The benchmark's output lines. */
  lines: string[];
  /** Wall time of the run in milliseconds. */
  ms: number;
  /** Peak memory in bytes, or undefined when it cannot be measured here. */
  memoryBytes: number | undefined;
  /** Where `memoryBytes` comes from. */
  memorySource: string;
  /** Nodes allocated (and freed, on native memory) by the run. */
  nodes: number;
  /** Nodes a complete run allocates. */
  totalNodes: number;
  /** False when the run stopped at its time budget: then `ms` is a lower bound. */
  complete: boolean;
  /** The allocator's counters after the run, before close (allocator variants). */
  stats?: AllocatorStats;
}

/** Options of {@linkcode runBinaryTrees}. */
export interface RunOptions {
  /** Call the allocator's `validate()` after the run, before close (tests). */
  validate?: boolean;
  /**
   * Stop after this many milliseconds (checked every 16 short-lived trees), freeing what is live;
   * the result then has `complete: false`. No limit by default.
   */
  budgetMs?: number;
}

// --- libc --------------------------------------------------------------------------------------

/** libc, opened on first use (needs --allow-ffi). */
export function libcSymbols(): LibcSymbols {
  return libcMalloc();
}

/** Closes libc if it was opened. */
export function closeLibc(): void {
  closeLibcMalloc();
}

/** libc's heap now (mallinfo2): bytes in allocated chunks, and bytes taken from the OS. */
function libcHeap(): { inUse: number; mapped: number } | undefined {
  const info = mallinfo2();
  if (info === undefined) return undefined;
  return { inUse: info.uordblks + info.hblkhd, mapped: info.arena + info.hblkhd };
}
// --- variants ----------------------------------------------------------------------------------

/**
 * Bytes a BumpAllocator pool needs for a whole run: every node ever allocated (a bump allocator
 * never reuses memory), at `stride` pool bytes per 16-byte node, plus 1 MiB.
 */
export function bumpPoolSize(depth: number, stride: number): number {
  const MiB = 1024 * 1024;
  return Math.ceil((nodeCount(depth) * stride + MiB) / MiB) * MiB;
}

/** Pool bytes one 16-byte node takes in a BumpAllocator (block and header): measured, not assumed. */
function bumpStride(): number {
  using probe = new BumpAllocator({ size: 1024 * 1024 });
  const first = probe.malloc(NODE_SIZE);
  return probe.malloc(NODE_SIZE) - first;
}

/**
 * The variants, in run order: the six allocators of the family (default options, except
 * BumpAllocator's pool size), libc malloc through FFI, then the JS objects.
 *
 * @param depth The depth the notes describe (BumpAllocator's pool size depends on it).
 */
export function variants(depth: number = DEFAULT_DEPTH): Variant[] {
  const stride = bumpStride();
  const allocators: { name: string; create: (depth: number) => Allocator; note?: string }[] = [
    { name: "PseudoMalloc", create: () => new PseudoMalloc() },
    { name: "MmapAllocator", create: () => new MmapAllocator() },
    {
      name: "BumpAllocator",
      create: (d) => new BumpAllocator({ size: bumpPoolSize(d, stride) }),
      note: `BumpAllocator never reuses memory, so its pool is sized for every node of the run ` +
        `(${stride} bytes a node with its header: ${
          formatBytes(bumpPoolSize(depth, stride))
        } at depth ${effectiveDepth(depth)}) and reset() is not used; the trees are still walked ` +
        `and freed (its free marks the block's header), like on every other allocator.`,
    },
    { name: "CellAllocator", create: () => new CellAllocator() },
    { name: "FirstFitAllocator", create: () => new FirstFitAllocator() },
    { name: "SegregatedAllocator", create: () => new SegregatedAllocator() },
    { name: "SharedPseudoMalloc", create: () => new SharedPseudoMalloc() },
  ];
  return [
    ...allocators.map((entry): Variant => ({ ...entry, kind: "allocator" })),
    {
      name: "libc malloc (FFI)",
      kind: "libc",
      note: "libc: glibc malloc(16)/free through Deno FFI (usize parameters and result, bigint " +
        "arguments: the fast call path); its time includes the FFI calls, the Number/BigInt " +
        "conversions and the memory access through 1 MiB windows (see the access cost below).",
    },
    {
      name: "JS objects (GC)",
      kind: "js",
      note: "JS objects: {left, right} literals; the garbage collector frees them, so there is " +
        "no free walk; their memory is V8's heap.",
    },
  ];
}

/** A variant ready to run: its own fresh copy of the program. */
export class Runner {
  readonly variant: Variant;
  #native = freshCopy(nativeProgram);
  #js = freshCopy(jsProgram);

  constructor(variant: Variant) {
    this.variant = variant;
  }

  /** One run at `depth`, on a fresh allocator. */
  run(depth: number, options: RunOptions = {}): RunResult {
    const maxDepth = effectiveDepth(depth);
    const { variant } = this;
    const deadline = (t0: number) =>
      options.budgetMs === undefined ? Infinity : t0 + options.budgetMs;
    const result = (
      program: ProgramResult,
      ms: number,
      memoryBytes: number | undefined,
      memorySource: string,
    ): RunResult => ({
      variant: variant.name,
      kind: variant.kind,
      lines: program.lines,
      ms,
      memoryBytes,
      memorySource,
      nodes: program.nodes,
      totalNodes: nodeCount(depth),
      complete: program.complete,
    });

    if (variant.kind === "js") {
      const before = Deno.memoryUsage().heapUsed;
      let peak = before;
      const sample = () => {
        peak = Math.max(peak, Deno.memoryUsage().heapUsed);
      };
      const t0 = performance.now();
      const program = this.#js(maxDepth, sample, deadline(t0));
      const ms = performance.now() - t0;
      return result(program, ms, peak - before, "V8 heapUsed Δ, sampled");
    }

    if (variant.kind === "libc") {
      const symbols = libcSymbols();
      const before = libcHeap();
      const peak = { ...before ?? { inUse: 0, mapped: 0 } };
      const sample = before === undefined ? () => {} : () => {
        const now = libcHeap()!;
        peak.inUse = Math.max(peak.inUse, now.inUse);
        peak.mapped = Math.max(peak.mapped, now.mapped);
      };
      const t0 = performance.now();
      const program = this.#native("libc", symbols, maxDepth, sample, deadline(t0));
      const ms = performance.now() - t0;
      if (before === undefined) return result(program, ms, undefined, "n/a (no mallinfo2)");
      return result(
        program,
        ms,
        peak.inUse - before.inUse,
        `mallinfo2: Δ bytes in chunks, sampled (heap grew ${
          formatBytes(peak.mapped - before.mapped)
        })`,
      );
    }

    const t0 = performance.now();
    const allocator = variant.create!(depth);
    try {
      const program = this.#native("allocator", allocator, maxDepth, () => {}, deadline(t0));
      const ms = performance.now() - t0;
      const stats = allocator.stats();
      if (options.validate) allocator.validate();
      return { ...result(program, ms, stats.peakMappedBytes, "peakMappedBytes"), stats };
    } finally {
      allocator.close();
    }
  }
}

/**
 * Runs the benchmark once on a variant at `depth` (fresh allocator, fresh program copy).
 *
 * @returns The output lines, the time and the memory figures.
 */
export function runBinaryTrees(
  variant: Variant,
  depth: number,
  options: RunOptions = {},
): RunResult {
  return new Runner(variant).run(depth, options);
}

// --- libc access cost --------------------------------------------------------------------------

/** Nanoseconds per node of the memory accesses the program makes (write 2 fields, read 2 twice). */
export interface AccessCost {
  /** Nodes measured. */
  nodes: number;
  /** The loop over the addresses alone, no memory access. */
  loopNs: number;
  /** Through 1 MiB windows (one ArrayBuffer per window): the path the libc variant uses. */
  windowNs: number;
  /** Through libc memcpy via FFI, to and from a 16-byte staging buffer. */
  memcpyNs: number;
  /** A pointer object per access: getArrayBuffer to write, an UnsafePointerView to read. */
  pointerNs: number;
}

/**
 * Times the ways to reach libc-allocated nodes from JS, over `nodes` live 16-byte blocks (best of
 * `rounds`). Each way does per node what the program does: one write of both fields (build), two
 * reads of both fields (check, free).
 */
export function measureLibcAccess(nodes: number, rounds = 10): AccessCost {
  const libc = libcSymbols();
  const addresses = new Float64Array(nodes);
  for (let i = 0; i < nodes; i++) addresses[i] = Number(libc.malloc(16n));
  // The libc variant's lookup: is the address inside the current window? Else find or make one.
  const WINDOW = 1048576;
  const windows = new Map<number, Float64Array>();
  let start = 0;
  let end = 0;
  let f64: Float64Array = new Float64Array(0);
  const index = (address: number): number => {
    if (address < start || address + 16 > end) {
      const key = Math.floor(address / WINDOW);
      let found = windows.get(key);
      if (found === undefined) {
        const pointer = Deno.UnsafePointer.create(BigInt(key * WINDOW))!;
        found = new Float64Array(Deno.UnsafePointerView.getArrayBuffer(pointer, WINDOW));
        windows.set(key, found);
      }
      start = key * WINDOW;
      end = start + WINDOW;
      f64 = found;
    }
    return (address - start) / 8;
  };
  const stage = new Float64Array(2);
  let sink = 0;

  const ways = {
    loop(): void {
      for (let pass = 0; pass < 3; pass++) {
        for (let i = 0; i < nodes; i++) sink += addresses[i]!;
      }
    },
    window(): void {
      for (let i = 0; i < nodes; i++) {
        const j = index(addresses[i]!);
        f64[j] = i;
        f64[j + 1] = i;
      }
      for (let pass = 0; pass < 2; pass++) {
        for (let i = 0; i < nodes; i++) {
          const j = index(addresses[i]!);
          sink += f64[j]! + f64[j + 1]!;
        }
      }
    },
    memcpy(): void {
      for (let i = 0; i < nodes; i++) {
        stage[0] = i;
        stage[1] = i;
        libc.memcpyIn(BigInt(addresses[i]!), stage, 16n);
      }
      for (let pass = 0; pass < 2; pass++) {
        for (let i = 0; i < nodes; i++) {
          libc.memcpyOut(stage, BigInt(addresses[i]!), 16n);
          sink += stage[0]! + stage[1]!;
        }
      }
    },
    pointer(): void {
      for (let i = 0; i < nodes; i++) {
        const pointer = Deno.UnsafePointer.create(BigInt(addresses[i]!))!;
        const f64 = new Float64Array(Deno.UnsafePointerView.getArrayBuffer(pointer, 16));
        f64[0] = i;
        f64[1] = i;
      }
      for (let pass = 0; pass < 2; pass++) {
        for (let i = 0; i < nodes; i++) {
          const view = new Deno.UnsafePointerView(
            Deno.UnsafePointer.create(BigInt(addresses[i]!))!,
          );
          sink += view.getFloat64(0) + view.getFloat64(8);
        }
      }
    },
  };
  const best = (fn: () => void): number => {
    let min = Infinity;
    for (let round = 0; round < rounds; round++) {
      const t0 = performance.now();
      fn();
      min = Math.min(min, performance.now() - t0);
    }
    return (min * 1e6) / nodes;
  };
  try {
    const cost: AccessCost = {
      nodes,
      loopNs: best(ways.loop),
      windowNs: best(ways.window),
      memcpyNs: best(ways.memcpy),
      pointerNs: best(ways.pointer),
    };
    if (Number.isNaN(sink)) throw new Error("unreachable: keeps the loops honest");
    return cost;
  } finally {
    for (let i = 0; i < nodes; i++) libc.free(BigInt(addresses[i]!));
  }
}
