/**
 * One heap for every worker: `SharedPseudoMalloc` keeps all of its state in native memory, so a
 * block allocated in one worker can be read, resized and freed in any other.
 *
 * ## Design
 *
 * The same heap as `PseudoMalloc` (buddy arenas below `mmapThreshold`, a mapping per large block),
 * laid out in native memory (`_layout.ts`): a header page (lock word, closed flag, counts, the
 * per-order free-list heads), a region of `maxArenas` 1 MiB arenas reserved at once (below 2^31
 * where the OS takes the hint, so addresses are small integers), a tag per minimum block (requested
 * size + 1 of a live block, else 0), a bitmap per arena, a slot per attachment, and a table of the
 * live large blocks. `heap.handle` is the header's address in a plain object; `attach(handle)` in a
 * worker makes its own views over the same memory and takes a free slot.
 *
 * Like tcmalloc's thread caches over central free lists: each attachment's slot holds a block
 * cache (one LIFO stack of region offsets per order, 64 KiB of blocks per order), which only its
 * own attachment touches, without a lock. A free goes to the cache of the attachment that makes it,
 * whoever allocated the block, so a "remote" free is an ordinary free; a block migrates. Only a
 * miss (the stack of the order is empty: refill up to 32 blocks at once), an overflow (the stack is
 * full: half of it goes back), large blocks, attach, detach and inspection take the central lock.
 *
 * ## Memory ordering
 *
 * Three kinds of words:
 * - **Only under the lock**, read and written plainly: the free-list heads and the links inside
 *   free blocks, the bitmaps, the large table, the central counters (the `F_*` words of the header
 *   but the addresses and sizes, indexes 0-4 and 12-16, written once before the heap is
 *   published). The lock is taken with `Atomics.compareExchange` and released with
 *   `Atomics.store`, both sequentially consistent: every plain write made under the lock happens
 *   before every read made under it later. (ECMAScript's memory model promises that for a
 *   `SharedArrayBuffer`; this memory is a non-shared `ArrayBuffer` over native memory, for which
 *   the specification promises nothing: the argument rests on V8's implementation.) V8
 *   implements them as sequentially consistent operations of the CPU: `lock cmpxchg` and `xchg` on x86-64; on
 *   arm64 the C++ mapping of seq_cst (`ldaxr`/`stlxr` or LSE `casal`, `stlr`), which orders every
 *   earlier plain store before the release and every later load after the acquire (stated from
 *   that mapping, not from a run on arm64).
 * - **Only by their attachment**, plainly: a slot's stack depths, its stacks and its counters.
 *   Another attachment reads them in `stats()`, `validate()`, `heapMap()` and every slow path's
 *   peak sampling (`sumLive`: a snapshot, exact when the others are between calls and their last
 *   call happened before, e.g. by a message) and in `reclaim()` of a worker that is gone (its last
 *   writes happened before the message or exit that says so).
 * - **With `Atomics`**: the lock and `W_LOCK_PROGRESS`, `W_ATTACHED`, `W_BROKEN`, `W_ARENAS`, the
 *   writes of `W_CLOSED` (the fast paths read it plainly: a late read only lets one more call
 *   through, whose memory the last attachment to leave still keeps mapped), and the tags on
 *   `free`: `Atomics.exchange(tags, i, 0)` takes a block exactly once, so two workers freeing one
 *   block at the same time get it once and a `DoubleFreeError` once. A tag is written plainly
 *   by `malloc` (the block is in no one else's hands yet); the address then reaches another worker
 *   by `postMessage` or an atomic write of the program, which orders the tag before it.
 *
 * What the program must keep (as in C): a block is used and freed by one worker at a time, with a
 * happens-before edge (a message, an atomic) between its uses in two workers. A free racing with a
 * use is the program's bug; only two frees racing are detected. Tested on x86-64 only (TSO, where
 * plain stores are not reordered with each other); on arm64 the argument rests on V8's atomics
 * being acquire/release barriers as above, and on the program's happens-before edges: the snapshot
 * reads of other slots (stats, validate) can see their stores out of order there.
 *
 * ## Closing and terminated workers
 *
 * `close()` by the creator sets `W_CLOSED`; every call of every attachment reads it and throws
 * `HeapClosedError` (its own slot released then). The memory is unmapped by whoever lets go last
 * (`W_ATTACHED` reaches 0): nothing is unmapped while an attachment might still touch it. The
 * header page is never unmapped (4 KiB per heap), so a late `attach` or call reads "closed"
 * instead of faulting.
 *
 * A worker terminated between calls leaves its slot consistent: `reclaim(id)` (from any other
 * attachment, once the worker is gone) returns its cached blocks to the buddies and frees its slot;
 * its live blocks stay live (whoever holds their addresses frees them). "Gone" must be known:
 * Deno 2.9's `Worker.terminate()` does not stop a worker running synchronous code (measured: one
 * kept calling the heap for seconds after it), and reclaiming a worker that still runs hands its
 * cached blocks out twice. Reclaim a worker that told the main thread it is idle (waiting for
 * messages) before it was terminated, or whose process is gone. Terminated inside a call: if it
 * held the lock, every other slow path waits for it and gives up after a second without progress
 * (`W_LOCK_PROGRESS`: long calls under the lock, validate or heapMap, bump it) with an error naming
 * it; `reclaim` takes the lock over and validates what the lock protects; when that fails the heap
 * is marked broken (`W_CLOSED` = 2, which the fast paths load too) and every call throws
 * `HeapClosedError`. Otherwise the call's own block may be lost (taken from the cache but not
 * tagged, or untagged but not cached): `validate()` then reports it. Nothing else can be half-done,
 * since a slot is only written by its owner. A worker that dies inside `attach()` leaves the lock
 * held with no slot to reclaim: the heap then cannot be recovered (a limit, stated in
 * docs/shared.md).
 *
 * @module
 */

