// The size classes of a SegregatedAllocator: the table of block sizes, the largest class, the
// fewest blocks of a span, and the lookup from a request's size in 16-byte granules to its class.
//
// A request up to 64 KiB is rounded up to one of 44 classes: four classes per doubling above 128
// bytes, and multiples of 16 below, so that every block is 16-byte aligned and a request wastes at
// most a fifth of its block above 128 bytes:
//
//    16    32    48    64    80    96   112   128   step 16
//   160   192   224   256                           step 32
//   320   384   448   512                           step 64
//   640   768   896  1024                           step 128
//  1280  1536  1792  2048                           step 256
//  2560  3072  3584  4096                           step 512
//  5120  6144  7168  8192                           step 1 KiB
// 10240 12288 14336 16384                           step 2 KiB
// 20480 24576 28672 32768                           step 4 KiB
// 40960 49152 57344 65536                           step 8 KiB
//
// The class of a request is one table lookup, indexed by the request in 16-byte granules:
// `CLASS_INDEX[(size + 15) >> 4]`. For `malloc(100)`: `(100 + 15) >> 4 = 7` granules, and entry 7
// is class 6, 112 bytes; for `malloc(120)`: 8 granules, class 7, 128 bytes; for `malloc(1000)`:
// `1015 >> 4 = 63` granules, class 19, 1024 bytes; for `malloc(50_000)`: 3125 granules, class 42,
// 57344 bytes; for `malloc(0)`: entry 0, class 0, 16 bytes, a unique block like any other. The
// table has 4097 entries of one byte.

/**
 * The block sizes of {@linkcode SegregatedAllocator}, smallest first: multiples of 16 up to 128,
 * then four classes per doubling up to 64 KiB.
 *
 * @example Four classes per doubling
 * ```ts
 * import { SIZE_CLASSES } from "@pseudo/malloc";
 * import assert from "node:assert/strict";
 *
 * assert.equal(SIZE_CLASSES.length, 44);
 * const fromHalfToOneKiB = SIZE_CLASSES.filter((size) => size > 512 && size <= 1024);
 * assert.deepEqual(fromHalfToOneKiB, [640, 768, 896, 1024]);
 * ```
 */
// deno-fmt-ignore
export const SIZE_CLASSES: readonly number[] = Object.freeze([
  16, 32, 48, 64, 80, 96, 112, 128, //  step 16
  160, 192, 224, 256, //                step 32
  320, 384, 448, 512, //                step 64
  640, 768, 896, 1024, //               step 128
  1280, 1536, 1792, 2048, //            step 256
  2560, 3072, 3584, 4096, //            step 512
  5120, 6144, 7168, 8192, //            step 1 KiB
  10240, 12288, 14336, 16384, //        step 2 KiB
  20480, 24576, 28672, 32768, //        step 4 KiB
  40960, 49152, 57344, 65536, //        step 8 KiB
]);

/**
 * The largest size class, 64 KiB: larger requests get their own mapping.
 *
 * @example One byte more takes whole pages
 * ```ts
 * import { LARGEST_SIZE_CLASS, SegregatedAllocator } from "@pseudo/malloc";
 * import assert from "node:assert/strict";
 *
 * using heap = new SegregatedAllocator();
 * assert.equal(heap.classSize(LARGEST_SIZE_CLASS), 65536);
 * assert.equal(heap.classSize(LARGEST_SIZE_CLASS + 1), 65536 + heap.pageSize);
 * ```
 */
export const LARGEST_SIZE_CLASS = 65536;

/**
 * Blocks per span, up to 4 KiB blocks: a span is the fewest whole pages that hold this many blocks.
 */
export const MIN_BLOCKS_PER_SPAN = 8;

/**
 * The most a span of a larger class takes: as many blocks as fit (at least one), in the fewest
 * whole pages that hold them. 8 blocks of 64 KiB would be 512 KiB, pinned by one live block: a
 * program growing buffers through the medium classes kept a span of each (utilization of the
 * built-in realloc trace: 10 % with 8 blocks per span, 20 % with this cap).
 */
export const MAX_SPAN_BYTES = 32768;

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
