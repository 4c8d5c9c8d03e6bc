/**
 * The textbook malloc: in-band block headers and footers, an explicit free list, first fit.
 *
 * ## The heap: chunks of blocks
 *
 * The heap is a set of *chunks*, each one `mmap` of `chunkSize` bytes (1 MiB by default). A C
 * library would grow its heap with `sbrk`, moving the program break; we do not call `sbrk`,
 * because the break belongs to the host's own malloc (Deno's, V8's, libc's): moving it under them
 * would corrupt their heap. A fresh mapping is the `sbrk` of this design. A request larger than a
 * chunk gets a chunk of its own, of its size rounded up to whole pages.
 *
 * A chunk is a sequence of *blocks* that cover it exactly. Every block is a whole number of
 * 16-byte *granules* and starts 8 bytes before a 16-byte boundary, so that its payload, right after
 * its 8-byte header, is 16-byte aligned. The header and the footer (the block's last 8 bytes) are
 * the same two 32-bit words: the block size in granules and a *tag*, which says whether the block
 * is free and doubles as a canary:
 *
 * ```
 * header / footer:  [ size in granules : int32 ][ tag : int32 ]
 *                   tag = TAG_FREE, or TAG_USED | slack (slack = usable - requested, 0..32)
 * free block:       [ header ][ next chunk, next granule, prev chunk, prev granule ] … [ footer ]
 * allocated block:  [ header ][ payload (16 × size - 16 bytes)                       ] [ footer ]
 * ```
 *
 * A chunk starts with a footer-only *prologue* and ends with a header-only *epilogue*, both of
 * size 0 and tagged `TAG_EDGE`: they look allocated, so coalescing never crosses a chunk's edge,
 * and a chunk costs 16 bytes beyond its blocks. A 4096-byte chunk, fresh and after two requests:
 *
 * ```
 * offset  0x0    0x8                 0x10                                   0xff0   0xff8
 *         │ pro │ [255 FREE]         │ links …  (one free block, 4080 bytes) │[255 F]│ epi │
 *
 * malloc(100): 100 + 16 bytes of header and footer → 8 granules (128 bytes); the free block splits
 *         │ pro │ [8 USED|12] │ payload 0x10..0x80 │[8 U|12]│ [247 FREE] │ links … │ … │ epi │
 * malloc(24):  24 + 16 → 40 → 3 granules (48 bytes) at 0x88, payload at 0x90, footer at 0xb0;
 *         the free block shrinks to 244 granules at 0xb8 and takes its predecessor's place in the
 *         free list.
 * ```
 *
 * The size of a block of payload `n` is `max(2, ceil((n + 16) / 16))` granules: the smallest block
 * is 32 bytes, room for a free block's header, two links and footer. The block's *slack* (usable
 * minus requested bytes, at most 32) lives in the low 6 bits of the tag, so `stats()` knows the
 * requested bytes with no table outside the heap.
 *
 * ## malloc, free, realloc
 *
 * `malloc` walks the explicit doubly linked free list from its head and takes the *first* block
 * that is large enough (first fit). If the rest is at least a minimum block (32 bytes) it is split
 * off and takes the old block's place in the list; otherwise the whole block is handed out. When no
 * block fits, a new chunk is mapped and put at the head of the list.
 *
 * `free` checks the address (below), marks the block free and coalesces it with both neighbours in
 * O(1): the next block's header is right after its footer, and the previous block's footer right
 * before its header (the *boundary tag*). A free neighbour is unlinked and merged; the merged block
 * goes to the head of the list (LIFO order). A chunk whose blocks are then all free is unmapped,
 * except one chunk of the standard size, kept as a spare so that a loop of `malloc`/`free` at a
 * chunk's edge does not map and unmap at every turn.
 *
 * `realloc` shrinks in place (splitting off the rest, which coalesces with a free successor), grows
 * in place when the next block is free and large enough (splitting again), and otherwise moves:
 * `malloc`, copy, `free`.
 *
 * ## Finding the chunk of an address
 *
 * Chunks are mapped at addresses that are multiples of `chunkSize` (map more, unmap the unaligned
 * ends), so `Math.floor(address / chunkSize)` names the only chunk that can hold an address, and
 * one `Map` lookup finds it however many chunks there are. A chunk larger than `chunkSize` is
 * entered under every `chunkSize` window it covers (a 10 MiB chunk under 10 keys). A sorted array
 * of chunk starts with binary search would need no alignment, but costs O(log chunks) per `free`
 * and O(chunks) per new chunk; the aligned mapping costs up to two extra `munmap`s per new chunk
 * and makes every lookup O(1), as in {@linkcode PseudoMalloc}.
 *
 * ## Costs
 *
 * - `malloc`: O(free blocks) in the worst case (the first-fit walk), O(1) when the head fits. Plus
 *   one `mmap` per new chunk. The worst case is easy to reach: allocate 32768 blocks of 16 to 72
 *   bytes, free every other one, then ask for 24 bytes (a 48-byte block) 16384 times. The quarter
 *   of the holes that are too small (32-byte blocks) are never taken; they pile up at the head of
 *   the LIFO list and every later `malloc` walks past them: about 75 µs a call where an easy
 *   `malloc` takes well under 1 µs, growing linearly with the number of holes (8 µs with 4096
 *   blocks). Segregated free lists ({@linkcode SegregatedAllocator}, or a buddy system) are the
 *   remedy.
 * - `free`: O(1): two neighbour checks, at most two unlinks and a push.
 * - `realloc`: O(1) in place, otherwise `malloc` + copy + `free`.
 * - Space: 16 bytes per block (header and footer), blocks rounded to 16 bytes with a 32-byte
 *   minimum (a 1-byte request takes 32 bytes; a 100-byte one 128), 16 bytes per chunk. Free-list
 *   links live in the free blocks: no memory outside the heap but a small record per chunk.
 * - Fragmentation: no internal fragmentation beyond the header, footer and rounding (a remainder of
 *   one granule may stay in a block). External fragmentation is first fit's: small splinters
 *   collect at the head of the list, and a free hole between two live blocks serves only requests
 *   that fit it; coalescing keeps adjacent holes merged.
 *
 * ## Misuse it detects, and what gets through
 *
 * Cheap checks on every `free`, `realloc`, `usableSize` and `bytes` (a Map lookup and four reads):
 * an address in no chunk is foreign; an address not 16-byte aligned is rejected; the header before
 * the address must carry `TAG_USED` and a size that stays in the chunk, and the footer at the other
 * end must repeat it, which an interior address passes only by a 1-in-2^58 accident. A free tag
 * means a double free (a freed block keeps its header, also after it is merged into a neighbour);
 * so does an address in a chunk recently given back to the OS. When the fast check fails, a walk of
 * the chunk (on the error path only) names the block the address falls in. When coalescing, a free
 * neighbour whose header and footer disagree is reported as heap corruption before anything
 * changes.
 *
 * It cannot detect: a forged header and footer written by the program into a payload; a double free
 * of an address that has meanwhile been handed out again at the same place (the second free frees
 * the new block); a write past a block's end that lands in the payload of the next block, or that
 * rewrites a header with itself; a use after free that writes into a free block's links (malloc may
 * then follow a wrong link: `validate()` finds it, and malloc checks each visited block's tag).
 *
 * @module
 */

