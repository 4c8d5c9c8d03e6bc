// The in-band header of a BumpAllocator block, and what can be read from a pool of them: the walk
// that `validate()` makes and the diagnosis of an address that is not a live block. These are the
// slow paths; the allocator's fast paths write and check headers themselves.
//
// A header, read as C: `struct { uint64_t size; uint32_t state; uint32_t check; }` in host byte
// order: 16 bytes right before its block, as four 32-bit words over the pool (`u32`, indexed by
// byte offset / 4):
//
//   word 0, 1  the request in bytes, low and high 32 bits (a size can pass 2^32)
//   word 2     the state: LIVE, FREE or PAD_, spelled out in a little-endian hex dump
//   word 3     a hash of the block's offset, its size and the reset epoch
//
// The pool below the bump pointer is an unbroken chain of header + block records, each block its
// size rounded up to 16 bytes. From a fresh pool, `malloc(100)` writes a header at offset 0 and
// returns the block at 16, and the next header goes at 16 + 112 = 128; `malloc(5)` then returns
// 144 and moves the bump pointer to 160. A walk from 0 reads size 100 at 0, steps to 128, reads 5,
// steps to 160 = top: two records, nothing left over.
//
// The check word makes a stray address (inside a block, or after a reset) look like a header only
// with probability 2^-32, and the epoch in it makes every header of an earlier reset stale at once.

import { DoubleFreeError, hex, InvalidAddressError, InvalidFreeError } from "../errors.ts";
import { isFreeing, notAnAddress } from "../_checks.ts";
import { roundUp } from "../_size.ts";

/** Block alignment and size granule. */
export const ALIGN = 16;
/** Bytes of header before each block. */
export const HEADER = 16;
const TWO_32 = 2 ** 32;

// State words; their bytes spell the state in a little-endian hex dump.
/** "LIVE": a block handed out and not freed. */
export const LIVE = 0x4556494c;
/** "FREE": a freed block, dead until reset. */
export const FREE = 0x45455246;
/** "PAD_": the tail that an in-place shrink cut off a block. */
export const PAD = 0x5f444150;

/**
 * The check word of a header: a hash of the block's offset in the pool, its size and the reset
 * epoch (murmur3-style mixing, so any change to one input flips about half the bits). The offset
 * is counted in 16-byte granules (ALIGN, written out: this runs on the fast paths, where a literal
 * costs nothing and an imported constant a load).
 */
export function checkWord(block: number, sizeLow: number, sizeHigh: number, epoch: number): number {
  let h = Math.imul((block / 16) ^ 0x9e3779b9, 0xcc9e2d51);
  h = Math.imul(h ^ (h >>> 15) ^ sizeLow, 0x1b873593);
  h = Math.imul(h ^ (h >>> 13) ^ sizeHigh, 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 16) ^ epoch, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** A pool as these functions read it: offsets are from `base`. */
export interface Pool {
  /** Address of the pool's first byte. */
  base: number;
  /** Bytes of the pool. */
  size: number;
  /** The pool as 32-bit words. */
  u32: Uint32Array;
  /** Offset of the first unused byte. */
  top: number;
  /** Highest `top` ever. */
  highWater: number;
  /** Resets so far, mod 2^32. */
  epoch: number;
}

/** What the headers of a pool say about its live blocks. */
export interface PoolTotals {
  /** Live blocks. */
  live: number;
  /** Bytes they requested. */
  requested: number;
  /** Bytes they take, headers included. */
  allocated: number;
}

/** The size recorded in the header of the block at offset `block`. */
function sizeAt(u32: Uint32Array, block: number): number {
  const word = (block - HEADER) / 4;
  return u32[word]! + u32[word + 1]! * TWO_32;
}

/** True when the check word before `block` matches its offset, size and epoch. */
function isIntact(pool: Pool, block: number): boolean {
  const word = (block - HEADER) / 4;
  const u32 = pool.u32;
  return u32[word + 3] === checkWord(block, u32[word]!, u32[word + 1]!, pool.epoch);
}

/**
 * Walks the pool from its start to the bump pointer, header by header, and adds up the live
 * blocks; throws an `Error` naming the first broken invariant: the bump pointer or the high-water
 * mark out of place, a header that is not intact, or a block that runs past the bump pointer.
 * O(blocks).
 */
export function walkPool(pool: Pool): PoolTotals {
  const broken = (what: string) => new Error(`BumpAllocator invariant broken: ${what}`);
  const { u32, top } = pool;
  if (top % ALIGN !== 0 || top > pool.highWater) {
    throw broken(`top ${top} is misaligned or above the high-water mark`);
  }
  if (pool.highWater > pool.size) throw broken(`high-water mark beyond the pool`);
  const totals: PoolTotals = { live: 0, requested: 0, allocated: 0 };
  let header = 0;
  while (header < top) {
    const block = header + HEADER;
    const size = sizeAt(u32, block);
    const state = u32[header / 4 + 2]!;
    const end = block + roundUp(size, ALIGN);
    if (
      end > top || (state !== LIVE && state !== FREE && state !== PAD) || !isIntact(pool, block)
    ) {
      throw broken(`the header of block ${hex(pool.base + block)} is overwritten`);
    }
    if (state === LIVE) {
      totals.live++;
      totals.requested += size;
      totals.allocated += end - header;
    }
    header = end;
  }
  return totals;
}

/** The error for an address that is not a live block of `pool`. */
export function rejection(pool: Pool, address: number, verb: string): Error {
  if (typeof address !== "number") return notAnAddress(address, verb);
  const where = `Cannot ${verb} ${hex(address)}`;
  const Invalid = isFreeing(verb) ? InvalidFreeError : InvalidAddressError;
  const block = address - pool.base;
  if (!(block >= 0 && block < pool.size)) {
    return new Invalid(`${where}: it is not an address of this heap`, address);
  }
  if (block % ALIGN !== 0) {
    return new Invalid(`${where}: blocks are 16-byte aligned`, address);
  }
  if (block > pool.top) {
    return new Invalid(
      `${where}: it is beyond the bump pointer (never allocated, or released by reset())`,
      address,
    );
  }
  if (block >= HEADER && isIntact(pool, block)) {
    const state = pool.u32[(block - HEADER) / 4 + 2];
    if (state === FREE) {
      const message = `${where}: this block was already freed`;
      return isFreeing(verb)
        ? new DoubleFreeError(message, address)
        : new InvalidAddressError(message, address);
    }
    if (state === PAD) {
      return new Invalid(`${where}: it is inside the tail of a block that shrank`, address);
    }
  }
  return new Invalid(
    `${where}: no block header precedes it (an address inside a block, or an overwritten header)`,
    address,
  );
}
