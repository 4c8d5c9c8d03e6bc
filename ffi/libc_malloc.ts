/**
 * The C library's own allocator, bound once: `malloc`, `calloc`, `realloc`, `free`, the usable
 * size, glibc's heap statistics, and the few other C functions that the benchmarks and the trace
 * replayer call directly (`memcpy`, `qsort`, a raw `mmap`/`munmap` pair).
 *
 * None of the allocators of `@pseudo/malloc` uses these: they reach the OS through the `Os` of
 * `./os.ts`, which `./libc.ts` implements. These are the *peers* the allocators are measured
 * against, and the C functions a benchmark calls the way a C program would: libc malloc in
 * `bench/alloc_bench.ts`, `bench/alloc_count.ts`, `bench/binarytrees.ts` and
 * `bench/c_allocator_bench.ts`, and in the trace replayer's `LibcAllocator`, `timeLibcReplay` and
 * `measureLibcFootprint`.
 *
 * Contract:
 * - {@linkcode libcMalloc} returns Deno's own symbols object, with no wrapper: calling
 *   `libc.malloc(64n)` costs one FFI call and nothing more.
 * - Every 64-bit parameter and result is `usize` (`i64` for `off_t`), so it crosses as a bigint:
 *   that is Deno's fast call path. Give bigints (`malloc(64n)`, `free(BigInt(address))`); a number
 *   where a bigint is expected fails to type-check, and would drop to the slow path (about 10x
 *   slower). Results come back as bigints; `Number(result)` is exact below 2^53.
 * - Addresses are returned as the C function returns them: `malloc` gives 0n for NULL, the raw
 *   `mmap` gives `MAP_FAILED` (2^64 - 1). Nothing is checked here; the callers check.
 * - The library is the one `./_constants.ts` names for `Deno.build.os` (glibc's `libc.so.6` on
 *   Linux, `libSystem` on macOS), opened on first use and then shared by every caller in the
 *   process. Optional symbols (glibc's `mallinfo2` and `malloc_trim`) are `null` where the library
 *   lacks them.
 * - Without `--allow-ffi` the first call throws Deno's `NotCapable`, which names the flag.
 *
 * @module
 */

import { constantsFor } from "./_constants.ts";

const darwin = Deno.build.os === "darwin";

/** Fields of glibc's `struct mallinfo2`: ten `size_t`, in this order. */
const MALLINFO2_FIELDS = [
  "arena",
  "ordblks",
  "smblks",
  "hblks",
  "hblkhd",
  "usmblks",
  "fsmblks",
  "uordblks",
  "fordblks",
  "keepcost",
] as const;

/**
 * The bound symbols, each under the C declaration it binds. `void *` and `size_t` are `usize`;
 * `const void *` arguments that are JavaScript memory are `buffer`.
 */
const SYMBOLS = {
  // void *malloc(size_t size);
  malloc: { parameters: ["usize"], result: "usize" },
  // void *calloc(size_t count, size_t size);
  calloc: { parameters: ["usize", "usize"], result: "usize" },
  // void *realloc(void *ptr, size_t size);
  realloc: { parameters: ["usize", "usize"], result: "usize" },
  // void free(void *ptr);
  free: { parameters: ["usize"], result: "void" },
  // size_t malloc_usable_size(void *ptr);        (glibc)
  // size_t malloc_size(const void *ptr);         (macOS)
  usableSize: {
    name: darwin ? "malloc_size" : "malloc_usable_size",
    parameters: ["usize"],
    result: "usize",
  },
  // struct mallinfo2 mallinfo2(void);            (glibc 2.33 and later; by value: ten size_t)
  mallinfo2: {
    parameters: [],
    result: { struct: MALLINFO2_FIELDS.map(() => "usize") as "usize"[] },
    optional: true,
  },
  // int malloc_trim(size_t pad);                 (glibc)
  mallocTrim: { name: "malloc_trim", parameters: ["usize"], result: "i32", optional: true },
  // void *memcpy(void *dest, const void *src, size_t n);   into native memory, from a buffer
  memcpyIn: { name: "memcpy", parameters: ["usize", "buffer", "usize"], result: "usize" },
  // void *memcpy(void *dest, const void *src, size_t n);   into a buffer, from native memory
  memcpyOut: { name: "memcpy", parameters: ["buffer", "usize", "usize"], result: "usize" },
  // void qsort(void *base, size_t nmemb, size_t size,
  //            int (*compar)(const void *, const void *));
  qsort: { parameters: ["buffer", "usize", "usize", "pointer"], result: "void" },
  // void *mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset);
  mmap: { parameters: ["usize", "usize", "i32", "i32", "i32", "i64"], result: "usize" },
  // int munmap(void *addr, size_t length);
  munmap: { parameters: ["usize", "usize"], result: "i32" },
} as const;

/**
 * Every symbol of this module, as Deno binds it: bigint in and out for `usize`, `null` for an
 * optional symbol the library lacks.
 */