import type { Allocator, AllocatorStats } from "../allocator.ts";
import {
  DoubleFreeError,
  HeapClosedError,
  hex,
  InvalidAddressError,
  InvalidFreeError,
  OutOfMemoryError,
} from "../errors.ts";
import { Counters } from "../_counters.ts";
import { isFreeing, notAnAddress } from "../_checks.ts";
import { ReleasedRanges } from "../_released.ts";
import { callocSize, checkSize, isPowerOfTwo, roundUp, viewLength } from "../_size.ts";
import { mapMemory, memoryView, pageSize, unmapMemory } from "../../ffi/libc.ts";

/** Bytes per granule: every block is a whole number of granules, every payload 16-byte aligned. */
export const GRANULE = 16;
/** Bytes of a block's header (size and tag), right before its payload. */
export const HEADER_SIZE = 8;
/** Bytes a block spends on its header and footer: a request of `n` bytes needs `n + 16`. */
export const BLOCK_OVERHEAD = 16;
/** The smallest block: header, two free-list links of 8 bytes, footer. */
export const MIN_BLOCK_SIZE = 32;
/** Bytes a chunk spends on its prologue (8) and epilogue (8). */
export const CHUNK_OVERHEAD = 16;
/** Default chunk size: 1 MiB. */
export const DEFAULT_CHUNK_SIZE = 1 << 20;
/** Bytes of the two free-list links at the start of a free block's payload. */
const LINKS_SIZE = 16;
/** The largest chunk: sizes and links are 32-bit granule counts, so 2^31 - 1 granules. */
const MAX_GRANULES = 0x7fff_ffff;

/** Tag of an allocated block; its low 6 bits hold the slack (usable minus requested bytes). */
const TAG_USED = 0x5ea1_ed00;
/** Tag of a free block. */
const TAG_FREE = 0x0f4e_e000;
/** Tag of a chunk's prologue footer and epilogue header. */
const TAG_EDGE = 0x0ed9_e000;
const SLACK_MASK = 63;
const TAG_MASK = ~SLACK_MASK;
/** End of the free list. */
const NIL = -1;

/**
 * Options of {@linkcode FirstFitAllocator}.
 *
 * @example Small chunks, to watch the heap grow
 * ```ts
 * import { FirstFitAllocator, type FirstFitOptions } from "@pseudo/malloc";
 *
 * const options: FirstFitOptions = { chunkSize: 64 * 1024 };
 * using heap = new FirstFitAllocator(options);
 * heap.malloc(100_000); // larger than a chunk: a chunk of its own
 * console.log(heap.stats().chunks); // 1
 * ```
 */
export interface FirstFitOptions {
  /**
   * Bytes per chunk, the unit by which the heap grows: a power of two, at least the page size, at
   * most 1 GiB. Larger requests get a chunk of their own size. @default {1048576}
   */
  chunkSize?: number;
}

/**
 * A snapshot of a {@linkcode FirstFitAllocator}'s counters.
 *
 * @example Free space and how fragmented it is
 * ```ts
 * import { FirstFitAllocator, type FirstFitStats } from "@pseudo/malloc";
 *
 * using heap = new FirstFitAllocator();
 * const a = heap.malloc(100);
 * heap.malloc(100);
 * heap.free(a);
 * const stats: FirstFitStats = heap.stats();
 * console.log(stats.freeBlocks, stats.allocatedBytes); // 2 128
 * ```
 */
export interface FirstFitStats extends AllocatorStats {
  /** Chunks mapped now. */
  chunks: number;
  /** Blocks on the free list. */
  freeBlocks: number;
  /** Bytes of the free blocks, headers and footers included. */
  freeBytes: number;
}

