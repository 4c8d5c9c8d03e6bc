// Interior addresses for the allocator family: the checks and errors every `blockOf` shares, and
// `bytesAt` built from an allocator's own `blockOf` and `bytes`, so that each allocator writes only
// the lookup its design allows (`view` and `dataView` are `src/_views.ts` over `bytesAt`).
//
// The semantics are PseudoMalloc's (src/heap/pseudo_malloc.ts): `blockOf(address)` gives
// `{ address, size }` (start and usable size) of the live block holding any byte of it, else an
// `InvalidAddressError`; on a closed heap a `HeapClosedError`, for an address that is not a number a
// `TypeError`; an address that is not an integer (`a + 0.5`) is in no block, since no byte lies
// there and a view from it would start at a whole byte elsewhere.
//
// `bytesAt(address, length)` is then one more lookup of the block's start (`bytes(start)`, the
// allocator's O(1) check) and a `subarray`: for block 0x1000 of 32 bytes, `bytesAt(0x1008, 4)`
// is bytes 8 to 11 of `bytes(0x1000)`, and `bytesAt(0x1008, 25)` a `RangeError` (24 are left).

import type { BlockInfo } from "../heap/types.ts";
import { hex, InvalidAddressError } from "../errors.ts";
import { checkOpen, notAnAddress } from "../_checks.ts";

/** What `bytesAt` needs of an allocator: its lookup of interior addresses and its views. */
export interface BlockSource {
  blockOf(address: number): BlockInfo;
  bytes(address: number, length?: number): Uint8Array;
}

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

/**
 * `length` bytes (default: to the block's end) from `address`, inside the live block that
 * `source.blockOf` finds; a `RangeError` when `length` is not a whole number of bytes that ends
 * within the block (PseudoMalloc's message).
 */
export function bytesFrom(source: BlockSource, address: number, length?: number): Uint8Array {
  const block = source.blockOf(address);
  const offset = address - block.address;
  const rest = block.size - offset;
  if (length !== undefined && !(Number.isInteger(length) && length >= 0 && length <= rest)) {
    throw new RangeError(
      `Cannot view ${length} bytes at ${hex(address)}: ${rest} bytes are left to the end of ` +
        `its block at ${hex(block.address)}`,
    );
  }
  return source.bytes(block.address).subarray(offset, offset + (length ?? rest));
}
