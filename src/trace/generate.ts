/**
 * Seeded synthetic traces, so that the replayer runs with nothing to download. Each generator is a
 * small model of a kind of program; the same seed and scale always give the same trace.
 *
 * @module
 */

import { type Trace, TraceBuilder } from "./trace.ts";
import { mulberry32 as random } from "../_random.ts";

/** The names of the built-in traces, in the order {@linkcode builtinTraces} returns them. */
export const BUILTIN_TRACES: readonly string[] = Object.freeze([
  "churn",
  "binary-tree",
  "realloc",
  "mixed",
]);

/** The seed used when none is given. */
export const DEFAULT_SEED = 1;

/**
 * Options of the trace generators.
 *
 * @example A quick, small variant
 * ```ts
 * import { builtinTraces, type GenerateOptions } from "@pseudo/malloc/trace";
 *
 * const options: GenerateOptions = { seed: 7, scale: 0.1 };
 * console.log(builtinTraces(options).map((trace) => trace.length));
 * ```
 */
export interface GenerateOptions {
  /** Seed of the pseudo-random choices (a 32-bit integer). @default {1} */
  seed?: number;
  /**
   * Multiplies the number of steps of every generator (and the live set of `churn`; the
   * long-lived tree of `binary-tree` stays the same); 1 gives about 90,000 to 130,000 operations
   * per trace. @default {1}
   */
  scale?: number;
}

/** An integer from `low` to `high` inclusive, log-uniform (so small values are common). */
function logUniform(next: () => number, low: number, high: number): number {
  return Math.min(high, Math.floor(low * (high / low) ** next()));
}

function count(base: number, scale: number): number {
  return Math.max(1, Math.round(base * scale));
}

/**
 * Small-object churn: a live set of small blocks (8 to 1024 bytes, log-uniform, so most are below
 * 100 bytes) in which, step after step, a random block is freed and a new one allocated; at the
 * end everything is freed. Models long-running programs with many small objects (interpreters,
 * servers). About 128,000 operations at scale 1.
 */
function churn(seed: number, scale: number): Trace {
  const next = random(seed ^ 0xc4a2_0001);
  const live = count(4000, scale);
  const steps = count(60_000, scale);
  const b = new TraceBuilder();
  const ids: number[] = [];
  let id = 0;
  for (let i = 0; i < live; i++) {
    b.alloc(id, logUniform(next, 8, 1024));
    ids.push(id++);
  }
  for (let s = 0; s < steps; s++) {
    const k = Math.floor(next() * live);
    b.free(ids[k]!);
    b.alloc(id, logUniform(next, 8, 1024));
    ids[k] = id++;
  }
  for (const k of ids) b.free(k);
  return b.build("churn");
}

/**
 * Binary-tree shaped: the binary-trees benchmark's allocation pattern with 24-byte nodes (two
 * pointers and a value). A long-lived tree of depth 12 is built first; then trees of depth 4, 6, 8,
 * 10 and 12 are built bottom-up (children before parents) and freed top-down, many times; the
 * long-lived tree goes last. Only the node count depends on the seed (trees have random extra
 * payload on one node in 64). About 120,000 operations at scale 1.
 */
