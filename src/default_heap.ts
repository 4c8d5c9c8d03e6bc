/**
 * C-style functions bound to one default {@linkcode PseudoMalloc}, created on first call with the
 * default options.
 *
 * @module
 */

import { PseudoMalloc } from "./heap/pseudo_malloc.ts";
import type { TypedArrayConstructor } from "./_views.ts";

let heap: PseudoMalloc | undefined;

/**
 * The heap behind the C-style functions, created on first use.
 *
 * @returns The default heap.
 *
 * @example Reading its stats
 * ```ts
 * import { defaultHeap, free, malloc } from "@pseudo/malloc";
 * import assert from "node:assert/strict";
 *
 * const address = malloc(8);
 * assert.equal(defaultHeap().usableSize(address), 16);
 * free(address);
 * ```
 */
export function defaultHeap(): PseudoMalloc {
  return heap ??= new PseudoMalloc();
}

/**
 * `malloc` on the default heap: see {@linkcode PseudoMalloc.prototype.malloc}.
 *
 * @param size Bytes wanted.
 * @returns The block's address.
 *
 * @example Allocate and free
 * ```ts
 * import { free, malloc } from "@pseudo/malloc";
 *
 * const address = malloc(32);
 * free(address);
 * ```
 */
export function malloc(size: number): number {
  return defaultHeap().malloc(size);
}

/**
 * `calloc` on the default heap: see {@linkcode PseudoMalloc.prototype.calloc}.
 *
 * @param count Number of elements.
 * @param size Bytes per element.
 * @returns The address of zeroed memory.
 *
 * @example Zeroed array of 8 doubles
 * ```ts
 * import { calloc, free } from "@pseudo/malloc";
 *
 * const address = calloc(8, 8);
 * free(address);
 * ```
 */
export function calloc(count: number, size: number): number {
  return defaultHeap().calloc(count, size);
}

/**
 * `realloc` on the default heap: see {@linkcode PseudoMalloc.prototype.realloc}.
 *
 * @param address A live block, or 0.
 * @param size The new size.
 * @returns The block's (possibly new) address, or 0 when `size` is 0.
 *
 * @example Growing a buffer
 * ```ts
 * import { free, malloc, realloc } from "@pseudo/malloc";
 *
 * let address = malloc(16);
 * address = realloc(address, 4096);
 * free(address);
 * ```
 */
export function realloc(address: number, size: number): number {
  return defaultHeap().realloc(address, size);
}

/**
 * `free` on the default heap: see {@linkcode PseudoMalloc.prototype.free}.
 *
 * @param address A block from the default heap, or 0.
 *
 * @example free(NULL) is allowed
 * ```ts
 * import { free } from "@pseudo/malloc";
 *
 * free(0);
 * ```
 */
export function free(address: number): void {
  defaultHeap().free(address);
}

/**
 * `malloc_usable_size` on the default heap: see {@linkcode PseudoMalloc.prototype.usableSize}.
 *
 * @param address A live block.
 * @returns Its usable size in bytes.
 *
 * @example 100 bytes take a 128-byte block
 * ```ts
 * import { free, malloc, usableSize } from "@pseudo/malloc";
 * import assert from "node:assert/strict";
 *
 * const address = malloc(100);
 * assert.equal(usableSize(address), 128);
 * free(address);
 * ```
 */
export function usableSize(address: number): number {
  return defaultHeap().usableSize(address);
}

/**
 * A view of a live block of the default heap: see {@linkcode PseudoMalloc.prototype.bytes}.
 *
 * @param address A live block.
 * @param length Bytes, at most the usable size (the default).
 * @returns The view.
 *
 * @example Filling a block
 * ```ts
 * import { bytes, free, malloc } from "@pseudo/malloc";
 *
 * const address = malloc(8);
 * bytes(address).fill(1);
 * free(address);
 * ```
 */
export function bytes(address: number, length?: number): Uint8Array {
  return defaultHeap().bytes(address, length);
}

/**
 * A typed view of the default heap's memory: see {@linkcode PseudoMalloc.prototype.view}.
 *
 * @param address An address inside a live block, aligned for `Type`.
 * @param Type A typed-array constructor.
 * @param length Elements; to the block's end by default.
 * @returns The view.
 *
 * @example Four ints
 * ```ts
 * import { free, malloc, view } from "@pseudo/malloc";
 * import assert from "node:assert/strict";
 *
 * const address = malloc(16);
 * assert.equal(view(address, Int32Array).length, 4);
 * free(address);
 * ```
 */
export function view<T>(address: number, Type: TypedArrayConstructor<T>, length?: number): T {
  return defaultHeap().view(address, Type, length);
}

/**
 * A pointer for FFI: see {@linkcode PseudoMalloc.prototype.pointer}.
 *
 * @param address A native address (0 gives `null`).
 * @returns The pointer.
 *
 * @example Null
 * ```ts
 * import { pointer } from "@pseudo/malloc";
 *
 * console.log(pointer(0)); // null
 * ```
 */
export function pointer(address: number): Deno.PointerValue {
  return defaultHeap().pointer(address);
}

/**
 * The address of a pointer from FFI: see {@linkcode PseudoMalloc.prototype.addressOf}.
 *
 * @param pointer A pointer (`null` gives 0).
 * @returns The address.
 *
 * @example A round trip
 * ```ts
 * import { addressOf, free, malloc, pointer } from "@pseudo/malloc";
 * import assert from "node:assert/strict";
 *
 * const address = malloc(8);
 * assert.equal(addressOf(pointer(address)), address);
 * free(address);
 * ```
 */
export function addressOf(pointer: Deno.PointerValue): number {
  return defaultHeap().addressOf(pointer);
}

/**
 * A NUL-terminated UTF-8 copy of `text` on the default heap: see
 * {@linkcode PseudoMalloc.prototype.cstring}.
 *
 * @param text The text (no NUL in it).
 * @returns Its address; `free` it when C is done.
 *
 * @example A round trip
 * ```ts
 * import { cstring, free, readCString } from "@pseudo/malloc";
 * import assert from "node:assert/strict";
 *
 * const address = cstring("hi");
 * assert.equal(readCString(address), "hi");
 * free(address);
 * ```
 */
export function cstring(text: string): number {
  return defaultHeap().cstring(text);
}

/**
 * Decodes a C string of the default heap: see {@linkcode PseudoMalloc.prototype.readCString}.
 *
 * @param address Where it starts, inside a live block.
 * @param maxLength Bytes to read at most.
 * @returns The text.
 *
 * @example At most 2 bytes
 * ```ts
 * import { cstring, free, readCString } from "@pseudo/malloc";
 * import assert from "node:assert/strict";
 *
 * const address = cstring("abc");
 * assert.equal(readCString(address, 2), "ab");
 * free(address);
 * ```
 */
export function readCString(address: number, maxLength?: number): string {
  return defaultHeap().readCString(address, maxLength);
}
