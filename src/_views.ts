// Typed views and C strings over an allocator's blocks: what FFI code otherwise writes by hand.
// Everything here goes through `Allocator.bytes` (and, for interior addresses, a `bytesAt`), so a
// block's bounds are the allocator's own checks; nothing reads past a block's end.
//
// A view of a block uses the block's own `ArrayBuffer` window (`bytes.buffer`, `byteOffset`), so it
// is a view of native memory, not a copy; its element type must be aligned: an `Int32Array` at an
// address that is not a multiple of 4 is a `RangeError`, as a misaligned `int *` is undefined in C.

import { hex } from "./errors.ts";
import type { BlockInfo } from "./heap/types.ts";

/** Any typed-array constructor (`Int32Array`, `Float64Array`, `BigUint64Array`, ...). */
export type TypedArrayConstructor<T> = {
  new (buffer: ArrayBufferLike, byteOffset: number, length: number): T;
  readonly BYTES_PER_ELEMENT: number;
  readonly name: string;
};

/**
 * A `Type` view of `length` elements over `bytes`, the memory at `address` to its block's end
 * (all of it when `length` is undefined, rounded down to whole elements).
 */
export function typedView<T>(
  bytes: Uint8Array,
  address: number,
  Type: TypedArrayConstructor<T>,
  length?: number,
): T {
  if (typeof Type !== "function" || !Number.isInteger(Type.BYTES_PER_ELEMENT)) {
    throw new TypeError(`Cannot view ${hex(address)} as ${String(Type)}: not a typed array type`);
  }
  const size = Type.BYTES_PER_ELEMENT;
  if (address % size !== 0) {
    throw new RangeError(
      `Cannot view ${hex(address)} as ${Type.name}: it is not aligned to ${size} bytes`,
    );
  }
  const fits = Math.floor(bytes.byteLength / size);
  const wanted = length ?? fits;
  if (!Number.isInteger(wanted) || wanted < 0 || wanted > fits) {
    throw new RangeError(
      `Cannot view ${wanted} ${Type.name} elements at ${hex(address)}: the block holds ${fits}`,
    );
  }
  return new Type(bytes.buffer, bytes.byteOffset, wanted);
}

/** A `DataView` over `bytes` (its first `length` bytes, or all of them). */
export function dataViewOf(bytes: Uint8Array, address: number, length?: number): DataView {
  const wanted = length ?? bytes.byteLength;
  if (!Number.isInteger(wanted) || wanted < 0 || wanted > bytes.byteLength) {
    throw new RangeError(
      `Cannot view ${wanted} bytes at ${hex(address)}: the block holds ${bytes.byteLength}`,
    );
  }
  return new DataView(bytes.buffer, bytes.byteOffset, wanted);
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The UTF-8 bytes of `text` and a NUL; a `TypeError` when `text` holds a NUL of its own. */
export function cStringBytes(text: string): Uint8Array {
  if (typeof text !== "string") {
    throw new TypeError(`Cannot make a C string of ${typeof text}: it must be a string`);
  }
  if (text.includes("\0")) {
    throw new TypeError("Cannot make a C string of a text that holds a NUL: C would cut it there");
  }
  const bytes = new Uint8Array(3 * text.length + 1); // UTF-8 takes at most 3 bytes per code unit
  const { written } = encoder.encodeInto(text, bytes);
  return bytes.subarray(0, written + 1); // the last byte is still 0: the NUL
}

/**
 * Decodes the NUL-terminated UTF-8 string at the start of `bytes` (its memory to the block's end),
 * reading at most `maxLength` bytes (then the text so far, without a NUL). A `RangeError` when the
 * block ends before a NUL (and before `maxLength`).
 */
export function readCStringFrom(bytes: Uint8Array, address: number, maxLength?: number): string {
  const limit = maxLength ?? Infinity;
  if (!(limit >= 0) || (limit !== Infinity && !Number.isInteger(limit))) {
    throw new RangeError(`Cannot read a C string of at most ${maxLength} bytes: not a length`);
  }
  const scan = bytes.subarray(0, Math.min(bytes.byteLength, limit));
  const end = scan.indexOf(0);
  if (end >= 0) return decoder.decode(scan.subarray(0, end));
  if (scan.byteLength === limit) return decoder.decode(scan);
  throw new RangeError(
    `Cannot read a C string at ${
      hex(address)
    }: no NUL in the ${bytes.byteLength} bytes to its block's end`,
  );
}

/** What `bytesAt` needs of an allocator: its lookup of interior addresses and its views. */
export interface BlockSource {
  blockOf(address: number): BlockInfo;
  bytes(address: number, length?: number): Uint8Array;
}

/**
 * `length` bytes (default: to the block's end) from `address`, inside the live block that
 * `source.blockOf` finds; a `RangeError` when `length` is not a whole number of bytes that ends
 * within the block (PseudoMalloc's message).
 */
export function bytesFrom(source: BlockSource, address: number, length?: number): Uint8Array {
  const block = source.blockOf(address);
  const offset = address - block.address;
  const rest = block.size - offset;
  if (length !== undefined && !(Number.isInteger(length) && length >= 0 && length <= rest)) {
    throw new RangeError(
      `Cannot view ${length} bytes at ${hex(address)}: ${rest} bytes are left to the end of ` +
        `its block at ${hex(block.address)}`,
    );
  }
  return source.bytes(block.address).subarray(offset, offset + (length ?? rest));
}
