// The bytes debug mode writes around and into blocks, and the scan that finds the first one changed.
// Pure: it works on `Uint8Array`s, so it tests without a heap.
//
// A debug block's memory, `memory` below, is the inner block (or own mapping) that holds it:
//
//   memory:  [ front redzone | the block: size bytes | back redzone + the inner block's slack ]
//              0xfd ...        0xcd (malloc) / 0 (calloc)  0xfd ...
//   freed:   [ 0xfd ...      | 0xdd ...                  | 0xfd ...                            ]
//
// The values are the ones Microsoft's debug CRT made familiar (0xcd "clean", 0xdd "dead", 0xfd "no
// man's land"): a pointer read from uninitialised memory is 0xcdcdcdcdcdcdcdcd, a double read from
// it is -4.3e-241, and each is recognisable in a hex dump.

/** Bytes debug mode fills memory with, so that a read of it or a write into it can be recognised. */
export const DEBUG_FILL = {
  /** What `malloc` (not `calloc`) hands out, and what `realloc` adds. */
  uninitialized: 0xcd,
  /** A freed block in the quarantine. */
  freed: 0xdd,
  /** The redzones before and after every block. */
  redzone: 0xfd,
} as const;

/**
 * Ranges shorter than this are compared byte by byte: making the `Int32Array` for a word scan
 * costs more than a redzone's 16 bytes take to compare.
 */
const WORDS_FROM = 256;

/** `value` four times over, for comparing four bytes at once. */
function word(value: number): number {
  return (value * 0x01010101) | 0;
}

/**
 * The index of the first byte of `bytes[start, end)` that is not `value`, or -1. Compares four
 * bytes at a time where the memory is aligned for it (a quarantine of megabytes is scanned at
 * every `check()`), then byte by byte to find the exact one.
 *
 * Example: over `[fd fd 07 fd]` with `value` 0xfd it gives 2.
 */
export function firstChanged(bytes: Uint8Array, start: number, end: number, value: number): number {
  let at = start;
  if (end - at < WORDS_FROM) {
    for (; at < end; at++) if (bytes[at] !== value) return at;
    return -1;
  }
  const head = (4 - ((bytes.byteOffset + at) & 3)) & 3;
  for (const stop = Math.min(end, at + head); at < stop; at++) if (bytes[at] !== value) return at;
  const words = Math.floor((end - at) / 4);
  if (words > 0) {
    const view = new Int32Array(bytes.buffer, bytes.byteOffset + at, words);
    const expected = word(value);
    for (let i = 0; i < words; i++) {
      if (view[i] !== expected) {
        for (let b = at + 4 * i;; b++) if (bytes[b] !== value) return b;
      }
    }
    at += 4 * words;
  }
  for (; at < end; at++) if (bytes[at] !== value) return at;
  return -1;
}
