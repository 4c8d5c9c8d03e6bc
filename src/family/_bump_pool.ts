// The pool of a BumpAllocator: one mapping, a bump pointer, and an in-band header before every
// block, written when the block is carved and checked by every call that is given an address.
//
// A header, read as C: `struct { uint64_t size; uint32_t state; uint32_t check; }` in host byte
// order, as four 32-bit words over the pool (`u32`, indexed by byte offset / 4):
//
//   word 0, 1  the request in bytes, low and high 32 bits (a size can pass 2^32)
//   word 2     the state: LIVE, FREE or PAD_, spelled out in a little-endian hex dump
//   word 3     a hash of the block's offset, its size and the reset epoch
//
// The pool below the bump pointer is an unbroken chain of header + block records, each block its
// size rounded up to 16 bytes. From a fresh pool, `carve(100)` writes a header at offset 0, returns
// the block at 16 and moves `top` to 128; `carve(5)` then writes its header at 128, returns 144
// and moves `top` to 160.
//
// The check word makes a stray address (inside a block, or after a reset) look like a header only
// with probability 2^-32, and the epoch in it makes every header of an earlier reset stale at once.
// Offsets here are from the pool's start; the allocator adds `base` to make addresses.
//
// The constants stay private to this file on purpose: V8 folds a module's own constants into the
// code that uses them, but loads and checks an exported or imported one at every use, which
// measured 3 ns more per malloc/free pair.

import { DoubleFreeError, hex, InvalidAddressError, InvalidFreeError } from "../errors.ts";
import { isFreeing, notAnAddress } from "../_checks.ts";
import { roundUp } from "../_size.ts";
import { noBlock } from "./_block_access.ts";
import type { Os } from "../../ffi/os.ts";

/** Block alignment and size granule. */
const ALIGN = 16;
/** Bytes of header before each block. */
const HEADER = 16;
const TWO_32 = 2 ** 32;

// State words; their bytes spell the state in a little-endian hex dump.
/** "LIVE": a block handed out and not freed. */
const LIVE = 0x4556494c;
/** "FREE": a freed block, dead until reset. */
const FREE = 0x45455246;
/** "PAD_": the tail that an in-place shrink cut off a block. */
const PAD = 0x5f444150;

/**
 * The check word of a header: a hash of the block's offset in the pool, its size and the reset
 * epoch (murmur3-style mixing, so any change to one input flips about half the bits).
 */