/**
 * One block of the heap, as listed by {@linkcode FirstFitAllocator.prototype.blocks}.
 *
 * @example The first block of a fresh chunk
 * ```ts
 * import { FirstFitAllocator, type FirstFitBlock } from "@pseudo/malloc";
 * import assert from "node:assert/strict";
 *
 * using heap = new FirstFitAllocator({ chunkSize: 65536 });
 * const address = heap.malloc(100);
 * const first: FirstFitBlock = heap.blocks()[0]!;
 * assert.deepEqual(first, { address, size: 128, allocated: true });
 * ```
 */
export interface FirstFitBlock {
  /** The payload address: what `malloc` returned for it (or would, for a free block). */
  address: number;
  /** Block size in bytes, header and footer included. */
  size: number;
  /** True for an allocated block, false for a free one. */
  allocated: boolean;
}

/** One mapping of the heap and one view over it. */
interface Chunk {
  /** Index in `#chunks`; free-list links name chunks by it. */
  id: number;
  base: number;
  length: number;
  /** Granule of the epilogue: blocks cover granules [0, end). */
  end: number;
  words: Int32Array;
  bytes: Uint8Array;
}

/** Granules of the block that serves `size` requested bytes. */
function granulesFor(size: number): number {
  return size <= GRANULE ? 2 : Math.ceil((size + BLOCK_OVERHEAD) / GRANULE);
}

/**
 * A first-fit malloc with in-band headers and boundary tags over `mmap`'d chunks: blocks are split
 * on allocation and coalesced with both neighbours on free; the free list is doubly linked through
 * the free blocks themselves. Needs `--allow-ffi`.
 *
 * @example Split, coalesce, reuse
 * ```ts
 * import { FirstFitAllocator } from "@pseudo/malloc";
 * import assert from "node:assert/strict";
 *
 * using heap = new FirstFitAllocator();
 * const a = heap.malloc(100); // a 128-byte block: 16 bytes of header and footer
 * const b = heap.malloc(100);
 * assert.equal(b - a, 128);
 * heap.free(a);
 * heap.free(b); // merges with a and with the rest of the chunk
 * assert.equal(heap.stats().freeBlocks, 1);
 * assert.equal(heap.malloc(200), a); // first fit: the first hole, at the chunk's start
 * ```
 */
export class FirstFitAllocator implements Allocator {
  #chunkSize: number;
  #pageSize: number;
  #chunks: (Chunk | undefined)[] = [];
  #freeIds: number[] = [];
  #chunkCount = 0;
  #chunkByKey = new Map<number, Chunk>();
  #spare: Chunk | undefined;
  #released = new ReleasedRanges();
  #headChunk = NIL;
  #headGranule = NIL;
  #freeBlocks = 0;
  #mappedBytes = 0;
  #capacity = 0; // bytes of all blocks of all chunks
  #allocatedBytes = 0;
  #counters = new Counters();
  #closed = false;
  /** The chunk of the block found by the last `#block` call. */
  #hit: Chunk | undefined;
  /** True when the last `#allocate` carved its block from a chunk it had just mapped. */
  #fresh = false;

