/**
 * The OS contract: every request the allocators make of the operating system, in one interface.
 *
 * `ffi/libc.ts` implements it over the C library (`libcOs` there, the default of every
 * allocator); a test passes its own, for example one that fails a chosen call, to see what an
 * allocator does when the OS says no. Nothing else in `src/` maps or unmaps memory, so an
 * allocator given an `Os` makes every system call through it.
 *
 * The rules an implementation keeps (the allocators rely on them):
 * - Addresses and lengths are plain numbers, exact below 2^53; lengths are whole pages.
 * - `map`, `mapAt` and `reserve` return zeroed, readable and writable memory. When they cannot,
 *   they throw `OutOfMemoryError` (with the OS's `errno`) and leave nothing mapped.
 * - `mapAt` maps exactly at the address or returns 0; it never replaces a mapping.
 * - `unmap` throws `OsError` when the OS refuses (Linux: ENOMEM when splitting a
 *   mapping would pass `vm.max_map_count`); the memory is then still mapped and intact.
 * - `remap` returns `undefined` where the OS cannot resize in place (the caller copies), and throws
 *   `OutOfMemoryError` when it refuses; the old mapping is then untouched.
 * - `adviseDontNeed` and `protect` report failure by returning false: nothing else changes.
 *
 * This file has no `Deno.*` in it: the pure algorithms import it without permissions.
 *
 * @module
 */

/** The system calls an {@linkcode Os} makes, as the names a fault-injecting test counts. */
export type OsCall =
  | "map"
  | "mapAt"
  | "reserve"
  | "unmap"
  | "remap"
  | "adviseDontNeed"
  | "protect";

/** What the allocators ask of the operating system; see the file comment for the rules. */
export interface Os {
  /** The size of a memory page in bytes, e.g. 4096. */
  pageSize(): number;
  /**
   * Maps `length` bytes of fresh zeroed memory at an address that is a multiple of `alignment`
   * (the page size by default; a larger one costs no memory beyond `length`).
   */
  map(length: number, alignment?: number): number;
  /** Maps `length` bytes exactly at `address` when that range is free, else returns 0. */
  mapAt(address: number, length: number): number;
  /** Maps address space whose pages cost memory only once written (`MAP_NORESERVE`). */
  reserve(length: number): number;
  /** Unmaps `length` bytes at `address`; every view over them is dead afterwards. */
  unmap(address: number, length: number): void;
  /** Resizes a mapping, moving it if needed, without copying; `undefined` where unsupported. */
  remap(address: number, oldLength: number, newLength: number): number | undefined;
  /** Tells the OS the pages are not needed: they read as zero afterwards. */
  adviseDontNeed(address: number, length: number): boolean;
  /** Changes the protection of whole pages; `"none"` makes any touch fault (a guard page). */
  protect(address: number, length: number, access: "none" | "read" | "read-write"): boolean;
  /** An `ArrayBuffer` over `length` bytes of mapped memory at `address`. */
  view(address: number, length: number): ArrayBuffer;
}