function checkWord(block: number, sizeLow: number, sizeHigh: number, epoch: number): number {
  let h = Math.imul((block / ALIGN) ^ 0x9e3779b9, 0xcc9e2d51);
  h = Math.imul(h ^ (h >>> 15) ^ sizeLow, 0x1b873593);
  h = Math.imul(h ^ (h >>> 13) ^ sizeHigh, 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 16) ^ epoch, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
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

/** One mapped pool, its bump pointer and its headers. */
export class BumpPool {
  /** Address of the pool's first byte. */
  readonly base: number;
  /** Bytes of the pool, whole pages. */
  readonly size: number;
  /** The pool as bytes, and as 32-bit words (the headers). Empty once unmapped. */
  u8: Uint8Array;
  u32: Uint32Array;
  /** Offset of the first unused byte. */
  top = 0;
  /** Highest `top` ever: memory above it is still zero from `mmap`. */
  highWater = 0;
  /** Number of resets, mixed into the check words (mod 2^32). */
  epoch = 0;
  /** Bytes of live blocks, headers included. */
  allocated = 0;
  readonly os: Os;

  /** Maps `size` bytes (whole pages) through `os`; throws `OutOfMemoryError` when refused. */
  constructor(os: Os, size: number) {
    this.os = os;
    this.size = size;
    this.base = os.map(size);
    const buffer = os.view(this.base, size);
    this.u8 = new Uint8Array(buffer);
    this.u32 = new Uint32Array(buffer);
  }

  /** Carves a block of `size` bytes at `top` and returns its offset; -1 when it does not fit. */
  carve(size: number): number {
    const header = this.top;
    const block = header + HEADER;
    const end = block + roundUp(size, ALIGN);
    if (end > this.size) return -1;
    this.#write(block, size, LIVE);
    this.top = end;
    if (end > this.highWater) this.highWater = end;
    this.allocated += end - header;
    return block;
  }

  /** Marks the live block at offset `block` free and returns its size. */
  release(block: number): number {
    const size = this.sizeAt(block);
    this.u32[(block - HEADER) / 4 + 2] = FREE;
    this.allocated -= HEADER + roundUp(size, ALIGN);
    return size;
  }

  /**
   * Gives the live block at offset `block` the new size in place where it can: the newest block by
   * moving `top`, any other block when it shrinks (the cut-off tail becomes a dead `PAD_` record)
   * or keeps its usable size. Returns false, changing nothing, when it must move instead.
   */
  resizeInPlace(block: number, size: number): boolean {
    const oldUsable = roundUp(this.sizeAt(block), ALIGN);
    const newUsable = roundUp(size, ALIGN);
    if (block + oldUsable === this.top) {
      const end = block + newUsable;
      if (end > this.size) return false; // no room at the top: nor anywhere else
      this.top = end;
      if (end > this.highWater) this.highWater = end;
    } else if (newUsable < oldUsable) {
      this.#write(block + newUsable + HEADER, oldUsable - newUsable - HEADER, PAD);
    } else if (newUsable > oldUsable) {
      return false;
    }
    this.#write(block, size, LIVE);
    this.allocated += newUsable - oldUsable;
    return true;
  }

  /** Releases every block: `top` back to 0, every header of before stale. */
  reset(): void {
    this.allocated = 0;
    this.top = 0;
    this.epoch = (this.epoch + 1) >>> 0;
  }

  /** Unmaps the pool; when the OS refuses (`OsError`) nothing has changed. */
  unmap(): void {
    this.os.unmap(this.base, this.size);
    this.u8 = new Uint8Array(0);
    this.u32 = new Uint32Array(0);
  }

  /** The offset of the live block at `address`; throws the error that says why there is none. */
  live(address: number, verb: string): number {
    if (typeof address === "number") {
      const block = address - this.base;
      if (block >= HEADER && block <= this.top && block % ALIGN === 0) {
        const word = (block - HEADER) / 4;
        const u32 = this.u32;
        if (
          u32[word + 2] === LIVE &&
          u32[word + 3] === checkWord(block, u32[word]!, u32[word + 1]!, this.epoch)
        ) {
          return block;
        }
      }
    }
    throw this.rejection(address, verb);
  }

  /**
   * The offset of the live block that holds the byte at `address` (any byte of it, or the start
   * of a block of 0 bytes), for `blockOf`; throws the `InvalidAddressError` that says why there is
   * none. See {@linkcode BumpPool.prototype.recordOf} for the search and its cost.
   */
  blockHolding(address: number): number {
    const offset = address - this.base;
    if (!(offset >= 0 && offset < this.size)) throw noBlock(address, "it is not in this pool");
    if (offset >= HEADER && offset <= this.top && offset % ALIGN === 0 && this.#isLive(offset)) {
      return offset; // a block's start: one header check, as for free
    }
    if (offset >= this.top) {
      throw noBlock(address, "it is beyond the bump pointer (never allocated, or reset)");
    }
    const header = this.recordOf(offset);
    if (header < 0) {
      throw noBlock(address, "the headers below it are overwritten (validate() says where)");
    }
    if (offset < header + HEADER) throw noBlock(address, "it is in a block's header");
    const state = this.u32[header / 4 + 2];
    if (state === LIVE) return header + HEADER;
    throw noBlock(
      address,
      state === FREE ? "it lies in a freed block" : "it lies in the tail that a block shrank off",
    );
  }

  /**
   * The header offset of the record (header and block) that holds the byte at `offset`, below
   * `top`, or -1 when the chain of headers below it is broken (an overflow overwrote one).
   *
   * Two searches run in lockstep and the first to finish answers. Forward, the chain from offset
   * 0, header by header: exact, one step per record below `offset`. Backward, from `offset`
   * rounded down to 16, every 16-byte position until one holds an intact header (state word and
   * check word; `#isHeader`) whose record covers `offset` and is followed by `top` or another
   * intact header: one step per 16 bytes between the record's header and `offset`. Data mistaken
   * for a header must match a state word and a check word, and so must what follows its record
   * (about 2^-120 for random data); a header of an earlier epoch (after `reset`) must match the
   * check word twice (2^-64). So the cost is O(the smaller of the
   * records below `offset` and its distance from its block's start / 16): O(1) near a block's
   * start or near the pool's start, about 65,000 steps at most 1 MiB inside a block.
   *
   * Example: records at 0 (100 bytes) and 128 (5000 bytes), `offset` 4000. Forward: record 0
   * ends at 128, record 128 ends at 5152 > 4000: 128, found at the second step. Backward would
   * have needed (4000 - 128) / 16 + 1 = 243 steps.
   */
  recordOf(offset: number): number {
    const top = this.top;
    let forward = 0;
    let back = offset - (offset % ALIGN);
    for (;;) {
      const end = forward + HEADER + roundUp(this.sizeAt(forward + HEADER), ALIGN);
      if (end > top || !this.#isHeader(forward)) return -1;
      if (offset < end) return forward;
      forward = end;
      if (back >= forward) {
        if (this.#isHeader(back)) {
          const after = back + HEADER + roundUp(this.sizeAt(back + HEADER), ALIGN);
          if (offset < after && (after === top || (after < top && this.#isHeader(after)))) {
            return back;
          }
        }
        back -= ALIGN;
      }
    }
  }

  /** The usable bytes of the block at offset `block`: its size rounded up to 16. */
  usable(block: number): number {
    return roundUp(this.sizeAt(block), ALIGN);
  }

  /** The size recorded in the header of the block at offset `block`. */
  sizeAt(block: number): number {
    const word = (block - HEADER) / 4;
    return this.u32[word]! + this.u32[word + 1]! * TWO_32;
  }

  /**
   * Walks the pool from its start to `top`, header by header, and adds up the live blocks; throws
   * an `Error` naming the first broken invariant: `top` or the high-water mark out of place, a
   * header that is not intact or a block that runs past `top`. O(blocks).
   */
  walk(): PoolTotals {
    const broken = (what: string) => new Error(`BumpAllocator invariant broken: ${what}`);
    if (this.top % ALIGN !== 0 || this.top > this.highWater) {
      throw broken(`top ${this.top} is misaligned or above the high-water mark`);
    }
    if (this.highWater > this.size) throw broken(`high-water mark beyond the pool`);
    const totals: PoolTotals = { live: 0, requested: 0, allocated: 0 };
    let header = 0;
    while (header < this.top) {
      const block = header + HEADER;
      const size = this.sizeAt(block);
      const state = this.u32[header / 4 + 2]!;
      const end = block + roundUp(size, ALIGN);
      if (
        end > this.top || (state !== LIVE && state !== FREE && state !== PAD) ||
        !this.#intact(block)
      ) {
        throw broken(`the header of block ${hex(this.base + block)} is overwritten`);
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

  /** The error for an address that is not a live block (the slow path of every check). */
  rejection(address: number, verb: string): Error {
    if (typeof address !== "number") return notAnAddress(address, verb);
    const where = `Cannot ${verb} ${hex(address)}`;
    const Invalid = isFreeing(verb) ? InvalidFreeError : InvalidAddressError;
    const block = address - this.base;
    if (!(block >= 0 && block < this.size)) {
      return new Invalid(`${where}: it is not an address of this heap`, address);
    }
    if (block % ALIGN !== 0) {
      return new Invalid(`${where}: blocks are 16-byte aligned`, address);
    }
    if (block > this.top) {
      return new Invalid(
        `${where}: it is beyond the bump pointer (never allocated, or released by reset())`,
        address,
      );
    }
    if (block >= HEADER && this.#intact(block)) {
      const state = this.u32[(block - HEADER) / 4 + 2];
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

  /** Writes the header of the block at offset `block`. */
  #write(block: number, size: number, state: number): void {
    const word = (block - HEADER) / 4;
    const low = size >>> 0;
    const high = Math.floor(size / TWO_32);
    const u32 = this.u32;
    u32[word] = low;
    u32[word + 1] = high;
    u32[word + 2] = state;
    u32[word + 3] = checkWord(block, low, high, this.epoch);
  }

  /** True when the block at offset `block` is live: `live`'s check, without the throw. */
  #isLive(block: number): boolean {
    const word = (block - HEADER) / 4;
    return this.u32[word + 2] === LIVE && this.#intact(block);
  }

  /** True when an intact header (a known state, a matching check word) is at offset `header`. */
  #isHeader(header: number): boolean {
    const state = this.u32[header / 4 + 2];
    return (state === LIVE || state === FREE || state === PAD) && this.#intact(header + HEADER);
  }

  /** True when the check word before `block` matches its size, offset and epoch. */
  #intact(block: number): boolean {
    const word = (block - HEADER) / 4;
    return this.u32[word + 3] ===
      checkWord(block, this.u32[word]!, this.u32[word + 1]!, this.epoch);
  }
}
