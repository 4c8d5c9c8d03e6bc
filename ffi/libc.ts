/**
 * The OS layer: the only code of `@pseudo/malloc` that talks to the operating system.
 *
 * It binds the C library's `mmap`, `munmap`, `mremap`, `madvise`, `mprotect` and `sysconf` with
 * `Deno.dlopen`, and offers them as plain functions over numbers.
 *
 * Contract:
 * - Addresses and lengths are plain numbers (exact below 2^53). 64-bit arguments cross FFI as
 *   bigint, which keeps Deno's fast call path.
 * - {@linkcode mapMemory} returns the address of fresh, zeroed, readable and writable memory,
 *   aligned to at least a page. Every failure throws {@linkcode OutOfMemoryError} carrying the
 *   OS error number; nothing is left mapped after a failure.
 * - {@linkcode mapMemoryAt} maps exactly at a given address or returns 0; it never replaces a
 *   mapping (no `MAP_FIXED`). {@linkcode reserveMemory} maps address space whose pages cost memory
 *   only once written (`MAP_NORESERVE`).
 * - {@linkcode unmapMemory} throws {@linkcode OsError} when `munmap` fails; the memory is then
 *   still mapped.
 * - {@linkcode remapMemory} grows or shrinks a mapping without copying where the OS can (Linux
 *   `mremap`), and returns `undefined` where it cannot (then the caller copies). When it fails, the
 *   old mapping is untouched.
 * - {@linkcode libcOs} gathers these functions as the {@linkcode Os} every allocator uses by
 *   default (`ffi/os.ts` states the contract).
 * - The library is opened on first use. Without `--allow-ffi` the first call throws
 *   `Deno.errors.NotCapable` with a message that names the flag.
 *
 * @module
 */

import { OsError, OutOfMemoryError } from "../src/errors.ts";
import { constantsFor, type OsConstants } from "./_constants.ts";
import type { Os } from "./os.ts";

const SYMBOLS = {
  mmap: { parameters: ["usize", "usize", "i32", "i32", "i32", "i64"], result: "usize" },
  munmap: { parameters: ["usize", "usize"], result: "i32" },
  sysconf: { parameters: ["i32"], result: "i64" },
  mprotect: { parameters: ["usize", "usize", "i32"], result: "i32", optional: true },
  madvise: { parameters: ["usize", "usize", "i32"], result: "i32", optional: true },
  mremap: { parameters: ["usize", "usize", "usize", "i32"], result: "usize", optional: true },
  errnoLocation: { parameters: [], result: "pointer" },
} as const;

type Symbols = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** `(void *) -1`, the failure result of `mmap` and `mremap`, as an unsigned 64-bit value. */
const MAP_FAILED = 0xffff_ffff_ffff_ffffn;

let libc: Symbols | undefined;
let os: OsConstants | undefined;
let cachedPageSize = 0;

/** Explains a missing `--allow-ffi` in one sentence, keeping Deno's error as the cause. */
function permissionError(cause: unknown): Error {
  return new Deno.errors.NotCapable(
    "@pseudo/malloc maps native memory through FFI: run Deno with the plain --allow-ffi flag " +
      "(a path-scoped --allow-ffi=<path> is not enough for the pointer helpers)",
    { cause },
  );
}

function open(): Symbols {
  if (libc) return libc;
  os = constantsFor(Deno.build.os);
  const symbols = { ...SYMBOLS, errnoLocation: { ...SYMBOLS.errnoLocation, name: os.errnoSymbol } };
  try {
    libc = Deno.dlopen(os.library, symbols).symbols as Symbols;
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
      throw permissionError(error);
    }
    throw error;
  }
  return libc;
}

function constants(): OsConstants {
  open();
  return os!;
}

/** The calling thread's `errno`; read only right after a failed call. */
function errno(): number {
  const location = open().errnoLocation();
  return location === null ? 0 : new Deno.UnsafePointerView(location).getInt32();
}

/** `errno`'s name and number, as messages show them: "ENOMEM: not enough memory (errno 12)". */
function describe(code: number): string {
  return `${constants().errnoNames[code] ?? "unknown error"} (errno ${code})`;
}

function failure(what: string): OutOfMemoryError {
  const code = errno();
  return new OutOfMemoryError(`${what}: ${describe(code)}`, code);
}

