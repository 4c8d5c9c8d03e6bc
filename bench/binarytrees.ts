// binary-trees (the Computer Language Benchmarks Game program) with every tree node in native
// memory, run on each allocator of the family, on libc malloc through FFI, and on plain JS objects
// as the garbage-collected reference. It prints a table (time, peak memory, ratio to libc) and
// makes binarytrees.svg (bar chart) and binarytrees.md (the table, for the README).
//
//   deno task binarytrees [--depth=N] [--budget=SECONDS] [--no-warmup] [--only=name,name] [--write]
//
// --depth: the benchmark's argument (default 16). --budget: a timed run that takes longer stops,
// frees what is live and is reported as a lower bound with the fraction of nodes done (default 60
// s, 0 for no limit; MmapAllocator, a system call per node, needs about 4-5 minutes at depth 16).
// --only: run the variants whose names contain one of the fragments (no chart or table file then).
// --write: put binarytrees.svg and binarytrees.md in docs/ (the tracked copies the README shows);
// without it they go to a new temporary directory, named at the end, and the tree stays as it was.
//
// The program (https://benchmarksgame-team.pages.debian.net/benchmarksgame/description/binarytrees.html):
// build and check a "stretch" tree of depth max+1, then a long-lived tree of depth max; then for
// depths 4, 6, …, max build, check and drop 2^(max-depth+4) trees; finally check the long-lived tree.
// The check of a tree is its node count.
//
// Node layout in native memory: 16 bytes, two float64 fields, the left child's address at +0 and
// the right child's at +8 (0 for none). Addresses are numbers below 2^53, so a float64 holds them
// exactly. A node is built bottom-up: both children first, then `malloc(16)` and one write of both
// fields. Dropping a tree walks it and frees every node (children read before the node is freed).
// The JS variant has no walk: the garbage collector drops its trees.
//
// Memory access. Nodes are read and written through a Float64Array over a whole region of memory,
// never through a typed array per node:
// - Allocators: `allocator.bytes(address, 16)` is asked once per region (arena, chunk, page or
//   pool; for MmapAllocator every block is its own region); its `.buffer` is the region's
//   ArrayBuffer and `address - byteOffset` its start. One Float64Array per buffer (a WeakMap), and
//   a node's fields are at index (address - start) / 8.
// - libc: the same scheme over "windows": for an address, an ArrayBuffer over the aligned 1 MiB
//   window around it (`Deno.UnsafePointerView.getArrayBuffer`), made once per window. A window is a
//   range of addresses, not a mapping: only live nodes are touched, and they are always mapped.
// Regions are found through a one-entry cache (the last region) and a direct-mapped table keyed by
// page number. A view made for an earlier mapping at the same addresses (MmapAllocator reuses
// addresses) still reads the right memory, since a view is only a pointer and a length.
// `measureLibcAccess` times this access path for libc separately, against the pointer-object ways.
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
//
// Time is measured from creating the allocator to freeing the long-lived tree (close excluded).
// Every variant must print the JS objects' check lines; the CLI exits with 1 when one does not.

import {
  type Allocator,
  type AllocatorStats,
  BumpAllocator,
  CellAllocator,
  FirstFitAllocator,
  MmapAllocator,
  PseudoMalloc,
  SegregatedAllocator,
} from "../mod.ts";
import { closeLibcMalloc, type LibcMalloc, libcMalloc, mallinfo2 } from "../ffi/libc_malloc.ts";

/** The smallest depth of the short-lived trees, fixed by the benchmark. */
export const MIN_DEPTH = 4;
/** Bytes of a native tree node: two float64 child addresses. */
export const NODE_SIZE = 16;
/** The benchmark's default depth. */
export const DEFAULT_DEPTH = 16;

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

/** The depth actually used: the benchmark never goes below MIN_DEPTH + 2. */
export function effectiveDepth(depth: number): number {
  return Math.max(MIN_DEPTH + 2, depth);
}

/** Nodes allocated by a whole run at `depth` (stretch + long-lived + all short-lived trees). */
export function nodeCount(depth: number): number {
  const max = effectiveDepth(depth);
  const tree = (d: number) => 2 ** (d + 1) - 1;
  let total = tree(max + 1) + tree(max);
  for (let d = MIN_DEPTH; d <= max; d += 2) total += 2 ** (max - d + MIN_DEPTH) * tree(d);
  return total;
}

/** Nodes live at once at most: the long-lived tree plus one tree of depth max, or the stretch tree. */
export function peakNodes(depth: number): number {
  const max = effectiveDepth(depth);
  return Math.max(2 ** (max + 2) - 1, 2 * (2 ** (max + 1) - 1));
}

