// The benchmark workloads of issue 4, shared by `alloc_bench.ts` (timing) and `alloc_count.ts`
// (heap-growth count): seeded data generated once into typed arrays, peer adapters, and the loops
// that drive a peer through a workload.
//
// Rules that keep the timed loops honest:
// - Every size, free order and churn index is generated here, before any timing, from one seed:
//   no `Math.random`, no array growth and no closure creation happens inside a timed loop.
// - Sizes exist twice: as numbers (`Uint32Array`) for the JavaScript peers, and as a plain array of
//   bigints for libc through FFI. A 64-bit FFI parameter only takes Deno's fast call path when it
//   is given a bigint (a number drops to the slow path, about 10x slower), and reading a bigint out
//   of a plain array is a pointer load, where a `BigUint64Array` read would create a new bigint.
// - Each loop is written once, generically, and then *cloned per peer* with `specialize`: V8 shares
//   type feedback between closures of one function, so one loop shared by five peers would run
//   megamorphic and charge every peer for the others (measured: `MemPool` pairs go from 8 to 15 ns).
//   A clone has its own feedback, so every peer runs its own monomorphic loop, as a program that
//   uses only that allocator would. For that, the loop functions below must not refer to anything
//   outside their parameters (no imports, no module constants). Callers clone the function that
//   calls a loop too: a call site shared by several peers is compiled once for all of them.

import { PseudoMalloc } from "../mod.ts";
// An inline specifier keeps this benchmark-only dependency out of deno.json's import map (and so out
// of anything published).
// deno-lint-ignore no-import-prefix
import { MemPool } from "npm:@thi.ng/malloc@6";
import { mulberry32 as random } from "../src/_random.ts";
import { anonymousMapping, type LibcMalloc } from "../ffi/libc_malloc.ts";

/** The seed of every generated workload. */
export const SEED = 0x5eed_0004;

// --- sizes of the workloads --------------------------------------------------------------------

/** Workload 1: the size of the repeated malloc+free pair. */
export const PAIR_SIZE = 64;
/** Workload 2: blocks per batch (all live at once, then freed in a shuffled order). */
export const BATCH_SIZE = 256;
/** Workload 2: distinct generated batches, cycled through. */
export const BATCH_COUNT = 64;
/** Workloads 2, 3, 5: the smallest small request. */
export const SMALL_MIN = 16;
/** Workloads 2, 3, 5: largest small request (below PseudoMalloc's 1024-byte mmap threshold). */
export const SMALL_MAX = 1008;
/** Workload 3: live blocks during churn. */
export const CHURN_LIVE = 10_000;
/** Workload 3: length of the generated churn sequence (a power of two; it repeats). */
export const CHURN_STEPS = 1 << 16;
/** Workloads 4, 5: the repeating sequence of large sizes, 4 KiB to 1 MiB. */
export const LARGE_COUNT = 16;
/** Workload 5: the realloc chain, 16 bytes doubling to 1 MiB (17 sizes, 16 reallocs). */
export const REALLOC_MIN = 16;
/** Workload 5: the end of the realloc chain. */
export const REALLOC_MAX = 1 << 20;
/**
 * Workload 5: the size of the "fresh large block" calloc: above the 8 MiB cap that issue 4 suggests
 * for a cache of released mappings, so that every iteration maps fresh memory.
 */
export const FRESH_SIZE = 64 << 20;
/** Scale workload: requested bytes of small blocks held live (hundreds of 1 MiB arenas). */
export const SCALE_BYTES = 256 << 20;

/** Size of each `@thi.ng/malloc` pool: one per workload, large enough for any of them. */
export const MEMPOOL_SIZE = 64 << 20;

// --- generated data ------------------------------------------------------------------------------

/** The same sizes as numbers (JavaScript peers) and as bigints (libc through FFI). */
export interface Sizes {
  readonly numbers: Uint32Array;
  readonly bigints: readonly bigint[];
}

