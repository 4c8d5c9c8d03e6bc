// Size checks shared by every allocator. Kept tiny so V8 inlines them into the hot paths.

import { hex } from "./errors.ts";

/**
 * The largest request any allocator accepts: 2^47 bytes (128 TiB), the user address space of
 * x86_64 and arm64 with 4-level page tables. Larger sizes can never be mapped, so they are a
 * `RangeError`; sizes below it that the OS refuses are an `OutOfMemoryError`.
 *
 * @example Beyond any mapping
 * ```ts
 * import { MAX_SIZE, PseudoMalloc } from "@pseudo/malloc";
 * import assert from "node:assert/strict";
 *
 * using heap = new PseudoMalloc();
 * assert.throws(() => heap.malloc(MAX_SIZE + 1), RangeError);
 * ```
 */
export const MAX_SIZE = 2 ** 47;

/** Throws the `TypeError`/`RangeError` that describes why `size` is not a valid byte count. */
export function throwBadSize(size: unknown, verb: string): never {
  if (typeof size !== "number") {
    throw new TypeError(
      `Cannot ${verb} ${String(size)} bytes: size must be a number, got ${typeof size}`,
    );
  }
  if (size > MAX_SIZE && Number.isInteger(size)) {
    throw new RangeError(
      `Cannot ${verb} ${size} bytes: size exceeds the largest possible mapping (2^47 bytes)`,
    );
  }
  throw new RangeError(`Cannot ${verb} ${size} bytes: size must be a non-negative integer`);
}

/** Checks that `size` is an integer in `[0, MAX_SIZE]`; throws a `TypeError`/`RangeError` otherwise. */
export function checkSize(size: number, verb: string): void {
  if (typeof size !== "number" || !(size >= 0 && size <= MAX_SIZE) || Math.floor(size) !== size) {
    throwBadSize(size, verb);
  }
}

/** Rounds `value` up to a multiple of `unit` (a power of two). Exact for all sizes up to 2^53. */
export function roundUp(value: number, unit: number): number {
  return Math.ceil(value / unit) * unit;
}

/** True when `value` is a positive integer power of two. */
export function isPowerOfTwo(value: number): boolean {
  return Number.isInteger(value) && value > 0 && 2 ** Math.round(Math.log2(value)) === value;
}

/**
 * Checks calloc's arguments and returns `count * size`; a `RangeError` when the product exceeds
 * `MAX_SIZE` (C's overflow check, with room to spare: both factors are at most 2^47).
 */
export function callocSize(count: number, size: number): number {
  checkSize(count, "allocate");
  checkSize(size, "allocate");
  const total = count * size;
  if (total > MAX_SIZE) {
    throw new RangeError(
      `Cannot allocate ${count} × ${size} bytes: the product exceeds the largest possible mapping (2^47 bytes)`,
    );
  }
  return total;
}

/**
 * The length `bytes(address, length?)` covers: `length`, or the whole `usable` size when omitted;
 * a `RangeError` naming the block when it is not a whole number from 0 to `usable`.
 */
export function viewLength(address: number, length: number | undefined, usable: number): number {
  const wanted = length ?? usable;
  if (!Number.isInteger(wanted) || wanted < 0 || wanted > usable) {
    throw new RangeError(
      `Cannot view ${wanted} bytes at ${hex(address)}: the block holds ${usable} bytes`,
    );
  }
  return wanted;
}
