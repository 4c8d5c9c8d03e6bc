/**
 * An {@linkcode Os} that counts the system calls made through it: every allocator wraps the `Os`
 * it is given in one, and reports the counts as `stats().systemCalls`.
 *
 * A count is deterministic where a time is not, so tests assert with it (a warm large `malloc`
 * makes no system call), and the trace tools show how many calls each strategy makes: mapping
 * every request with `mmap` costs a call per `malloc` and another per `free`, each of them
 * microseconds, where a buddy arena serves thousands of requests per `mmap`.
 *
 * Calls are counted by the C function behind them: `map`, `mapAt` and `reserve` are `mmap`;
 * `unmap` is `munmap`; `remap` is `mremap`; `adviseDontNeed` is `madvise`; `protect` is
 * `mprotect`. A call is counted when it is made, whether or not the OS grants it. `remap` on a
 * system without `mremap` makes no call and counts none.
 *
 * This file has no `Deno.*` in it.
 *
 * @module
 */

import type { Os } from "./os.ts";

/**
 * System calls made by an allocator so far, by C function.
 *
 * @example Reading them
 * ```ts
 * import { PseudoMalloc, type SystemCalls } from "@pseudo/malloc";
 *
 * using heap = new PseudoMalloc();
 * heap.free(heap.malloc(100_000));
 * const calls: SystemCalls = heap.stats().systemCalls;
 * console.log(calls.mmap >= 1); // true
 * ```
 */
export interface SystemCalls {
  /** `mmap`: mappings made (and address space reserved). */
  mmap: number;
  /** `munmap`: mappings given back. */
  munmap: number;
  /** `mremap`: mappings resized or moved. */
  mremap: number;
  /** `madvise`: pages given back while their addresses stay mapped. */
  madvise: number;
  /** `mprotect`: protection changed (guard pages). */
  mprotect: number;
}

/** Counts every system call made through the `Os` it wraps; see the file comment. */
export class CountingOs implements Os {
  /** The counts so far (live: read them, copy them to keep them). */
  readonly counts: SystemCalls = { mmap: 0, munmap: 0, mremap: 0, madvise: 0, mprotect: 0 };
  /** The `Os` that makes the calls. */
  readonly inner: Os;

  /**
   * Wraps `inner`; every call goes on to it.
   *
   * @param inner The `Os` that makes the calls.
   *
   * @example Counting the calls of a test
   * ```ts
   * import { CountingOs, libcOs } from "@pseudo/malloc";
   *
   * const os = new CountingOs(libcOs);
   * os.unmap(os.map(os.pageSize()), os.pageSize());
   * console.log(os.counts.mmap, os.counts.munmap); // 1 1
   * ```
   */
  constructor(inner: Os) {
    this.inner = inner;
  }

  /** A copy of the counts, for a stats snapshot. */
  snapshot(): SystemCalls {
    return { ...this.counts };
  }

  pageSize(): number {
    return this.inner.pageSize();
  }

  map(length: number, alignment?: number): number {
    this.counts.mmap++;
    return alignment === undefined ? this.inner.map(length) : this.inner.map(length, alignment);
  }

  mapAt(address: number, length: number): number {
    this.counts.mmap++;
    return this.inner.mapAt(address, length);
  }

  reserve(length: number): number {
    this.counts.mmap++;
    return this.inner.reserve(length);
  }

  unmap(address: number, length: number): void {
    this.counts.munmap++;
    this.inner.unmap(address, length);
  }

  remap(address: number, oldLength: number, newLength: number): number | undefined {
    let moved: number | undefined;
    try {
      moved = this.inner.remap(address, oldLength, newLength);
    } catch (error) {
      this.counts.mremap++; // made and refused
      throw error;
    }
    if (moved !== undefined) this.counts.mremap++; // undefined: no mremap here, no call made
    return moved;
  }

  adviseDontNeed(address: number, length: number): boolean {
    this.counts.madvise++;
    return this.inner.adviseDontNeed(address, length);
  }

  protect(address: number, length: number, access: "none" | "read" | "read-write"): boolean {
    this.counts.mprotect++;
    return this.inner.protect(address, length, access);
  }

  view(address: number, length: number): ArrayBuffer {
    return this.inner.view(address, length);
  }
}
