/**
 * The fixed-size cell allocator (a pool or slab allocator): every block is one cell of the same
 * size, and the free cells form a linked list that lives in the free cells themselves.
 *
 * ## Algorithm
 *
 * Memory comes in chunks (64 KiB by default) mapped at addresses that are multiples of their size,
 * cut into cells (32 bytes by default). A free cell's first 8 bytes hold the address of the next
 * free cell, as a native pointer (0 ends the list); a live cell holds the caller's data. In C:
 * `union cell { union cell *next; unsigned char data[32]; }`. `malloc` pops the list's head, `free`
 * pushes the cell back on, so the most recently freed cell is reused first (LIFO, cache-warm).
 * When the list is empty, `malloc` maps another chunk and links all its cells in address order.
 *
 * ```
 *   chunk (64 KiB, aligned to 64 KiB)
 *   ┌──────┬──────┬──────┬──────┬──────┬──────┬─────┐
 *   │ data │ next─┼──┐   │ data │ next─┼─▶ 0  │ ... │     head ──▶ cell 1 ──▶ cell 4 ──▶ 0
 *   └──────┴──────┴──┼───┴──────┴──▲───┴──────┴─────┘
 *    cell 0  cell 1  └─────────────┘ cell 4
 * ```
 *
 * The chunk that owns an address is found in O(1) however many chunks there are:
 * `Math.floor(address / chunkSize)`, counted from the first chunk's, is the key of one `Map`
 * lookup. JavaScript keeps one small
 * typed array per chunk, with one entry per cell: 0 when the cell is free, the requested size plus
 * one when it is live (1 byte per cell for cells up to 240 bytes: 2 KiB per default chunk, 3 %).
 *
 * ## Costs
 *
 * - Time: `malloc` is a list pop plus a check of the popped link (one `Map` lookup); `free` is one
 *   lookup, one check and a push (two 32-bit stores). Both O(1), with no system call. Growing maps
 *   one chunk and links its cells, O(cells per chunk), amortised O(1) per `malloc`.
 * - Space: no header per block. Internal fragmentation is the cell's unused tail: a 1-byte request
 *   takes 32 bytes. There is no external fragmentation among cells (any free cell serves any
 *   request), but chunks are never unmapped before `close()`, so the mapped memory stays at its
 *   peak, and cells of a mostly free chunk cannot serve anything else.
 * - Limits: one size only; a request larger than a cell is a `RangeError`. Real allocators (slab
 *   allocators, mimalloc's pages) run one such pool per size class.
 *
 * ## Misuse detected
 *
 * - Exactly, and at any time: foreign addresses (no chunk), addresses inside a cell or past the
 *   last cell of a chunk, and double frees (the cell's entry is 0). No error changes any state.
 * - A write to a freed cell's first 8 bytes (use after free) corrupts its link. `malloc` checks
 *   every link it pops: a link that does not lead to a free cell of this allocator throws an
 *   `Error` instead of handing out a cell twice, and a list that ends while cells are still free
 *   is reported when it runs dry. `validate()` walks the whole list. A corrupted allocator keeps
 *   throwing: the heap is damaged, as glibc's "corrupted free list" abort says.
 * - Not detected: writes to the other bytes of a freed cell, reads after free, overflows into a
 *   live neighbour cell, and a stale `free` of a cell that was handed out again (it frees the new
 *   owner's block, as with every allocator that reuses memory).
 *
 * ## Interior addresses
 *
 * `blockOf`, `bytesAt`, `view` and `dataView` take any byte of a live cell: the chunk by the same
 * `Map` lookup, the cell by a division, its entry for whether it is live. O(1).
 *
 * @module
 */

