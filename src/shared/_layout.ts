// The shared heap's memory layout: every word of its state, in native memory, and the views one
// attachment makes over them. `shared_pseudo_malloc.ts` explains the design and the memory
// ordering; this file only says where each word lives.
//
// Five mappings, each made once by the creator, their addresses written in the header:
//
// ```
// header    1 page, never unmapped   words: magic, closed, lock, attached, config, counts;
//                                    float64s: the other mappings' addresses, central counters;
//                                    the per-order free-list heads; the recent large frees
// region    maxArenas x arenaSize    the arenas, one after the other, each aligned to its size;
//                                    mapped below 2^31 when the OS takes the hint (Smi addresses)
// tags      4 bytes per min block    requested size + 1 of the live block starting there, else 0
//                                    (reserved: pages cost memory once written)
// bitmaps   2^(maxOrder+1) bits      per arena, the buddy tree (as src/buddy/buddy.ts explains)
// slots     maxAttachments slots     per attachment: state, counters, the block cache's stacks
// large     largeCapacity records    the live large blocks: address, length, requested, owner
// ```
//
// Offsets: a small block is named inside the heap by its offset in the region (an int32: the
// region is at most 2^31 bytes), its address is `regionBase + offset`, its arena `offset >>>
// arenaShift`, its tag `tags[offset >>> minShift]`. With 1 MiB arenas of 16-byte blocks, the block
// at offset 0x0010_0040 is in arena 1, its tag is `tags[0x10004]`.

import type { Os } from "../../ffi/os.ts";

/** "PSMH": the header's first word, checked by `attach`. */
export const MAGIC = 0x50534d48;

// --- header: int32 words ------------------------------------------------------------------------
/** `MAGIC` while the heap's memory exists (the header page itself is never unmapped). */
export const W_MAGIC = 0;
/** 1 once the creator called close(). */
export const W_CLOSED = 1;
/** The spin lock: 0 free, else the holder's slot + 1. */
export const W_LOCK = 2;
/** Attachments not yet gone (the creator counts one); the last one to go unmaps the heap. */
export const W_ATTACHED = 3;
/** 1 after a lock was broken and the central state failed validation: every call throws. */
export const W_BROKEN = 4;
/** Arenas in use (arena i covers region offsets [i << arenaShift, (i + 1) << arenaShift)). */
export const W_ARENAS = 5;
/** Live large blocks (records in the large table). */
export const W_LARGE_COUNT = 6;
/** Next index (mod RECENT) to write in the ring of recently freed large addresses. */
export const W_RECENT_NEXT = 7;
export const W_ARENA_SHIFT = 8;
export const W_MIN_SHIFT = 9;
export const W_THRESHOLD = 10;
export const W_MAX_ARENAS = 11;
export const W_MAX_ATTACHMENTS = 12;
export const W_LARGE_CAPACITY = 13;
export const W_PAGE_SIZE = 14;
/** 1 when the region lies below 2^31 (addresses are Smis). */
export const W_LOW = 15;
/**
 * Bumped by a holder of the lock as a long call under it (validate, heapMap, stats) makes
 * progress: a waiter gives up only when neither the holder nor this word changed for a second.
 */
export const W_LOCK_PROGRESS = 16;
/** `W_CLOSED`'s value once the heap is broken: the fast paths' one load sees it too. */
export const CLOSED_BROKEN = 2;
/** The per-order free-list heads, `W_HEADS + order`, each a region offset or NIL. */
export const W_HEADS = 32;
/** Most orders: arenas up to 2^31 bytes of blocks at least 8 bytes. */
export const MAX_ORDERS = 29;

// --- header: float64 words (byte offset 512) -------------------------------------------------
export const F_BYTE = 512;
export const F_REGION = 0;
export const F_TAGS = 1;
export const F_BITMAPS = 2;
export const F_SLOTS = 3;
export const F_LARGE = 4;
/** Bytes mapped for large blocks now. */
export const F_LARGE_MAPPED = 5;
/** Highest mapped bytes seen (arenas + large). */
export const F_PEAK_MAPPED = 6;
/** Highest live bytes seen by a slow path or stats() over all attachments. */
export const F_PEAK_LIVE = 7;
/** Counters of attachments whose slot was retired: allocations, frees, live bytes. */
export const F_RETIRED_ALLOCS = 8;
export const F_RETIRED_FREES = 9;
export const F_RETIRED_LIVE = 10;
/** Bytes of the large blocks live now. */
export const F_LARGE_LIVE = 11;
/** Bytes of the region (for unmapping), of the tags, of the bitmaps, of the slots, of large. */
export const F_REGION_BYTES = 12;
export const F_TAGS_BYTES = 13;
export const F_BITMAPS_BYTES = 14;
export const F_SLOTS_BYTES = 15;
export const F_LARGE_BYTES = 16;
/** Bytes of small blocks taken from the buddies (live or cached), under the lock. */
export const F_BUDDY_USED = 17;
/** System calls of retired slots, by kind (mmap, munmap, mremap, madvise, mprotect): 18..22. */
export const F_RETIRED_CALLS = 18;
/** The ring of recently freed large addresses (to tell a double free from a foreign address). */
export const F_RECENT = 32;
export const RECENT = 256;
/** The header's size in bytes (it must fit the smallest page). */
export const HEADER_BYTES = 4096;

