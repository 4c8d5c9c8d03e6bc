// The size classes of a SegregatedAllocator (the allocator's banner explains the choice, with
// worked lookups): the table of block sizes, the largest class, and the lookup from a request's
// size in 16-byte granules to its class.

/**
 * The block sizes of {@linkcode SegregatedAllocator}, smallest first: multiples of 16 up to 128,
 * then four classes per doubling up to 2048.
 *
 * @example Four classes per doubling
 * ```ts
 * import { SIZE_CLASSES } from "@pseudo/malloc";
 * import assert from "node:assert/strict";
 *
 * assert.equal(SIZE_CLASSES.length, 24);
 * const fromHalfToOneKiB = SIZE_CLASSES.filter((size) => size > 512 && size <= 1024);
 * assert.deepEqual(fromHalfToOneKiB, [640, 768, 896, 1024]);
 * ```
 */
// deno-fmt-ignore
export const SIZE_CLASSES: readonly number[] = Object.freeze([
  16, 32, 48, 64, 80, 96, 112, 128, // step 16
  160, 192, 224, 256, //               step 32
  320, 384, 448, 512, //               step 64
  640, 768, 896, 1024, //              step 128
  1280, 1536, 1792, 2048, //           step 256
]);

/**
 * The largest size class, 2048 bytes: larger requests get their own mapping.
 *
 * @example One byte more takes a page
 * ```ts
 * import { LARGEST_SIZE_CLASS, SegregatedAllocator } from "@pseudo/malloc";
 * import assert from "node:assert/strict";
 *
 * using heap = new SegregatedAllocator();
 * assert.equal(heap.classSize(LARGEST_SIZE_CLASS), 2048);
 * assert.equal(heap.classSize(LARGEST_SIZE_CLASS + 1), heap.pageSize);
 * ```
 */
export const LARGEST_SIZE_CLASS = 2048;

/** Fewest blocks per span: a span is the fewest whole pages that hold this many blocks. */
export const MIN_BLOCKS_PER_SPAN = 8;

/** Class index of a request, by its size in 16-byte granules: `CLASS_INDEX[(size + 15) >> 4]`. */
export const CLASS_INDEX: Uint8Array = (() => {
  const table = new Uint8Array(LARGEST_SIZE_CLASS / 16 + 1);
  let index = 0;
  for (let granules = 0; granules < table.length; granules++) {
    while (SIZE_CLASSES[index]! < granules * 16) index++;
    table[granules] = index;
  }
  return table;
})();