import type { Allocator } from "../allocator.ts";
import { HeapClosedError, hex, OutOfMemoryError } from "../errors.ts";
import { Counters } from "../_counters.ts";
import { reallocEdge } from "../_checks.ts";
import { callocSize, checkSize, viewLength } from "../_size.ts";
import type { Os } from "../../ffi/os.ts";
import { libcOs } from "../../ffi/libc.ts";
import { CountingOs } from "../../ffi/counting_os.ts";
import {
  type CellAllocatorOptions,
  type CellGeometry,
  cellGeometry,
  type CellStats,
} from "./_cell_options.ts";
import { checkCells, type Chunk, linkAt, mapChunk, rejection, relink } from "./_cell_chunks.ts";
import type { BlockInfo } from "../heap/types.ts";
import { dataViewOf, type TypedArrayConstructor, typedView } from "../_views.ts";
import { lookable, noBlock } from "./_block_access.ts";
import { bytesFrom } from "../_views.ts";

export type { CellAllocatorOptions, CellStats };

const TWO_32 = 2 ** 32;

/**
 * A fixed-size cell allocator: every block is one cell (32 bytes by default), taken from a free
 * list threaded through the free cells in native memory. `malloc` pops, `free` pushes, and the
 * pool grows by a chunk when the list is empty. Requests larger than a cell throw `RangeError`.
 * Needs `--allow-ffi`.
 *
 * @example Nodes of a linked structure
 * ```ts
 * import { CellAllocator } from "@pseudo/malloc";
 * import assert from "node:assert/strict";
 *
 * using cells = new CellAllocator();
 * const a = cells.malloc(16);
 * const b = cells.malloc(16);
 * assert.equal(b - a, 32); // consecutive cells of a fresh chunk
 * cells.free(a);
 * assert.equal(cells.malloc(8), a); // the last freed cell is reused first
 * assert.throws(() => cells.malloc(33), RangeError);
 * ```
 */
export class CellAllocator implements Allocator {
  #os: Os;
  #geometry: CellGeometry;
  // The geometry again, as fields of their own for the fast paths.
  #cellSize: number;
  #chunkSize: number;
  #maxChunks: number;
  #cellsPerChunk: number;

  #chunks: Chunk[] = [];
  /** Chunks by `Math.floor((address - origin) / chunkSize)`. */
  #chunkByKey = new Map<number, Chunk>();
  /**
   * The first chunk's address. Keys count chunks from it, so they stay small integers (V8 Smis, a
   * faster `Map` key than the ~2^31 of `address / chunkSize` on a 47-bit address space).
   */
  #origin = 0;
  /** The first free cell, 0 when the list is empty, and its chunk. */
  #head = 0;
  #headChunk: Chunk | undefined;
  /** Cells that should be on the free list. */
  #freeCells = 0;
  #counters = new Counters();
  #calls: CountingOs;
  #closed = false;

