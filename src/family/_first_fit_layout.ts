// The layout of a FirstFitAllocator's memory: chunks of blocks with boundary tags, as the
// allocator's banner draws them. The constants here are the definitions; the fast paths
// (_first_fit_heap.ts, _first_fit_free_list.ts) keep copies of the ones they use, since V8 loads
// and checks an imported constant at every use but folds a module's own into the code.
//
// A chunk in 32-bit words (`words`, an Int32Array over it), granule `g` starting at byte 16 × g:
//
//   words[0], words[1]                 the prologue: a footer of size 0, tagged TAG_EDGE
//   words[4g + 2], words[4g + 3]       the header of the block at granule g: size, tag
//   words[4g + 4] ... words[4g + 7]    a free block's links: next chunk id, next granule,
//                                      previous chunk id, previous granule (NIL: none)
//   words[4(g + size)], ... + 1        its footer, the same two words as its header
//   words[4 end + 2], words[4 end + 3] the epilogue: a header of size 0, tagged TAG_EDGE
//
// A fresh 4096-byte chunk: end = 4096 / 16 - 1 = 255, and one free block of 255 granules at
// granule 0, its header words 2 and 3 (bytes 8 to 15), its payload from byte 16, its footer words
// 1020 and 1021 (bytes 4080 to 4087), then the epilogue, words 1022 and 1023 (bytes 4088 to 4095).

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
/** The largest chunk: sizes and links are 32-bit granule counts, so 2^31 - 1 granules. */
export const MAX_GRANULES = 0x7fff_ffff;

/** Tag of an allocated block; its low 6 bits hold the slack (usable minus requested bytes). */
export const TAG_USED = 0x5ea1_ed00;
/** Tag of a free block. */
export const TAG_FREE = 0x0f4e_e000;
/** Tag of a chunk's prologue footer and epilogue header. */
export const TAG_EDGE = 0x0ed9_e000;
/** The slack's bits in a TAG_USED tag, and the rest. */
export const SLACK_MASK = 63;
export const TAG_MASK = ~SLACK_MASK;
/** End of the free list. */
export const NIL = -1;

/** One mapping of the heap and one view over it. */
export interface Chunk {
  /** Index in the allocator's chunk table; free-list links name chunks by it. */
  id: number;
  base: number;
  length: number;
  /** Granule of the epilogue: blocks cover granules [0, end). */
  end: number;
  words: Int32Array;
  bytes: Uint8Array;
}

/**
 * Granules of the block that serves `size` requested bytes: `max(2, ceil((size + 16) / 16))`.
 * `granulesFor(0)` and `granulesFor(16)` are 2 (32 bytes), `granulesFor(100)` is 8 (128 bytes).
 */
export function granulesFor(size: number): number {
  return size <= 16 ? 2 : Math.ceil((size + 16) / 16);
}
