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
 * all arithmetic on it stays in 32-bit integer registers.
 *
 * ## How
 *
 * `mmap` takes an address as a *hint* (without `MAP_FIXED` it never replaces a mapping): if the
 * range there is free, Linux maps exactly there. The window hands out arena-aligned hints from
 * `start` (256 MiB by default) up to `limit` (2^31): 1,792 arenas of 1 MiB. A hint that is not
 * honoured (something lives there, or the OS places mappings its own way) costs one extra
 * `munmap`, and the next try skips twice as far as the last (1, 2, 4, … slots), so a long stretch
 * taken by someone else is crossed in a few tries; after `MAX_MISSES` misses in a row the window
 * gives up for good and callers map wherever the OS chooses. Unmapped slots are reused first, the
 * last unmapped first.
 *
 * Example: 1 MiB arenas from a fresh window get 0x1000_0000, 0x1010_0000, 0x1020_0000, … If
 * 0x1010_0000 and 0x1020_0000 were taken by someone else, the second arena tries 0x1010_0000 (a
 * miss: skip 1 slot), 0x1020_0000 (a miss: skip 2) and gets 0x1040_0000, leaving 0x1030_0000 unused. Unmapping
 * the first arena puts 0x1000_0000 on the free list, and the next 1 MiB arena gets it back.
 *
 * One window serves every heap of a JavaScript realm. Workers have windows of their own over the same
 * address space: each finds the other's arenas as misses and skips past them.
 *
 * @module
 */

import { mapMemoryAt, unmapMemory } from "../../ffi/libc.ts";

/** First address the window hands out: 256 MiB, above where a non-PIE program and its brk live. */
export const LOW_START = 0x1000_0000;
/** End of the window: 2^31, the first address that is not a small integer. */
export const LOW_LIMIT = 0x8000_0000;
/** Misses in a row after which the window stops trying. */
export const MAX_MISSES = 16;

/** The OS calls the window needs; `ffi/libc.ts` in production, a fake in tests. */
export interface LowMemoryOs {
  /** Maps `length` bytes exactly at `address`, or returns 0 when that range is not free. */
  mapAt(address: number, length: number): number;
  /** Unmaps `length` bytes at `address`. */
  unmap(address: number, length: number): void;
}

/** Hands out mappings at free addresses in `[start, limit)`, aligned to their length. */
export class LowAddressWindow {
  #os: LowMemoryOs;
  #cursor: number;
  #limit: number;
  #misses = 0;
  #freed: { address: number; length: number }[] = [];

  /**
   * @param os The mapping calls.
   * @param start The lowest address handed out.
   * @param limit The end of the window: no mapping reaches past it.
   */
  constructor(os: LowMemoryOs, start: number = LOW_START, limit: number = LOW_LIMIT) {
    this.#os = os;
    this.#cursor = start;
    this.#limit = limit;
  }

  /** False once the window gave up after `MAX_MISSES` misses in a row. */
  get open(): boolean {
    return this.#misses < MAX_MISSES;
  }

  /**
   * Maps `length` bytes (a power of two, a multiple of the page size) at an address in the window
   * that is a multiple of `length`.
   *
   * @returns The address, or 0 when the window is full or given up.
   */
  map(length: number): number {
    // Slots given back come first, the last one first: it was honoured before, so it most likely
    // is again, and reusing low slots keeps the window compact.
    const slot = this.#freed.findLastIndex((freed) => freed.length === length);
    if (slot >= 0) {
      const { address } = this.#freed.splice(slot, 1)[0]!;
      if (this.#os.mapAt(address, length) === address) return address;
    }
    while (this.open) {
      // Round the cursor up to a multiple of `length` (a power of two).
      const address = Math.ceil(this.#cursor / length) * length;
      if (address + length > this.#limit) return 0;
      this.#cursor = address + length;
      if (this.#os.mapAt(address, length) === address) {
        this.#misses = 0;
        return address;
      }
      // Someone else's range: skip ahead twice as far after each miss in a row, so that a long
      // taken stretch (another worker's arenas, say) is crossed in a few tries.
      this.#cursor = address + length * 2 ** this.#misses; // not `<<`: 2^30 << 1 is negative
      this.#misses++;
    }
    return 0;
  }

  /** Unmaps a mapping `map` returned; its slot is handed out again. */
  unmap(address: number, length: number): void {
    this.#os.unmap(address, length);
    this.#freed.push({ address, length });
  }
}

/** The process-wide window over `ffi/libc.ts`. */
export const lowMemory: LowAddressWindow = new LowAddressWindow({
  mapAt: mapMemoryAt,
  unmap: unmapMemory,
});