export type LibcMalloc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/**
 * libc's malloc family with bigint sizes and addresses, which is Deno's fast FFI call path.
 *
 * @example Calling libc malloc directly
 * ```ts
 * import { libcSymbols, type LibcSymbols } from "@pseudo/malloc/trace";
 *
 * const libc: LibcSymbols = libcSymbols();
 * const address = libc.malloc(100n);
 * console.log(libc.usableSize(address) >= 100n);
 * libc.free(address);
 * ```
 */
export interface MallocFamily {
  /**
   * `void *malloc(size_t size)`.
   *
   * @param size Bytes.
   * @returns The address, or 0n (NULL) when libc has no memory.
   */
  malloc(size: bigint): bigint;
  /**
   * `void *calloc(size_t count, size_t size)`: zeroed memory.
   *
   * @param count Elements.
   * @param size Bytes per element.
   * @returns The address, or 0n (NULL).
   */
  calloc(count: bigint, size: bigint): bigint;
  /**
   * `void *realloc(void *ptr, size_t size)`.
   *
   * @param address A live block, or 0n.
   * @param size Bytes.
   * @returns The new address, or 0n (NULL: the block is then untouched).
   */
  realloc(address: bigint, size: bigint): bigint;
  /**
   * `void free(void *ptr)`.
   *
   * @param address A live block, or 0n.
   */
  free(address: bigint): void;
  /**
   * `size_t malloc_usable_size(void *ptr)` (`malloc_size` on macOS).
   *
   * @param address A live block.
   * @returns The bytes the block can hold.
   */
  usableSize(address: bigint): bigint;
}

let library: Deno.DynamicLibrary<typeof SYMBOLS> | undefined;

/**
 * The C library's symbols, opened on the first call and shared afterwards.
 *
 * @returns Deno's symbols object itself (no wrapper).
 * @throws {Deno.errors.NotCapable} Without `--allow-ffi`.
 * @throws {Error} On a system without a supported C library (not Linux or macOS).
 *
 * @example A malloc and free pair on the fast call path
 * ```ts
 * import { libcMalloc } from "./libc_malloc.ts";
 *
 * const libc = libcMalloc();
 * libc.free(libc.malloc(64n));
 * ```
 */
export function libcMalloc(): LibcMalloc {
  library ??= Deno.dlopen(constantsFor(Deno.build.os).library, SYMBOLS);
  return library.symbols;
}

/**
 * Closes the library if it is open; the next {@linkcode libcMalloc} opens it again. Symbols taken
 * before must not be called afterwards.
 *
 * @example Closing at the end of a program
 * ```ts
 * import { closeLibcMalloc, libcMalloc } from "./libc_malloc.ts";
 *
 * libcMalloc().free(0n);
 * closeLibcMalloc();
 * ```
 */
export function closeLibcMalloc(): void {
  library?.close();
  library = undefined;
}

/** glibc's heap statistics (`struct mallinfo2`), in bytes or counts. */
export type Mallinfo2 = Record<(typeof MALLINFO2_FIELDS)[number], number>;

/**
 * Reads glibc's heap statistics: `arena` (bytes of the main heap taken from the OS with `sbrk`),
 * `hblkhd` (bytes of chunks mapped with `mmap`), `uordblks` (bytes in allocated chunks), and the
 * rest of `struct mallinfo2`.
 *
 * @returns The statistics, or `undefined` where `mallinfo2` does not exist (macOS, musl, glibc
 *   before 2.33).
 *
 * @example The bytes libc's heap holds now
 * ```ts
 * import { mallinfo2 } from "./libc_malloc.ts";
 *
 * const info = mallinfo2();
 * if (info) console.log(info.arena + info.hblkhd);
 * ```
 */
export function mallinfo2(): Mallinfo2 | undefined {
  const read = libcMalloc().mallinfo2;
  if (read === null) return undefined;
  const raw = read();
  const fields = new BigUint64Array(raw.buffer, raw.byteOffset, MALLINFO2_FIELDS.length);
  const info = {} as Mallinfo2;
  MALLINFO2_FIELDS.forEach((name, index) => info[name] = Number(fields[index]!));
  return info;
}

/**
 * The `prot` and `flags` of an anonymous private read-write mapping, for the raw `mmap` of
 * {@linkcode libcMalloc} (the constants of `./_constants.ts` for this system).
 *
 * @returns `PROT_READ | PROT_WRITE` and `MAP_PRIVATE | MAP_ANONYMOUS`.
 *
 * @example Mapping and unmapping one page without the OS layer's checks
 * ```ts
 * import { anonymousMapping, libcMalloc } from "./libc_malloc.ts";
 *
 * const libc = libcMalloc();
 * const { protection, flags } = anonymousMapping();
 * const address = libc.mmap(0n, 4096n, protection, flags, -1, 0n);
 * libc.munmap(address, 4096n);
 * ```
 */
export function anonymousMapping(): { protection: number; flags: number } {
  const os = constantsFor(Deno.build.os);
  return { protection: os.PROT_READ | os.PROT_WRITE, flags: os.MAP_PRIVATE | os.MAP_ANONYMOUS };
}
