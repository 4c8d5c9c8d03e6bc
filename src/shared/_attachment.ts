// One attachment of a `SharedPseudoMalloc`: its views over the shared state, its slot, and every
// path below the fast ones (misses and overflows of its block cache under the central lock, large
// blocks, leaving the heap, reclaiming a dead attachment's slot). `shared_pseudo_malloc.ts` holds
// the public class and its fast paths, which read copies of this object's arrays from fields of
// their own (docs/hot_paths.md); the memory-ordering argument is in its banner.
//
// An attachment is made for the creator (slot 0, the heap just mapped) or by `attach` (a free slot
// taken under the lock); `leave` gives the slot back and tells the public class (`onLeave`) to
// send every later call to the slow paths, which then throw `HeapClosedError`.

import type { CountingOs } from "../../ffi/counting_os.ts";
import { DoubleFreeError, HeapClosedError, hex, OutOfMemoryError } from "../errors.ts";
import { notAnAddress } from "../_checks.ts";
import { checkSize, roundUp } from "../_size.ts";
import {
  allocBlock,
  brokenError,
  findLarge,
  forgetRecent,
  freeBlock,
  insertLarge,
  lock,
  noteRecent,
  removeLarge,
  unlock,
} from "./_central.ts";
import { teardown } from "./_create.ts";
import { sumLive } from "./_inspect.ts";
import {
  CLOSED_BROKEN,
  F_LARGE_MAPPED,
  F_PEAK_LIVE,
  F_PEAK_MAPPED,
  LARGE_RECORD,
  S_COUNT,
  S_EPOCH,
  S_STATE,
  SF_ALLOCS,
  SF_CALLS,
  SF_FREES,
  SF_LIVE,
  SF_PEAK,
  type SlotViews,
  Views,
  W_ARENAS,
  W_ATTACHED,
  W_CLOSED,
  W_MAX_ATTACHMENTS,
} from "./_layout.ts";
import { flushSlot, rejectLarge, rejectSmall, retireSlot } from "./_slots.ts";

/** Bytes of blocks per order in a cache stack (as PseudoMalloc's block cache). */
const ORDER_BYTES = 65536;
/** Blocks split off at once to refill an empty stack. */
const REFILL = 32;

/** See the file comment. */
export class Attachment {
  readonly os: CountingOs;
  readonly v: Views;
  readonly words: Int32Array;
  readonly creator: boolean;
  slot = 0;
  /** The lock word's value while this attachment holds it: its slot + 1. */
  me = 1;
  sv: SlotViews;
  gone = false;
  smallLimit: number;
  regionBytes: number;
  readonly minShift: number;
  readonly minBlockSize: number;
  readonly base: number;
  readonly tags: Uint32Array;
  count: Int32Array;
  stack: Int32Array;
  ctr: Float64Array;
  /** Called once this attachment let go of the heap. */
  onLeave: () => void = () => {};

  /**
   * @param os The system calls, counted.
   * @param header The heap's header.
   * @param creator True for the heap's creator (slot 0, the heap mapped just now).
   */
  constructor(os: CountingOs, header: number, creator: boolean) {
    const v = new Views(os, header);
    this.os = os;
    this.v = v;
    this.words = v.words;
    this.creator = creator;
    if (creator) {
      v.words[W_ATTACHED] = 1;
      this.sv = v.slot(0);
      this.sv.words[S_STATE] = 1;
      this.sv.words[S_EPOCH] = 1;
    } else {
      this.sv = undefined!;
      this.#attach();
    }
    const g = v.geometry;
    this.smallLimit = g.threshold;
    this.minShift = g.minShift;
    this.minBlockSize = g.minBlockSize;
    this.base = v.regionBase;
    this.regionBytes = g.maxArenas * g.arenaSize;
    this.tags = v.tags;
    this.count = this.sv.words.subarray(S_COUNT);
    this.stack = this.sv.stacks;
    this.ctr = this.sv.counters;
    if (creator) this.syncCalls();
  }

  /** True once this attachment let go (or the heap was closed: it lets go now). */
  isClosed(): boolean {
    if (this.gone) return true;
    if (Atomics.load(this.words, W_CLOSED) === 0) return false;
    this.leave(); // the creator closed the heap: let go of it
    return true;
  }

  /** Throws `HeapClosedError` (letting go first) once the heap is closed or broken. */
  checkOpen(operation: string): void {
    if (this.gone) throw new HeapClosedError(operation);
    const closed = Atomics.load(this.words, W_CLOSED);
    if (closed !== 0) {
      this.leave();
      throw closed === CLOSED_BROKEN ? brokenError(operation) : new HeapClosedError(operation);
    }
  }

