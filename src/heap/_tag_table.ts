// The heap's shadow tag table: the tags of every low arena (below 2^31) in one array, indexed by
// `address >>> log2(minBlockSize)`.
//
// A tag is the requested size + 1 of the live block that starts at a minimum-block slot, 0 for
// none. With the table, `free` finds a block's tag with one shift and no arena lookup:
// `free(0x1010_0040)` reads `table[0x0101_0004]` with 16-byte blocks. The table spans the whole
// window below 2^31 (2^31 / 16 slots of 2 bytes: 256 MiB of address space), reserved with
// `MAP_NORESERVE`, so it costs memory only where tags are written: 128 KiB per 1 MiB arena. Tags
// are 16 bits while every request below the threshold fits (threshold below 64 KiB), else 32.
//
// When an arena is unmapped its tags are all 0; `release` gives back the pages of the table that
// hold only its tags (`madvise`), rounding inward so that a neighbour's tags stay.

import type { Os } from "../../ffi/os.ts";
import { OutOfMemoryError } from "../errors.ts";
import { LOW_LIMIT } from "./_low_memory.ts";

/** The shadow table of one heap, reserved on first use. */
export class TagTable {
  /** The tags, once reserved; `undefined` before and after `close`. */
  tags: Uint16Array | Uint32Array | undefined;
  #os: Os;
  #minShift: number;
  #wide: boolean;
  #address = 0;

  /**
   * @param os The system calls.
   * @param minShift `log2(minBlockSize)`.
   * @param wide 32-bit tags (the threshold is 64 KiB or more) instead of 16-bit ones.
   */
  constructor(os: Os, minShift: number, wide: boolean) {
    this.#os = os;
    this.#minShift = minShift;
    this.#wide = wide;
  }

  /**
   * Reserves the table unless it exists. False when the OS refuses the reservation: the heap then
   * maps its arenas anywhere, with tags of their own.
   */
  open(): boolean {
    if (this.tags !== undefined) return true;
    const length = (LOW_LIMIT >>> this.#minShift) * (this.#wide ? 4 : 2);
    let address: number;
    try {
      address = this.#os.reserve(length);
    } catch (error) {
      if (error instanceof OutOfMemoryError) return false;
      throw error;
    }
    const buffer = this.#os.view(address, length);
    this.#address = address;
    this.tags = this.#wide ? new Uint32Array(buffer) : new Uint16Array(buffer);
    return true;
  }

  /** The tags of the low arena at `base` with `slots` minimum blocks: a view into the table. */
  slice(base: number, slots: number): Uint16Array | Uint32Array {
    const first = base >>> this.#minShift;
    return this.tags!.subarray(first, first + slots);
  }

  /** Gives back the pages holding only the tags of the (unmapped) arena at `base`. */
  release(base: number, slots: number): void {
    const pageSize = this.#os.pageSize();
    const tagBytes = this.tags!.BYTES_PER_ELEMENT;
    const first = this.#address + (base >>> this.#minShift) * tagBytes;
    const start = Math.ceil(first / pageSize) * pageSize;
    const end = Math.floor((first + slots * tagBytes) / pageSize) * pageSize;
    if (end > start) this.#os.adviseDontNeed(start, end - start);
  }

  /** Unmaps the table; when `munmap` fails it throws `OsError` and the table stays. */
  close(): void {
    if (this.tags === undefined) return;
    this.#os.unmap(this.#address, this.tags.byteLength);
    this.tags = undefined;
  }
}
