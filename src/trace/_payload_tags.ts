/**
 * The payload tags of the checking replay (`replay` in `replay.ts`): every block's payload is
 * written with a pattern derived from its allocation, and checked before the block is reallocated
 * or freed, so that a write by the allocator into a live block is found.
 *
 * The pattern is one fixed pseudo-random byte sequence of period 2^16 (plus 4096 bytes, so that a
 * run at any offset below 4096 can be read without wrapping); an allocation gets an offset into it
 * from its serial number ({@linkcode patternOffset}: one of 1,024), so that two blocks, or two
 * owners of the same bytes one after the other, most likely carry different tags. Byte `pos` of a
 * payload tagged with offset `o` is `PATTERN[o + (pos & 0xffff)]`.
 *
 * @module
 */

/** Tag bytes repeat with this period; a pattern offset is added per allocation. */
const PERIOD = 1 << 16;
const PATTERN = (() => {
  const pattern = new Uint8Array(PERIOD + 4096);
  let state = 0x7a65_5eed;
  for (let i = 0; i < pattern.length; i++) {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    pattern[i] = state >>> 24;
  }
  return pattern;
})();
const PATTERN32 = new Int32Array(PATTERN.buffer);
/** With `tag: "ends"`: the bytes tagged at each end of a payload. */
export const ENDS = 16;

/** The pattern offset of an allocation: a multiple of 4 below 4096, from its serial number. */
export function patternOffset(serial: number): number {
  let h = Math.imul(serial ^ 0x9e3779b9, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return ((h ^ (h >>> 16)) & 1023) << 2;
}

/** Writes the tag of offset `o` over bytes [from, to) of a payload view. */
export function writeTag(view: Uint8Array, from: number, to: number, o: number): void {
  let pos = from;
  while (pos < to) {
    const phase = pos & (PERIOD - 1);
    const n = Math.min(to - pos, PERIOD - phase);
    view.set(PATTERN.subarray(o + phase, o + phase + n), pos);
    pos += n;
  }
}

/** The first byte in [from, to) of a payload view that differs from the tag, or -1. */
export function checkTag(view: Uint8Array, from: number, to: number, o: number): number {
  let pos = from;
  if (to - pos >= 64 && ((view.byteOffset + pos) & 3) === 0 && (pos & 3) === 0) {
    const words = (to - pos) >>> 2;
    const view32 = new Int32Array(view.buffer, view.byteOffset + pos, words);
    let w = 0;
    while (w < words) {
      const phase = (pos + w * 4) & (PERIOD - 1);
      const n = Math.min(words - w, (PERIOD - phase) >>> 2);
      const base = (o + phase) >>> 2;
      for (let k = 0; k < n; k++) {
        if (view32[w + k] !== PATTERN32[base + k]) return firstDiff(view, pos + (w + k) * 4, to, o);
      }
      w += n;
    }
    pos += words * 4;
  }
  return firstDiff(view, pos, to, o);
}

function firstDiff(view: Uint8Array, from: number, to: number, o: number): number {
  for (let pos = from; pos < to; pos++) {
    if (view[pos] !== PATTERN[o + (pos & (PERIOD - 1))]) return pos;
  }
  return -1;
}

/** The expected tag byte at `pos` of a payload tagged with offset `o`. */
export function tagByte(pos: number, o: number): number {
  return PATTERN[o + (pos & (PERIOD - 1))]!;
}