/**
 * The size of a memory page in bytes (`sysconf(_SC_PAGESIZE)`), read once.
 *
 * @returns The page size, e.g. 4096.
 */
export function pageSize(): number {
  if (cachedPageSize === 0) cachedPageSize = Number(open().sysconf(constants().SC_PAGESIZE));
  return cachedPageSize;
}

/**
 * Maps `length` bytes exactly, returning the address or throwing with the OS error. `hint` is
 * passed to `mmap` as its address argument: a wish, never `MAP_FIXED`, so nothing already mapped is
 * ever replaced.
 */
function mapExactly(length: number, hint = 0, flags = 0): number {
  const { PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_ANONYMOUS } = constants();
  const result = open().mmap(
    BigInt(hint),
    BigInt(length),
    PROT_READ | PROT_WRITE,
    MAP_PRIVATE | MAP_ANONYMOUS | flags,
    -1,
    0n,
  );
  if (result === MAP_FAILED) throw failure(`Cannot map ${length} bytes`);
  return Number(result);
}

/**
 * Maps `length` bytes of fresh zeroed memory, readable and writable, at an address that is a
 * multiple of `alignment`.
 *
 * An alignment above the page size is reached by mapping `length + alignment` bytes and unmapping
 * the unaligned head and the tail, so no memory stays mapped beyond `length`.
 *
 * @param length Bytes to map, a multiple of the page size.
 * @param alignment A power of two; the page size by default.
 * @returns The address of the mapping.
 * @throws {OutOfMemoryError} When the OS refuses; `errno` tells why.
 */
export function mapMemory(length: number, alignment: number = pageSize()): number {
  if (alignment <= pageSize()) return mapExactly(length);
  const raw = mapExactly(length + alignment);
  const start = Math.ceil(raw / alignment) * alignment;
  const tail = raw + alignment - start;
  let end = raw + length + alignment; // the end of what is still mapped
  try {
    if (tail > 0) {
      unmapMemory(start + length, tail);
      end = start + length;
    }
    if (start > raw) unmapMemory(raw, start - raw);
  } catch (error) {
    // Trimming splits the mapping, which can pass the kernel's limit on mappings. Unmapping all
    // that is left in one call splits nothing; then no memory could be had.
    const released = open().munmap(BigInt(raw), BigInt(end - raw)) === 0;
    const code = (error as OsError).errno;
    const left = released ? "" : ` (and ${end - raw} bytes at ${raw} stay mapped)`;
    throw new OutOfMemoryError(
      `Cannot map ${length} bytes aligned to ${alignment}: ${(error as Error).message}${left}`,
      code,
    );
  }
  return start;
}

/**
 * Maps `length` bytes of fresh zeroed memory exactly at `address`, if that range is free. The
 * address is only a hint to `mmap` (not `MAP_FIXED`): when something already lives there, or the
 * OS places mappings its own way, the mapping it made elsewhere is unmapped again and the result is
 * 0. Nothing mapped is ever replaced.
 *
 * @param address Where the mapping should start: a multiple of the page size, above 0.
 * @param length Bytes to map, a multiple of the page size.
 * @returns `address`, or 0 when the range was not free.
 * @throws {OutOfMemoryError} When the OS refuses to map at all; `errno` tells why.
 */
export function mapMemoryAt(address: number, length: number): number {
  const mapped = mapExactly(length, address);
  if (mapped === address) return address;
  unmapMemory(mapped, length);
  return 0;
}

/**
 * Reserves `length` bytes of zeroed, readable and writable address space: a page costs memory only
 * once it is written (`MAP_NORESERVE`; reading an untouched page reads zeros without committing
 * it). For large sparse tables.
 *
 * @param length Bytes to reserve, a multiple of the page size.
 * @returns The address of the mapping.
 * @throws {OutOfMemoryError} When the OS refuses; `errno` tells why.
 */
export function reserveMemory(length: number): number {
  return mapExactly(length, 0, constants().MAP_NORESERVE);
}

/**
 * Unmaps `length` bytes at `address`. Every view over them is dead afterwards: touching one kills
 * the process.
 *
 * @param address The start of a mapping (page-aligned).
 * @param length Bytes to unmap.
 * @throws {OsError} When `munmap` fails (the memory is then still mapped).
 */
