// The workloads of issue 11, beyond small blocks (run by `large_bench.ts`): medium churn, the same
// with every block written once, large mixed churn, the realloc chain, and a new heap. The rules
// of `_workloads.ts`'s opening comment hold here too: every size and churn index is generated
// before timing from one seed, sizes exist as numbers and as bigints, and every loop refers only
// to its parameters, so that `specialize` can give each peer a monomorphic copy. The one loop that
// allocates is `runNewHeaps`, whose work is to make an allocator.
//
// The workloads (the "Measured" table):
//   7. medium churn: 1,000 live blocks of 1 KiB-64 KiB (log-uniform); each step frees a live block
//      chosen at random and allocates a new one in its place.
//   8. the same, every new block written once, all of its requested bytes (the write below).
//   9. large mixed churn: the same with 16 live blocks of 64 KiB-4 MiB.
//  10. realloc chain: malloc(16), realloc to 32, 64, ..., 1 MiB, free (`runReallocChains` of
//      `_workloads.ts`; its data is `reallocSizes`). No byte is written.
//  11. new heap: make an allocator, malloc(16), free, close.
//
// The write of workload 8 is the same C function for every peer whose blocks are native memory:
// libc's `memset(address, 1, size)` through FFI, one fast call with bigint arguments (bound here,
// result `void` so that no bigint comes back). libc's addresses are bigints already; PseudoMalloc
// and the family allocators give numbers, which cost one `BigInt(address)` per write (a few ns,
// against the hundreds a write of 1-64 KiB takes). The size comes as a bigint from the generated
// data for all of them. Peers whose blocks live in a JavaScript buffer (`@thi.ng/malloc`'s pool, a
// WebAssembly memory) cannot be reached by memset: their write is `Uint8Array.prototype.fill(1,
// address, address + size)` over that buffer, which V8 performs with memset too, without the FFI
// call. That asymmetry is measured, not hidden: the floors of workload 8 (`runWrites`) write the
// same sizes at one fixed address, with memset through FFI and with `fill`, and no allocator.

import { constantsFor } from "../ffi/_constants.ts";
import { mulberry32 as random } from "../src/_random.ts";
import type { Sizes } from "./_workloads.ts";

/** The seed of the workloads of issue 11. */
export const SEED_11 = 0x5eed_0011;

/** Workloads 7, 8: the smallest and largest medium request. */
export const MEDIUM_MIN = 1 << 10;
/** Workloads 7, 8: the largest medium request. */
export const MEDIUM_MAX = 64 << 10;
/** Workloads 7, 8: live blocks. */
export const MEDIUM_LIVE = 1000;
/** Workload 9: the smallest large request. */
export const LARGE_MIN = 64 << 10;
/** Workload 9: the largest large request. */
export const LARGE_MAX = 4 << 20;
/** Workload 9: live blocks. */
export const LARGE_LIVE = 16;
/** Workloads 7-9: length of the generated churn sequence (a power of two; it repeats). */
export const STEPS = 1 << 16;
/** Workload 11: the first request of a new heap. */
export const FIRST_SIZE = 16;

/** The generated data of workloads 7-9. */
export interface ChurnData {
  /** Sizes of the initial live set. */
  initial: Sizes;
  /** At step k, free live block `indices[k]`... */
  indices: Uint16Array;
  /** ...and allocate `sizes[k]` in its place. */
  sizes: Sizes;
}

/** A size from `min` to `max`, log-uniform. */
function logUniform(next: () => number, min: number, max: number): number {
  return Math.min(max, Math.max(min, Math.floor(min * (max / min) ** next())));
}

function sizes(numbers: Uint32Array): Sizes {
  return { numbers, bigints: Array.from(numbers, (n) => BigInt(n)) };
}

function churnData(next: () => number, min: number, max: number, live: number): ChurnData {
  const initial = new Uint32Array(live);
  for (let i = 0; i < live; i++) initial[i] = logUniform(next, min, max);
  const indices = new Uint16Array(STEPS);
  const churn = new Uint32Array(STEPS);
  for (let k = 0; k < STEPS; k++) {
    indices[k] = Math.floor(next() * live);
    churn[k] = logUniform(next, min, max);
  }
  return { initial: sizes(initial), indices, sizes: sizes(churn) };
}