function binaryTree(seed: number, scale: number): Trace {
  const next = random(seed ^ 0xb17e_0002);
  const b = new TraceBuilder();
  let id = 0;
  const NODE = 24;
  const nodeSize = () => next() < 1 / 64 ? NODE + 8 * (1 + Math.floor(next() * 8)) : NODE;
  // build returns the ids in post-order (children first), as a recursive builder allocates them.
  const build = (depth: number, out: number[]): void => {
    if (depth > 0) {
      build(depth - 1, out);
      build(depth - 1, out);
    }
    b.alloc(id, nodeSize());
    out.push(id++);
  };
  // Freeing walks from the root: a node is freed after its children are read, before they are
  // freed (pre-order: the reverse of the post-order build is root, right subtree, left subtree).
  const drop = (nodes: number[]): void => {
    for (let i = nodes.length - 1; i >= 0; i--) b.free(nodes[i]!);
  };
  const maxDepth = 12;
  const longLived: number[] = [];
  build(maxDepth, longLived);
  const budget = count(56_000, scale); // nodes of short-lived trees, split over the depths
  const depths = (maxDepth - 4) / 2 + 1;
  for (let depth = 4; depth <= maxDepth; depth += 2) {
    const nodes = 2 ** (depth + 1) - 1;
    const trees = Math.max(1, Math.round(budget / depths / nodes));
    for (let t = 0; t < trees; t++) {
      const tree: number[] = [];
      build(depth, tree);
      drop(tree);
    }
  }
  drop(longLived);
  return b.build("binary-tree");
}

/**
 * Realloc growth: 48 growing buffers (vectors, string builders) at a time. Each starts at 8 to 64
 * bytes and grows by half its size per `realloc` up to a final size (256 bytes to 64 KiB,
 * log-uniform); one in five is then shrunk to fit; then it is freed and a new buffer takes its
 * place. Small blocks allocated between the reallocs (16 to 128 bytes, each living for a while)
 * keep the buffers from always growing in place. About 90,000 operations at scale 1.
 */
function reallocGrowth(seed: number, scale: number): Trace {
  const next = random(seed ^ 0x4ea1_0003);
  const b = new TraceBuilder();
  const BUFFERS = 48;
  const buffers: { id: number; size: number; target: number }[] = [];
  let id = 0;
  const fresh = () => {
    const size = logUniform(next, 8, 64);
    b.alloc(id, size);
    return { id: id++, size, target: logUniform(next, 256, 64 * 1024) };
  };
  for (let i = 0; i < BUFFERS; i++) buffers.push(fresh());
  const smalls: number[] = [];
  const steps = count(40_000, scale);
  for (let s = 0; s < steps; s++) {
    const k = Math.floor(next() * BUFFERS);
    const buffer = buffers[k]!;
    if (buffer.size < buffer.target) {
      buffer.size = Math.min(buffer.target, buffer.size + Math.ceil(buffer.size / 2));
      b.realloc(buffer.id, buffer.size);
    } else {
      if (next() < 0.2) b.realloc(buffer.id, Math.max(1, buffer.size - logUniform(next, 1, 64)));
      b.free(buffer.id);
      buffers[k] = fresh();
    }
    // A small block between reallocs; past 512 of them, the oldest-but-random one goes.
    if (next() < 0.6) {
      b.alloc(id, logUniform(next, 16, 128));
      smalls.push(id++);
      if (smalls.length > 512) {
        const j = Math.floor(next() * smalls.length);
        b.free(smalls[j]!);
        smalls[j] = smalls[smalls.length - 1]!;
        smalls.pop();
      }
    }
  }
  for (const buffer of buffers) b.free(buffer.id);
  for (const small of smalls) b.free(small);
  return b.build("realloc");
}

/**
 * Mixed small and large, with lifetimes: each step frees the blocks whose lifetime ended and
 * allocates one block: small (16 to 512 bytes) 85 % of the time, medium (512 bytes to 4 KiB) 10 %,
 * large (4 KiB to 256 KiB) 5 %. Lifetimes: 70 % short (up to 100 steps), 25 % medium (up to 5,000
 * steps), 5 % until the end. One block in 20 is reallocated once during its life to between half
 * and twice its size. About 100,000 operations at scale 1.
 */