export function unmapMemory(address: number, length: number): void {
  if (open().munmap(BigInt(address), BigInt(length)) !== 0) {
    const code = errno();
    throw new OsError(
      "munmap",
      code,
      `Cannot unmap ${length} bytes at 0x${address.toString(16)}: munmap failed with ${
        describe(code)
      }`,
    );
  }
}

/**
 * Resizes the mapping at `address` from `oldLength` to `newLength` bytes, moving it if needed,
 * without copying (Linux `mremap` with `MREMAP_MAYMOVE`).
 *
 * @param address The start of a mapping.
 * @param oldLength Its current length.
 * @param newLength The wanted length.
 * @returns The new address, or `undefined` where the OS has no `mremap` (the caller then maps,
 *   copies and unmaps).
 * @throws {OutOfMemoryError} When the OS refuses; the old mapping is then untouched.
 */
export function remapMemory(
  address: number,
  oldLength: number,
  newLength: number,
): number | undefined {
  const mremap = open().mremap;
  if (mremap === null) return undefined;
  const result = mremap(
    BigInt(address),
    BigInt(oldLength),
    BigInt(newLength),
    constants().MREMAP_MAYMOVE,
  );
  if (result === MAP_FAILED) throw failure(`Cannot remap ${oldLength} to ${newLength} bytes`);
  return Number(result);
}

/**
 * Tells the OS that the pages are not needed (`madvise(MADV_DONTNEED)`): on Linux they read as zero
 * afterwards and stop counting as resident. A no-op where `madvise` is missing.
 *
 * @param address Page-aligned start.
 * @param length Bytes, a multiple of the page size.
 * @returns True when the advice was taken.
 */
export function adviseDontNeed(address: number, length: number): boolean {
  const madvise = open().madvise;
  if (madvise === null) return false;
  return madvise(BigInt(address), BigInt(length), constants().MADV_DONTNEED) === 0;
}

/**
 * Changes the protection of whole pages (`mprotect`): `"none"` makes any touch fault, which is how
 * guard pages are made.
 *
 * @param address Page-aligned start.
 * @param length Bytes, a multiple of the page size.
 * @param access `"none"`, `"read"` or `"read-write"`.
 * @returns True when the protection changed.
 */
export function protectMemory(
  address: number,
  length: number,
  access: "none" | "read" | "read-write",
): boolean {
  const mprotect = open().mprotect;
  if (mprotect === null) return false;
  const { PROT_READ, PROT_WRITE } = constants();
  const prot = access === "none" ? 0 : access === "read" ? PROT_READ : PROT_READ | PROT_WRITE;
  return mprotect(BigInt(address), BigInt(length), prot) === 0;
}

/**
 * An `ArrayBuffer` over `length` bytes of native memory at `address`. Make one per mapping and take
 * `subarray`s of it: creating a buffer costs far more than slicing one.
 *
 * @param address Start of the memory.
 * @param length Bytes the buffer covers.
 * @returns A buffer aliasing the native memory.
 */
export function memoryView(address: number, length: number): ArrayBuffer {
  open();
  return Deno.UnsafePointerView.getArrayBuffer(pointerFrom(address)!, length);
}

/**
 * The `Deno.PointerValue` for an address, for FFI `"pointer"` parameters; `null` for 0.
 *
 * @param address A native address.
 * @returns The pointer object.
 */
export function pointerFrom(address: number): Deno.PointerValue {
  open();
  return Deno.UnsafePointer.create(BigInt(address));
}

/**
 * The numeric address of a pointer (0 for `null`).
 *
 * @param pointer A pointer from FFI.
 * @returns Its address as a number.
 */
export function addressFrom(pointer: Deno.PointerValue): number {
  open();
  return Number(Deno.UnsafePointer.value(pointer));
}

/**
 * The C library as the {@linkcode Os} of the allocators: their default. Each method is the
 * function of this file with the same meaning.
 *
 * @example Passing it explicitly
 * ```ts
 * import { libcOs, PseudoMalloc } from "@pseudo/malloc";
 *
 * using heap = new PseudoMalloc({ os: libcOs });
 * heap.free(heap.malloc(10));
 * ```
 */
export const libcOs: Os = {
  pageSize,
  map: mapMemory,
  mapAt: mapMemoryAt,
  reserve: reserveMemory,
  unmap: unmapMemory,
  remap: remapMemory,
  adviseDontNeed,
  protect: protectMemory,
  view: memoryView,
};
