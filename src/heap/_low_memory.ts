/**
 * Arenas below 2^31: addresses V8 keeps as small integers.
 *
 * ## Why
 *
 * On 64-bit V8 without pointer compression (Deno's build), an integer from -2^31 to 2^31 - 1 is a
 * *Smi*: it lives in the value itself, with no heap object. A larger integer, such as the address
 * `mmap` usually returns on Linux (`0x7f3a_1c40_0000`, about 2^47), is a double; whenever it leaves
 * optimised code as a tagged value (returned from or passed to a call V8 did not inline, or stored
 * where a tagged value goes) V8 boxes it in a 16-byte *heap number*. So an allocator whose
 * addresses are high creates one heap object per call unless V8 inlines every call, which it does
 * only while its inlining budget lasts. An address below 2^31 is never boxed, inlined or not, and
 * all arithmetic on it stays in 32-bit integers.
 *
 * ## How
 *
 * `mmap` takes an address as a *hint* (without `MAP_FIXED` it never replaces a mapping): if the
 * range there is free, Linux maps exactly there. The window hands out hints in `[start, limit)`
 * (256 MiB to 2^31 by default: 1,792 arenas of 1 MiB), each a multiple of the mapping's length. A
 * *cursor* walks up from `start`; above it nothing has been tried. Below it, the window knows each
 * address as one of:
 *
 * - *live*: mapped through the window and not unmapped since;
 * - *free*: unmapped through the window (once the OS agreed), or an alignment gap the cursor
 *   stepped over: kept as sorted ranges, adjacent ones merged, handed out at any length;
 * - *lost*: a hint that was not honoured, and the stretch skipped after it: someone else's, as
 *   far as the window knows.
 *
 * `map` takes the *lowest* aligned slot it may have: first in the free ranges (the slot is cut out
 * of its range, which splits in up to two), then at the cursor. Lowest rather than best fit keeps
 * the live mappings packed at the bottom, so that the top empties first and goes back to the
 * cursor (below). A hint that is not honoured costs one extra `munmap` and is a *miss*. A miss in a
 * free range (someone mapped there meanwhile) makes that slot lost, so it is not tried again. A
 * miss at the cursor skips twice as far as the last miss (1, 2, 4, … slots), so a long stretch
 * taken by someone else is crossed in a few tries.
 *
 * `unmap` calls the OS first and changes nothing when it fails (the `OsError` is thrown on). Then
 * the range is free, and the cursor comes back to the end of the highest live mapping (or to
 * `start`): the free and lost ranges above it are forgotten and tried afresh, one new pass.
 *
 * Giving up: after `MAX_MISSES` misses in a row (in free ranges and at the cursor alike) the window
 * is closed: `map` returns 0 without a system call, and callers map wherever the OS chooses. On an
 * OS that ignores hints (macOS) the window so costs a handful of tries, once. A hit resets the
 * count, and so does every `unmap`, which re-opens a closed window: space came back. What the
 * window cannot see (another worker unmapping) re-opens nothing.
 *
 * Example, from a fresh window (S = 0x1000_0000; someone else holds 0x1010_0000-0x1030_0000):
 *
 * ```
 * map(1 MiB)  0x1000_0000 hit                                  cursor 0x1010_0000
 * map(1 MiB)  0x1010_0000 miss (skip 1), 0x1020_0000 miss      lost   0x1010_0000-0x1040_0000
 *             (skip 2), 0x1040_0000 hit (0x1030_0000 untried)  cursor 0x1050_0000
 * map(1 GiB)  the cursor rounds up to 0x4000_0000: hit         free   0x1050_0000-0x4000_0000
 *                                                              cursor 0x8000_0000 (the end)
 * map(2 MiB)  0x1060_0000, the lowest 2 MiB slot of the gap    free   0x1050_0000-0x1060_0000
 *                                                                     0x1080_0000-0x4000_0000
 * map(1 MiB)  0x1050_0000                                      free   0x1080_0000-0x4000_0000
 * unmap 1 GiB free 0x1080_0000-0x8000_0000; the highest live   cursor 0x1080_0000, no free
 *             mapping ends at 0x1080_0000: the cursor comes back
 * map(1 MiB)  0x1080_0000 hit                                  cursor 0x1090_0000
 * ```
 *
 * So a heap with 1 GiB arenas leaves the window as it found it once it is closed, and 1 MiB arenas
 * come from below its arena while it lives.
 *
 * One window serves every heap of a JavaScript realm, whatever its `Os`: the addresses are the
 * process's. Workers have windows of their own over the same address space: each finds the
 * other's arenas as misses and skips past them.
 *
 * @module
 */

import type { Os } from "../../ffi/os.ts";
import { hex } from "../errors.ts";

/** First address the window hands out: 256 MiB, above where a non-PIE program and its brk live. */
export const LOW_START = 0x1000_0000;
/** End of the window: 2^31, the first address that is not a small integer. */
export const LOW_LIMIT = 0x8000_0000;
/** Misses in a row after which the window stops trying, until a mapping is unmapped. */
export const MAX_MISSES = 16;

/** The OS calls the window makes: `libcOs` in production, a fake in tests. */
export type LowMemoryOs = Pick<Os, "mapAt" | "unmap">;

/** A free range: `[address, end)`. */
interface Range {
  address: number;
  end: number;
}

/** Hands out mappings at free addresses in `[start, limit)`, aligned to their length. */
export class LowAddressWindow {
  /** The lowest address handed out. */
  readonly start: number;
  /** The end of the window: no mapping reaches past it. */
  readonly limit: number;
  #cursor: number;
  #misses = 0;
  /** Sorted by address, disjoint, never adjacent, all below the cursor. */
  #free: Range[] = [];
  /** Address → length of every mapping handed out and not unmapped since. */
  #live = new Map<number, number>();

