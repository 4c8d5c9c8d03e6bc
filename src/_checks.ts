// Checks every allocator makes the same way: addresses that are not numbers, the verbs whose misuse
// is a bad free, and C's edge cases of realloc. One copy here, so that every allocator of the
// package answers the same misuse with the same error and message.

import type { Allocator } from "./allocator.ts";
import { HeapClosedError } from "./errors.ts";
import { checkSize } from "./_size.ts";

/** True for the verbs whose misuse is an InvalidFreeError rather than an InvalidAddressError. */
export function isFreeing(verb: string): boolean {
  return verb === "free" || verb === "reallocate";
}

/** The `TypeError` for an address that is not a number. */
export function notAnAddress(address: unknown, verb: string): TypeError {
  return new TypeError(
    `Cannot ${verb} ${String(address)}: an address must be a number, got ${typeof address}`,
  );
}

/** Throws {@linkcode HeapClosedError} for `operation` when `closed`. */
export function checkOpen(closed: boolean, operation: string): void {
  if (closed) throw new HeapClosedError(operation);
}

/**
 * C's edge cases of `realloc`, in C's order: on a closed heap it throws; `realloc(0, n)` is
 * `malloc(n)`; an invalid size throws (before anything is freed); `realloc(a, 0)` frees `a` and
 * gives 0; an address that is not a number throws. Returns the result when one of these decided
 * the call, or -1 when the allocator resizes a live block itself (`address` a number, `size` > 0).
 *
 * Example: `reallocEdge(heap, false, 0, 24)` is `heap.malloc(24)`; `reallocEdge(heap, false, a,
 * 24)` is -1.
 */
export function reallocEdge(
  allocator: Allocator,
  closed: boolean,
  address: number,
  size: number,
): number {
  if (closed) throw new HeapClosedError("realloc");
  if (address === 0) return allocator.malloc(size);
  checkSize(size, "reallocate");
  if (size === 0) {
    allocator.free(address);
    return 0;
  }
  if (typeof address !== "number") throw notAnAddress(address, "reallocate");
  return -1;
}