/** A small request from 16 to 1008 bytes, log-uniform (skewed small: median about 126 bytes). */
export function smallSize(next: () => number): number {
  const size = Math.floor(SMALL_MIN * (SMALL_MAX / SMALL_MIN) ** next());
  return Math.min(SMALL_MAX, Math.max(SMALL_MIN, size));
}

function sizes(numbers: Uint32Array): Sizes {
  return { numbers, bigints: Array.from(numbers, (n) => BigInt(n)) };
}

function shuffle(order: Uint16Array | Uint32Array, next: () => number): void {
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    const t = order[i]!;
    order[i] = order[j]!;
    order[j] = t;
  }
}

/** All the generated data of every workload. Deterministic: the same for every peer and run. */
export interface WorkloadData {
  /** Workload 2: `BATCH_COUNT` batches of `BATCH_SIZE` sizes, batch after batch. */
  batchSizes: Sizes;
  /** Workload 2: for each batch, a permutation of 0..BATCH_SIZE-1: the order of the frees. */
  batchOrders: Uint16Array;
  /** Workload 3: sizes of the initial live set. */
  churnInitial: Sizes;
  /** Workload 3: at step k, free live block `churnIndices[k]`... */
  churnIndices: Uint16Array;
  /** ...and allocate `churnSizes[k]` in its place. */
  churnSizes: Sizes;
  /** Workload 5: 4096 small sizes for calloc, cycled. */
  callocSizes: Sizes;
  /** Workloads 4, 5: `LARGE_COUNT` sizes from 4 KiB to 1 MiB, cycled. */
  largeSizes: Sizes;
  /** Workload 5: 16, 32, ..., 1 MiB. */
  reallocSizes: Sizes;
  /** Scale workload: small sizes adding up to at least `SCALE_BYTES`. */
  scaleSizes: Uint32Array;
}

/** Generates every workload from `seed`. Takes about 100 ms. */
export function generate(seed = SEED): WorkloadData {
  const next = random(seed);

  const batch = new Uint32Array(BATCH_COUNT * BATCH_SIZE);
  for (let i = 0; i < batch.length; i++) batch[i] = smallSize(next);
  const orders = new Uint16Array(BATCH_COUNT * BATCH_SIZE);
  for (let b = 0; b < BATCH_COUNT; b++) {
    const order = orders.subarray(b * BATCH_SIZE, (b + 1) * BATCH_SIZE);
    for (let j = 0; j < BATCH_SIZE; j++) order[j] = j;
    shuffle(order, next);
  }

  const initial = new Uint32Array(CHURN_LIVE);
  for (let i = 0; i < initial.length; i++) initial[i] = smallSize(next);
  const indices = new Uint16Array(CHURN_STEPS);
  const churn = new Uint32Array(CHURN_STEPS);
  for (let k = 0; k < CHURN_STEPS; k++) {
    indices[k] = Math.floor(next() * CHURN_LIVE);
    churn[k] = smallSize(next);
  }

  const calloc = new Uint32Array(4096);
  for (let i = 0; i < calloc.length; i++) calloc[i] = smallSize(next);

  // Log-uniform from 4 KiB to 1 MiB, both ends included, in a fixed shuffled order.
  const large = new Uint32Array(LARGE_COUNT);
  large[0] = 4096;
  large[1] = 1 << 20;
  for (let i = 2; i < LARGE_COUNT; i++) large[i] = Math.floor(4096 * 256 ** next());
  shuffle(large, next);

  const chain: number[] = [];
  for (let size = REALLOC_MIN; size <= REALLOC_MAX; size *= 2) chain.push(size);

  const scale: number[] = [];
  for (let total = 0; total < SCALE_BYTES;) {
    const size = smallSize(next);
    scale.push(size);
    total += size;
  }

  return {
    batchSizes: sizes(batch),
    batchOrders: orders,
    churnInitial: sizes(initial),
    churnIndices: indices,
    churnSizes: sizes(churn),
    callocSizes: sizes(calloc),
    largeSizes: sizes(large),
    reallocSizes: sizes(Uint32Array.from(chain)),
    scaleSizes: Uint32Array.from(scale),
  };
}

