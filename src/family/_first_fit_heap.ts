// The blocks of a FirstFitAllocator: chunks of boundary-tagged blocks (_first_fit_layout.ts), a
// free list through them (_first_fit_free_list.ts), first fit with splitting on allocation,
// coalescing with both neighbours on free, in-place resizing, and the one spare chunk. The
// allocator (first_fit_allocator.ts) checks its arguments and keeps the counters; this is the
// machine underneath, its fast paths.
//
// Every change the OS must agree to comes first: a chunk is mapped before any block is placed in
// it, and a chunk that a free empties is unmapped before anything else changes (its free
// neighbours are unlinked for the call and put back if the OS refuses). A refusal leaves the heap
// as it was and surfaces as the OS's error.

import type { Os } from "../../ffi/os.ts";
import { ChunkSet } from "./_first_fit_chunks.ts";
import { FreeList } from "./_first_fit_free_list.ts";
import { corrupt, rejection, type Survey, survey } from "./_first_fit_inspect.ts";
import { type Chunk, granulesFor } from "./_first_fit_layout.ts";

// The layout constants of _first_fit_layout.ts that the fast paths use, kept local: V8 folds a
// module's own constants into the code, but loads and checks an imported one at every use.
const GRANULE = 16;
const BLOCK_OVERHEAD = 16;
const TAG_USED = 0x5ea1_ed00;
const TAG_FREE = 0x0f4e_e000;
const SLACK_MASK = 63;
const TAG_MASK = ~SLACK_MASK;
const NIL = -1;

/** The chunks, free list and spare of one FirstFitAllocator. */
export class BlockHeap {
  readonly chunks: ChunkSet;
  readonly list: FreeList;
  /** The one wholly free chunk kept mapped, if any: the first standard chunk to empty. */
  spare: Chunk | undefined;
  /** Bytes of the allocated blocks, headers and footers included. */
  allocatedBytes = 0;
  /** The chunk of the block that the last `find` returned. */
  hit: Chunk | undefined;
  /** True when the last `allocate` carved its block from a chunk it had just mapped. */
  fresh = false;
  #chunkSize: number;

  constructor(os: Os, chunkSize: number) {
    this.#chunkSize = chunkSize;
    this.chunks = new ChunkSet(os, chunkSize);
    this.list = new FreeList(this.chunks.byId);
  }

  /**
   * Allocates a block for `size` bytes and returns its payload address: the first free block
   * large enough, else a new chunk (mapped first: `OutOfMemoryError` changes nothing).
   */
  allocate(size: number): number {
    const need = granulesFor(size);
    this.fresh = false;
    const byId = this.chunks.byId;
    let id = this.list.headChunk;
    let g = this.list.headGranule;
    while (id !== NIL) {
      const chunk = byId[id];
      const h = 4 * g + 2;
      if (chunk === undefined || chunk.words[h + 1] !== TAG_FREE) {
        throw new Error(
          `FirstFitAllocator heap corrupt: the free list leads to ${id}:${g}, which is not a free block (a write after free?)`,
        );
      }
      const w = chunk.words;
      if (w[h]! >= need) return this.#place(chunk, g, need, size);
      id = w[h + 2]!;
      g = w[h + 3]!;
    }
    const chunk = this.chunks.map(need, size); // first: a refusal changes nothing
    this.#mark(chunk, 0, chunk.end, TAG_FREE);
    this.list.push(chunk, 0);
    this.fresh = true;
    return this.#place(chunk, 0, need, size);
  }

  /**
   * The granule of the live block whose payload is at `address`, its chunk left in `hit`; throws
   * the error that explains why there is none.
   */
  find(address: number, verb: string): number {
    if (typeof address === "number") {
      const chunk = this.chunks.of(address);
      if (chunk !== undefined) {
        const offset = address - chunk.base;
        const g = offset / GRANULE - 1;
        if (g >= 0 && g < chunk.end && g % 1 === 0) {
          const w = chunk.words;
          const size = w[4 * g + 2]!;
          const tag = w[4 * g + 3]!;
          const f = 4 * (g + size);
          if (
            (tag & TAG_MASK) === TAG_USED && size >= 2 && g + size <= chunk.end &&
            w[f] === size && w[f + 1] === tag
          ) {
            this.hit = chunk;
            return g;
          }
        }
      }
    }
    throw rejection(this.chunks, address, verb);
  }