// --- slots -------------------------------------------------------------------------------------
/** Slot word: 0 free, 1 attached. */
export const S_STATE = 0;
/** Slot word: a number the attachment changes on each attach (for stats). */
export const S_EPOCH = 1;
/** Slot words `S_COUNT + order`: the cache stack's depth of each order. */
export const S_COUNT = 8;
/** Slot float64s (byte 256): allocations, frees, live bytes, own peak, system calls by kind. */
export const SF_BYTE = 256;
export const SF_ALLOCS = 0;
export const SF_FREES = 1;
export const SF_LIVE = 2;
export const SF_PEAK = 3;
export const SF_CALLS = 4; // mmap, munmap, mremap, madvise, mprotect: 4..8
/** Byte offset of the cache stacks in a slot. */
export const S_STACKS_BYTE = 512;
/** Most bytes of blocks one attachment caches per order (as PseudoMalloc's block cache). */
export const CACHE_ORDER_BYTES = 65536;

/** The bytes of one slot for `minShift`: header, then `2 * depth` int32 entries. */
export function slotBytes(minShift: number): number {
  return S_STACKS_BYTE + 8 * (CACHE_ORDER_BYTES >> minShift);
}

/** Large record: address, length (bytes mapped), requested bytes, owner slot. 32 bytes each. */
export const LARGE_RECORD = 4;

/** End of a free list. */
export const NIL = -1;

/** The geometry every attachment reads from the header. */
export interface Geometry {
  arenaShift: number;
  arenaSize: number;
  minShift: number;
  minBlockSize: number;
  maxOrder: number;
  threshold: number;
  maxArenas: number;
  maxAttachments: number;
  largeCapacity: number;
  pageSize: number;
  /** Bytes of one arena's bitmap. */
  bitmapBytes: number;
  slotBytes: number;
}

/** The geometry written in a header. */
export function geometryOf(words: Int32Array): Geometry {
  const arenaShift = words[W_ARENA_SHIFT]!;
  const minShift = words[W_MIN_SHIFT]!;
  const maxOrder = arenaShift - minShift;
  return {
    arenaShift,
    arenaSize: 2 ** arenaShift,
    minShift,
    minBlockSize: 1 << minShift,
    maxOrder,
    threshold: words[W_THRESHOLD]!,
    maxArenas: words[W_MAX_ARENAS]!,
    maxAttachments: words[W_MAX_ATTACHMENTS]!,
    largeCapacity: words[W_LARGE_CAPACITY]!,
    pageSize: words[W_PAGE_SIZE]!,
    bitmapBytes: Math.max(8, 2 ** (maxOrder + 1) / 8),
    slotBytes: slotBytes(minShift),
  };
}

/** One attachment's views over the shared state. */
export class Views {
  readonly header: number;
  readonly words: Int32Array;
  readonly floats: Float64Array;
  readonly geometry: Geometry;
  readonly regionBase: number;
  /** The region's bytes, and as int32 words: the free-list links inside free blocks. */
  readonly region: Uint8Array;
  readonly links: Int32Array;
  readonly tags: Uint32Array;
  readonly bitmaps: Uint8Array;
  readonly slotsBase: number;
  readonly large: Float64Array;
  #os: Os;
  #slots: SlotViews[] = [];

  /**
   * @param os The system calls (for `view`).
   * @param header The header's address.
   */
  constructor(os: Os, header: number) {
    this.header = header;
    this.#os = os;
    const buffer = os.view(header, HEADER_BYTES);
    this.words = new Int32Array(buffer);
    this.floats = new Float64Array(buffer, F_BYTE);
    const g = geometryOf(this.words);
    this.geometry = g;
    const f = this.floats;
    this.regionBase = f[F_REGION]!;
    const regionBuffer = os.view(this.regionBase, f[F_REGION_BYTES]!);
    this.region = new Uint8Array(regionBuffer);
    this.links = new Int32Array(regionBuffer);
    this.tags = new Uint32Array(os.view(f[F_TAGS]!, f[F_TAGS_BYTES]!));
    this.bitmaps = new Uint8Array(os.view(f[F_BITMAPS]!, f[F_BITMAPS_BYTES]!));
    this.slotsBase = f[F_SLOTS]!;
    this.large = new Float64Array(os.view(f[F_LARGE]!, f[F_LARGE_BYTES]!));
  }

  /** The views of slot `index`, made once. */
  slot(index: number): SlotViews {
    return this.#slots[index] ??= slotViews(this.#os, this, index);
  }
}

/** One slot's views: its words (state, stack depths), float64 counters and stacks. */
export interface SlotViews {
  words: Int32Array;
  counters: Float64Array;
  stacks: Int32Array;
}

/** Views over slot `index`. */
export function slotViews(os: Os, views: Views, index: number): SlotViews {
  const bytes = views.geometry.slotBytes;
  const buffer = os.view(views.slotsBase + index * bytes, bytes);
  return {
    words: new Int32Array(buffer, 0, SF_BYTE / 4),
    counters: new Float64Array(buffer, SF_BYTE, (S_STACKS_BYTE - SF_BYTE) / 8),
    stacks: new Int32Array(buffer, S_STACKS_BYTE),
  };
}

/** The stack of `order` takes this many entries (64 KiB of blocks). */
export function cacheLimit(minShift: number, order: number): number {
  return CACHE_ORDER_BYTES >> (minShift + order);
}

/** Where the stack of `order` starts among a slot's entries. */
export function cacheBase(minShift: number, order: number): number {
  return ((CACHE_ORDER_BYTES >> minShift) - (CACHE_ORDER_BYTES >> (minShift + order))) << 1;
}