function mixed(seed: number, scale: number): Trace {
  const next = random(seed ^ 0x3143_0004);
  const b = new TraceBuilder();
  const steps = count(50_000, scale);
  const deaths = new Map<number, number[]>();
  const reallocs = new Map<number, number[]>();
  const sizes: number[] = [];
  const permanent: number[] = [];
  const schedule = (table: Map<number, number[]>, step: number, id: number) => {
    const list = table.get(step);
    if (list === undefined) table.set(step, [id]);
    else list.push(id);
  };
  for (let step = 0; step < steps; step++) {
    for (const id of reallocs.get(step) ?? []) {
      if (!b.isLive(id)) continue;
      const size = Math.max(1, Math.round(sizes[id]! * (0.5 + 1.5 * next())));
      sizes[id] = size;
      b.realloc(id, size);
    }
    reallocs.delete(step);
    for (const id of deaths.get(step) ?? []) b.free(id);
    deaths.delete(step);

    const id = sizes.length;
    const kind = next();
    const size = kind < 0.85
      ? logUniform(next, 16, 512)
      : kind < 0.95
      ? logUniform(next, 512, 4096)
      : logUniform(next, 4096, 256 * 1024);
    sizes.push(size);
    b.alloc(id, size);
    const life = next();
    let lifetime = Infinity;
    if (life < 0.7) lifetime = 1 + Math.floor(next() * 100);
    else if (life < 0.95) lifetime = 100 + Math.floor(next() * 4900);
    if (lifetime === Infinity || step + lifetime >= steps) permanent.push(id);
    else schedule(deaths, step + lifetime, id);
    if (next() < 0.05) {
      const at = step + 1 + Math.floor(next() * (lifetime === Infinity ? 1000 : lifetime));
      if (at < steps) schedule(reallocs, at, id);
    }
  }
  // Blocks still scheduled to die after the last step were put on the permanent list.
  for (const id of permanent) b.free(id);
  return b.build("mixed");
}

const GENERATORS: Record<string, (seed: number, scale: number) => Trace> = {
  "churn": churn,
  "binary-tree": binaryTree,
  "realloc": reallocGrowth,
  "mixed": mixed,
};

/**
 * Generates one built-in trace.
 *
 * @param name One of {@linkcode BUILTIN_TRACES}: `churn` (small-object churn), `binary-tree`,
 *   `realloc` (buffers growing by realloc) or `mixed` (small and large blocks with lifetimes).
 * @param options Seed and scale.
 * @returns The trace; its `name` is `name`.
 * @throws {RangeError} For an unknown name or a scale that is not a positive number.
 *
 * @example The same seed, the same trace
 * ```ts
 * import { generateTrace } from "@pseudo/malloc/trace";
 * import assert from "node:assert/strict";
 *
 * const a = generateTrace("mixed", { seed: 3, scale: 0.05 });
 * const b = generateTrace("mixed", { seed: 3, scale: 0.05 });
 * assert.deepEqual(a.sizes, b.sizes);
 * ```
 */
export function generateTrace(name: string, options: GenerateOptions = {}): Trace {
  const generator = GENERATORS[name];
  if (generator === undefined) {
    throw new RangeError(
      `Unknown built-in trace "${name}": expected one of ${BUILTIN_TRACES.join(", ")}`,
    );
  }
  const scale = options.scale ?? 1;
  if (!(scale > 0) || !Number.isFinite(scale)) {
    throw new RangeError(`Cannot use scale ${scale}: it must be a positive number`);
  }
  return generator((options.seed ?? DEFAULT_SEED) >>> 0, scale);
}

/**
 * Generates every built-in trace, in the order of {@linkcode BUILTIN_TRACES}.
 *
 * @param options Seed and scale.
 * @returns The traces.
 *
 * @example Their sizes
 * ```ts
 * import { builtinTraces } from "@pseudo/malloc/trace";
 *
 * for (const trace of builtinTraces({ scale: 0.01 })) {
 *   console.log(trace.name, trace.length, trace.peakLiveBytes);
 * }
 * ```
 */
export function builtinTraces(options: GenerateOptions = {}): Trace[] {
  return BUILTIN_TRACES.map((name) => generateTrace(name, options));
}
