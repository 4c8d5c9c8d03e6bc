// The chunks of a FirstFitAllocator: the mappings its blocks live in, each aligned to the chunk
// size, found from an address with one Map lookup, and named by an id that free-list links use.
//
// Mapping: a chunk is `chunkSize` bytes, or whole pages for a request larger than that, mapped at
// a multiple of `chunkSize` (the OS maps more and trims the unaligned ends). So
// `Math.floor(address / chunkSize)` names the only chunk that can hold an address: with 1 MiB
// chunks, 0x7f3a12d4c010 is in window 0x7f3a12d, and a 10 MiB chunk is entered under the 10
// windows it covers. Ids: the index in `byId`; an unmapped chunk leaves a hole whose id the next
// chunk takes, so ids stay small and links stay 32-bit.
//
// Every system call is made before anything here changes: a refused `mmap` (OutOfMemoryError) or
// `munmap` (OsError) leaves the set as it was.

import { OutOfMemoryError } from "../errors.ts";
import { ReleasedRanges } from "../_released.ts";
import { roundUp } from "../_size.ts";
import type { Os } from "../../ffi/os.ts";
import {
  type Chunk,
  CHUNK_OVERHEAD,
  GRANULE,
  MAX_GRANULES,
  TAG_EDGE,
} from "./_first_fit_layout.ts";

/** The mapped chunks of one heap. */
export class ChunkSet {
  /** Chunks by id; `undefined` where a chunk was unmapped. Never replaced: lists hold it. */
  readonly byId: (Chunk | undefined)[] = [];
  /** Chunks given back to the OS recently, to call a late free in one a double free. */
  readonly released: ReleasedRanges = new ReleasedRanges();
  /** Bytes per standard chunk, and the alignment of every chunk. */
  readonly chunkSize: number;
  /** Chunks mapped now. */
  count = 0;
  /** Bytes they map. */
  mappedBytes = 0;
  /** Bytes of all their blocks: the mapped bytes less the edges. */
  capacity = 0;
  #freeIds: number[] = [];
  #byKey = new Map<number, Chunk>();
  #os: Os;

  constructor(os: Os, chunkSize: number) {
    this.#os = os;
    this.chunkSize = chunkSize;
  }

  /** The chunk whose window holds `address` (it may end before it), if any. */
  of(address: number): Chunk | undefined {
    return this.#byKey.get(Math.floor(address / this.chunkSize));
  }

  /**
   * Maps a chunk with room for a block of `need` granules (for a request of `size` bytes), its
   * edges written; the caller makes granules [0, end) a free block and puts it on its list.
   * Throws `OutOfMemoryError`, with nothing changed, when the chunk would be larger than the
   * design allows or the OS refuses it.
   */
  map(need: number, size: number): Chunk {
    const pageSize = this.#os.pageSize();
    const length = Math.max(this.chunkSize, roundUp(GRANULE * need + CHUNK_OVERHEAD, pageSize));
    if (length / GRANULE - 1 > MAX_GRANULES) {
      throw new OutOfMemoryError(
        `Cannot allocate ${size} bytes: larger than the largest chunk of this design (32 GiB)`,
      );
    }
    const base = this.#os.map(length, this.chunkSize);
    const words = new Int32Array(this.#os.view(base, length));
    const end = length / GRANULE - 1;
    const id = this.#freeIds.pop() ?? this.byId.length;
    const chunk: Chunk = { id, base, length, end, words, bytes: new Uint8Array(words.buffer) };
    words[0] = 0; // prologue footer
    words[1] = TAG_EDGE;
    words[4 * end + 2] = 0; // epilogue header
    words[4 * end + 3] = TAG_EDGE;
    this.byId[id] = chunk;
    for (let key = base / this.chunkSize; key * this.chunkSize < base + length; key++) {
      this.#byKey.set(key, chunk);
    }
    this.released.forget(base, base + length);
    this.count++;
    this.mappedBytes += length;
    this.capacity += length - CHUNK_OVERHEAD;
    return chunk;
  }

  /**
   * Unmaps `chunk`, on no free list, then forgets it and remembers its range for double-free
   * reports. Throws `OsError`, with nothing changed, when the OS refuses.
   */
  unmap(chunk: Chunk): void {
    this.#os.unmap(chunk.base, chunk.length);
    this.forget(chunk);
    this.released.add(chunk.base, chunk.base + chunk.length);
  }

  /** Forgets a chunk that is no longer mapped. */
  forget(chunk: Chunk): void {
    for (
      let key = chunk.base / this.chunkSize;
      key * this.chunkSize < chunk.base + chunk.length;
      key++
    ) {
      this.#byKey.delete(key);
    }
    this.byId[chunk.id] = undefined;
    this.#freeIds.push(chunk.id);
    this.count--;
    this.mappedBytes -= chunk.length;
    this.capacity -= chunk.length - CHUNK_OVERHEAD;
  }

  /** True when `chunk` is entered under every window it covers. */
  isIndexed(chunk: Chunk): boolean {
    for (let key = chunk.base / this.chunkSize; key * this.chunkSize < chunk.base + chunk.length;) {
      if (this.#byKey.get(key++) !== chunk) return false;
    }
    return true;
  }

  /** The chunks mapped, by id. */
  *[Symbol.iterator](): IterableIterator<Chunk> {
    for (const chunk of this.byId) if (chunk !== undefined) yield chunk;
  }

  /** The chunks mapped, in address order. */
  sorted(): Chunk[] {
    return [...this].sort((a, b) => a.base - b.base);
  }
}