// --- libc --------------------------------------------------------------------------------------

/** libc's symbols (malloc, free, memcpy, mallinfo2: `ffi/libc_malloc.ts`). */
export type LibcSymbols = LibcMalloc;

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

// --- the programs ------------------------------------------------------------------------------

/** What a program returns. */
interface ProgramResult {
  /** Output lines (only those of finished phases when stopped). */
  lines: string[];
  /** Nodes allocated (and, on native memory, freed). */
  nodes: number;
  /** False when the program stopped at its deadline. */
  complete: boolean;
}

/** Region of native memory with one Float64Array over all of it; `start`..`end` are addresses. */
interface Region {
  start: number;
  end: number;
  f64: Float64Array;
}

/**
 * The benchmark on native nodes. Self-contained (no outer names but globals) so that
 * {@linkcode freshCopy} can compile it again per variant.
 *
 * @param kind Where nodes come from.
 * @param target The allocator, or libc's symbols.
 * @param maxDepth The benchmark's depth (already at least MIN_DEPTH + 2).
 * @param sample Called when the most nodes are live (after each first tree of a depth is built).
 * @param deadline A `performance.now()` time: past it, the program frees what is live and stops
 *   (checked every 16 short-lived trees).
 * @returns The output lines and the nodes allocated so far.
 */
function nativeProgram(
  kind: "allocator" | "libc",
  target: Allocator | LibcSymbols,
  maxDepth: number,
  sample: () => void,
  deadline: number,
): ProgramResult {
  const NODE = 16;
  const PAGE = 4096;
  const SLOTS = 4096; // pages in the direct-mapped table (a power of two)
  const WINDOW = 1048576; // libc windows: 1 MiB, aligned; a 16-aligned node never straddles two

  let malloc: () => number;
  let free: (address: number) => void;
  let regionOf: (address: number) => Region;

  if (kind === "libc") {
    const libc = target as LibcSymbols;
    malloc = () => {
      const address = Number(libc.malloc(16n));
      if (address === 0) throw new Error("libc malloc(16) returned NULL");
      return address;
    };
    free = (address) => libc.free(BigInt(address));
    const windows = new Map<number, Region>();
    regionOf = (address) => {
      const key = Math.floor(address / WINDOW);
      let region = windows.get(key);
      if (region === undefined) {
        const start = key * WINDOW;
        const pointer = Deno.UnsafePointer.create(BigInt(start))!;
        const f64 = new Float64Array(Deno.UnsafePointerView.getArrayBuffer(pointer, WINDOW));
        region = { start, end: start + WINDOW, f64 };
        windows.set(key, region);
      }
      return region;
    };
  } else {
    const allocator = target as Allocator;
    malloc = () => allocator.malloc(16);
    free = (address) => allocator.free(address);
    const byBuffer = new WeakMap<ArrayBufferLike, Region>();
    regionOf = (address) => {
      const view = allocator.bytes(address, 16);
      let region = byBuffer.get(view.buffer);
      if (region === undefined) {
        const start = address - view.byteOffset;
        if (start % 8 !== 0) throw new Error(`region at ${start} is not 8-byte aligned`);
        const length = Math.floor(view.buffer.byteLength / 8);
        region = { start, end: start + length * 8, f64: new Float64Array(view.buffer, 0, length) };
        byBuffer.set(view.buffer, region);
      }
      return region;
    };
  }

  // The current region (a one-entry cache), then the table, then regionOf.
  const table: (Region | null)[] = new Array(SLOTS).fill(null);
  let start = 0;
  let end = 0;
  let f64: Float64Array = new Float64Array(0);

  /** Makes the region holding `address` current; returns the node's index in `f64`. */
  function index(address: number): number {
    if (address < start || address + NODE > end) enter(address);
    return (address - start) / 8;
  }

  function enter(address: number): void {
    let region = table[Math.floor(address / PAGE) & (SLOTS - 1)]!;
    if (region === null || address < region.start || address + NODE > region.end) {
      region = regionOf(address);
      const first = Math.floor(region.start / PAGE);
      const last = Math.min(Math.floor((region.end - 1) / PAGE), first + SLOTS - 1);
      for (let page = first; page <= last; page++) table[page & (SLOTS - 1)] = region;
    }
    start = region.start;
    end = region.end;
    f64 = region.f64;
  }

  function bottomUpTree(depth: number): number {
    let left = 0;
    let right = 0;
    if (depth > 0) {
      left = bottomUpTree(depth - 1);
      right = bottomUpTree(depth - 1);
    }
    const node = malloc();
    const i = index(node);
    f64[i] = left;
    f64[i + 1] = right;
    return node;
  }

  function itemCheck(node: number): number {
    const i = index(node);
    const left = f64[i]!;
    if (left === 0) return 1;
    const right = f64[i + 1]!;
    return 1 + itemCheck(left) + itemCheck(right);
  }

  function freeTree(node: number): void {
    const i = index(node);
    const left = f64[i]!;
    const right = f64[i + 1]!;
    if (left !== 0) {
      freeTree(left);
      freeTree(right);
    }
    free(node);
  }

  const lines: string[] = [];
  const stretchDepth = maxDepth + 1;
  const stretch = bottomUpTree(stretchDepth);
  sample();
  lines.push(`stretch tree of depth ${stretchDepth}\t check: ${itemCheck(stretch)}`);
  freeTree(stretch);
  let nodes = 2 ** (stretchDepth + 1) - 1;

  const longLived = bottomUpTree(maxDepth);
  nodes += 2 ** (maxDepth + 1) - 1;
  for (let depth = 4; depth <= maxDepth; depth += 2) {
    const iterations = 2 ** (maxDepth - depth + 4);
    const size = 2 ** (depth + 1) - 1;
    let check = 0;
    for (let i = 0; i < iterations; i++) {
      const tree = bottomUpTree(depth);
      if (i === 0) sample();
      check += itemCheck(tree);
      freeTree(tree);
      nodes += size;
      if ((i & 15) === 15 && performance.now() > deadline) {
        freeTree(longLived);
        return { lines, nodes, complete: false };
      }
    }
    lines.push(`${iterations}\t trees of depth ${depth}\t check: ${check}`);
  }
  lines.push(`long lived tree of depth ${maxDepth}\t check: ${itemCheck(longLived)}`);
  freeTree(longLived);
  return { lines, nodes, complete: true };
}

