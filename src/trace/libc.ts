/**
 * The C library's malloc through FFI, as an {@linkcode Allocator} for checking replays and as raw
 * bigint symbols for timing, plus a footprint probe (`mallinfo2`, glibc only). The bindings
 * themselves are in `ffi/libc_malloc.ts`.
 *
 * @module
 */

import type { Allocator, AllocatorStats } from "../allocator.ts";
import { Counters } from "../_counters.ts";
import { checkSize } from "../_size.ts";
import {
  HeapClosedError,
  hex,
  InvalidAddressError,
  InvalidFreeError,
  OutOfMemoryError,
} from "../errors.ts";
import { OP_ALLOC, OP_REALLOC, type Trace } from "./trace.ts";
import { libcMalloc, mallinfo2, type MallocFamily } from "../../ffi/libc_malloc.ts";
import type { SystemCalls } from "../../ffi/counting_os.ts";

/** libc's own system calls are out of sight here (strace counts them): not a number. */
const UNCOUNTED: SystemCalls = { mmap: NaN, munmap: NaN, mremap: NaN, madvise: NaN, mprotect: NaN };

// The bindings live in ffi/libc_malloc.ts, with the C declaration of each symbol.
export type { MallocFamily as LibcSymbols } from "../../ffi/libc_malloc.ts";

/**
 * Opens the C library once per process (shared with every other user of `ffi/libc_malloc.ts`).
 *
 * @returns The malloc family as bigint functions: Deno's symbols object itself, no wrapper.
 * @throws {Deno.errors.NotCapable} Without `--allow-ffi`.
 *
 * @example A malloc and free pair through FFI
 * ```ts
 * import { libcSymbols } from "@pseudo/malloc/trace";
 *
 * const libc = libcSymbols();
 * libc.free(libc.malloc(64n));
 * ```
 */
export function libcSymbols(): MallocFamily {
  return libcMalloc();
}

/** Bytes of each view window over native memory, and the window alignment. */
const WINDOW = 1 << 20;

/**
 * libc `malloc`, `calloc`, `realloc`, `free` and `malloc_usable_size` through FFI, behind the
 * {@linkcode Allocator} interface so the checking replay runs on it like on the family.
 *
 * It remembers its live blocks (address to requested size) so that a bad `free` or `realloc` is an
 * `InvalidFreeError`, not a crash of the process. `realloc(a, 0)` frees and returns 0 on every
 * system (macOS's own returns a new block). Memory is reached through views over 1 MiB-aligned
 * 2 MiB windows of the address space, made once per window, since a view per access would cost
 * hundreds of nanoseconds and allocate from libc's own heap. `stats()` knows the live counters but
 * not how much memory libc took from the OS for these blocks (the process shares its heap):
 * `mappedBytes` and `peakMappedBytes` are NaN; see {@linkcode measureLibcFootprint}.
 *
 * @example Tagging libc memory
 * ```ts
 * import { LibcAllocator } from "@pseudo/malloc/trace";
 *
 * using libc = new LibcAllocator();
 * const address = libc.malloc(100);
 * libc.bytes(address, 100).fill(7);
 * libc.free(address);
 * ```
 */
export class LibcAllocator implements Allocator {
  #libc: MallocFamily;
  #live = new Map<number, number>();
  #windows = new Map<number, ArrayBuffer>();
  #counters = new Counters();
  #closed = false;

  /**
   * Opens the C library (once per process).
   *
   * @throws {Deno.errors.NotCapable} Without `--allow-ffi`.
   */
  constructor() {
    this.#libc = libcSymbols();
  }

