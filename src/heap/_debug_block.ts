// One block of debug mode: its record, the bytes written around and into it, the checks that find
// them changed, and the sites where it was allocated and freed. No system call and no heap state:
// `_debug.ts` keeps the records, this file reads and writes one block's memory.
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

import { type BlockSites, HeapOverflowError, hex, UseAfterFreeError } from "../errors.ts";

/** Bytes debug mode fills memory with, so that a read of it or a write into it can be recognised. */
export const DEBUG_FILL = {
  /** What `malloc` (not `calloc`) hands out, and what `realloc` adds. */
  uninitialized: 0xcd,
  /** A freed block in the quarantine. */
  freed: 0xdd,
  /** The redzones before and after every block. */
  redzone: 0xfd,
} as const;

/** A stack captured by `captureSite`: its `stack` is formatted when first read. */
export type Trace = { stack?: string };

/** One block the program asked for, live or in the quarantine. */
export interface DebugBlock {
  /** The program's address. */
  address: number;
  /** Bytes requested. */
  size: number;
  /** The inner block of the heap, or the start of the block's own mapping. */
  inner: number;
  /** 0 for an inner block; the length of the own mapping (with its guard page) otherwise. */
  mapped: number;
  /** The inner block's usable bytes, or the mapping's data pages: redzones and the block. */
  memory: Uint8Array;
  /** Where the block starts in `memory`. */
  front: number;
  /** Where it was allocated and freed: stacks captured, formatted when read (`siteOf`). */
  allocated: Trace | undefined;
  freed: Trace | undefined;
}

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
 * bytes at a time where the range is long (a quarantine of megabytes is scanned at every
 * `check()`), then byte by byte to find the exact one.
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

/** The index of the last byte of `bytes[start, end)` that is not `value`, or -1. */
function lastChanged(bytes: Uint8Array, start: number, end: number, value: number): number {
  for (let at = end - 1; at >= start; at--) if (bytes[at] !== value) return at;
  return -1;
}

/** The block's own bytes in its memory. */
export function bodyOf(block: DebugBlock): Uint8Array {
  return block.memory.subarray(block.front, block.front + block.size);
}

/** Writes a new block's redzones and its first contents: zeros, 0xcd (`fill`), or what was there. */
export function prepare(block: DebugBlock, zeroed: boolean, fill: boolean): void {
  const { memory, front, size } = block;
  memory.fill(DEBUG_FILL.redzone, 0, front);
  memory.fill(DEBUG_FILL.redzone, front + size);
  if (zeroed) memory.fill(0, front, front + size);
  else if (fill) memory.fill(DEBUG_FILL.uninitialized, front, front + size);
}

/**
 * The `HeapOverflowError` for `block` when a redzone changed, else `undefined`. Nothing is
 * repaired here (`repairZones` does it once the error is sure to be reported). The offset is the
 * lowest changed byte's (negative before the block); the message gives the extent on each side.
 */
export function zoneDamage(block: DebugBlock): HeapOverflowError | undefined {
  const { memory, front, size } = block;
  const red = DEBUG_FILL.redzone;
  const parts: string[] = [];
  let offset = NaN;
  const before = firstChanged(memory, 0, front, red);
  if (before !== -1) {
    const last = lastChanged(memory, before, front, red);
    parts.push(`before its start at ${offsets(before - front, last - front)}`);
    offset = before - front;
  }
  const after = firstChanged(memory, front + size, memory.byteLength, red);
  if (after !== -1) {
    const last = lastChanged(memory, after, memory.byteLength, red);
    parts.push(`past its end at ${offsets(after - front, last - front)}`);
    if (before === -1) offset = after - front;
  }
  if (parts.length === 0) return undefined;
  return new HeapOverflowError(
    `Cannot trust block ${hex(block.address)} (${size} bytes): it was written ` +
      parts.join(" and ") + sitesText(block),
    block,
    offset,
    sitesOf(block),
  );
}

/** "offset 24", "offsets 24 to 26": the first and last changed byte, from the block's address. */
function offsets(from: number, to: number): string {
  return from === to ? `offset ${from}` : `offsets ${from} to ${to}`;
}

