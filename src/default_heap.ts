/**
 * C-style functions bound to one default {@linkcode PseudoMalloc}, created on first call with the
 * default options.
 *
 * @module
 */

import { PseudoMalloc } from "./heap/pseudo_malloc.ts";

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