  /** Bytes requested for the live block `g` of `chunk`. */
  requested(chunk: Chunk, g: number): number {
    const h = 4 * g + 2;
    return GRANULE * chunk.words[h]! - BLOCK_OVERHEAD - (chunk.words[h + 1]! & SLACK_MASK);
  }

  /** Usable bytes of the block `g` of `chunk`. */
  usable(chunk: Chunk, g: number): number {
    return GRANULE * chunk.words[4 * g + 2]! - BLOCK_OVERHEAD;
  }

  /**
   * Gives the live block `g` of `chunk` room for `size` bytes where it is, and returns true:
   * shrinking splits off the rest (merged with a free successor), growing takes the free
   * successor when it is large enough (and splits again). Returns false when the block must move;
   * its neighbours are checked then, so that a corrupt one is reported before the move.
   */
  resizeInPlace(chunk: Chunk, g: number, size: number): boolean {
    const h = 4 * g + 2;
    const granules = chunk.words[h]!;
    const need = granulesFor(size);
    if (need <= granules) {
      if (granules - need >= 2) {
        // A rest of a minimum block or more becomes free.
        const next = this.#freeSize(chunk, g + granules);
        this.#mark(chunk, g, need, TAG_USED | (GRANULE * need - BLOCK_OVERHEAD - size));
        let rest = granules - need;
        if (next > 0) {
          this.list.unlink(chunk, g + granules);
          rest += next;
        }
        this.#mark(chunk, g + need, rest, TAG_FREE);
        this.list.push(chunk, g + need);
        this.allocatedBytes -= GRANULE * (granules - need);
      } else {
        this.#mark(chunk, g, granules, TAG_USED | (GRANULE * granules - BLOCK_OVERHEAD - size));
      }
      return true;
    }
    const n = g + granules;
    const next = this.#freeSize(chunk, n);
    if (next > 0 && granules + next >= need) {
      const total = granules + next;
      let taken = total;
      if (total - need >= 2) {
        this.list.replace(chunk, n, g + need);
        this.#mark(chunk, g + need, total - need, TAG_FREE);
        taken = need;
      } else {
        this.list.unlink(chunk, n);
      }
      this.#mark(chunk, g, taken, TAG_USED | (GRANULE * taken - BLOCK_OVERHEAD - size));
      this.allocatedBytes += GRANULE * (taken - granules);
      return true;
    }
    this.#freeSizeBefore(chunk, g);
    return false;
  }

