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
//
// One table serves one open heap at a time (two open heaps sharing one would each accept the
// other's live blocks on `free`'s fast path), but it outlives the heap: on `close`, with every tag
// 0 again, it becomes a spare (`_spares.ts`) that the next heap of the same `Os` takes instead of
// reserving one, so a process reserves a table (and makes its 256 MiB view) once per heap open at
// the same time, not once per heap.

import type { Os } from "../../ffi/os.ts";
import { OutOfMemoryError } from "../errors.ts";
import { LOW_LIMIT } from "./_low_memory.ts";
import { releaseTagPages, type ReservedTable, type Spares } from "./_spares.ts";

/** The shadow table of one heap, reserved or taken from the spares on first use. */
export class TagTable {
  /** The tags, once reserved; `undefined` before and after `close`. */
  tags: Uint16Array | Uint32Array | undefined;
  #os: Os;
  #spares: Spares | undefined;
  #minShift: number;
  #wide: boolean;
  #table: ReservedTable | undefined;

  /**
   * @param os The system calls.
   * @param spares Where a spare table is taken from and left on `close`; `undefined`: none.
   * @param minShift `log2(minBlockSize)`.
   * @param wide 32-bit tags (the threshold is 64 KiB or more) instead of 16-bit ones.
   */
  constructor(os: Os, spares: Spares | undefined, minShift: number, wide: boolean) {
    this.#os = os;
    this.#spares = spares;
    this.#minShift = minShift;
    this.#wide = wide;
  }

  /** The reserved table while this heap holds one (spare arenas remember it). */
  get reserved(): ReservedTable | undefined {
    return this.#table;
  }

  /**
   * Takes a spare table or reserves one, unless the heap holds one. False when the OS refuses the
   * reservation: the heap then maps its arenas anywhere, with tags of their own.
   */
  open(): boolean {
    if (this.tags !== undefined) return true;
    let table = this.#spares?.takeTable(this.#minShift, this.#wide);
    if (table === undefined) {
      const length = (LOW_LIMIT >>> this.#minShift) * (this.#wide ? 4 : 2);
      let address: number;
      try {
        address = this.#os.reserve(length);
      } catch (error) {
        if (error instanceof OutOfMemoryError) return false;
        throw error;
      }
      const buffer = this.#os.view(address, length);
      const tags = this.#wide ? new Uint32Array(buffer) : new Uint16Array(buffer);
      table = { address, tags, minShift: this.#minShift, wide: this.#wide, mapped: true };
    }
    this.#table = table;
    this.tags = table.tags;
    return true;
  }

  /** The tags of the low arena at `base` with `slots` minimum blocks: a view into the table. */
  slice(base: number, slots: number): Uint16Array | Uint32Array {
    const first = base >>> this.#minShift;
    return this.tags!.subarray(first, first + slots);
  }

  /** Gives back the pages holding only the tags of the (unmapped) arena at `base`. */
  release(base: number, slots: number): void {
    releaseTagPages(this.#os, this.#table!, base, slots);
  }

  /**
   * Lets the table go, every tag in it 0: a spare when there is room, else unmapped. When `munmap`
   * fails it throws `OsError` and the table stays.
   */
  close(): void {
    const table = this.#table;
    if (table === undefined) return;
    if (this.#spares?.keepTable(table) !== true) {
      this.#os.unmap(table.address, table.tags.byteLength);
      table.mapped = false;
    }
    this.#table = undefined;
    this.tags = undefined;
  }
}