/** A JS tree node: the reference the native variants are checked against. */
interface TreeNode {
  left: TreeNode | null;
  right: TreeNode | null;
}

/** The benchmark on plain JS objects (the garbage collector frees them). Self-contained. */
function jsProgram(maxDepth: number, sample: () => void, deadline: number): ProgramResult {
  function bottomUpTree(depth: number): TreeNode {
    return depth > 0
      ? { left: bottomUpTree(depth - 1), right: bottomUpTree(depth - 1) }
      : { left: null, right: null };
  }

  function itemCheck(node: TreeNode): number {
    return node.left === null ? 1 : 1 + itemCheck(node.left) + itemCheck(node.right!);
  }

  const lines: string[] = [];
  const stretchDepth = maxDepth + 1;
  const stretch = bottomUpTree(stretchDepth);
  sample();
  lines.push(`stretch tree of depth ${stretchDepth}\t check: ${itemCheck(stretch)}`);
  let nodes = 2 ** (stretchDepth + 1) - 1;

  const longLived = bottomUpTree(maxDepth);
  nodes += 2 ** (maxDepth + 1) - 1;
  for (let depth = 4; depth <= maxDepth; depth += 2) {
    const iterations = 2 ** (maxDepth - depth + 4);
    const size = 2 ** (depth + 1) - 1;
    let check = 0;
    for (let i = 0; i < iterations; i++) {
      const tree = bottomUpTree(depth);
      if (i === 0) sample();
      check += itemCheck(tree);
      nodes += size;
      if ((i & 15) === 15 && performance.now() > deadline) return { lines, nodes, complete: false };
    }
    lines.push(`${iterations}\t trees of depth ${depth}\t check: ${check}`);
  }
  lines.push(`long lived tree of depth ${maxDepth}\t check: ${itemCheck(longLived)}`);
  return { lines, nodes, complete: true };
}

/**
 * The same function compiled again from its source: a new function with its own JIT feedback. The
 * function must not use names from its module (only its parameters and globals).
 */