/** Fills `block`'s redzones again, after their damage was reported. */
export function repairZones(block: DebugBlock): void {
  block.memory.fill(DEBUG_FILL.redzone, 0, block.front);
  block.memory.fill(DEBUG_FILL.redzone, block.front + block.size);
}

/** Fills a quarantined `block`'s memory again (redzones and poison), after its damage was reported. */
export function repairFreed(block: DebugBlock): void {
  block.memory.fill(DEBUG_FILL.redzone);
  bodyOf(block).fill(DEBUG_FILL.freed);
}

/**
 * The `UseAfterFreeError` for a quarantined `block` when a byte of its memory changed since it
 * was freed (its redzones count), else `undefined`. `state` says where the block is now. Nothing
 * is repaired here (`repairFreed`).
 */
export function freedDamage(block: DebugBlock, state: string): UseAfterFreeError | undefined {
  const { memory, front, size } = block;
  let at = firstChanged(memory, 0, front, DEBUG_FILL.redzone);
  if (at === -1) at = firstChanged(memory, front, front + size, DEBUG_FILL.freed);
  if (at === -1) at = firstChanged(memory, front + size, memory.byteLength, DEBUG_FILL.redzone);
  if (at === -1) return undefined;
  const offset = at - front;
  return new UseAfterFreeError(
    `Cannot trust freed block ${hex(block.address)} (${size} bytes): it was written after free ` +
      `at offset ${offset}; it ${state}` + sitesText(block),
    block,
    offset,
    sitesOf(block),
  );
}

// --- sites ----------------------------------------------------------------------------------

/**
 * The caller's stack, captured now and formatted only when asked for (`siteOf`): V8 records the
 * frames at once and turns them into text on the first read of `stack`, the costly part (source
 * maps applied). Measured (Deno 2.9): formatting at once made a debug malloc + free 134 µs, lazily
 * 10 µs; `Error.captureStackTrace` on a plain object costs about half of a `new Error()`. The
 * frames keep their functions alive until the block is forgotten.
 */
export function captureSite(): Trace {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 12;
  const trace: Trace = {};
  Error.captureStackTrace(trace, captureSite);
  Error.stackTraceLimit = limit;
  return trace;
}

const PACKAGE_SRC = new URL("../", import.meta.url).href;
const PACKAGE_FFI = new URL("../../ffi/", import.meta.url).href;

/**
 * True for a frame of this package's own files. (Not of a doc test's virtual module, such as
 * `src/heap/pseudo_malloc.ts#838-849.ts`: that is the caller's code.)
 */
function isOwnFrame(line: string): boolean {
  for (const root of [PACKAGE_SRC, PACKAGE_FFI]) {
    const at = line.indexOf(root);
    if (at === -1) continue;
    const rest = line.slice(at + root.length);
    const file = rest.slice(0, rest.search(/\.ts:\d/) + 3);
    if (file.length > 3 && !file.includes("#")) return true;
  }
  return false;
}

/** The first frames of a captured stack, this package's own frames left out. */
export function siteOf(trace: Trace | undefined): string | undefined {
  if (trace === undefined) return undefined;
  const frames = (trace.stack ?? "").split("\n").slice(1) // the first line is "Error"
    .map((line) => line.trim().replace(/^at /, ""))
    .filter((line) => !isOwnFrame(line));
  return frames.slice(0, 4).join(" <- ") || "(no frame outside @pseudo/malloc)";
}

/** A block's sites as text, for an error's fields. */
export function sitesOf(block: DebugBlock): BlockSites {
  return { allocatedAt: siteOf(block.allocated), freedAt: siteOf(block.freed) };
}

/** A block's sites as the lines that end an error's message. */
export function sitesText(block: DebugBlock): string {
  const { allocatedAt, freedAt } = sitesOf(block);
  const allocated = `\n  allocated at ${allocatedAt ?? "(sites off)"}`;
  return freedAt === undefined ? allocated : `${allocated}\n  freed at ${freedAt}`;
}
