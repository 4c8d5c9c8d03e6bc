// The arenas a BuddyAllocator can manage: the default and largest sizes, the options that choose
// one, and the check of a geometry (minimum block and arena size) that allocates nothing, so that
// a heap can check its options before it maps an arena. Imported through buddy.ts, which
// re-exports all of it.

import { isPowerOfTwo } from "../_size.ts";

/**
 * Default arena size: 1 MiB.
 *
 * @example The default arena holds 2048 blocks of 512 bytes
 * ```ts
 * import { DEFAULT_ARENA_SIZE } from "@pseudo/malloc";
 * import assert from "node:assert/strict";
 *
 * assert.equal(DEFAULT_ARENA_SIZE / 512, 2048);
 * ```
 */
export const DEFAULT_ARENA_SIZE = 1 << 20;
/**
 * Default minimum block size: 16 bytes, which is also the alignment of every block.
 *
 * @example Orders of the default arena
 * ```ts
 * import { DEFAULT_ARENA_SIZE, DEFAULT_MIN_BLOCK_SIZE } from "@pseudo/malloc";
 * import assert from "node:assert/strict";
 *
 * assert.equal(Math.log2(DEFAULT_ARENA_SIZE / DEFAULT_MIN_BLOCK_SIZE), 16); // orders 0..16
 * ```
 */
export const DEFAULT_MIN_BLOCK_SIZE = 16;
/**
 * The largest arena a {@linkcode BuddyAllocator} manages: 1 GiB, so offsets fit 32-bit links.
 *
 * @example Too large an arena
 * ```ts
 * import { BuddyAllocator, MAX_ARENA_SIZE } from "@pseudo/malloc";
 * import assert from "node:assert/strict";
 *
 * assert.throws(() => new BuddyAllocator({ size: MAX_ARENA_SIZE * 2 }), RangeError);
 * ```
 */
export const MAX_ARENA_SIZE = 1 << 30;

/**
 * Options of {@linkcode BuddyAllocator}.
 *
 * @example A 4 KiB arena of 32-byte blocks
 * ```ts
 * import { BuddyAllocator, type BuddyOptions } from "@pseudo/malloc";
 *
 * const options: BuddyOptions = { size: 4096, minBlockSize: 32 };
 * new BuddyAllocator(options).validate();
 * ```
 */
export interface BuddyOptions {
  /** Arena size in bytes, a power of two up to 1 GiB. @default {1048576} (1 MiB) */
  size?: number;
  /** Smallest block, and the alignment of every block; a power of two >= 8. @default {16} */
  minBlockSize?: number;
  /**
   * The arena's memory, where free blocks keep their free-list links; at least `size` bytes.
   * Give the native arena's buffer here. @default {new ArrayBuffer(size)}
   */
  memory?: ArrayBufferLike;
}

/**
 * Throws the `RangeError` for an arena geometry a {@linkcode BuddyAllocator} cannot manage:
 * `minBlockSize` a power of two of at least 8 (two 32-bit links fit in a free block), `size` a
 * power of two from `minBlockSize` to 1 GiB. Allocates nothing, so a heap can check its options
 * before it maps an arena.
 *
 * Example: `checkArenaGeometry(1 << 20, 16)` passes (orders 0..16); `checkArenaGeometry(1000, 16)`
 * and `checkArenaGeometry(1 << 20, 4)` throw.
 *
 * @param size The arena's size in bytes.
 * @param minBlockSize The smallest block, and the alignment of every block.
 * @throws {RangeError} When either is out of range or not a power of two.
 */
export function checkArenaGeometry(size: number, minBlockSize: number): void {
  if (!isPowerOfTwo(minBlockSize) || minBlockSize < 8) {
    throw new RangeError(
      `Cannot use minBlockSize ${minBlockSize}: it must be a power of two of at least 8`,
    );
  }
  if (!isPowerOfTwo(size) || size < minBlockSize || size > MAX_ARENA_SIZE) {
    throw new RangeError(
      `Cannot use an arena of ${size} bytes: size must be a power of two between minBlockSize (${minBlockSize}) and 2^30`,
    );
  }
}