/** Workloads 7-9's data, generated from `seed`: the same for every peer and run. */
export function generateLarge(seed = SEED_11): { medium: ChurnData; large: ChurnData } {
  const next = random(seed);
  const medium = churnData(next, MEDIUM_MIN, MEDIUM_MAX, MEDIUM_LIVE);
  const large = churnData(next, LARGE_MIN, LARGE_MAX, LARGE_LIVE);
  return { medium, large };
}

// --- the write of workload 8 ---------------------------------------------------------------------

const MEMSET = {
  // void *memset(void *s, int c, size_t n);   the result (s) is dropped: no bigint comes back
  memset: { parameters: ["usize", "i32", "usize"], result: "void" },
} as const;

let library: Deno.DynamicLibrary<typeof MEMSET> | undefined;

/** libc's `memset`, bound once (bigint address and size: Deno's fast call). */
export function memset(): (address: bigint, value: number, size: bigint) => void {
  library ??= Deno.dlopen(constantsFor(Deno.build.os).library, MEMSET);
  return library.symbols.memset;
}

/** Closes the library `memset` opened. */
export function closeMemset(): void {
  library?.close();
  library = undefined;
}

/** How workload 8 writes a new block: `write(address, size)`, size as the peer's write type. */
export interface Writer<A, W> {
  write(address: A, size: W): void;
}

/** memset for bigint addresses (libc). */
export class BigintMemset implements Writer<bigint, bigint> {
  #memset = memset();

  write(address: bigint, size: bigint): void {
    this.#memset(address, 1, size);
  }
}

/** memset for number addresses (PseudoMalloc, the family): one `BigInt(address)` per write. */
export class NumberMemset implements Writer<number, bigint> {
  #memset = memset();

  write(address: number, size: bigint): void {
    this.#memset(BigInt(address), 1, size);
  }
}

/**
 * `fill` over a buffer that may be replaced (a WebAssembly memory that grows detaches its old
 * buffer, whose length is then 0): the view is made anew only then.
 */
export class BufferFill implements Writer<number, number> {
  #bytes: Uint8Array;
  #source: () => ArrayBufferLike;

  constructor(source: () => ArrayBufferLike) {
    this.#source = source;
    this.#bytes = new Uint8Array(source());
  }

  write(address: number, size: number): void {
    let bytes = this.#bytes;
    if (bytes.byteLength === 0) bytes = this.#bytes = new Uint8Array(this.#source());
    bytes.fill(1, address, address + size);
  }
}

// --- loops ---------------------------------------------------------------------------------------
// Self-contained: they must not name anything outside their parameters (see `specialize`).

/**
 * Workload 8: `count` churn steps from step `cursor`, as `runChurn` of `_workloads.ts`, writing
 * each new block once: `writer.write(address, writeSizes[k])` (`writeSizes` holds `sizes` in the
 * writer's type).
 */
export function runChurnWritten<S, A, W>(
  peer: { malloc(size: S): A; free(address: A): unknown },
  cursor: number,
  live: A[],
  indices: Uint16Array,
  sizes: ArrayLike<S>,
  count: number,
  writer: Writer<A, W>,
  writeSizes: ArrayLike<W>,
): number {
  const mask = indices.length - 1;
  let k = cursor;
  for (let n = 0; n < count; n++) {
    const i = indices[k]!;
    peer.free(live[i]!);
    const address = peer.malloc(sizes[k]!);
    writer.write(address, writeSizes[k]!);
    live[i] = address;
    k = (k + 1) & mask;
  }
  return k;
}

/** Workload 8's floor: `count` writes of `sizes[k]` bytes at one fixed address. */
export function runWrites<A, W>(
  writer: Writer<A, W>,
  cursor: number,
  address: A,
  sizes: ArrayLike<W>,
  count: number,
): number {
  const mask = sizes.length - 1;
  let k = cursor;
  for (let n = 0; n < count; n++) {
    writer.write(address, sizes[k]!);
    k = (k + 1) & mask;
  }
  return k;
}

/** What workload 11 makes and closes. */
export interface HeapMaker<H extends { malloc(size: number): number; free(a: number): unknown }> {
  make(): H;
  close(heap: H): void;
}

/** Workload 11: `count` times, make an allocator, malloc(`size`), free it, close the allocator. */
export function runNewHeaps<H extends { malloc(size: number): number; free(a: number): unknown }>(
  maker: HeapMaker<H>,
  cursor: number,
  size: number,
  count: number,
): number {
  for (let n = 0; n < count; n++) {
    const heap = maker.make();
    heap.free(heap.malloc(size));
    maker.close(heap);
  }
  return cursor;
}