  /** The order of the block that serves `size` bytes. */
  orderOf(size: number): number {
    return size <= this.minBlockSize ? 0 : 32 - Math.clz32(size - 1) - this.minShift;
  }

  /** This attachment's own live-bytes peak. */
  notePeak(): void {
    const ctr = this.ctr;
    if (ctr[SF_LIVE]! > ctr[SF_PEAK]!) ctr[SF_PEAK] = ctr[SF_LIVE]!;
  }

  /** Copies the system calls counted so far into the slot (where `stats()` reads them). */
  syncCalls(): void {
    const counts = this.os.counts;
    const ctr = this.ctr;
    ctr[SF_CALLS] = counts.mmap;
    ctr[SF_CALLS + 1] = counts.munmap;
    ctr[SF_CALLS + 2] = counts.mremap;
    ctr[SF_CALLS + 3] = counts.madvise;
    ctr[SF_CALLS + 4] = counts.mprotect;
  }

  /** Samples the global peaks (under the lock). */
  notePeaksLocked(): void {
    const f = this.v.floats;
    const live = sumLive(this.os, this.v);
    if (live > f[F_PEAK_LIVE]!) f[F_PEAK_LIVE] = live;
    const mapped = Atomics.load(this.words, W_ARENAS) * this.v.geometry.arenaSize +
      f[F_LARGE_MAPPED]!;
    if (mapped > f[F_PEAK_MAPPED]!) f[F_PEAK_MAPPED] = mapped;
  }

  /** Every `malloc` the fast path leaves: checks, a miss (refill under the lock), large. */
  mallocSlow(size: number): number {
    this.checkOpen("malloc");
    checkSize(size, "allocate");
    if (size >= this.smallLimit) return this.mallocLarge(size);
    const order = this.orderOf(size);
    const shift = this.minShift;
    const limit = ORDER_BYTES >> (shift + order);
    const base = ((ORDER_BYTES >> shift) - limit) << 1;
    const v = this.v;
    let offset: number;
    lock(this.words, this.me, "malloc");
    try {
      offset = allocBlock(v, order);
      if (offset < 0) {
        flushSlot(this.v, this.sv); // this attachment's cached blocks first, before failing
        offset = allocBlock(v, order);
      }
      if (offset < 0) {
        throw new OutOfMemoryError(
          `Cannot allocate ${size} bytes: every arena is full (maxArenas ${v.geometry.maxArenas})`,
        );
      }
      // Refill: up to REFILL more blocks (a quarter of the stack at most) for the next misses.
      let count = this.count[order]!;
      const want = Math.min(REFILL, limit >> 2);
      for (let i = 0; i < want && count < limit; i++) {
        const more = allocBlock(v, order);
        if (more < 0) break;
        this.stack[base + count++] = more;
      }
      this.count[order] = count;
      this.tags[offset >>> shift] = size + 1;
      const ctr = this.ctr;
      ctr[SF_ALLOCS]!++;
      ctr[SF_LIVE]! += size;
      this.notePeak();
      this.notePeaksLocked();
    } finally {
      unlock(this.words);
    }
    return this.base + offset;
  }

  /** A large block: its own mapping, recorded under the lock. */
  mallocLarge(size: number): number {
    const length = roundUp(Math.max(size, 1), this.v.geometry.pageSize);
    const address = this.os.map(length);
    this.syncCalls();
    const v = this.v;
    try {
      lock(this.words, this.me, "malloc");
    } catch (error) {
      this.os.unmap(address, length);
      this.syncCalls();
      throw error;
    }
    try {
      insertLarge(v, address, length, size, this.slot);
      forgetRecent(v, address);
      v.floats[F_LARGE_MAPPED]! += length;
    } catch (error) {
      unlock(this.words);
      this.os.unmap(address, length);
      this.syncCalls();
      throw error;
    }
    const ctr = this.ctr;
    ctr[SF_ALLOCS]!++;
    ctr[SF_LIVE]! += size;
    this.notePeak();
    this.notePeaksLocked();
    unlock(this.words);
    return address;
  }

  /**
   * A block whose tag this attachment took (now 0): into its cache, or half the stack out first
   * (under the lock); a block of an order with no stack (above 64 KiB, when `mmapThreshold` lets
   * such blocks be small) straight back to its buddy. When the lock cannot be had, the tag is put
   * back and nothing has changed.
   */
  releaseSmall(offset: number, order: number, size: number): void {
    const shift = this.minShift;
    const limit = ORDER_BYTES >> (shift + order);
    const base = ((ORDER_BYTES >> shift) - limit) << 1;
    let count = this.count[order]!;
    if (count < limit) {
      this.stack[base + count] = offset;
      this.count[order] = count + 1;
    } else {
      try {
        lock(this.words, this.me, "free");
      } catch (error) {
        this.tags[offset >>> shift] = size + 1;
        throw error;
      }
      try {
        const keep = limit >> 1;
        while (count > keep) freeBlock(this.v, this.stack[base + --count]!, order);
        if (limit === 0) freeBlock(this.v, offset, order);
        else this.stack[base + count++] = offset;
        this.count[order] = count;
      } finally {
        unlock(this.words);
      }
    }
    const ctr = this.ctr;
    ctr[SF_FREES]!++;
    ctr[SF_LIVE]! -= size;
  }