  /**
   * Frees the live block `g` of `chunk`: marks it free, merges it with free neighbours and pushes
   * the result, or unmaps the chunk when that empties it (but for the spare). Checks both
   * neighbours before changing anything; when the OS refuses the unmap it throws `OsError` with
   * the block still allocated.
   */
  release(chunk: Chunk, g: number): void {
    const w = chunk.words;
    const granules = w[4 * g + 2]!;
    const next = this.#freeSize(chunk, g + granules);
    const previous = this.#freeSizeBefore(chunk, g);
    if (
      previous + granules + next === chunk.end &&
      !(this.spare === undefined && chunk.length === this.#chunkSize)
    ) {
      this.#unmapEmptied(chunk, previous > 0 ? g - previous : NIL, next > 0 ? g + granules : NIL);
      this.allocatedBytes -= GRANULE * granules;
      return;
    }
    w[4 * g + 3] = TAG_FREE; // a merged-away header still says "freed": later frees are double
    this.allocatedBytes -= GRANULE * granules;
    let start = g;
    let size = granules;
    if (next > 0) {
      this.list.unlink(chunk, g + granules);
      size += next;
    }
    if (previous > 0) {
      start -= previous;
      this.list.unlink(chunk, start);
      size += previous;
    }
    this.#mark(chunk, start, size, TAG_FREE);
    if (size === chunk.end) this.spare = chunk; // the first standard chunk to empty
    this.list.push(chunk, start);
  }

  /**
   * Frees the block that `allocate` just returned at `address` (in `chunk`), after the call that
   * wanted it failed; false when the OS refuses that too (the block then stays allocated).
   */
  undoAllocate(chunk: Chunk, address: number): boolean {
    try {
      this.release(chunk, (address - chunk.base) / GRANULE - 1);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * After a `close` that the OS stopped half-way (the chunks it unmapped are forgotten already):
   * makes the free list anew from the chunks left, since it ran through the unmapped ones, and
   * returns what their blocks hold.
   */
  keepOnly(): Survey {
    const left = survey(this.chunks);
    this.allocatedBytes = left.allocated;
    if (this.spare !== undefined && this.chunks.byId[this.spare.id] !== this.spare) {
      this.spare = undefined;
    }
    this.hit = undefined;
    this.list.clear();
    for (const [chunk, g] of left.free) this.list.push(chunk, g);
    return left;
  }

  /** Hands out `need` granules of the free block `g`, splitting off the rest when it can. */
  #place(chunk: Chunk, g: number, need: number, size: number): number {
    if (chunk === this.spare) this.spare = undefined;
    const available = chunk.words[4 * g + 2]!;
    let taken = available;
    if (available - need >= 2) {
      this.list.replace(chunk, g, g + need);
      this.#mark(chunk, g + need, available - need, TAG_FREE);
      taken = need;
    } else {
      this.list.unlink(chunk, g);
    }
    this.#mark(chunk, g, taken, TAG_USED | (GRANULE * taken - BLOCK_OVERHEAD - size));
    this.allocatedBytes += GRANULE * taken;
    return chunk.base + GRANULE * g + GRANULE;
  }

  /**
   * Gives back a chunk whose one allocated block is being freed, its free neighbours (granules
   * `before` and `after`, NIL for none) on the list: unlinks them, unmaps, and when the OS
   * refuses puts them back where they were and rethrows, the chunk as it was.
   */
  #unmapEmptied(chunk: Chunk, before: number, after: number): void {
    if (after !== NIL) this.list.unlink(chunk, after);
    if (before !== NIL) this.list.unlink(chunk, before);
    try {
      this.chunks.unmap(chunk);
    } catch (error) {
      if (before !== NIL) this.list.relink(chunk, before);
      if (after !== NIL) this.list.relink(chunk, after);
      throw error;
    }
  }

  /** Granules of the block at `n` when it is free, else 0. Throws if its tags disagree. */
  #freeSize(chunk: Chunk, n: number): number {
    const w = chunk.words;
    if (w[4 * n + 3] !== TAG_FREE) return 0;
    const size = w[4 * n + 2]!;
    const f = 4 * (n + size);
    if (!(size >= 2 && n + size <= chunk.end && w[f] === size && w[f + 1] === TAG_FREE)) {
      throw corrupt(chunk, n);
    }
    return size;
  }

  /** Granules of the block ending right before block `g` when it is free, else 0. */
  #freeSizeBefore(chunk: Chunk, g: number): number {
    const w = chunk.words;
    if (w[4 * g + 1] !== TAG_FREE) return 0;
    const size = w[4 * g]!;
    const p = g - size;
    if (!(size >= 2 && p >= 0 && w[4 * p + 2] === size && w[4 * p + 3] === TAG_FREE)) {
      throw corrupt(chunk, p);
    }
    return size;
  }

  /** Writes the header and footer of the block `g`. */
  #mark(chunk: Chunk, g: number, granules: number, tag: number): void {
    const w = chunk.words;
    w[4 * g + 2] = granules;
    w[4 * g + 3] = tag;
    w[4 * (g + granules)] = granules;
    w[4 * (g + granules) + 1] = tag;
  }
}