import type { Allocator } from "../allocator.ts";
import { CountingOs } from "../../ffi/counting_os.ts";
import { libcOs } from "../../ffi/libc.ts";
import type { Os } from "../../ffi/os.ts";
import { notAnAddress, reallocEdge } from "../_checks.ts";
import { HeapClosedError, hex, InvalidAddressError } from "../errors.ts";
import type { BlockInfo } from "../heap/types.ts";
import { bytesFrom, dataViewOf, type TypedArrayConstructor, typedView } from "../_views.ts";
import { largeStart, smallStart } from "./_block_of.ts";
import { Attachment } from "./_attachment.ts";
import { callocSize, roundUp, viewLength } from "../_size.ts";
import { findLarge, lock, unlock } from "./_central.ts";
import { createHeap, type SharedPseudoMallocOptions } from "./_create.ts";
import { flushSlot, rejectLarge, rejectSmall, retireSlot } from "./_slots.ts";
import {
  CLOSED_BROKEN,
  HEADER_BYTES,
  LARGE_RECORD,
  MAGIC,
  S_STATE,
  SF_ALLOCS,
  SF_FREES,
  SF_LIVE,
  SF_PEAK,
  W_ATTACHED,
  W_BROKEN,
  W_CLOSED,
  W_LOCK,
  W_MAGIC,
  W_MAX_ATTACHMENTS,
} from "./_layout.ts";
import { heapPictureOf, type SharedHeapStats, sharedStats, validateShared } from "./_inspect.ts";

export type { SharedPseudoMallocOptions } from "./_create.ts";
export type { AttachmentStats, SharedHeapStats } from "./_inspect.ts";

/** Set by `attach` for the constructor it calls: the attachment's OS and the heap's header. */
let attaching: { os: CountingOs; header: number } | undefined;

/** Bytes of blocks per order in a slot's stack: a constant of this module for the fast paths. */
const ORDER_BYTES = 65536;

/**
 * What `heap.handle` gives: a structured-cloneable value naming the heap's native memory, to pass
 * to a worker (`postMessage`) for {@linkcode SharedPseudoMalloc.attach}.
 */
export interface SharedHeapHandle {
  /** Always "SharedPseudoMalloc". */
  kind: "SharedPseudoMalloc";
  /** The address of the heap's header page. */
  header: number;
}

