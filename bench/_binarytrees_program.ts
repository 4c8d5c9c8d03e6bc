// binary-trees, the program (described in bench/binarytrees.ts, which runs it on every variant):
// once on nodes in native memory, once on plain JS objects, the reference. Both functions that run
// the benchmark are self-contained, so that `freshCopy` can compile them again per variant.
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
// `measureLibcAccess` (`_binarytrees_variants.ts`) times this access path for libc separately,
// against the pointer-object ways.

import type { Allocator } from "../mod.ts";
import type { LibcMalloc } from "../ffi/libc_malloc.ts";

/** The smallest depth of the short-lived trees, fixed by the benchmark. */
export const MIN_DEPTH = 4;
/** Bytes of a native tree node: two float64 child addresses. */
export const NODE_SIZE = 16;
/** The benchmark's default depth. */
export const DEFAULT_DEPTH = 16;

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

/** libc's symbols (malloc, free, memcpy, mallinfo2: `ffi/libc_malloc.ts`). */
export type LibcSymbols = LibcMalloc;

// --- the programs ------------------------------------------------------------------------------

/** What a program returns. */
export interface ProgramResult {
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
export function nativeProgram(
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
export function jsProgram(maxDepth: number, sample: () => void, deadline: number): ProgramResult {
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
export function freshCopy<F extends (...args: never[]) => unknown>(fn: F): F {
  return new Function(`"use strict"; return (${fn.toString()});`)() as F;
}