  /**
   * Creates an allocator. The first chunk is mapped on first use.
   *
   * @param options Cell size, chunk size, chunk limit and the OS; all optional.
   * @throws {RangeError} When an option is out of range.
   * @throws {Deno.errors.NotCapable} Without `--allow-ffi`.
   *
   * @example Custom geometry
   * ```ts
   * import { CellAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using cells = new CellAllocator({ cellSize: 48 });
   * assert.equal(cells.cellsPerChunk, 1365); // 65536 / 48, the last 16 bytes unused
   * assert.throws(() => new CellAllocator({ cellSize: 24 }), RangeError);
   * ```
   */
  constructor(options: CellAllocatorOptions = {}) {
    this.#os = this.#calls = new CountingOs(options.os ?? libcOs);
    const geometry = cellGeometry(options, this.#os.pageSize());
    this.#geometry = geometry;
    this.#cellSize = geometry.cellSize;
    this.#chunkSize = geometry.chunkSize;
    this.#maxChunks = geometry.maxChunks;
    this.#cellsPerChunk = geometry.cellsPerChunk;
  }

  /**
   * Bytes per cell: the usable size of every block and the largest request.
   *
   * @returns The cell size.
   *
   * @example The default
   * ```ts
   * import { CellAllocator } from "@pseudo/malloc";
   *
   * using cells = new CellAllocator();
   * console.log(cells.cellSize); // 32
   * ```
   */
  get cellSize(): number {
    return this.#cellSize;
  }

  /**
   * Bytes per chunk.
   *
   * @returns The chunk size.
   *
   * @example The default
   * ```ts
   * import { CellAllocator } from "@pseudo/malloc";
   *
   * using cells = new CellAllocator();
   * console.log(cells.chunkSize); // 65536
   * ```
   */
  get chunkSize(): number {
    return this.#chunkSize;
  }

  /**
   * Cells in each chunk: `Math.floor(chunkSize / cellSize)`.
   *
   * @returns The number of cells per chunk.
   *
   * @example The default
   * ```ts
   * import { CellAllocator } from "@pseudo/malloc";
   *
   * using cells = new CellAllocator();
   * console.log(cells.cellsPerChunk); // 2048
   * ```
   */
  get cellsPerChunk(): number {
    return this.#cellsPerChunk;
  }

  /**
   * Takes a cell from the free list, mapping a new chunk when the list is empty. The memory is not
   * cleared: a reused cell still holds its old data, and its first 8 bytes the old list link.
   *
   * @param size Bytes wanted, at most the cell size; 0 gives a cell too, which must be freed.
   * @returns The cell's address, 16-byte aligned.
   * @throws {TypeError} When `size` is not a number.
   * @throws {RangeError} When `size` is invalid or larger than a cell.
   * @throws {OutOfMemoryError} When the list is empty and no chunk can be mapped.
   * @throws {Error} When the free list was corrupted by a write to a freed cell.
   *
   * @example Any request up to the cell size
   * ```ts
   * import { CellAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using cells = new CellAllocator();
   * assert.equal(cells.usableSize(cells.malloc(1)), 32);
   * assert.equal(cells.usableSize(cells.malloc(32)), 32);
   * ```
   */
  malloc(size: number): number {
    this.#open("malloc");
    checkSize(size, "allocate");
    if (size > this.#cellSize) throw this.#tooLarge(`${size} bytes`, "allocate");
    const address = this.#pop(size);
    this.#notePeaks();
    return address;
  }

  /**
   * Takes a cell and zeroes all of it, for `count` elements of `size` bytes.
   *
   * @param count Number of elements.
   * @param size Bytes per element.
   * @returns The cell's address.
   * @throws {TypeError} When an argument is not a number.
   * @throws {RangeError} When an argument is invalid or `count * size` is larger than a cell.
   * @throws {OutOfMemoryError} When no chunk can be mapped.
   * @throws {Error} When the free list was corrupted.
   *
   * @example A zeroed cell, even when reused
   * ```ts
   * import { CellAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using cells = new CellAllocator();
   * const dirty = cells.malloc(32);
   * cells.bytes(dirty).fill(0xff);
   * cells.free(dirty);
   * const address = cells.calloc(4, 8);
   * assert.equal(address, dirty);
   * assert.ok(cells.bytes(address).every((byte) => byte === 0));
   * ```
   */
  calloc(count: number, size: number): number {
    this.#open("calloc");
    const total = callocSize(count, size);
    if (total > this.#cellSize) throw this.#tooLarge(`${count} × ${size} bytes`, "allocate");
    const chunk = this.#head === 0 ? undefined : this.#headChunk;
    const address = this.#pop(total);
    const owner = chunk ?? this.#chunkOf(address)!;
    const offset = address - owner.base;
    owner.bytes.fill(0, offset, offset + this.#cellSize);
    this.#notePeaks();
    return address;
  }

  /**
   * Resizes a block, C style: `realloc(0, n)` is `malloc(n)`; `realloc(a, 0)` frees `a` and returns
   * 0. Any size up to the cell size keeps the block where it is (only the recorded size changes);
   * a larger size throws `RangeError` and leaves the block untouched.
   *
   * @param address A live cell, or 0.
   * @param size The new size in bytes, at most the cell size.
   * @returns `address` (or a new cell when `address` is 0; 0 when `size` is 0).
   * @throws {TypeError} When `size` is not a number.
   * @throws {RangeError} When `size` is invalid or larger than a cell.
   * @throws {InvalidFreeError} When `address` is not a live cell of this allocator.
   * @throws {DoubleFreeError} When `address` is a free cell.
   *
   * @example Within the cell, in place
   * ```ts
   * import { CellAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using cells = new CellAllocator();
   * const address = cells.malloc(8);
   * assert.equal(cells.realloc(address, 32), address);
   * assert.throws(() => cells.realloc(address, 33), RangeError);
   * ```
   */
  realloc(address: number, size: number): number {
    const edge = reallocEdge(this, this.#closed, address, size);
    if (edge !== -1) return edge;
    if (size > this.#cellSize) throw this.#tooLarge(`${size} bytes`, "reallocate");
    const chunk = this.#live(address, "reallocate");
    const cell = (address - chunk.base) / this.#cellSize;
    this.#counters.liveBytes += size + 1 - chunk.slots[cell]!;
    chunk.slots[cell] = size + 1;
    this.#notePeaks();
    return address;
  }

  /**
   * Pushes a cell back on the free list: its first 8 bytes become the link to the previous head.
   * `free(0)` does nothing.
   *
   * @param address A live cell, or 0.
   * @throws {InvalidFreeError} When `address` is foreign or not the start of a cell.
   * @throws {DoubleFreeError} When the cell is already free.
   *
   * @example Double free
   * ```ts
   * import { CellAllocator, DoubleFreeError } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using cells = new CellAllocator();
   * const address = cells.malloc(8);
   * cells.free(address);
   * assert.throws(() => cells.free(address), DoubleFreeError);
   * ```
   */
  free(address: number): void {
    this.#open("free");
    if (address === 0) return;
    const chunk = this.#live(address, "free");
    const offset = address - chunk.base;
    const cell = offset / this.#cellSize;
    this.#counters.freed(chunk.slots[cell]! - 1);
    chunk.slots[cell] = 0;
    const words = chunk.words;
    const word = offset / 4;
    words[word] = this.#head >>> 0;
    words[word + 1] = Math.floor(this.#head / TWO_32);
    this.#head = address;
    this.#headChunk = chunk;
    this.#freeCells++;
  }

  /**
   * The usable size of a live cell: always the cell size.
   *
   * @param address A live cell.
   * @returns The cell size.
   * @throws {InvalidAddressError} When `address` is not a live cell.
   *
   * @example Whatever was asked
   * ```ts
   * import { CellAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using cells = new CellAllocator({ cellSize: 64 });
   * assert.equal(cells.usableSize(cells.malloc(0)), 64);
   * ```
   */
  usableSize(address: number): number {
    this.#open("usableSize");
    this.#live(address, "find the size of");
    return this.#cellSize;
  }

  /**
   * A `Uint8Array` over a live cell: a `subarray` of its chunk's one view. After `free` the cell's
   * first 8 bytes hold the free-list link: do not write through an old view.
   *
   * @param address A live cell.
   * @param length Bytes to cover, at most the cell size (the default).
   * @returns A view of the cell's memory.
   * @throws {InvalidAddressError} When `address` is not a live cell.
   * @throws {RangeError} When `length` is negative or beyond the cell size.
   *
   * @example Writing through a view
   * ```ts
   * import { CellAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using cells = new CellAllocator();
   * const address = cells.malloc(2);
   * cells.bytes(address, 2).set([4, 2]);
   * assert.equal(cells.bytes(address)[1], 2);
   * ```
   */
  bytes(address: number, length?: number): Uint8Array {
    this.#open("bytes");
    const chunk = this.#live(address, "view");
    const wanted = viewLength(address, length, this.#cellSize);
    const offset = address - chunk.base;
    return chunk.bytes.subarray(offset, offset + wanted);
  }

  /**
   * The live cell that holds `address`: any byte of it, not only its start (C hands back interior
   * pointers). O(1): the chunk by one `Map` lookup, the cell by a division, its entry.
   *
   * @param address An address inside a live cell.
   * @returns The cell's start and size.
   * @throws {InvalidAddressError} When no live cell holds `address` (a free cell, a chunk's tail
   *   past its last cell, no chunk, not an integer).
   * @throws {TypeError} When `address` is not a number.
   * @throws {HeapClosedError} After `close()`.
   *
   * @example The cell of an interior pointer
   * ```ts
   * import { CellAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using cells = new CellAllocator();
   * const cell = cells.malloc(24);
   * assert.deepEqual(cells.blockOf(cell + 20), { address: cell, size: 32 });
   * ```
   */
  blockOf(address: number): BlockInfo {
    if (!lookable(this.#closed, address)) throw noBlock(address, "it is not an integer");
    const chunk = this.#chunkOf(address);
    if (chunk === undefined) throw noBlock(address, "it is in no chunk of this allocator");
    const cell = Math.floor((address - chunk.base) / this.#cellSize);
    if (cell >= this.#cellsPerChunk) {
      throw noBlock(address, "it is past the last cell of its chunk");
    }
    if (chunk.slots[cell] === 0) throw noBlock(address, "it lies in a free cell");
    return { address: chunk.base + cell * this.#cellSize, size: this.#cellSize };
  }

  /**
   * `length` bytes from any address inside a live cell, bounded by the cell's end.
   *
   * @param address An address inside a live cell.
   * @param length Bytes to cover; at most to the cell's end (the default).
   * @returns A view of the memory.
   * @throws {InvalidAddressError} When no live cell holds `address`.
   * @throws {RangeError} When `length` passes the cell's end.
   *
   * @example The second half of a cell
   * ```ts
   * import { CellAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using cells = new CellAllocator({ cellSize: 16 });
   * const cell = cells.malloc(16);
   * cells.bytes(cell).set([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
   * assert.deepEqual([...cells.bytesAt(cell + 8, 4)], [8, 9, 10, 11]);
   * assert.throws(() => cells.bytesAt(cell + 8, 9), RangeError);
   * ```
   */
  bytesAt(address: number, length?: number): Uint8Array {
    return bytesFrom(this, address, length);
  }

  /**
   * A typed view (`Type`: any typed-array constructor) from `address`, inside a live cell, to the
   * cell's end or `length` elements.
   *
   * @param address An address inside a live cell, aligned for `Type`.
   * @param Type `Int32Array`, `Float64Array`, `BigUint64Array`, ...
   * @param length Elements; as many as fit to the cell's end by default.
   * @returns The view.
   * @throws {InvalidAddressError} When no live cell holds `address`.
   * @throws {RangeError} When `address` is not aligned for `Type`, or `length` passes the cell's end.
   *
   * @example A node of two doubles
   * ```ts
   * import { CellAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using cells = new CellAllocator({ cellSize: 16 });
   * const node = cells.malloc(16);
   * cells.view(node, Float64Array).set([1.5, 2.5]);
   * assert.equal(cells.view(node + 8, Float64Array, 1)[0], 2.5);
   * assert.throws(() => cells.view(node + 4, Float64Array), RangeError); // misaligned
   * ```
   */
  view<T>(address: number, Type: TypedArrayConstructor<T>, length?: number): T {
    return typedView(this.bytesAt(address), address, Type, length);
  }

  /**
   * A `DataView` from `address`, inside a live cell, to the cell's end or `length` bytes.
   *
   * @param address An address inside a live cell.
   * @param length Bytes; to the cell's end by default.
   * @returns The view.
   * @throws {InvalidAddressError} When no live cell holds `address`.
   * @throws {RangeError} When `length` passes the cell's end.
   *
   * @example Fields of mixed types
   * ```ts
   * import { CellAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using cells = new CellAllocator();
   * const view = cells.dataView(cells.malloc(12));
   * view.setInt32(0, 7, true);
   * view.setFloat64(8, 0.5, true);
   * assert.equal(view.getFloat64(8, true), 0.5);
   * assert.equal(view.byteLength, 32); // the whole cell
   * ```
   */
  dataView(address: number, length?: number): DataView {
    return dataViewOf(this.bytesAt(address), address, length);
  }

  /**
   * The counters, plus the chunks mapped and the cells on the free list.
   *
   * @returns A fresh snapshot.
   *
   * @example One chunk after the first request
   * ```ts
   * import { CellAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using cells = new CellAllocator();
   * cells.malloc(20);
   * const stats = cells.stats();
   * assert.equal(stats.chunks, 1);
   * assert.equal(stats.mappedBytes, 65536);
   * assert.equal(stats.liveBytes, 20);
   * assert.equal(stats.allocatedBytes, 32);
   * ```
   */
  stats(): CellStats {
    this.#open("stats");
    return {
      ...this.#counters.snapshot(
        this.#mappedBytes(),
        this.#counters.liveAllocations * this.#cellSize,
        this.#calls.counts,
      ),
      chunks: this.#chunks.length,
      freeCells: this.#freeCells,
    };
  }

  /**
   * Checks every invariant: each chunk is aligned and indexed, each cell's entry is in range, the
   * free list runs through exactly the free cells (no cycle, no live or foreign cell, nothing
   * lost), and the counters agree with the cells. Throws an `Error` naming the first broken one.
   * O(cells).
   *
   * @example After some work
   * ```ts
   * import { CellAllocator } from "@pseudo/malloc";
   *
   * using cells = new CellAllocator();
   * cells.free(cells.malloc(10));
   * cells.validate();
   * ```
   */
  validate(): void {
    this.#open("validate");
    checkCells({
      geometry: this.#geometry,
      chunks: this.#chunks,
      chunkByKey: this.#chunkByKey,
      origin: this.#origin,
      head: this.#head,
      headChunk: this.#headChunk,
      freeCells: this.#freeCells,
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
   * import { CellAllocator } from "@pseudo/malloc";
   *
   * using heap = new CellAllocator();
   * heap.free(heap.malloc(16));
   * heap.check();
   * ```
   */
  check(): void {
    this.validate();
  }

  /**
   * Unmaps every chunk. Every later call except `close` throws {@linkcode HeapClosedError};
   * closing twice does nothing. Views of the cells die: touching one kills the process.
   *
   * @throws {OsError} When the OS refuses a `munmap`: the allocator then stays open with the
   *   chunks not unmapped yet, their cells as they were (the cells of the chunks unmapped before
   *   count as freed), and `close` can be called again.
   *
   * @example Explicit close
   * ```ts
   * import { CellAllocator } from "@pseudo/malloc";
   *
   * const cells = new CellAllocator();
   * cells.malloc(10);
   * cells.close();
   * ```
   */
  close(): void {
    if (this.#closed) return;
    const chunks = this.#chunks;
    for (let i = 0; i < chunks.length; i++) {
      try {
        this.#os.unmap(chunks[i]!.base, this.#chunkSize);
      } catch (error) {
        this.#keepOnly(chunks.slice(i));
        throw error;
      }
    }
    this.#closed = true;
    this.#chunks = [];
    this.#chunkByKey.clear();
    this.#head = 0;
    this.#headChunk = undefined;
    this.#freeCells = 0;
  }

  /**
   * Same as {@linkcode CellAllocator.prototype.close}, for `using`.
   *
   * @example Scoped allocator
   * ```ts
   * import { CellAllocator } from "@pseudo/malloc";
   *
   * {
   *   using cells = new CellAllocator();
   *   cells.malloc(10);
   * } // unmapped here
   * ```
   */
  [Symbol.dispose](): void {
    this.close();
  }

  // --- internals --------------------------------------------------------------------------------

  /** Pops the head of the free list for a request of `size` bytes, growing the pool if empty. */
  #pop(size: number): number {
    if (this.#head === 0) this.#grow(size);
    const address = this.#head;
    const chunk = this.#headChunk!;
    const next = linkAt(chunk, address);
    let nextChunk: Chunk | undefined;
    if (next !== 0) {
      nextChunk = this.#chunkOf(next);
      if (nextChunk === undefined || !this.#isFreeCell(nextChunk, next)) {
        throw new Error(
          `CellAllocator free list corrupted: the free cell ${hex(address)} links to ${
            hex(next)
          }, which is not a free cell (was the cell written after free?)`,
        );
      }
    }
    this.#head = next;
    this.#headChunk = nextChunk;
    this.#freeCells--;
    chunk.slots[(address - chunk.base) / this.#cellSize] = size + 1;
    this.#counters.allocated(size);
    return address;
  }

  /** Maps a chunk and links all its cells, in address order, as the new free list. */
  #grow(size: number): void {
    if (this.#freeCells !== 0) {
      throw new Error(
        `CellAllocator free list corrupted: it ends but ${this.#freeCells} cells are free (was a cell written after free?)`,
      );
    }
    if (this.#chunks.length >= this.#maxChunks) {
      throw new OutOfMemoryError(
        `Cannot allocate ${size} bytes: all ${this.#chunks.length} chunks are full (maxChunks is ${this.#maxChunks})`,
      );
    }
    const chunk = mapChunk(this.#os, this.#geometry); // first: a refusal changes nothing
    const base = chunk.base;
    this.#chunks.push(chunk);
    if (this.#chunks.length === 1) this.#origin = base;
    this.#chunkByKey.set((base - this.#origin) / this.#chunkSize, chunk);
    this.#head = base;
    this.#headChunk = chunk;
    this.#freeCells += this.#cellsPerChunk;
  }

  /**
   * After a `close` that the OS stopped at `survivors[0]`: forgets the chunks unmapped before it
   * (their live cells count as freed) and links the free cells of the chunks left anew, since the
   * old list ran through the unmapped ones. O(cells).
   */
  #keepOnly(survivors: Chunk[]): void {
    for (const chunk of this.#chunks.slice(0, this.#chunks.length - survivors.length)) {
      this.#chunkByKey.delete((chunk.base - this.#origin) / this.#chunkSize);
    }
    this.#chunks = survivors;
    const list = relink(survivors, this.#geometry);
    const counters = this.#counters;
    counters.totalFrees += counters.liveAllocations - list.live;
    counters.liveBytes = list.requested;
    this.#head = list.head;
    this.#headChunk = list.headChunk;
    this.#freeCells = list.count;
  }

  #chunkOf(address: number): Chunk | undefined {
    return this.#chunkByKey.get(Math.floor((address - this.#origin) / this.#chunkSize));
  }

  /** True when `address` is the start of a free cell of `chunk`. */
  #isFreeCell(chunk: Chunk, address: number): boolean {
    const offset = address - chunk.base;
    return offset % this.#cellSize === 0 && offset < this.#cellsPerChunk * this.#cellSize &&
      chunk.slots[offset / this.#cellSize] === 0;
  }

  /** The chunk of the live cell at `address`; throws the matching error otherwise. */
  #live(address: number, verb: string): Chunk {
    if (typeof address === "number") {
      const chunk = this.#chunkByKey.get(Math.floor((address - this.#origin) / this.#chunkSize));
      if (chunk !== undefined) {
        const offset = address - chunk.base;
        if (
          offset % this.#cellSize === 0 && offset < this.#cellsPerChunk * this.#cellSize &&
          chunk.slots[offset / this.#cellSize] !== 0
        ) {
          return chunk;
        }
      }
    }
    const chunk = typeof address === "number" ? this.#chunkOf(address) : undefined;
    throw rejection(chunk, address, verb, this.#geometry);
  }

  #tooLarge(what: string, verb: string): RangeError {
    return new RangeError(
      `Cannot ${verb} ${what}: a cell holds at most ${this.#cellSize} bytes`,
    );
  }

  #mappedBytes(): number {
    return this.#chunks.length * this.#chunkSize;
  }

  /** Throws {@linkcode HeapClosedError} for `operation` once the allocator is closed. */
  #open(operation: string): void {
    if (this.#closed) throw new HeapClosedError(operation);
  }

  #notePeaks(): void {
    this.#counters.notePeaks(this.#mappedBytes());
  }
}