  /**
   * @param start The lowest address handed out.
   * @param limit The end of the window: no mapping reaches past it.
   */
  constructor(start: number = LOW_START, limit: number = LOW_LIMIT) {
    this.start = start;
    this.#cursor = start;
    this.limit = limit;
  }

  /** False after `MAX_MISSES` misses in a row, until the next `unmap`. */
  get open(): boolean {
    return this.#misses < MAX_MISSES;
  }

  /** Where the untried part of the window begins. */
  get cursor(): number {
    return this.#cursor;
  }

  /**
   * The free ranges below the cursor, lowest first (a copy, for tests and pictures).
   *
   * @returns One `{ address, length }` per range.
   */
  freeRanges(): { address: number; length: number }[] {
    return this.#free.map(({ address, end }) => ({ address, length: end - address }));
  }

  /**
   * Maps `length` bytes (a power of two, a multiple of the page size) at an address in the window
   * that is a multiple of `length`: the lowest such slot of the free ranges, else at the cursor.
   * When `os.mapAt` throws, the window is unchanged.
   *
   * @param os The OS to map with.
   * @param length Bytes to map.
   * @returns The address, or 0 when nothing low could be had (the window is full or closed).
   */
  map(os: LowMemoryOs, length: number): number {
    if (!Number.isInteger(Math.log2(length))) {
      throw new RangeError(`Cannot map ${length} bytes low: the length is not a power of two`);
    }
    const free = this.#free;
    for (let i = 0; i < free.length && this.open;) {
      const range = free[i]!;
      const address = Math.ceil(range.address / length) * length;
      if (address + length > range.end) {
        i++;
        continue;
      }
      const mapped = os.mapAt(address, length);
      // Cut the slot out of its range, hit or miss; what is left below it at index i is shorter
      // than `length` (the slot was its first aligned one), so the loop goes on past it.
      const pieces: Range[] = [];
      if (address > range.address) pieces.push({ address: range.address, end: address });
      if (address + length < range.end) pieces.push({ address: address + length, end: range.end });
      free.splice(i, 1, ...pieces);
      if (mapped === address) return this.#hit(address, length);
      this.#misses++; // someone mapped there meanwhile: the slot is lost
    }
    while (this.open) {
      // Round the cursor up to a multiple of `length` (a power of two).
      const address = Math.ceil(this.#cursor / length) * length;
      if (address + length > this.limit) return 0;
      const mapped = os.mapAt(address, length);
      if (address > this.#cursor) this.#release(this.#cursor, address); // the alignment gap
      if (mapped === address) {
        this.#cursor = address + length;
        return this.#hit(address, length);
      }
      // Someone else's range: skip ahead twice as far after each miss in a row, so that a long
      // taken stretch (another worker's arenas, say) is crossed in a few tries.
      const skipped = address + length * 2 ** this.#misses; // not `<<`: 2^30 << 1 is negative
      this.#cursor = Math.min(skipped, this.limit);
      this.#misses++;
    }
    return 0;
  }

  /**
   * The address `map(os, length)` would try first in the free ranges, without trying it: the
   * lowest slot aligned to `length` that fits one of them; `Infinity` when none does (`map` would
   * go to the cursor, above every live mapping).
   *
   * @param length Bytes to map, a power of two.
   * @returns The address, or `Infinity`.
   */
  lowestFreeSlot(length: number): number {
    if (!this.open) return Infinity;
    for (const range of this.#free) {
      const address = Math.ceil(range.address / length) * length;
      if (address + length <= range.end) return address;
    }
    return Infinity;
  }

  /**
   * Unmaps a mapping `map` returned. The OS is asked first: when it refuses, the `OsError` is
   * thrown and nothing changes (the mapping is still live and can be unmapped again). Otherwise
   * the range is free, the cursor comes back to the end of the highest live mapping, and a closed
   * window opens again.
   *
   * @param os The OS to unmap with.
   * @param address The address `map` returned.
   * @param length The length it was given.
   * @throws {RangeError} When the range is not a live mapping of this window (nothing is called).
   */
  unmap(os: LowMemoryOs, address: number, length: number): void {
    if (this.#live.get(address) !== length) {
      throw new RangeError(
        `Cannot unmap ${length} bytes at ${hex(address)}: not a live mapping of the low window`,
      );
    }
    os.unmap(address, length);
    this.#live.delete(address);
    this.#misses = 0;
    this.#release(address, address + length);
    let top = this.start;
    for (const [live, size] of this.#live) top = Math.max(top, live + size);
    if (top < this.#cursor) {
      // Everything above the highest live mapping, free or lost, is untried again.
      this.#cursor = top;
      while (this.#free.length > 0 && this.#free.at(-1)!.end > top) this.#free.pop();
    }
  }

  #hit(address: number, length: number): number {
    this.#misses = 0;
    this.#live.set(address, length);
    return address;
  }

  /** Adds `[address, end)` to the free ranges, merged with the ranges it touches. */
  #release(address: number, end: number): void {
    const ranges = this.#free;
    let i = ranges.findIndex((range) => range.end >= address); // the first it may touch
    if (i < 0) i = ranges.length;
    let last = i; // one past the last range it touches
    while (last < ranges.length && ranges[last]!.address <= end) last++;
    if (last > i) {
      address = Math.min(address, ranges[i]!.address);
      end = Math.max(end, ranges[last - 1]!.end);
    }
    ranges.splice(i, last - i, { address, end });
  }
}

/** The window of this realm: every heap's low arenas come from it. */
export const lowMemory: LowAddressWindow = new LowAddressWindow();
