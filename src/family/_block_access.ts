// Interior addresses for the allocator family: the checks and errors every `blockOf` shares, so
// that each allocator writes only the lookup its design allows (`bytesAt`, `view` and `dataView`
// are `src/_views.ts` over that `blockOf`).
//
// The semantics are PseudoMalloc's (src/heap/pseudo_malloc.ts): `blockOf(address)` gives
// `{ address, size }` (start and usable size) of the live block holding any byte of it, else an
// `InvalidAddressError`; on a closed heap a `HeapClosedError`, for an address that is not a number a
// `TypeError`; an address that is not an integer (`a + 0.5`) is in no block, since no byte lies
// there and a view from it would start at a whole byte elsewhere.
//
// `bytesAt(address, length)` (`bytesFrom`, in `src/_views.ts`, PseudoMalloc's too) is then one
// more lookup of the block's start (`bytes(start)`, the allocator's O(1) check) and a `subarray`:
// for block 0x1000 of 32 bytes, `bytesAt(0x1008, 4)` is bytes 8 to 11 of `bytes(0x1000)`, and
// `bytesAt(0x1008, 25)` a `RangeError` (24 are left).

import { hex, InvalidAddressError } from "../errors.ts";
import { checkOpen, notAnAddress } from "../_checks.ts";

/**
 * The checks at the start of every `blockOf`: `HeapClosedError` when `closed`, `TypeError` when
 * `address` is not a number. Returns true when `address` can lie in a block (a safe integer);
 * false for `NaN`, infinities and fractions, which the caller reports with {@linkcode noBlock}.
 */
export function lookable(closed: boolean, address: number): boolean {
  checkOpen(closed, "blockOf");
  if (typeof address !== "number") throw notAnAddress(address, "find the block of");
  return Number.isSafeInteger(address);
}

/**
 * The `InvalidAddressError` of a `blockOf` that found no live block, with the reason; the default
 * is PseudoMalloc's. Example: `noBlock(0x1010, "it lies in a free cell")` says "Cannot find the
 * block of 0x1010: it lies in a free cell".
 */
export function noBlock(
  address: number,
  why = "no live block of this heap holds it",
): InvalidAddressError {
  return new InvalidAddressError(`Cannot find the block of ${hex(address)}: ${why}`, address);
}