  /**
   * `malloc(size)`.
   *
   * @param size Bytes.
   * @returns The address.
   * @throws {OutOfMemoryError} When libc returns NULL.
   */
  malloc(size: number): number {
    this.#open("malloc");
    checkSize(size, "allocate");
    const address = Number(this.#libc.malloc(BigInt(size)));
    if (address === 0) throw new OutOfMemoryError(`libc malloc(${size}) returned NULL`, 12);
    this.#note(address, size);
    return address;
  }

  /**
   * `calloc(count, size)`.
   *
   * @param count Elements.
   * @param size Bytes per element.
   * @returns The address.
   * @throws {OutOfMemoryError} When libc returns NULL.
   */
  calloc(count: number, size: number): number {
    this.#open("calloc");
    checkSize(count, "allocate");
    checkSize(size, "allocate");
    const address = Number(this.#libc.calloc(BigInt(count), BigInt(size)));
    if (address === 0) {
      throw new OutOfMemoryError(`libc calloc(${count}, ${size}) returned NULL`, 12);
    }
    this.#note(address, count * size);
    return address;
  }

  /**
   * `realloc(address, size)`; `realloc(a, 0)` frees and returns 0.
   *
   * @param address A live block or 0.
   * @param size Bytes.
   * @returns The new address, or 0 for size 0.
   * @throws {InvalidFreeError} When `address` is not a live block of this allocator.
   * @throws {OutOfMemoryError} When libc returns NULL (the block is then untouched).
   */
  realloc(address: number, size: number): number {
    this.#open("realloc");
    if (address === 0) return this.malloc(size);
    checkSize(size, "reallocate");
    const old = this.#sizeOf(address, "reallocate");
    if (size === 0) {
      this.free(address);
      return 0;
    }
    const moved = Number(this.#libc.realloc(BigInt(address), BigInt(size)));
    if (moved === 0) {
      throw new OutOfMemoryError(`libc realloc(${hex(address)}, ${size}) returned NULL`, 12);
    }
    this.#live.delete(address);
    this.#live.set(moved, size);
    this.#counters.liveBytes += size - old;
    if (moved !== address) {
      this.#counters.totalAllocations++;
      this.#counters.totalFrees++;
    }
    this.#counters.notePeaks(NaN);
    return moved;
  }

  /**
   * `free(address)`; `free(0)` does nothing.
   *
   * @param address A live block or 0.
   * @throws {InvalidFreeError} When `address` is not a live block of this allocator.
   */
  free(address: number): void {
    this.#open("free");
    if (address === 0) return;
    const size = this.#sizeOf(address, "free");
    this.#libc.free(BigInt(address));
    this.#live.delete(address);
    this.#counters.freed(size);
  }

  /**
   * `malloc_usable_size(address)`.
   *
   * @param address A live block.
   * @returns Its usable size.
   * @throws {InvalidAddressError} When `address` is not a live block of this allocator.
   */
  usableSize(address: number): number {
    this.#open("usableSize");
    if (!this.#live.has(address)) {
      throw new InvalidAddressError(`Cannot size ${hex(address)}: not a live libc block`, address);
    }
    return Number(this.#libc.usableSize(BigInt(address)));
  }

  /**
   * A view over a live block.
   *
   * @param address A live block.
   * @param length Bytes; by default the usable size.
   * @returns The view.
   * @throws {InvalidAddressError} When `address` is not a live block of this allocator.
   */
  bytes(address: number, length?: number): Uint8Array {
    const usable = this.usableSize(address);
    const n = length ?? usable;
    if (!(n >= 0 && n <= usable)) {
      throw new RangeError(`Cannot view ${n} bytes of a ${usable}-byte libc block`);
    }
    if (n === 0) return new Uint8Array(0);
    const key = Math.floor(address / WINDOW);
    const offset = address - key * WINDOW;
    if (offset + n > 2 * WINDOW) {
      const pointer = Deno.UnsafePointer.create(BigInt(address))!;
      return new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(pointer, n));
    }
    let window = this.#windows.get(key);
    if (window === undefined) {
      const pointer = Deno.UnsafePointer.create(BigInt(key * WINDOW))!;
      window = Deno.UnsafePointerView.getArrayBuffer(pointer, 2 * WINDOW);
      this.#windows.set(key, window);
    }
    return new Uint8Array(window, offset, n);
  }

  /**
   * The live counters; `mappedBytes` and `peakMappedBytes` are NaN (unknown).
   *
   * @returns The counters.
   */
  stats(): AllocatorStats {
    this.#open("stats");
    let allocated = 0;
    for (const address of this.#live.keys()) {
      allocated += Number(this.#libc.usableSize(BigInt(address)));
    }
    return { ...this.#counters.snapshot(NaN, allocated, UNCOUNTED), peakMappedBytes: NaN };
  }

  /** Nothing to check beyond what every call checks. */
  validate(): void {
    this.#open("validate");
  }

  /** Frees every live block. */
  close(): void {
    if (this.#closed) return;
    for (const address of this.#live.keys()) this.#libc.free(BigInt(address));
    this.#live.clear();
    this.#windows.clear();
    this.#closed = true;
  }

  /** Same as `close()`. */
  [Symbol.dispose](): void {
    this.close();
  }

  #open(call: string): void {
    if (this.#closed) throw new HeapClosedError(call);
  }

  #note(address: number, size: number): void {
    this.#live.set(address, size);
    this.#counters.allocated(size);
    this.#counters.notePeaks(NaN);
  }

  #sizeOf(address: number, verb: string): number {
    const size = this.#live.get(address);
    if (size === undefined) {
      throw new InvalidFreeError(`Cannot ${verb} ${hex(address)}: not a live libc block`, address);
    }
    return size;
  }
}

/**
 * libc's footprint for a trace: how much more memory its heap held at the fullest moment of a
 * replay than before it.
 *
 * @example Reading it
 * ```ts
 * import type { LibcFootprint } from "@pseudo/malloc/trace";
 *
 * const show = (f: LibcFootprint) => `${f.peakBytes} bytes over ${f.samples} samples`;
 * ```
 */
export interface LibcFootprint {
  /** The estimate: the larger of `sampledBytes` and `chunkBytes`. */
  peakBytes: number;
  /** The largest growth of the process heap sampled with `mallinfo2`. */
  sampledBytes: number;
  /**
   * A floor: the bytes of glibc chunks behind the blocks live at the trace's peak (each request
   * plus its 8-byte header, rounded up to 16 bytes, at least 32), which no sample can be below
   * unless other memory of the process was freed meanwhile.
   */
  chunkBytes: number;
  /** How many times `mallinfo2` was sampled. */
  samples: number;
}

/** Bytes of the glibc chunk that holds a `size`-byte request, at least. */
function chunkSize(size: number): number {
  return Math.max(32, Math.ceil((size + 8) / 16) * 16);
}

/**
 * Estimates libc's footprint over a trace: replays it with raw FFI calls (no views, no checks),
 * after `malloc_trim(0)`, and samples glibc's `mallinfo2()` about 64 times and right after the
 * operation that reaches the trace's live peak. A sample's footprint is the growth since the start
 * of `arena + hblkhd` (heap bytes plus mmap'd chunks), or of `uordblks + hblkhd` (bytes in use)
 * when that is larger (the trace may reuse free memory the process had before). The estimate is
 * the largest sample, but never less than the chunk bytes of the blocks live at the peak.
 *
 * Approximate: the heap is the process's, so Deno's own allocations and frees (the garbage
 * collector releasing buffers, other threads) move the samples both ways.
 *
 * @param trace The trace.
 * @returns The estimate, or `undefined` where `mallinfo2` does not exist (macOS, musl, old glibc).
 *
 * @example Utilization of libc
 * ```ts
 * import { generateTrace, measureLibcFootprint } from "@pseudo/malloc/trace";
 *
 * const trace = generateTrace("churn", { scale: 0.05 });
 * const footprint = measureLibcFootprint(trace);
 * if (footprint) console.log(trace.peakLiveBytes / footprint.peakBytes);
 * ```
 */
export function measureLibcFootprint(trace: Trace): LibcFootprint | undefined {
  const libc = libcMalloc();
  if (libc.mallinfo2 === null) return undefined;
  const { malloc, realloc, free } = libc;
  const read = () => {
    const { arena, hblkhd, uordblks } = mallinfo2()!;
    return { held: arena + hblkhd, used: uordblks + hblkhd };
  };
  const sizes = Array.from(trace.sizes, (size) => BigInt(size));
  const slots: bigint[] = new Array(trace.idLimit).fill(0n);
  const chunks = new Float64Array(trace.idLimit);
  const every = Math.max(1, Math.ceil(trace.length / 64));
  let chunkBytes = 0;
  let chunkBytesAtPeak = 0;
  libc.mallocTrim?.(0n);
  const base = read();
  let sampled = 0;
  let samples = 0;
  for (let i = 0; i < trace.length; i++) {
    const id = trace.ids[i]!;
    const kind = trace.kinds[i];
    const size = trace.sizes[i]!;
    if (kind === OP_ALLOC) {
      slots[id] = malloc(sizes[i]!);
      chunks[id] = chunkSize(size);
      chunkBytes += chunks[id]!;
    } else if (kind === OP_REALLOC) {
      slots[id] = realloc(slots[id]!, sizes[i]!);
      chunkBytes -= chunks[id]!;
      chunks[id] = size === 0 ? 0 : chunkSize(size);
      chunkBytes += chunks[id]!;
    } else if (id >= 0) {
      free(slots[id]!);
      chunkBytes -= chunks[id]!;
      chunks[id] = 0;
    }
    if (i === trace.peakOp) chunkBytesAtPeak = chunkBytes;
    if (i === trace.peakOp || i % every === every - 1) {
      const now = read();
      sampled = Math.max(sampled, now.held - base.held, now.used - base.used);
      samples++;
    }
  }
  for (let id = 0; id < chunks.length; id++) if (chunks[id]! > 0) free(slots[id]!);
  return {
    peakBytes: Math.max(sampled, chunkBytesAtPeak),
    sampledBytes: sampled,
    chunkBytes: chunkBytesAtPeak,
    samples,
  };
}