function freshCopy<F extends (...args: never[]) => unknown>(fn: F): F {
  return new Function(`"use strict"; return (${fn.toString()});`)() as F;
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

// --- report ------------------------------------------------------------------------------------

/** Bytes for people: 1536 -> "1.5 KiB". */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 ** 2) return `${(bytes / 1024).toFixed(1)} KiB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
  return `${(bytes / 1024 ** 3).toFixed(2)} GiB`;
}

/** A finished or failed variant, as reported. */
export interface Row {
  variant: string;
  kind: Variant["kind"];
  result?: RunResult;
  /** Set when the variant threw. */
  error?: string;
  /** True when its lines equal the JS reference's. */
  matches?: boolean;
}

function formatMs(ms: number): string {
  return ms >= 100 ? ms.toFixed(0) : ms.toFixed(1);
}

/** The time of a run for people (`unit` after each number); a stopped run's is a lower bound. */
function timeText(r: RunResult, unit = ""): string {
  if (r.complete) return formatMs(r.ms) + unit;
  const done = Math.max(1, Math.round((100 * r.nodes) / r.totalNodes));
  return `≥ ${formatMs(r.ms)}${unit} (stopped after ${done}% of the nodes; ≈ ${
    formatMs(projectedMs(r))
  }${unit} at that rate)`;
}

/** A run's time, or for a stopped run its time scaled to all the nodes (an estimate). */
function projectedMs(r: RunResult): number {
  return r.complete ? r.ms : (r.ms * r.totalNodes) / r.nodes;
}

/** True when a run printed the reference's lines (a stopped run: the lines it got to). */
export function sameChecks(result: RunResult, reference: string[]): boolean {
  const expected = result.complete ? reference : reference.slice(0, result.lines.length);
  return result.lines.join("\n") === expected.join("\n");
}

/** The results as a markdown table, fastest first; failed variants last. */
export function markdownTable(rows: Row[]): string {
  const libcMs = rows.find((row) => row.kind === "libc")?.result?.ms;
  const out = [
    "| variant | time (ms) | × libc time | peak memory | memory measured as | checks |",
    "| --- | ---: | ---: | ---: | --- | --- |",
  ];
  for (const row of sortRows(rows)) {
    const r = row.result;
    if (r === undefined) {
      out.push(`| ${row.variant} | failed | | | | ${row.error ?? ""} |`);
      continue;
    }
    const ratio = libcMs === undefined
      ? "n/a"
      : `${r.complete ? "" : "≥ "}${(r.ms / libcMs).toFixed(2)}`;
    const memory = r.memoryBytes === undefined ? "n/a" : formatBytes(r.memoryBytes);
    const checks = row.matches === undefined
      ? ""
      : !row.matches
      ? "MISMATCH"
      : r.complete
      ? "same as JS"
      : `same as JS (the ${r.lines.length} lines printed before the stop)`;
    out.push(
      `| ${row.variant} | ${timeText(r)} | ${ratio} | ${memory} | ${r.memorySource} | ${checks} |`,
    );
  }
  return out.join("\n");
}

function sortRows(rows: Row[]): Row[] {
  const key = (row: Row) => row.result === undefined ? Infinity : projectedMs(row.result);
  return [...rows].sort((a, b) => key(a) - key(b));
}

function escapeXml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;");
}

/** Round tick values covering 0..max (linear) or powers of ten (log). */
function ticks(min: number, max: number, log: boolean): number[] {
  if (log) {
    const out: number[] = [];
    for (let p = Math.floor(Math.log10(min)); p <= Math.ceil(Math.log10(max)); p++) {
      out.push(10 ** p);
    }
    return out;
  }
  const rough = max / 5;
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= rough)!;
  const out: number[] = [];
  for (let t = 0; t <= max + step * 0.999; t += step) out.push(t);
  return out;
}

/**
 * A horizontal bar chart of the times, fastest first: one bar per finished variant, its time at
 * the bar's end, a labelled time axis (logarithmic when the slowest is over 20× the fastest).
 */
export function renderSvg(rows: Row[], title: string): string {
  const done = sortRows(rows).filter((row) => row.result !== undefined);
  const times = done.map((row) => row.result!.ms);
  const log = times.length > 0 && Math.max(...times) / Math.min(...times) > 20;
  const tickValues = times.length === 0
    ? [0, 1]
    : ticks(Math.min(...times), Math.max(...times), log);
  const low = log ? tickValues[0]! : 0;
  const high = tickValues.at(-1)!;

  const width = 900;
  const left = 200;
  const right = 170;
  const top = 58;
  const barHeight = 26;
  const gap = 10;
  const plotWidth = width - left - right;
  const plotHeight = done.length * (barHeight + gap) + gap;
  const height = top + plotHeight + 60;
  const x = (ms: number) =>
    left +
    plotWidth * (log ? Math.log10(ms / low) / Math.log10(high / low) : ms / high);
  const colour = (kind: Variant["kind"]) =>
    kind === "libc" ? "#d95f02" : kind === "js" ? "#7570b3" : "#1b9e77";

  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="13">`,
    `<title>${escapeXml(title)}</title>`,
    `<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">${
      escapeXml(title)
    }</text>`,
  ];
  for (const t of tickValues) {
    const tx = x(t).toFixed(1);
    out.push(
      `<line x1="${tx}" y1="${top}" x2="${tx}" y2="${top + plotHeight}" stroke="#dddddd"/>`,
      `<text x="${tx}" y="${top + plotHeight + 18}" text-anchor="middle" fill="#333333">${
        t >= 1000 ? `${t / 1000}k` : t
      }</text>`,
    );
  }
  done.forEach((row, i) => {
    const r = row.result!;
    const y = top + gap + i * (barHeight + gap);
    const w = Math.max(1, x(r.ms) - left);
    const label = r.complete ? `${formatMs(r.ms)} ms` : `≥ ${formatMs(r.ms)} ms (stopped)`;
    // A stopped run's bar is a lower bound: drawn lighter, with a dashed outline.
    const style = r.complete
      ? ""
      : ` fill-opacity="0.45" stroke="${colour(row.kind)}" stroke-dasharray="4 3"`;
    out.push(
      `<text x="${left - 8}" y="${y + barHeight / 2 + 4}" text-anchor="end">${
        escapeXml(row.variant)
      }</text>`,
      `<rect class="bar" x="${left}" y="${y}" width="${w.toFixed(1)}" height="${barHeight}" fill="${
        colour(row.kind)
      }"${style}><title>${escapeXml(`${row.variant}: ${label}`)}</title></rect>`,
      `<text x="${(left + w + 6).toFixed(1)}" y="${y + barHeight / 2 + 4}">${
        escapeXml(label)
      }</text>`,
    );
  });
  const legend: [Variant["kind"], string][] = [
    ["allocator", "allocators of @pseudo/malloc"],
    ["libc", "libc malloc through FFI"],
    ["js", "JS objects, garbage-collected"],
  ];
  legend.forEach(([kind, text], i) => {
    const lx = left + i * 210;
    out.push(
      `<rect x="${lx}" y="34" width="12" height="12" fill="${colour(kind)}"/>`,
      `<text x="${lx + 18}" y="44" font-size="12">${escapeXml(text)}</text>`,
    );
  });
  out.push(
    `<line x1="${left}" y1="${top}" x2="${left}" y2="${top + plotHeight}" stroke="#333333"/>`,
    `<line x1="${left}" y1="${top + plotHeight}" x2="${left + plotWidth}" y2="${
      top + plotHeight
    }" stroke="#333333"/>`,
    `<text x="${left + plotWidth / 2}" y="${top + plotHeight + 42}" text-anchor="middle">${
      log ? "time (ms, logarithmic scale; shorter is faster)" : "time (ms; shorter is faster)"
    }</text>`,
    `<text x="16" y="${top + plotHeight / 2}" text-anchor="middle" transform="rotate(-90 16 ${
      top + plotHeight / 2
    })">variant</text>`,
    `</svg>`,
  );
  return out.join("\n") + "\n";
}

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