/**
 * A heap whose state is all in native memory, shared by the workers of a program: create it in one
 * worker, `attach(heap.handle)` in others; any attachment frees, reads or resizes any block. The
 * same `Allocator` contract as {@linkcode PseudoMalloc}. Needs `--allow-ffi`.
 *
 * @example One heap, one attachment (in a real program the handle goes to a worker)
 * ```ts
 * import { SharedPseudoMalloc } from "@pseudo/malloc";
 * import assert from "node:assert/strict";
 *
 * using heap = new SharedPseudoMalloc();
 * const other = SharedPseudoMalloc.attach(heap.handle); // what a worker does
 * const address = other.malloc(100);
 * other.bytes(address, 2).set([4, 2]);
 * assert.deepEqual([...heap.bytes(address, 2)], [4, 2]);
 * heap.free(address); // freed by another attachment than the one that allocated it
 * other.detach();
 * assert.equal(heap.stats().liveAllocations, 0);
 * ```
 */
export class SharedPseudoMalloc implements Allocator {
  /** This attachment: its views, its slot, and every path below the fast ones. */
  #a: Attachment;
  // The fast paths' state, in fields of their own (docs/hot_paths.md): the attachment's arrays.
  #words: Int32Array;
  #smallLimit = 0;
  #minShift = 0;
  #minBlockSize = 0;
  #base = 0;
  #regionBytes = 0;
  #tags: Uint32Array = new Uint32Array(0);
  #count: Int32Array = new Int32Array(0);
  #stack: Int32Array = new Int32Array(0);
  #ctr: Float64Array = new Float64Array(0);
  #region: Uint8Array = new Uint8Array(0);

  /**
   * Creates a shared heap; this object is its creator's attachment (slot 0).
   *
   * @param options Geometry and limits; all optional.
   * @throws {TypeError} When an option has the wrong type.
   * @throws {RangeError} When an option is out of range.
   * @throws {OutOfMemoryError} When the heap's memory cannot be mapped.
   */
  constructor(options: SharedPseudoMallocOptions = {}) {
    let a: Attachment;
    if (attaching !== undefined) {
      const { os, header } = attaching;
      attaching = undefined;
      a = new Attachment(os, header, false);
    } else {
      const os = new CountingOs(options.os ?? libcOs);
      a = new Attachment(os, createHeap(os, options), true);
    }
    this.#a = a;
    this.#words = a.words;
    this.#smallLimit = a.smallLimit;
    this.#minShift = a.minShift;
    this.#minBlockSize = a.minBlockSize;
    this.#base = a.base;
    this.#regionBytes = a.regionBytes;
    this.#tags = a.tags;
    this.#count = a.count;
    this.#stack = a.stack;
    this.#ctr = a.ctr;
    this.#region = a.v.region;
    // Once it let go, every call goes to the slow paths, which throw HeapClosedError.
    a.onLeave = () => {
      this.#smallLimit = 0;
      this.#regionBytes = 0;
    };
  }

  /**
   * Attaches to the heap of `handle` (made by `heap.handle` in another worker, or this one): a new
   * heap object over the same memory, with a block cache of its own.
   *
   * @param handle The creator's `heap.handle`.
   * @param options `os`: the system calls of this attachment (default `libcOs`).
   * @returns The attachment; `detach()` it when done.
   * @throws {HeapClosedError} When the heap was closed.
   * @throws {RangeError} When `maxAttachments` attachments exist.
   *
   * @example Attaching in a worker
   * ```ts
   * import { SharedPseudoMalloc } from "@pseudo/malloc";
   *
   * using heap = new SharedPseudoMalloc();
   * const attached = SharedPseudoMalloc.attach(heap.handle);
   * attached.free(attached.malloc(8));
   * attached.detach();
   * ```
   */
  static attach(handle: SharedHeapHandle, options: { os?: Os } = {}): SharedPseudoMalloc {
    if (
      typeof handle !== "object" || handle === null || handle.kind !== "SharedPseudoMalloc" ||
      !Number.isSafeInteger(handle.header) || handle.header <= 0
    ) {
      throw new TypeError(
        `Cannot attach to ${String(handle)}: it is not a SharedPseudoMalloc handle`,
      );
    }
    const os = new CountingOs(options.os ?? libcOs);
    const words = new Int32Array(os.view(handle.header, HEADER_BYTES));
    if (Atomics.load(words, W_MAGIC) !== MAGIC) {
      throw new TypeError(`Cannot attach to ${hex(handle.header)}: no shared heap is there`);
    }
    for (;;) {
      const n = Atomics.load(words, W_ATTACHED);
      if (n === 0 || Atomics.load(words, W_CLOSED) !== 0) throw new HeapClosedError("attach");
      if (Atomics.compareExchange(words, W_ATTACHED, n, n + 1) === n) break;
    }
    try {
      attaching = { os, header: handle.header };
      return new SharedPseudoMalloc();
    } catch (error) {
      Atomics.sub(words, W_ATTACHED, 1);
      throw error;
    } finally {
      attaching = undefined;
    }
  }

