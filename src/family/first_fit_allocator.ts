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
 * ## Interior addresses
 *
 * `blockOf`, `bytesAt`, `view` and `dataView` take any byte of a live block's payload. Its chunk is
 * one `Map` lookup; in the chunk, only block boundaries reached from its two ends can be trusted (a
 * payload may hold the stale header and footer of a block merged away, intact), so a walk up from
 * the prologue by the headers' sizes and one down from the epilogue by the footers' sizes take
 * turns until one reaches the address: O(the smaller of the blocks before and after it in its
 * chunk), O(1) in a chunk of one large request.
 *
 * @module
 */

// This file: the public class, its checks and counters. Underneath: the blocks and their fast
// paths (first fit, split, coalesce, resize in place, the spare) in _first_fit_heap.ts, over the
// layout of _first_fit_layout.ts, the chunks of _first_fit_chunks.ts and the free list of
// _first_fit_free_list.ts; validate, blocks() and the diagnosis of a bad address in
// _first_fit_inspect.ts; the options and stats types in _first_fit_options.ts.

import type { Allocator } from "../allocator.ts";
import { HeapClosedError } from "../errors.ts";
import { Counters } from "../_counters.ts";
import { reallocEdge } from "../_checks.ts";
import { callocSize, checkSize, viewLength } from "../_size.ts";
import { libcOs } from "../../ffi/libc.ts";
import { CountingOs } from "../../ffi/counting_os.ts";
import { BlockHeap } from "./_first_fit_heap.ts";
import { checkHeap, listBlocks, liveBlockAround } from "./_first_fit_inspect.ts";
import type { BlockInfo } from "../heap/types.ts";
import { dataViewOf, type TypedArrayConstructor, typedView } from "../_views.ts";
import { lookable, noBlock } from "./_block_access.ts";
import { bytesFrom } from "../_views.ts";
import {
  chunkSizeOf,
  type FirstFitBlock,
  type FirstFitOptions,
  type FirstFitStats,
} from "./_first_fit_options.ts";

export {
  BLOCK_OVERHEAD,
  CHUNK_OVERHEAD,
  DEFAULT_CHUNK_SIZE,
  GRANULE,
  HEADER_SIZE,
  MIN_BLOCK_SIZE,
} from "./_first_fit_layout.ts";
export type { FirstFitBlock, FirstFitOptions, FirstFitStats };

