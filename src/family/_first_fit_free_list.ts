// The explicit free list of a FirstFitAllocator: doubly linked through the free blocks themselves,
// across chunks, newest first. A link names a block by two numbers, its chunk's id and its
// granule: two 32-bit words, valid as long as the chunk is mapped (its id does not change).
//
// A free block at granule g keeps its links right after its header (see _first_fit_layout.ts):
// words[4g + 4] and [4g + 5] name the next block, words[4g + 6] and [4g + 7] the previous one, and
// NIL (-1) ends the list either way. Pushing block (2, 40) onto a list whose head is (0, 7) writes
// next = (0, 7) and previous = NIL into (2, 40), previous = (2, 40) into (0, 7), and makes (2, 40)
// the head. Unlinking a block writes its neighbours' links to each other and leaves its own links
// as they were, which is what lets `relink` put it back exactly where it was.

import type { Chunk } from "./_first_fit_layout.ts";

// _first_fit_layout.ts's NIL, kept local: an imported constant costs a load at every use.
const NIL = -1;

/** The free list of one heap, over the chunks of `chunks` (indexed by id, as links name them). */
export class FreeList {
  /** The first block: its chunk's id and its granule (NIL: the list is empty). */
  headChunk = NIL;
  headGranule = NIL;
  /** Blocks on the list. */
  count = 0;
  #chunks: readonly (Chunk | undefined)[];

  constructor(chunks: readonly (Chunk | undefined)[]) {
    this.#chunks = chunks;
  }

  /** Puts the free block `g` of `chunk` at the head. */
  push(chunk: Chunk, g: number): void {
    const w = chunk.words;
    const h = 4 * g + 2;
    w[h + 2] = this.headChunk;
    w[h + 3] = this.headGranule;
    w[h + 4] = NIL;
    w[h + 5] = NIL;
    if (this.headChunk !== NIL) {
      const head = this.#chunks[this.headChunk]!.words;
      head[4 * this.headGranule + 6] = chunk.id;
      head[4 * this.headGranule + 7] = g;
    }
    this.headChunk = chunk.id;
    this.headGranule = g;
    this.count++;
  }

  /** Takes the free block `g` of `chunk` off the list; its own links stay as they were. */
  unlink(chunk: Chunk, g: number): void {
    const w = chunk.words;
    const h = 4 * g + 2;
    this.#link(w[h + 4]!, w[h + 5]!, w[h + 2]!, w[h + 3]!);
    this.count--;
  }

  /**
   * Undoes the last `unlink` of the block `g` of `chunk`: back between the neighbours its links
   * still name. Undo several in the reverse order of their unlinks.
   */
  relink(chunk: Chunk, g: number): void {
    const w = chunk.words;
    const h = 4 * g + 2;
    this.#link(w[h + 4]!, w[h + 5]!, chunk.id, g);
    this.#link(chunk.id, g, w[h + 2]!, w[h + 3]!);
    this.count++;
  }

  /**
   * Makes the block `to` of `chunk` take the list place of its block `from`: reads `from`'s links
   * first, so `to`'s may overlap them. The caller writes `to`'s header and footer.
   */
  replace(chunk: Chunk, from: number, to: number): void {
    const w = chunk.words;
    const f = 4 * from + 2;
    const nextId = w[f + 2]!;
    const nextG = w[f + 3]!;
    const prevId = w[f + 4]!;
    const prevG = w[f + 5]!;
    const t = 4 * to + 2;
    w[t + 2] = nextId;
    w[t + 3] = nextG;
    w[t + 4] = prevId;
    w[t + 5] = prevG;
    this.#link(prevId, prevG, chunk.id, to);
    this.#link(chunk.id, to, nextId, nextG);
  }

  /** Empties the list (its blocks' links are left as they are). */
  clear(): void {
    this.headChunk = this.headGranule = NIL;
    this.count = 0;
  }

  /**
   * Links `a` → `b` (`a` NIL: `b` becomes the head; `b` NIL: `a` becomes the tail), writing `a`'s
   * next link and `b`'s previous link.
   */
  #link(aId: number, aG: number, bId: number, bG: number): void {
    if (aId === NIL) {
      this.headChunk = bId;
      this.headGranule = bG;
    } else {
      const a = this.#chunks[aId]!.words;
      a[4 * aG + 4] = bId;
      a[4 * aG + 5] = bG;
    }
    if (bId !== NIL) {
      const b = this.#chunks[bId]!.words;
      b[4 * bG + 6] = aId;
      b[4 * bG + 7] = aG;
    }
  }
}