  /** A structured-cloneable value naming this heap, for {@linkcode SharedPseudoMalloc.attach}. */
  get handle(): SharedHeapHandle {
    return { kind: "SharedPseudoMalloc", header: this.#a.v.header };
  }

  /** This attachment's slot number (0 for the creator), what {@linkcode reclaim} takes. */
  get id(): number {
    return this.#a.slot;
  }

  /** The OS page size in bytes. */
  get pageSize(): number {
    return this.#a.v.geometry.pageSize;
  }

  /** Requests of at least this many bytes get their own mapping. */
  get mmapThreshold(): number {
    return this.#a.v.geometry.threshold;
  }

  /**
   * Allocates `size` bytes (not cleared).
   *
   * @param size Bytes wanted; 0 gives a unique minimal block.
   * @returns The block's address.
   * @throws {RangeError} When `size` is not a valid size.
   * @throws {OutOfMemoryError} When no memory can be had.
   * @throws {HeapClosedError} After close() or detach().
   *
   * @example Allocate and free
   * ```ts
   * import { SharedPseudoMalloc } from "@pseudo/malloc";
   *
   * using heap = new SharedPseudoMalloc();
   * heap.free(heap.malloc(24));
   * ```
   */
  malloc(size: number): number {
    if (
      typeof size === "number" && size < this.#smallLimit && size >= 0 && (size | 0) === size &&
      this.#words[W_CLOSED] === 0
    ) {
      const order = size <= this.#minBlockSize ? 0 : 32 - Math.clz32(size - 1) - this.#minShift;
      const count = this.#count[order]! - 1;
      if (count >= 0) {
        const shift = this.#minShift;
        const offset = this
          .#stack[(((ORDER_BYTES >> shift) - (ORDER_BYTES >> (shift + order))) << 1) + count]!;
        this.#count[order] = count;
        this.#tags[offset >>> shift] = size + 1;
        const ctr = this.#ctr;
        ctr[SF_ALLOCS]!++;
        const live = ctr[SF_LIVE]! + size;
        ctr[SF_LIVE] = live;
        if (live > ctr[SF_PEAK]!) ctr[SF_PEAK] = live;
        return this.#base + offset;
      }
    }
    return this.#a.mallocSlow(size);
  }

  /**
   * Allocates zeroed memory for `count` elements of `size` bytes.
   *
   * @param count Number of elements.
   * @param size Bytes per element.
   * @returns The block's address.
   * @throws {RangeError} When an argument is invalid or the product too large.
   *
   * @example Zeroed
   * ```ts
   * import { SharedPseudoMalloc } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new SharedPseudoMalloc();
   * const address = heap.calloc(4, 8);
   * assert.ok(heap.bytes(address).every((byte) => byte === 0));
   * ```
   */
  calloc(count: number, size: number): number {
    this.#a.checkOpen("calloc");
    const total = callocSize(count, size);
    const address = this.malloc(total);
    if (total < this.#smallLimit) {
      const offset = address - this.#base;
      this.#region.fill(0, offset, offset + total);
    }
    return address;
  }

  /**
   * Resizes a block, C style; the contents move when it cannot stay (every usable byte of the old
   * block that the new one holds is kept). If it throws, the old block is untouched.
   *
   * @param address A live block, or 0.
   * @param size The new size.
   * @returns The block's (possibly new) address; 0 when `size` is 0.
   * @throws {InvalidFreeError} When `address` is not a live block.
   *
   * @example Growing
   * ```ts
   * import { SharedPseudoMalloc } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new SharedPseudoMalloc();
   * let address = heap.malloc(4);
   * heap.bytes(address, 4).set([1, 2, 3, 4]);
   * address = heap.realloc(address, 10_000);
   * assert.deepEqual([...heap.bytes(address, 4)], [1, 2, 3, 4]);
   * heap.free(address);
   * ```
   */
  realloc(address: number, size: number): number {
    const edge = reallocEdge(this, this.#a.isClosed(), address, size);
    if (edge !== -1) return edge;
    const offset = address - this.#base;
    if (offset >= 0 && offset < this.#regionBytes) {
      const index = offset >>> this.#minShift;
      const tag = index << this.#minShift === offset ? Atomics.exchange(this.#tags, index, 0) : 0;
      if (tag === 0) throw rejectSmall(this.#a.v, this.#a.me, address, "reallocate");
      const old = tag - 1;
      const order = this.#a.orderOf(old);
      if (size < this.#smallLimit && this.#a.orderOf(size) === order) {
        this.#tags[index] = size + 1;
        this.#ctr[SF_LIVE]! += size - old;
        this.#a.notePeak();
        return address;
      }
      let moved: number;
      try {
        moved = this.malloc(size);
      } catch (error) {
        this.#tags[index] = tag;
        throw error;
      }
      const kept = Math.min(this.#minBlockSize << order, this.usableSize(moved));
      this.bytes(moved, kept).set(this.#region.subarray(offset, offset + kept));
      try {
        this.#a.releaseSmall(offset, order, old);
      } catch (error) {
        this.free(moved); // the old block is live again (its tag put back): the new one goes
        throw error;
      }
      return moved;
    }
    const v = this.#a.v;
    lock(this.#words, this.#a.me, "realloc");
    const record = findLarge(v, address);
    const length = record < 0 ? 0 : v.large[record * LARGE_RECORD + 1]!;
    const requested = record < 0 ? 0 : v.large[record * LARGE_RECORD + 2]!;
    if (record >= 0 && size >= this.#smallLimit && roundUp(size, this.pageSize) === length) {
      v.large[record * LARGE_RECORD + 2] = size;
      unlock(this.#words);
      this.#ctr[SF_LIVE]! += size - requested;
      this.#a.notePeak();
      return address;
    }
    unlock(this.#words);
    if (record < 0) throw rejectLarge(this.#a.v, this.#a.me, address, "reallocate");
    const moved = this.malloc(size);
    const kept = Math.min(length, this.usableSize(moved));
    this.bytes(moved, kept).set(new Uint8Array(this.#a.os.view(address, kept)));
    try {
      this.#a.freeLarge(address);
    } catch (error) {
      this.free(moved); // munmap refused: the old block stays, the new one goes
      throw error;
    }
    return moved;
  }

  /**
   * Frees a block, whichever attachment allocated it. `free(0)` does nothing.
   *
   * @param address A live block, or 0.
   * @throws {InvalidFreeError} When `address` is not a block of this heap.
   * @throws {DoubleFreeError} When the block is already free (also when two workers free it at
   *   once: one of them gets this error).
   *
   * @example Free
   * ```ts
   * import { SharedPseudoMalloc } from "@pseudo/malloc";
   *
   * using heap = new SharedPseudoMalloc();
   * heap.free(heap.malloc(8));
   * heap.free(0);
   * ```
   */
  free(address: number): void {
    if (typeof address === "number" && this.#words[W_CLOSED] === 0) {
      const offset = address - this.#base;
      if (offset >= 0 && offset < this.#regionBytes) {
        const shift = this.#minShift;
        const index = offset >>> shift;
        if (index << shift === offset) {
          const tag = Atomics.exchange(this.#tags, index, 0);
          if (tag !== 0) {
            const size = tag - 1;
            const order = size <= this.#minBlockSize ? 0 : 32 - Math.clz32(size - 1) - shift;
            const count = this.#count[order]!;
            const room = ORDER_BYTES >> (shift + order);
            if (count < room) {
              this.#stack[(((ORDER_BYTES >> shift) - room) << 1) + count] = offset;
              this.#count[order] = count + 1;
              const ctr = this.#ctr;
              ctr[SF_FREES]!++;
              ctr[SF_LIVE]! -= size;
              return;
            }
            this.#a.releaseSmall(offset, order, size);
            return;
          }
        }
      }
    }
    this.#a.freeSlow(address);
  }

  /**
   * The usable size of a live block.
   *
   * @param address A live block.
   * @returns Its size in bytes.
   * @throws {InvalidAddressError} When `address` is not a live block.
   *
   * @example 128 for 100
   * ```ts
   * import { SharedPseudoMalloc } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new SharedPseudoMalloc();
   * assert.equal(heap.usableSize(heap.malloc(100)), 128);
   * ```
   */
  usableSize(address: number): number {
    this.#a.checkOpen("usableSize");
    if (typeof address !== "number") throw notAnAddress(address, "find the size of");
    const offset = address - this.#base;
    if (offset >= 0 && offset < this.#regionBytes) {
      const index = offset >>> this.#minShift;
      const tag = index << this.#minShift === offset ? this.#tags[index]! : 0;
      if (tag === 0) throw rejectSmall(this.#a.v, this.#a.me, address, "find the size of");
      return this.#minBlockSize << this.#a.orderOf(tag - 1);
    }
    lock(this.#words, this.#a.me, "usableSize");
    const record = findLarge(this.#a.v, address);
    const length = record < 0 ? -1 : this.#a.v.large[record * LARGE_RECORD + 1]!;
    unlock(this.#words);
    if (length < 0) throw rejectLarge(this.#a.v, this.#a.me, address, "find the size of");
    return length;
  }

  /**
   * A `Uint8Array` over a live block.
   *
   * @param address A live block.
   * @param length Bytes to cover, at most the usable size (the default).
   * @returns A view of the block's memory.
   * @throws {InvalidAddressError} When `address` is not a live block.
   *
   * @example A view
   * ```ts
   * import { SharedPseudoMalloc } from "@pseudo/malloc";
   *
   * using heap = new SharedPseudoMalloc();
   * heap.bytes(heap.malloc(16), 4).set([1, 2, 3, 4]);
   * ```
   */
  bytes(address: number, length?: number): Uint8Array {
    this.#a.checkOpen("bytes");
    const usable = this.usableSize(address);
    const wanted = viewLength(address, length, usable);
    const offset = address - this.#base;
    if (offset >= 0 && offset < this.#regionBytes) {
      return this.#region.subarray(offset, offset + wanted);
    }
    return wanted === 0 ? new Uint8Array(0) : new Uint8Array(this.#a.os.view(address, wanted));
  }

  /**
   * The live block that holds `address` (any byte of it), as
   * {@linkcode PseudoMalloc.prototype.blockOf}: a small block by its tag (O(1)), a large one by
   * its record (its page and 15 below, then every record, under the lock).
   *
   * @param address An address inside a live block.
   * @returns The block's start and usable size.
   * @throws {InvalidAddressError} When no live block holds `address`.
   *
   * @example The element C points at
   * ```ts
   * import { SharedPseudoMalloc } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new SharedPseudoMalloc();
   * const array = heap.malloc(10 * 8);
   * assert.equal(heap.blockOf(array + 24).address, array);
   * ```
   */
  blockOf(address: number): BlockInfo {
    this.#a.checkOpen("blockOf");
    if (typeof address !== "number") throw notAnAddress(address, "find the block of");
    let start = -1;
    if (Number.isSafeInteger(address)) {
      const offset = address - this.#base;
      if (offset >= 0 && offset < this.#regionBytes) {
        const small = smallStart(this.#a.v, offset);
        start = small < 0 ? -1 : this.#base + small;
      } else {
        lock(this.#words, this.#a.me, "blockOf");
        start = largeStart(this.#a.v, address);
        unlock(this.#words);
      }
    }
    if (start < 0) {
      const why = Number.isInteger(address)
        ? "no live block of this heap holds it"
        : "it is not an integer";
      throw new InvalidAddressError(`Cannot find the block of ${hex(address)}: ${why}`, address);
    }
    return { address: start, size: this.usableSize(start) };
  }

  /**
   * `length` bytes from any address inside a live block, bounded by that block's end.
   *
   * @param address An address inside a live block.
   * @param length Bytes to cover; at most to the block's end (the default).
   * @returns A view of the memory.
   * @throws {InvalidAddressError} When no live block holds `address`.
   * @throws {RangeError} When `length` passes the block's end.
   *
   * @example The second half of a block
   * ```ts
   * import { SharedPseudoMalloc } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new SharedPseudoMalloc();
   * const address = heap.malloc(16);
   * assert.equal(heap.bytesAt(address + 8).byteLength, 8);
   * ```
   */
  bytesAt(address: number, length?: number): Uint8Array {
    return bytesFrom(this, address, length);
  }

  /**
   * A typed view from an aligned address inside a live block (as
   * {@linkcode PseudoMalloc.prototype.view}).
   *
   * @param address An address inside a live block, aligned for `Type`.
   * @param Type A typed-array constructor.
   * @param length Elements (default: as many as fit before the block's end).
   * @returns The view.
   * @throws {RangeError} When `address` is misaligned or `length` passes the block's end.
   *
   * @example Doubles in a block
   * ```ts
   * import { SharedPseudoMalloc } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new SharedPseudoMalloc();
   * const address = heap.malloc(32);
   * heap.view(address, Float64Array)[1] = 2.5;
   * assert.equal(heap.view(address + 8, Float64Array, 1)[0], 2.5);
   * ```
   */
  view<T>(address: number, Type: TypedArrayConstructor<T>, length?: number): T {
    return typedView(this.bytesAt(address), address, Type, length);
  }

  /**
   * A `DataView` from an address inside a live block, to its end or `length` bytes.
   *
   * @param address An address inside a live block.
   * @param length Bytes (default: to the block's end).
   * @returns The view.
   * @throws {RangeError} When `length` passes the block's end.
   *
   * @example A struct's fields
   * ```ts
   * import { SharedPseudoMalloc } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new SharedPseudoMalloc();
   * const view = heap.dataView(heap.malloc(16));
   * view.setInt32(0, 7, true);
   * assert.equal(view.getInt32(0, true), 7);
   * ```
   */
  dataView(address: number, length?: number): DataView {
    return dataViewOf(this.bytesAt(address), address, length);
  }

  /**
   * Counters over every attachment, and per attachment (`attachments`). Exact when the other
   * attachments are between calls; a snapshot while they run.
   *
   * @returns The counters.
   *
   * @example Live blocks of every attachment
   * ```ts
   * import { SharedPseudoMalloc } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new SharedPseudoMalloc();
   * heap.malloc(10);
   * assert.equal(heap.stats().liveAllocations, 1);
   * assert.equal(heap.stats().attachments.length, 1);
   * ```
   */
  stats(): SharedHeapStats {
    this.#a.checkOpen("stats");
    this.#a.syncCalls();
    lock(this.#words, this.#a.me, "stats");
    try {
      return sharedStats(this.#a.os, this.#a.v);
    } finally {
      unlock(this.#words);
    }
  }

  /**
   * Checks every invariant of the central state and of every attachment's cache; throws an
   * `Error` naming the first broken one. Meaningful when the other attachments are between calls.
   *
   * @example Validating
   * ```ts
   * import { SharedPseudoMalloc } from "@pseudo/malloc";
   *
   * using heap = new SharedPseudoMalloc();
   * heap.malloc(100);
   * heap.validate();
   * ```
   */
  validate(): void {
    this.#a.checkOpen("validate");
    lock(this.#words, this.#a.me, "validate");
    try {
      validateShared(this.#a.os, this.#a.v);
    } finally {
      unlock(this.#words);
    }
  }

  /**
   * Checks the heap for damage. A shared heap keeps no redzones or quarantine (PseudoMalloc's
   * debug mode does), so it checks the invariants: the same as `validate()`.
   *
   * @example After some work
   * ```ts
   * import { SharedPseudoMalloc } from "@pseudo/malloc";
   *
   * using heap = new SharedPseudoMalloc();
   * heap.free(heap.malloc(100));
   * heap.check();
   * ```
   */
  check(): void {
    this.#a.checkOpen("check");
    this.validate();
  }

  /**
   * A picture of the arenas and the large mappings, as text or SVG (as `PseudoMalloc.heapMap`).
   *
   * @param options `format`: "text" (default) or "svg".
   * @returns The picture.
   *
   * @example A text map
   * ```ts
   * import { SharedPseudoMalloc } from "@pseudo/malloc";
   *
   * using heap = new SharedPseudoMalloc();
   * heap.malloc(100);
   * console.log(heap.heapMap().includes("arena")); // true
   * ```
   */
  heapMap(options: { format?: "text" | "svg" } = {}): string {
    this.#a.checkOpen("heapMap");
    lock(this.#words, this.#a.me, "heapMap");
    try {
      return heapPictureOf(this.#a.os, this.#a.v, options.format ?? "text");
    } finally {
      unlock(this.#words);
    }
  }

  /**
   * Frees the slot of an attachment whose worker was terminated: its cached blocks go back to the
   * buddies (its live blocks stay live). Call it only once that worker is gone: Deno 2.9's
   * `Worker.terminate()` does not stop a worker running synchronous code, and reclaiming one that
   * still runs hands its cached blocks out twice. Have the worker say it is idle (waiting for
   * messages) before terminating it. When the worker
   * died holding the lock, the lock is taken over and the central state validated; if that fails
   * the heap is marked broken (every call then throws `HeapClosedError`) and this throws.
   *
   * @param id The terminated attachment's `id`.
   * @returns The bytes of cached blocks given back.
   *
   * @example Reclaiming a slot
   * ```ts
   * import { SharedPseudoMalloc } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new SharedPseudoMalloc();
   * const lost = SharedPseudoMalloc.attach(heap.handle); // as if its worker were terminated
   * lost.free(lost.malloc(64));
   * assert.ok(heap.reclaim(lost.id) >= 64); // its cache: the block and the ones it took ahead
   * ```
   */
  reclaim(id: number): number {
    this.#a.checkOpen("reclaim");
    const words = this.#words;
    if (
      !Number.isInteger(id) || id <= 0 || id >= words[W_MAX_ATTACHMENTS]! || id === this.#a.slot
    ) {
      throw new RangeError(`Cannot reclaim attachment ${id}: not another attachment's id`);
    }
    let stolen = false;
    if (Atomics.compareExchange(words, W_LOCK, id + 1, this.#a.me) === id + 1) stolen = true;
    else lock(words, this.#a.me, "reclaim");
    try {
      if (stolen) {
        try {
          // Only what is written under the lock: the others run their lock-free paths meanwhile.
          validateShared(this.#a.os, this.#a.v, true);
        } catch (error) {
          Atomics.store(words, W_BROKEN, 1);
          Atomics.store(words, W_CLOSED, CLOSED_BROKEN); // the fast paths' one load sees it
          retireSlot(this.#a.v, this.#a.v.slot(id));
          Atomics.sub(words, W_ATTACHED, 1); // so that the last to leave still unmaps the heap
          throw new Error(
            `Cannot reclaim attachment ${id}: it died holding the lock and left the heap broken: ` +
              (error as Error).message,
          );
        }
      }
      const sv = this.#a.v.slot(id);
      if (sv.words[S_STATE] !== 1) {
        throw new RangeError(`Cannot reclaim attachment ${id}: it is not attached`);
      }
      const bytes = flushSlot(this.#a.v, sv);
      retireSlot(this.#a.v, sv);
      Atomics.sub(words, W_ATTACHED, 1); // the caller is attached: the count stays above 0
      return bytes;
    } finally {
      unlock(words);
    }
  }

  /**
   * Leaves the heap: this attachment's cached blocks go back, its slot is freed, and its later
   * calls throw `HeapClosedError`. Blocks it allocated stay live. For the creator, use `close()`.
   *
   * @example Detaching
   * ```ts
   * import { SharedPseudoMalloc } from "@pseudo/malloc";
   *
   * using heap = new SharedPseudoMalloc();
   * const attached = SharedPseudoMalloc.attach(heap.handle);
   * attached.detach();
   * ```
   */
  detach(): void {
    if (this.#a.gone) return;
    if (this.#a.creator) throw new TypeError("Cannot detach the creator of a heap: call close()");
    this.#a.leave();
  }

  /**
   * For the creator: closes the heap. Every attachment's next call throws `HeapClosedError`; the
   * memory is unmapped once the last attachment has let go (at once when none is left). For an
   * attachment: the same as `detach()`.
   *
   * @example Closing
   * ```ts
   * import { HeapClosedError, SharedPseudoMalloc } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * const heap = new SharedPseudoMalloc();
   * heap.close();
   * assert.throws(() => heap.malloc(8), HeapClosedError);
   * ```
   */
  close(): void {
    if (this.#a.gone) return;
    this.#a.leave();
  }

  /** Closes (the creator) or detaches (an attachment). */
  [Symbol.dispose](): void {
    this.close();
  }
}