/** Bytes of the two free-list links at the start of a free block's payload (a fresh chunk's). */
const LINKS_SIZE = 16;

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
  #heap: BlockHeap;
  #counters = new Counters();
  #calls: CountingOs;
  #closed = false;

  /**
   * Creates an empty heap; the first chunk is mapped on first use.
   *
   * @param options The chunk size and the OS; optional.
   * @throws {RangeError} When `chunkSize` is not a power of two from the page size to 1 GiB.
   * @throws {Deno.errors.NotCapable} Without `--allow-ffi`.
   */
  constructor(options: FirstFitOptions = {}) {
    const os = this.#calls = new CountingOs(options.os ?? libcOs);
    this.#chunkSize = chunkSizeOf(options, os.pageSize());
    this.#heap = new BlockHeap(os, this.#chunkSize);
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
    this.#open("malloc");
    checkSize(size, "allocate");
    const address = this.#heap.allocate(size);
    this.#counters.allocated(size);
    this.#notePeaks();
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
    this.#open("calloc");
    const total = callocSize(count, size);
    const heap = this.#heap;
    const address = heap.allocate(total);
    this.#counters.allocated(total);
    const chunk = heap.chunks.of(address)!;
    const offset = address - chunk.base;
    // A block carved from a chunk mapped just now is zero but for the free-list links its first
    // 16 bytes held; any other block may be dirty all through.
    const dirty = heap.fresh ? LINKS_SIZE : heap.usable(chunk, offset / 16 - 1);
    chunk.bytes.fill(0, offset, offset + dirty);
    this.#notePeaks();
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
    const edge = reallocEdge(this, this.#closed, address, size);
    if (edge !== -1) return edge;
    const heap = this.#heap;
    const g = heap.find(address, "reallocate");
    const chunk = heap.hit!;
    const old = heap.requested(chunk, g);
    if (heap.resizeInPlace(chunk, g, size)) {
      this.#counters.liveBytes += size - old;
      this.#notePeaks();
      return address;
    }
    // Move: allocate first, so that a failure leaves the old block untouched; if the OS then
    // refuses to take back the chunk the old block empties, the new block is freed again.
    const moved = heap.allocate(size);
    const to = heap.chunks.of(moved)!;
    const from = address - chunk.base;
    const kept = Math.min(heap.usable(chunk, g), size);
    to.bytes.set(chunk.bytes.subarray(from, from + kept), moved - to.base);
    try {
      heap.release(chunk, g);
    } catch (error) {
      if (!heap.undoAllocate(to, moved)) this.#counters.allocated(size); // kept: counted live
      throw error;
    }
    this.#counters.allocated(size);
    this.#counters.freed(old);
    this.#notePeaks();
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
    this.#open("free");
    if (address === 0) return;
    const heap = this.#heap;
    const g = heap.find(address, "free");
    const chunk = heap.hit!;
    const requested = heap.requested(chunk, g);
    heap.release(chunk, g);
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
    this.#open("usableSize");
    const g = this.#heap.find(address, "find the size of");
    return this.#heap.usable(this.#heap.hit!, g);
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
    this.#open("bytes");
    const g = this.#heap.find(address, "view");
    const chunk = this.#heap.hit!;
    const usable = this.#heap.usable(chunk, g);
    const wanted = viewLength(address, length, usable);
    const offset = address - chunk.base;
    return chunk.bytes.subarray(offset, offset + wanted);
  }

  /**
   * The live block whose payload holds `address`: any byte of it, not only its start (C hands
   * back interior pointers). The chunk is one `Map` lookup; in it, the blocks are walked from both
   * of its ends at once, by the headers' sizes up and the footers' sizes down (a payload may hold
   * stale headers, so only boundaries reached from the ends are trusted): O(the smaller of the
   * blocks before and after it in its chunk), O(1) for a block larger than a chunk.
   *
   * @param address An address inside a live block's payload.
   * @returns The block's payload address and usable size.
   * @throws {InvalidAddressError} When no live block's payload holds `address` (a free block, a
   *   header or footer, a chunk's edge, no chunk, not an integer).
   * @throws {TypeError} When `address` is not a number.
   * @throws {HeapClosedError} After `close()`.
   *
   * @example The element of an array that C points at
   * ```ts
   * import { FirstFitAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new FirstFitAllocator();
   * const array = heap.malloc(10 * 8);
   * assert.deepEqual(heap.blockOf(array + 3 * 8), { address: array, size: 80 });
   * ```
   */
  blockOf(address: number): BlockInfo {
    if (!lookable(this.#closed, address)) throw noBlock(address, "it is not an integer");
    const chunk = this.#heap.chunks.of(address);
    if (chunk === undefined || address >= chunk.base + chunk.length) {
      throw noBlock(address, "it is in no chunk of this heap");
    }
    return liveBlockAround(chunk, address);
  }

  /**
   * `length` bytes from any address inside a live block's payload, bounded by the payload's end.
   *
   * @param address An address inside a live block.
   * @param length Bytes to cover; at most to the block's end (the default).
   * @returns A view of the memory.
   * @throws {InvalidAddressError} When no live block holds `address`.
   * @throws {RangeError} When `length` passes the block's end.
   *
   * @example The second half of a block
   * ```ts
   * import { FirstFitAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new FirstFitAllocator();
   * const address = heap.malloc(16);
   * heap.bytes(address).set([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
   * assert.deepEqual([...heap.bytesAt(address + 8, 4)], [8, 9, 10, 11]);
   * assert.throws(() => heap.bytesAt(address + 8, 9), RangeError);
   * ```
   */
  bytesAt(address: number, length?: number): Uint8Array {
    return bytesFrom(this, address, length);
  }

  /**
   * A typed view (`Type`: any typed-array constructor) from `address`, inside a live block's
   * payload, to its end or `length` elements.
   *
   * @param address An address inside a live block, aligned for `Type`.
   * @param Type `Int32Array`, `Float64Array`, `BigUint64Array`, ...
   * @param length Elements; as many as fit to the block's end by default.
   * @returns The view.
   * @throws {InvalidAddressError} When no live block holds `address`.
   * @throws {RangeError} When `address` is not aligned for `Type`, or `length` passes the block's end.
   *
   * @example An array of doubles
   * ```ts
   * import { FirstFitAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new FirstFitAllocator();
   * const address = heap.malloc(4 * 8);
   * const xs = heap.view(address, Float64Array);
   * xs.set([1.5, 2.5, 3.5, 4.5]);
   * assert.equal(heap.view(address + 8, Float64Array, 1)[0], 2.5);
   * assert.throws(() => heap.view(address + 4, Float64Array), RangeError); // misaligned
   * ```
   */
  view<T>(address: number, Type: TypedArrayConstructor<T>, length?: number): T {
    return typedView(this.bytesAt(address), address, Type, length);
  }

  /**
   * A `DataView` from `address`, inside a live block's payload, to its end or `length` bytes.
   *
   * @param address An address inside a live block.
   * @param length Bytes; to the block's end by default.
   * @returns The view.
   * @throws {InvalidAddressError} When no live block holds `address`.
   * @throws {RangeError} When `length` passes the block's end.
   *
   * @example Fields of mixed types
   * ```ts
   * import { FirstFitAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new FirstFitAllocator();
   * const view = heap.dataView(heap.malloc(24));
   * view.setInt32(0, 7, true);
   * view.setFloat64(8, 0.5, true);
   * assert.equal(view.getInt32(0, true), 7);
   * assert.equal(view.byteLength, 32); // 24 + 16 rounded up to 48, less header and footer
   * ```
   */
  dataView(address: number, length?: number): DataView {
    return dataViewOf(this.bytesAt(address), address, length);
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
    this.#open("stats");
    const heap = this.#heap;
    return {
      ...this.#counters.snapshot(heap.chunks.mappedBytes, heap.allocatedBytes, this.#calls.counts),
      chunks: heap.chunks.count,
      freeBlocks: heap.list.count,
      freeBytes: heap.chunks.capacity - heap.allocatedBytes,
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
    this.#open("blocks");
    return listBlocks(this.#heap.chunks);
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
    this.#open("validate");
    const heap = this.#heap;
    checkHeap({
      chunks: heap.chunks,
      list: heap.list,
      spare: heap.spare,
      allocatedBytes: heap.allocatedBytes,
      liveAllocations: this.#counters.liveAllocations,
      liveBytes: this.#counters.liveBytes,
    });
  }

  /**
   * Checks the allocator for damage. This design keeps no redzones or quarantine (PseudoMalloc's
   * debug mode does), so it checks the invariants: the same as `validate()`.
   *
   * @example After some work
   * ```ts
   * import { FirstFitAllocator } from "@pseudo/malloc";
   *
   * using heap = new FirstFitAllocator();
   * heap.free(heap.malloc(100));
   * heap.check();
   * ```
   */
  check(): void {
    this.validate();
  }

  /**
   * Unmaps every chunk. Every later method call except `close` throws {@linkcode HeapClosedError};
   * closing twice does nothing.
   *
   * @throws {OsError} When the OS refuses a `munmap`: the heap then stays open with the chunks not
   *   unmapped yet, their blocks as they were (the blocks of the chunks unmapped before count as
   *   freed), and `close` can be called again.
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
    const heap = this.#heap;
    for (const chunk of [...heap.chunks]) {
      try {
        heap.chunks.unmap(chunk);
      } catch (error) {
        // The chunks unmapped so far are gone, their blocks with them: count those as freed.
        const left = heap.keepOnly();
        const counters = this.#counters;
        counters.totalFrees += counters.liveAllocations - left.live;
        counters.liveBytes = left.requested;
        throw error;
      }
    }
    this.#closed = true;
    heap.list.clear();
    heap.spare = heap.hit = undefined;
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

  /** Throws {@linkcode HeapClosedError} for `operation` once the allocator is closed. */
  #open(operation: string): void {
    if (this.#closed) throw new HeapClosedError(operation);
  }

  #notePeaks(): void {
    this.#counters.notePeaks(this.#heap.chunks.mappedBytes);
  }
}