function accessReport(access: AccessCost, depth: number, libcRow: Row | undefined): string {
  const perNode = (ns: number) => (ns - access.loopNs).toFixed(1);
  const inRun = (ns: number) => (((ns - access.loopNs) * nodeCount(depth)) / 1e6).toFixed(0);
  const libcMs = libcRow?.result === undefined ? "?" : formatMs(libcRow.result.ms);
  return [
    `libc memory access, measured apart on ${access.nodes.toLocaleString("en")} live libc ` +
    `blocks (per node what the program does: one write of both fields, two reads of both; the ` +
    `bare loop, ${access.loopNs.toFixed(1)} ns per node, is subtracted):`,
    `- 1 MiB windows, one ArrayBuffer each (the way the libc variant uses; the allocators' nodes ` +
    `are reached the same way, through one Float64Array per arena, chunk or pool): ${
      perNode(access.windowNs)
    } ns per node, ≈ ${inRun(access.windowNs)} ms of the libc variant's ${libcMs} ms;`,
    `- libc memcpy through FFI, to and from a 16-byte staging buffer: ${
      perNode(access.memcpyNs)
    } ns per node (≈ ${inRun(access.memcpyNs)} ms for the run);`,
    `- a pointer object per access (UnsafePointer.create, then getArrayBuffer to write and an ` +
    `UnsafePointerView to read): ${perNode(access.pointerNs)} ns per node (≈ ${
      inRun(access.pointerNs)
    } ms for the run).`,
  ].join("\n");
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
    `when the most nodes are live (they include whatever else the process allocated meanwhile).`;
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
      console.log(
        `  ${variant.name.padEnd(20)} ${timeText(r, " ms")}, ${memory} (${r.memorySource})`,
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