  /** Every `free` the fast path leaves: checks and errors, large blocks. */
  freeSlow(address: number): void {
    this.checkOpen("free");
    if (typeof address !== "number") throw notAnAddress(address, "free");
    if (address === 0) return;
    const offset = address - this.base;
    if (offset >= 0 && offset < this.regionBytes) {
      throw rejectSmall(this.v, this.me, address, "free");
    }
    this.freeLarge(address);
  }

  /**
   * Frees a large block. Its record is marked "being freed" (the owner field negative) under the
   * lock, the block unmapped outside it, and the record removed once `munmap` succeeded: a second
   * free meanwhile is a `DoubleFreeError`, and a refused `munmap` only clears the mark (nothing has
   * to be inserted again, so a table another attachment filled meanwhile cannot get in the way).
   * Between the `munmap` and the removal the kernel may hand the address to another attachment's
   * `mmap`: its `insertLarge` takes the marked record over, and the removal leaves it alone.
   */
  freeLarge(address: number): void {
    const v = this.v;
    lock(this.words, this.me, "free");
    const record = findLarge(v, address);
    if (record < 0 || v.large[record * LARGE_RECORD + 3]! < 0) {
      unlock(this.words);
      if (record >= 0) {
        throw new DoubleFreeError(
          `Cannot free ${hex(address)}: another attachment is freeing this block`,
          address,
        );
      }
      throw rejectLarge(this.v, this.me, address, "free");
    }
    const r = record * LARGE_RECORD;
    const length = v.large[r + 1]!;
    const requested = v.large[r + 2]!;
    const owner = v.large[r + 3]!;
    v.large[r + 3] = -1 - owner;
    unlock(this.words);
    try {
      this.os.unmap(address, length);
    } catch (error) {
      lock(this.words, this.me, "free");
      v.large[findLarge(v, address) * LARGE_RECORD + 3] = owner;
      unlock(this.words);
      throw error;
    } finally {
      this.syncCalls();
    }
    lock(this.words, this.me, "free");
    // Records may have moved meanwhile: find it again. A new block the kernel put at this address
    // meanwhile took the record over (`insertLarge`): then it is that block's, and stays.
    const now = findLarge(v, address);
    if (now >= 0 && v.large[now * LARGE_RECORD + 3] === -1 - owner) {
      removeLarge(v, now);
      noteRecent(v, address);
    }
    v.floats[F_LARGE_MAPPED]! -= length;
    unlock(this.words);
    const ctr = this.ctr;
    ctr[SF_FREES]!++;
    ctr[SF_LIVE]! -= requested;
  }

  /** Flushes and frees this attachment's slot; the creator marks the heap closed first. */
  leave(): void {
    const words = this.words;
    // Closed before the lock is taken: when a dead attachment holds it, the other attachments see
    // "closed" at once, though this call then fails (and can be made again).
    if (this.creator) Atomics.compareExchange(words, W_CLOSED, 0, 1);
    lock(words, this.me, "close");
    try {
      this.notePeaksLocked();
      flushSlot(this.v, this.sv);
      retireSlot(this.v, this.sv);
    } finally {
      unlock(words);
    }
    this.gone = true;
    this.smallLimit = 0;
    this.regionBytes = 0;
    this.onLeave();
    if (Atomics.sub(words, W_ATTACHED, 1) === 1 && Atomics.load(words, W_CLOSED) !== 0) {
      teardown(this.os, this.v.header);
    }
  }

  /** An attachment's start: a free slot taken under the lock (the count of attachments is up). */
  #attach(): void {
    const v = this.v;
    lock(v.words, -1, "attach");
    let slot = -1;
    try {
      for (let i = 1; i < v.words[W_MAX_ATTACHMENTS]!; i++) {
        const sv = v.slot(i);
        if (sv.words[S_STATE] === 0) {
          sv.words[S_STATE] = 1;
          sv.words[S_EPOCH]!++;
          slot = i;
          break;
        }
      }
    } finally {
      unlock(v.words);
    }
    if (slot < 0) {
      throw new RangeError(
        `Cannot attach: all ${v.words[W_MAX_ATTACHMENTS]} slots are taken (maxAttachments)`,
      );
    }
    this.slot = slot;
    this.me = slot + 1;
    this.sv = v.slot(slot);
  }
}