// --- peers ---------------------------------------------------------------------------------------

/**
 * What a workload needs of an allocator. `S` is the size type (number, or bigint for FFI), `A` the
 * address (or handle) type. Adapters are plain objects or classes whose methods only forward: no
 * allocation of their own per call, and small enough for V8 to inline into the loops.
 */
export interface Peer<S, A> {
  malloc(size: S): A;
  free(address: A): unknown;
  calloc?(count: S, size: S): A;
  realloc?(address: A, size: S): A;
}

/**
 * A raw anonymous `mmap` + `munmap` pair through FFI, the baseline of workload 4. `free` unmaps the
 * length of the last `malloc`, so it is only valid for strict malloc+free pairs.
 */
export class MmapPeer implements Peer<bigint, bigint> {
  #libc: LibcMalloc;
  #length = 0n;
  #protection: number;
  #flags: number;

  constructor(libc: LibcMalloc) {
    this.#libc = libc;
    const { protection, flags } = anonymousMapping(); // read-write, MAP_PRIVATE | MAP_ANONYMOUS
    this.#protection = protection;
    this.#flags = flags;
  }

  malloc(size: bigint): bigint {
    this.#length = size;
    return this.#libc.mmap(0n, size, this.#protection, this.#flags, -1, 0n);
  }

  free(address: bigint): void {
    this.#libc.munmap(address, this.#length);
  }
}

/**
 * `@thi.ng/malloc`'s `MemPool`, unchanged except for `calloc`, which takes C's `(count, size)`
 * (its own is `calloc(bytes, fill)`). A subclass rather than a wrapper, so that `malloc`, `free`
 * and `realloc` are the library's own methods, called directly. The pool uses the library's
 * defaults: `compact: true` (adjacent free blocks are merged on every free), `split: true`,
 * `minSplit: 16`, `align: 8`.
 */
export class MemPoolPeer extends MemPool implements Peer<number, number> {
  constructor(size = MEMPOOL_SIZE) {
    super({ size });
  }

  override calloc(count: number, size = 1): number {
    return super.calloc(count * size);
  }

  /** Live blocks, by walking the pool's used list (slow; for checks outside timing). */
  get live(): number {
    return this.stats().used.count;
  }
}

/**
 * Garbage-collected memory: `malloc` and `calloc` are `new Uint8Array(n)` (which is zeroed), `free`
 * drops nothing and lets the GC work. The last array is kept in a field, so the allocation escapes
 * and cannot be optimised away.
 */
export class TypedArrayPeer implements Peer<number, Uint8Array> {
  last: Uint8Array = new Uint8Array(0);

  malloc(size: number): Uint8Array {
    return (this.last = new Uint8Array(size));
  }

  free(_address: Uint8Array): void {}

  calloc(count: number, size: number): Uint8Array {
    return (this.last = new Uint8Array(count * size));
  }
}

/** The PseudoMalloc peer is the heap itself: `new PseudoMalloc()` with default options. */
export function pseudoMalloc(): PseudoMalloc {
  return new PseudoMalloc();
}

// --- loops ---------------------------------------------------------------------------------------
// Self-contained: they must not name anything outside their parameters (see `specialize`).

/**
 * A copy of `fn` with its own V8 feedback: the same code compiled again from its source. `fn` must
 * refer only to its parameters and globals. Each copy's source gets a unique comment: V8 caches what
 * `new Function` compiles, keyed by source, together with its feedback, so identical sources would
 * share feedback again.
 */
export function specialize<F extends (...args: never[]) => unknown>(fn: F): F {
  // deno-lint-ignore no-explicit-any
  const Compile = Function as any;
  const copy = ++copies;
  return new Compile(`"use strict"; return (${fn.toString()}); // copy ${copy}`)() as F;
}

let copies = 0;