  /**
   * Creates an empty heap; the first chunk is mapped on first use.
   *
   * @param options The chunk size; optional.
   * @throws {RangeError} When `chunkSize` is not a power of two from the page size to 1 GiB.
   * @throws {Deno.errors.NotCapable} Without `--allow-ffi`.
   */
  constructor(options: FirstFitOptions = {}) {
    this.#pageSize = pageSize();
    this.#chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
    if (
      !isPowerOfTwo(this.#chunkSize) || this.#chunkSize < this.#pageSize ||
      this.#chunkSize > 1 << 30
    ) {
      throw new RangeError(
        `Cannot use chunkSize ${this.#chunkSize}: it must be a power of two from the page size (${this.#pageSize}) to 1 GiB`,
      );
    }
  }

  /** Bytes per standard chunk. */
  get chunkSize(): number {
    return this.#chunkSize;
  }

  /**
   * Allocates `size` bytes, not cleared: the first free block large enough, split when the rest
   * can be a block of its own.
   *
   * @param size Bytes wanted; 0 gives a unique minimal block that must be freed too.
   * @returns The payload address, 16-byte aligned.
   * @throws {TypeError} When `size` is not a number.
   * @throws {RangeError} When `size` is negative, fractional, not finite or above 2^47.
   * @throws {OutOfMemoryError} When no block fits and no chunk can be mapped.
   *
   * @example Consecutive blocks
   * ```ts
   * import { FirstFitAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new FirstFitAllocator();
   * const a = heap.malloc(24); // 24 + 16 → 48 bytes
   * const b = heap.malloc(1);
   * assert.equal(a % 16, 0);
   * assert.equal(b - a, 48);
   * ```
   */
  malloc(size: number): number {
    if (this.#closed) throw new HeapClosedError("malloc");
    checkSize(size, "allocate");
    const address = this.#allocate(size);
    this.#counters.notePeaks(this.#mappedBytes);
    return address;
  }

  /**
   * Allocates zeroed memory for `count` elements of `size` bytes.
   *
   * @param count Number of elements.
   * @param size Bytes per element.
   * @returns The payload address.
   * @throws {RangeError} When an argument is invalid or `count * size` exceeds 2^47.
   * @throws {OutOfMemoryError} When no memory can be had.
   *
   * @example Zeroed, also over a reused block
   * ```ts
   * import { FirstFitAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new FirstFitAllocator();
   * const dirty = heap.malloc(40);
   * heap.bytes(dirty).fill(0xff);
   * heap.free(dirty);
   * const address = heap.calloc(10, 4);
   * assert.equal(address, dirty);
   * assert.ok(heap.bytes(address).every((byte) => byte === 0));
   * ```
   */
  calloc(count: number, size: number): number {
    if (this.#closed) throw new HeapClosedError("calloc");
    const total = callocSize(count, size);
    const address = this.#allocate(total);
    const chunk = this.#chunkOf(address)!;
    const offset = address - chunk.base;
    // A block carved from a chunk mapped just now is zero but for the free-list links its first
    // 16 bytes held; any other block may be dirty all through.
    const dirty = this.#fresh ? LINKS_SIZE : this.#usable(chunk, offset / GRANULE - 1);
    chunk.bytes.fill(0, offset, offset + dirty);
    this.#counters.notePeaks(this.#mappedBytes);
    return address;
  }

  /**
   * Resizes a block, C style: `realloc(0, n)` is `malloc(n)`; `realloc(a, 0)` frees `a` and returns
   * 0. Shrinking splits in place; growing takes the next block in place when it is free and large
   * enough; otherwise the contents move (`malloc`, copy, `free`). If it throws, the old block is
   * untouched.
   *
   * @param address A live block, or 0.
   * @param size The new size in bytes.
   * @returns The block's address, which may differ from `address`; 0 when `size` is 0.
   * @throws {InvalidFreeError} When `address` is not a live block of this heap.
   * @throws {DoubleFreeError} When `address` was freed.
   * @throws {OutOfMemoryError} When the block must move and no memory can be had.
   *
   * @example Growing into the free block after it
   * ```ts
   * import { FirstFitAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new FirstFitAllocator();
   * const address = heap.malloc(100);
   * heap.bytes(address, 3).set([1, 2, 3]);
   * assert.equal(heap.realloc(address, 5000), address); // the rest of the chunk is free
   * assert.deepEqual([...heap.bytes(address, 3)], [1, 2, 3]);
   * ```
   */
  realloc(address: number, size: number): number {
    if (this.#closed) throw new HeapClosedError("realloc");
    if (address === 0) return this.malloc(size);
    checkSize(size, "reallocate");
    if (size === 0) {
      this.free(address);
      return 0;
    }
    const g = this.#block(address, "reallocate");
    const chunk = this.#hit!;
    const w = chunk.words;
    const h = 4 * g + 2;
    const granules = w[h]!;
    const old = GRANULE * granules - BLOCK_OVERHEAD - (w[h + 1]! & SLACK_MASK);
    const need = granulesFor(size);
    let moved = address;
    if (need <= granules) {
      // Shrink (or keep) in place; a rest of a minimum block or more becomes free.
      if (granules - need >= 2) {
        const next = this.#freeSize(chunk, g + granules);
        this.#mark(chunk, g, need, TAG_USED | (GRANULE * need - BLOCK_OVERHEAD - size));
        let rest = granules - need;
        if (next > 0) {
          this.#unlink(chunk, g + granules);
          rest += next;
        }
        this.#mark(chunk, g + need, rest, TAG_FREE);
        this.#push(chunk, g + need);
        this.#allocatedBytes -= GRANULE * (granules - need);
      } else {
        this.#mark(chunk, g, granules, TAG_USED | (GRANULE * granules - BLOCK_OVERHEAD - size));
      }
      this.#counters.liveBytes += size - old;
    } else {
      const n = g + granules;
      const next = this.#freeSize(chunk, n);
      if (next > 0 && granules + next >= need) {
        // Grow in place into the free successor.
        const total = granules + next;
        let taken = total;
        if (total - need >= 2) {
          this.#replace(chunk, n, g + need, total - need);
          taken = need;
        } else {
          this.#unlink(chunk, n);
        }
        this.#mark(chunk, g, taken, TAG_USED | (GRANULE * taken - BLOCK_OVERHEAD - size));
        this.#allocatedBytes += GRANULE * (taken - granules);
        this.#counters.liveBytes += size - old;
      } else {
        // Move: check the neighbours and allocate first, so that a failure leaves the old block
        // untouched.
        this.#freeSizeBefore(chunk, g);
        moved = this.#allocate(size);
        const kept = Math.min(GRANULE * granules - BLOCK_OVERHEAD, size);
        const to = this.#chunkOf(moved)!;
        const from = address - chunk.base;
        to.bytes.set(chunk.bytes.subarray(from, from + kept), moved - to.base);
        this.#release(chunk, g, granules);
        this.#counters.freed(old);
      }
    }
    this.#counters.notePeaks(this.#mappedBytes);
    return moved;
  }

  /**
   * Frees a block and merges it with a free neighbour on either side. `free(0)` does nothing.
   *
   * @param address A block this heap returned, or 0.
   * @throws {InvalidFreeError} When `address` is foreign, misaligned or inside a block.
   * @throws {DoubleFreeError} When the block is already free.
   *
   * @example Two-sided coalescing
   * ```ts
   * import { FirstFitAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new FirstFitAllocator();
   * const [a, b, c] = [heap.malloc(32), heap.malloc(32), heap.malloc(32)];
   * heap.malloc(32); // keeps c apart from the rest of the chunk
   * heap.free(a);
   * heap.free(c);
   * assert.equal(heap.stats().freeBlocks, 3);
   * heap.free(b); // merges a, b and c into one block
   * assert.equal(heap.stats().freeBlocks, 2);
   * ```
   */
  free(address: number): void {
    if (this.#closed) throw new HeapClosedError("free");
    if (address === 0) return;
    const g = this.#block(address, "free");
    const chunk = this.#hit!;
    const h = 4 * g + 2;
    const granules = chunk.words[h]!;
    const requested = GRANULE * granules - BLOCK_OVERHEAD - (chunk.words[h + 1]! & SLACK_MASK);
    this.#release(chunk, g, granules);
    this.#counters.freed(requested);
  }

  /**
   * The usable size of a live block: its payload, from the header to the footer.
   *
   * @param address A live block.
   * @returns The block size minus header and footer: `16 × granules - 16` bytes, at least the
   *   request and at most 32 bytes more.
   * @throws {InvalidAddressError} When `address` is not a live block of this heap.
   *
   * @example Rounded to granules, minus header and footer
   * ```ts
   * import { FirstFitAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new FirstFitAllocator();
   * assert.equal(heap.usableSize(heap.malloc(100)), 112); // a 128-byte block
   * assert.equal(heap.usableSize(heap.malloc(0)), 16); // the 32-byte minimum
   * ```
   */
  usableSize(address: number): number {
    if (this.#closed) throw new HeapClosedError("usableSize");
    const g = this.#block(address, "find the size of");
    return this.#usable(this.#hit!, g);
  }

  /**
   * A `Uint8Array` over a live block's payload, a `subarray` of the chunk's one view. It dies with
   * the block: do not touch it after `free`, or after a `realloc` that moves or shrinks the block.
   *
   * @param address A live block.
   * @param length Bytes to cover, at most the usable size (the default).
   * @returns A view of the block's memory.
   * @throws {InvalidAddressError} When `address` is not a live block.
   * @throws {RangeError} When `length` is negative or beyond the usable size.
   *
   * @example Writing through a view
   * ```ts
   * import { FirstFitAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new FirstFitAllocator();
   * const address = heap.malloc(4);
   * heap.bytes(address, 4).set([1, 2, 3, 4]);
   * assert.equal(heap.bytes(address)[3], 4);
   * ```
   */
  bytes(address: number, length?: number): Uint8Array {
    if (this.#closed) throw new HeapClosedError("bytes");
    const g = this.#block(address, "view");
    const chunk = this.#hit!;
    const usable = this.#usable(chunk, g);
    const wanted = viewLength(address, length, usable);
    const offset = address - chunk.base;
    return chunk.bytes.subarray(offset, offset + wanted);
  }

  /**
   * The heap's counters. `allocatedBytes` counts whole blocks, header and footer included (a
   * 100-byte request counts 128); `mappedBytes` counts whole chunks.
   *
   * @returns A fresh snapshot.
   *
   * @example Live, allocated and mapped bytes
   * ```ts
   * import { FirstFitAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new FirstFitAllocator();
   * heap.malloc(100);
   * const stats = heap.stats();
   * assert.equal(stats.liveBytes, 100);
   * assert.equal(stats.allocatedBytes, 128);
   * assert.equal(stats.mappedBytes, 1 << 20);
   * assert.equal(stats.freeBytes, (1 << 20) - 16 - 128);
   * ```
   */
  stats(): FirstFitStats {
    if (this.#closed) throw new HeapClosedError("stats");
    return {
      ...this.#counters.snapshot(this.#mappedBytes, this.#allocatedBytes),
      chunks: this.#chunkCount,
      freeBlocks: this.#freeBlocks,
      freeBytes: this.#capacity - this.#allocatedBytes,
    };
  }

  /**
   * Every block of every chunk, chunks in address order. Slow: for tests, teaching and debugging.
   *
   * @returns The blocks, free and allocated, in address order.
   *
   * @example A split
   * ```ts
   * import { FirstFitAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new FirstFitAllocator({ chunkSize: 65536 });
   * const a = heap.malloc(100);
   * assert.deepEqual(heap.blocks(), [
   *   { address: a, size: 128, allocated: true },
   *   { address: a + 128, size: 65536 - 16 - 128, allocated: false },
   * ]);
   * ```
   */
  blocks(): FirstFitBlock[] {
    if (this.#closed) throw new HeapClosedError("blocks");
    const list: FirstFitBlock[] = [];
    for (const chunk of this.#sortedChunks()) {
      const w = chunk.words;
      for (let g = 0; g < chunk.end && w[4 * g + 2]! > 0; g += w[4 * g + 2]!) {
        list.push({
          address: chunk.base + GRANULE * g + GRANULE,
          size: GRANULE * w[4 * g + 2]!,
          allocated: w[4 * g + 3] !== TAG_FREE,
        });
      }
    }
    return list;
  }

  /**
   * Checks every invariant: each chunk's edges; that its blocks tile it with matching headers and
   * footers, sane tags and no two free blocks side by side; that the free list links every free
   * block once, both ways, and nothing else; that only the spare chunk is wholly free; and that the
   * counters agree with the blocks. Throws an `Error` naming the first broken one.
   *
   * @example After some work
   * ```ts
   * import { FirstFitAllocator } from "@pseudo/malloc";
   *
   * using heap = new FirstFitAllocator();
   * heap.free(heap.malloc(100));
   * heap.validate();
   * ```
   */
  validate(): void {
    if (this.#closed) throw new HeapClosedError("validate");
    const fail = (what: string): never => {
      throw new Error(`FirstFitAllocator invariant broken: ${what}`);
    };
    let mapped = 0;
    let capacity = 0;
    let allocated = 0;
    let requested = 0;
    let live = 0;
    let chunks = 0;
    const free = new Set<string>();
    for (const chunk of this.#chunks) {
      if (chunk === undefined) continue;
      chunks++;
      const { base, length, end, words: w } = chunk;
      const at = (g: number) => hex(base + GRANULE * g + HEADER_SIZE);
      if (base % this.#chunkSize !== 0) fail(`chunk ${hex(base)} is not chunk-aligned`);
      for (let key = base / this.#chunkSize; key * this.#chunkSize < base + length; key++) {
        if (this.#chunkByKey.get(key) !== chunk) fail(`chunk ${hex(base)} is not indexed`);
      }
      if (w[0] !== 0 || w[1] !== TAG_EDGE) fail(`chunk ${hex(base)} lost its prologue`);
      if (w[4 * end + 2] !== 0 || w[4 * end + 3] !== TAG_EDGE) {
        fail(`chunk ${hex(base)} lost its epilogue`);
      }
      let previousFree = false;
      let g = 0;
      while (g < end) {
        const size = w[4 * g + 2]!;
        const tag = w[4 * g + 3]!;
        if (!(size >= 2 && g + size <= end)) fail(`block ${at(g)} has size ${size} granules`);
        if (w[4 * (g + size)] !== size || w[4 * (g + size) + 1] !== tag) {
          fail(`block ${at(g)}: footer does not match header`);
        }
        if (tag === TAG_FREE) {
          if (previousFree) fail(`free block ${at(g)} follows a free block`);
          free.add(`${chunk.id}:${g}`);
          previousFree = true;
        } else if ((tag & TAG_MASK) === TAG_USED) {
          const slack = tag & SLACK_MASK;
          const asked = GRANULE * size - BLOCK_OVERHEAD - slack;
          const fits = granulesFor(asked);
          if (slack > 32 || asked < 0 || fits > size || fits < size - 1) {
            fail(`block ${at(g)} of ${size} granules records a request of ${asked} bytes`);
          }
          live++;
          allocated += GRANULE * size;
          requested += asked;
          previousFree = false;
        } else {
          fail(`block ${at(g)} has tag ${hex(tag >>> 0)}`);
        }
        g += size;
      }
      const empty = w[2] === end && w[3] === TAG_FREE;
      if (empty !== (chunk === this.#spare)) {
        fail(`chunk ${hex(base)} is ${empty ? "empty but not the spare" : "the spare but in use"}`);
      }
      mapped += length;
      capacity += length - CHUNK_OVERHEAD;
    }
    // The free list: every free block once, links consistent both ways.
    let id = this.#headChunk;
    let g = this.#headGranule;
    let prevId = NIL;
    let prevG = NIL;
    let seen = 0;
    while (id !== NIL) {
      const chunk = this.#chunks[id];
      if (chunk === undefined || !free.has(`${id}:${g}`)) {
        fail(`free list links ${id}:${g}, which is not a free block`);
      }
      const w = chunk!.words;
      const h = 4 * g + 2;
      if (w[h + 4] !== prevId || w[h + 5] !== prevG) fail(`bad back link at ${id}:${g}`);
      if (++seen > free.size) fail("the free list has a cycle");
      prevId = id;
      prevG = g;
      id = w[h + 2]!;
      g = w[h + 3]!;
    }
    const expect = (what: string, actual: number, expected: number): void => {
      if (actual !== expected) fail(`${what} is ${actual}, blocks say ${expected}`);
    };
    expect("free-list length", seen, free.size);
    expect("freeBlocks", this.#freeBlocks, free.size);
    expect("chunks", this.#chunkCount, chunks);
    expect("mappedBytes", this.#mappedBytes, mapped);
    expect("capacity", this.#capacity, capacity);
    expect("allocatedBytes", this.#allocatedBytes, allocated);
    expect("liveAllocations", this.#counters.liveAllocations, live);
    expect("liveBytes", this.#counters.liveBytes, requested);
  }

  /**
   * Unmaps every chunk. Every later method call except `close` throws {@linkcode HeapClosedError};
   * closing twice does nothing.
   *
   * @example Explicit close
   * ```ts
   * import { FirstFitAllocator } from "@pseudo/malloc";
   *
   * const heap = new FirstFitAllocator();
   * heap.malloc(10);
   * heap.close();
   * ```
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const chunk of this.#chunks) {
      if (chunk !== undefined) unmapMemory(chunk.base, chunk.length);
    }
    this.#chunks = [];
    this.#chunkByKey.clear();
    this.#spare = undefined;
    this.#hit = undefined;
    this.#released.clear();
    this.#headChunk = NIL;
    this.#headGranule = NIL;
    this.#mappedBytes = 0;
  }

  /**
   * Same as {@linkcode FirstFitAllocator.prototype.close}, for `using`.
   *
   * @example Scoped heap
   * ```ts
   * import { FirstFitAllocator } from "@pseudo/malloc";
   *
   * {
   *   using heap = new FirstFitAllocator();
   *   heap.malloc(10);
   * } // unmapped here
   * ```
   */
  [Symbol.dispose](): void {
    this.close();
  }

  // --- allocation -------------------------------------------------------------------------------

  /** malloc without the checks: first fit, else a new chunk. Sets `#fresh`. */
  #allocate(size: number): number {
    const need = granulesFor(size);
    this.#fresh = false;
    let id = this.#headChunk;
    let g = this.#headGranule;
    while (id !== NIL) {
      const chunk = this.#chunks[id];
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
    const chunk = this.#grow(need, size);
    this.#fresh = true;
    return this.#place(chunk, 0, need, size);
  }

  /** Hands out `need` granules of the free block `g`, splitting off the rest when it can. */
  #place(chunk: Chunk, g: number, need: number, size: number): number {
    if (chunk === this.#spare) this.#spare = undefined;
    const available = chunk.words[4 * g + 2]!;
    let taken = available;
    if (available - need >= 2) {
      this.#replace(chunk, g, g + need, available - need);
      taken = need;
    } else {
      this.#unlink(chunk, g);
    }
    this.#mark(chunk, g, taken, TAG_USED | (GRANULE * taken - BLOCK_OVERHEAD - size));
    this.#allocatedBytes += GRANULE * taken;
    this.#counters.allocated(size);
    return chunk.base + GRANULE * g + GRANULE;
  }

  /** Maps a chunk that can hold `need` granules, with one free block at the head of the list. */
  #grow(need: number, size: number): Chunk {
    const length = Math.max(
      this.#chunkSize,
      roundUp(GRANULE * need + CHUNK_OVERHEAD, this.#pageSize),
    );
    if (length / GRANULE - 1 > MAX_GRANULES) {
      throw new OutOfMemoryError(
        `Cannot allocate ${size} bytes: larger than the largest chunk of this design (32 GiB)`,
      );
    }
    const base = mapMemory(length, this.#chunkSize);
    const words = new Int32Array(memoryView(base, length));
    const end = length / GRANULE - 1;
    const id = this.#freeIds.pop() ?? this.#chunks.length;
    const chunk: Chunk = { id, base, length, end, words, bytes: new Uint8Array(words.buffer) };
    words[0] = 0; // prologue footer
    words[1] = TAG_EDGE;
    words[4 * end + 2] = 0; // epilogue header
    words[4 * end + 3] = TAG_EDGE;
    this.#mark(chunk, 0, end, TAG_FREE);
    this.#chunks[id] = chunk;
    for (let key = base / this.#chunkSize; key * this.#chunkSize < base + length; key++) {
      this.#chunkByKey.set(key, chunk);
    }
    this.#released.forget(base, base + length);
    this.#chunkCount++;
    this.#mappedBytes += length;
    this.#capacity += length - CHUNK_OVERHEAD;
    this.#push(chunk, 0);
    return chunk;
  }

  // --- freeing ----------------------------------------------------------------------------------

  /**
   * Frees the block `g` of `granules`: marks it free, merges it with free neighbours, and pushes
   * the result, or unmaps the chunk when it is wholly free (but for the spare). Checks both
   * neighbours before changing anything.
   */
  #release(chunk: Chunk, g: number, granules: number): void {
    const w = chunk.words;
    const next = this.#freeSize(chunk, g + granules);
    const previous = this.#freeSizeBefore(chunk, g);
    w[4 * g + 3] = TAG_FREE; // a merged-away header still says "freed": later frees are double
    this.#allocatedBytes -= GRANULE * granules;
    let start = g;
    let size = granules;
    if (next > 0) {
      this.#unlink(chunk, g + granules);
      size += next;
    }
    if (previous > 0) {
      start -= previous;
      this.#unlink(chunk, start);
      size += previous;
    }
    this.#mark(chunk, start, size, TAG_FREE);
    if (size === chunk.end) {
      if (this.#spare === undefined && chunk.length === this.#chunkSize) {
        this.#spare = chunk;
      } else {
        this.#unmapChunk(chunk);
        return;
      }
    }
    this.#push(chunk, start);
  }

  /** Unmaps a wholly free chunk that is on no list, and remembers it for double-free reports. */
  #unmapChunk(chunk: Chunk): void {
    unmapMemory(chunk.base, chunk.length);
    for (
      let key = chunk.base / this.#chunkSize;
      key * this.#chunkSize < chunk.base + chunk.length;
      key++
    ) {
      this.#chunkByKey.delete(key);
    }
    this.#chunks[chunk.id] = undefined;
    this.#freeIds.push(chunk.id);
    this.#released.add(chunk.base, chunk.base + chunk.length);
    this.#chunkCount--;
    this.#mappedBytes -= chunk.length;
    this.#capacity -= chunk.length - CHUNK_OVERHEAD;
  }

  /** Granules of the block at `n` when it is free, else 0. Throws if its tags disagree. */
  #freeSize(chunk: Chunk, n: number): number {
    const w = chunk.words;
    if (w[4 * n + 3] !== TAG_FREE) return 0;
    const size = w[4 * n + 2]!;
    const f = 4 * (n + size);
    if (!(size >= 2 && n + size <= chunk.end && w[f] === size && w[f + 1] === TAG_FREE)) {
      throw this.#corrupt(chunk, n);
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
      throw this.#corrupt(chunk, p);
    }
    return size;
  }

  #corrupt(chunk: Chunk, g: number): Error {
    return new Error(
      `FirstFitAllocator heap corrupt: the free block at ${
        hex(chunk.base + GRANULE * g + HEADER_SIZE)
      } has a header and footer that disagree (a write past the end of a block?)`,
    );
  }

  // --- blocks and the free list -----------------------------------------------------------------

  /** Writes the header and footer of the block `g`. */
  #mark(chunk: Chunk, g: number, granules: number, tag: number): void {
    const w = chunk.words;
    w[4 * g + 2] = granules;
    w[4 * g + 3] = tag;
    w[4 * (g + granules)] = granules;
    w[4 * (g + granules) + 1] = tag;
  }

  /** Usable bytes of the block `g`. */
  #usable(chunk: Chunk, g: number): number {
    return GRANULE * chunk.words[4 * g + 2]! - BLOCK_OVERHEAD;
  }

  /** Puts the free block `g` at the head of the free list. */
  #push(chunk: Chunk, g: number): void {
    const w = chunk.words;
    const h = 4 * g + 2;
    w[h + 2] = this.#headChunk;
    w[h + 3] = this.#headGranule;
    w[h + 4] = NIL;
    w[h + 5] = NIL;
    if (this.#headChunk !== NIL) {
      const head = this.#chunks[this.#headChunk]!.words;
      head[4 * this.#headGranule + 6] = chunk.id;
      head[4 * this.#headGranule + 7] = g;
    }
    this.#headChunk = chunk.id;
    this.#headGranule = g;
    this.#freeBlocks++;
  }

  /** Takes the free block `g` off the free list. */
  #unlink(chunk: Chunk, g: number): void {
    const w = chunk.words;
    const h = 4 * g + 2;
    this.#link(w[h + 4]!, w[h + 5]!, w[h + 2]!, w[h + 3]!);
    this.#freeBlocks--;
  }

  /**
   * Makes the free block `to`, of `granules`, take the list place of the free block `from` (same
   * chunk). Reads `from`'s links before writing anything: the two may overlap.
   */
  #replace(chunk: Chunk, from: number, to: number, granules: number): void {
    const w = chunk.words;
    const f = 4 * from + 2;
    const nextId = w[f + 2]!;
    const nextG = w[f + 3]!;
    const prevId = w[f + 4]!;
    const prevG = w[f + 5]!;
    this.#mark(chunk, to, granules, TAG_FREE);
    const t = 4 * to + 2;
    w[t + 2] = nextId;
    w[t + 3] = nextG;
    w[t + 4] = prevId;
    w[t + 5] = prevG;
    this.#link(prevId, prevG, chunk.id, to);
    this.#link(chunk.id, to, nextId, nextG);
  }

  /**
   * Links `a` → `b` (`a` NIL: `b` becomes the head; `b` NIL: `a` becomes the tail), writing `a`'s
   * next link and `b`'s previous link.
   */
  #link(aId: number, aG: number, bId: number, bG: number): void {
    if (aId === NIL) {
      this.#headChunk = bId;
      this.#headGranule = bG;
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

  // --- addresses --------------------------------------------------------------------------------

  #chunkOf(address: number): Chunk | undefined {
    return this.#chunkByKey.get(Math.floor(address / this.#chunkSize));
  }

  /**
   * The granule of the live block whose payload is at `address`, its chunk left in `#hit`; throws
   * the error that explains why there is none.
   */
  #block(address: number, verb: string): number {
    if (typeof address === "number") {
      const chunk = this.#chunkOf(address);
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
            this.#hit = chunk;
            return g;
          }
        }
      }
    }
    throw this.#rejection(address, verb);
  }

  /** The error for an address that is not a live block; walks the chunk to say where it falls. */
  #rejection(address: number, verb: string): Error {
    if (typeof address !== "number") return notAnAddress(address, verb);
    const where = `Cannot ${verb} ${hex(address)}`;
    const freeing = isFreeing(verb);
    const Invalid = freeing ? InvalidFreeError : InvalidAddressError;
    const Freed = freeing ? DoubleFreeError : InvalidAddressError;
    const chunk = this.#chunkOf(address);
    if (chunk === undefined || address >= chunk.base + chunk.length) {
      const index = this.#released.find(address);
      if (index >= 0 && address % GRANULE === 0) {
        return new Freed(
          `${where}: it lies in the chunk [${hex(this.#released.start(index))}, ${
            hex(this.#released.end(index))
          }), given back to the OS when its last block was freed (double free?)`,
          address,
        );
      }
      return new Invalid(`${where}: it is not an address of this heap`, address);
    }
    if (address % GRANULE !== 0) {
      return new Invalid(`${where}: blocks are 16-byte aligned, this address is not`, address);
    }
    const w = chunk.words;
    const offset = address - chunk.base;
    if (offset < GRANULE) {
      return new Invalid(`${where}: it is the prologue of chunk ${hex(chunk.base)}`, address);
    }
    for (let g = 0; g < chunk.end;) {
      const size = w[4 * g + 2]!;
      const tag = w[4 * g + 3]!;
      const start = chunk.base + GRANULE * g + HEADER_SIZE;
      if (!(size >= 2 && g + size <= chunk.end)) {
        return new Invalid(
          `${where}: the heap is corrupt at ${hex(start)} (a write past the end of a block?)`,
          address,
        );
      }
      const end = start + GRANULE * size;
      if (offset < GRANULE * (g + size) + HEADER_SIZE) {
        const range = `[${hex(start)}, ${hex(end)})`;
        if (tag === TAG_FREE) {
          return address === start + HEADER_SIZE
            ? new Freed(`${where}: this block was already freed`, address)
            : new Freed(`${where}: it lies in free block ${range} (double free?)`, address);
        }
        return address === start + HEADER_SIZE
          ? new Invalid(
            `${where}: the footer of block ${range} does not match its header (heap corrupt)`,
            address,
          )
          : new Invalid(`${where}: it is inside the block ${range}, not at its start`, address);
      }
      g += size;
    }
    return new Invalid(`${where}: it is not an address of this heap`, address);
  }

  #sortedChunks(): Chunk[] {
    return this.#chunks.filter((chunk) => chunk !== undefined).sort((a, b) => a.base - b.base);
  }
}