// Every loop takes `(peer, cursor, ...)` and returns the next cursor: the position in its
// generated sequence, kept by the caller across calls so that the steady state carries over from one
// bench iteration to the next.

/** A loop over a workload, in the common shape. */
// deno-lint-ignore no-explicit-any
export type Loop = (peer: any, cursor: number, ...args: any[]) => number;

/** Workload 1: `count` malloc(size)+free pairs. */
export function runPairs<S, A>(peer: Peer<S, A>, cursor: number, size: S, count: number): number {
  for (let i = 0; i < count; i++) peer.free(peer.malloc(size));
  return cursor;
}

/** Workload 4: `count` malloc+free pairs cycling through `sizes` (a power-of-two length). */
export function runPairSequence<S, A>(
  peer: Peer<S, A>,
  cursor: number,
  sizes: ArrayLike<S>,
  count: number,
): number {
  const mask = sizes.length - 1;
  let k = cursor;
  for (let i = 0; i < count; i++) {
    peer.free(peer.malloc(sizes[k]!));
    k = (k + 1) & mask;
  }
  return k;
}

/** Workload 5: like `runPairSequence` with `calloc(one, size)`. */
export function runCallocSequence<S, A>(
  peer: Peer<S, A>,
  cursor: number,
  sizes: ArrayLike<S>,
  count: number,
  one: S,
): number {
  const mask = sizes.length - 1;
  let k = cursor;
  for (let i = 0; i < count; i++) {
    peer.free(peer.calloc!(one, sizes[k]!));
    k = (k + 1) & mask;
  }
  return k;
}

/**
 * Workload 2: `count` batches from batch `cursor`: allocate the batch's sizes into `handles`, then
 * free them in the batch's shuffled order.
 */
export function runBatches<S, A>(
  peer: Peer<S, A>,
  cursor: number,
  sizes: ArrayLike<S>,
  orders: Uint16Array,
  handles: A[],
  batchSize: number,
  batchCount: number,
  count: number,
): number {
  let b = cursor;
  for (let n = 0; n < count; n++) {
    const base = b * batchSize;
    for (let j = 0; j < batchSize; j++) handles[j] = peer.malloc(sizes[base + j]!);
    for (let j = 0; j < batchSize; j++) peer.free(handles[orders[base + j]!]!);
    b = b + 1 === batchCount ? 0 : b + 1;
  }
  return b;
}

/** Workload 3 setup: fills `live` with blocks of the given sizes. */
export function fillLive<S, A>(
  peer: Peer<S, A>,
  cursor: number,
  sizes: ArrayLike<S>,
  live: A[],
): number {
  for (let i = 0; i < sizes.length; i++) live[i] = peer.malloc(sizes[i]!);
  return cursor;
}

/**
 * Workload 3: `count` churn steps from step `cursor`: free live block `indices[k]` and allocate
 * `sizes[k]` in its place. `indices` and `sizes` have a power-of-two length.
 */
export function runChurn<S, A>(
  peer: Peer<S, A>,
  cursor: number,
  live: A[],
  indices: Uint16Array,
  sizes: ArrayLike<S>,
  count: number,
): number {
  const mask = indices.length - 1;
  let k = cursor;
  for (let n = 0; n < count; n++) {
    const i = indices[k]!;
    peer.free(live[i]!);
    live[i] = peer.malloc(sizes[k]!);
    k = (k + 1) & mask;
  }
  return k;
}

/** Workload 5: `count` chains of malloc(sizes[0]), realloc to each next size, free. */
export function runReallocChains<S, A>(
  peer: Peer<S, A>,
  cursor: number,
  sizes: ArrayLike<S>,
  count: number,
): number {
  const last = sizes.length;
  for (let n = 0; n < count; n++) {
    let address = peer.malloc(sizes[0]!);
    for (let k = 1; k < last; k++) address = peer.realloc!(address, sizes[k]!);
    peer.free(address);
  }
  return cursor;
}
