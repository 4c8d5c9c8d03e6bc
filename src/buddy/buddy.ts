/**
 * A binary buddy allocator over one arena, working in offsets. Pure TypeScript: no `Deno.*`.
 *
 * ## The algorithm
 *
 * The arena (`size` bytes, a power of two) is cut into blocks whose sizes are powers of two between
 * `minBlockSize` and `size`. A block of size `minBlockSize << k` has *order* `k`, and always starts
 * at a multiple of its own size. A request takes the smallest order that fits: with the defaults
 * (1 MiB arena, 16-byte minimum, so orders 0..16) a 100-byte request takes a 128-byte block, order 3.
 *
 * To allocate order `k`, take a free block of the smallest order `j >= k`; while `j > k`, split it in
 * two halves of order `j - 1`, keep the lower half and put the upper half on the free list.
 * Freeing does the reverse: while the block's *buddy* (the other half of its parent) is free too,
 * take the buddy off its list and merge the two into the parent. After every block is freed the
 * arena is one free block again.
 *
 * A live block grows in place the same way up: a block of order `k` at `offset` becomes the parent
 * of order `k + 1` when it is the parent's lower half (`offset` a multiple of the parent's size)
 * and its buddy above is one whole free block, which leaves its free list; `grow` repeats that up
 * to the order wanted, or changes nothing. The 128-byte block at 0 of a fresh 1 KiB arena grows to
 * 256 (taking the block at 128), 512 (256) and 1024 (512); the one at 128 cannot grow at all.
 *
 * The buddy of the block at `offset` with order `k` is found with one XOR, because two buddies
 * differ only in the bit that is worth the block size:
 *
 * ```
 * buddy = offset ^ (minBlockSize << k)
 * in units of 16 bytes, order 1 (block size 2 units):  8 ^ 2 = 10  and  10 ^ 2 = 8
 * parent = offset & ~(minBlockSize << k)                 8 & ~2 = 8  and  10 & ~2 = 8
 * ```
 *
 * ## The bitmap: one bit per node of the block tree
 *
 * The blocks form a complete binary tree: the root is the whole arena (order `maxOrder`), and the
 * children of a block are its two halves. Nodes are numbered in heap order: the root is node 1 and
 * the children of node `n` are `2n` and `2n + 1`, so the node of the block of order `k` at `offset`
 * is
 *
 * ```
 * node(k, offset) = (1 << (maxOrder - k)) + (offset >> (log2(minBlockSize) + k))
 * ```
 *
 * (node 0 is unused). Bit `n` of `bitmap` (byte `n >> 3`, bit `n & 7`) is 1 when node `n` is *in
 * use*: allocated, or split into two halves of which at least one is in use. It is 0 for a free
 * block and for every node below a free or an allocated block. So an in-use node is allocated when
 * it has no in-use child, and split otherwise:
 *
 * ```
 * arena of 128 bytes, minBlockSize 16: orders 0..3, nodes 1..15, 16 bits in 2 bytes
 *
 * order 3           [1 split      ]               malloc(16) -> 0x00 (node 8)
 * order 2     [2 split]       [3 free]            malloc(32) -> 0x20 (node 5)
 * order 1   [4 split][5 alloc] [6  ][7  ]         free lists: order 0: 0x10,
 * order 0  [8 a][9 f]..................             order 2: 0x40
 * bitmap bits 1..15: 1 1 0 1 1 0 0 1 0 ...  (byte 0 = 0b00110110, byte 1 = 0b00000001)
 * ```
 *
 * Beside the bitmap, one doubly linked free list per order makes every operation O(maxOrder): no
 * path scans the bitmap. The links live *inside the free blocks themselves* (two 32-bit offsets at
 * the start of each free block, hence `minBlockSize >= 8`), so the free lists cost no memory outside
 * the arena. An allocated block has no header at all: a 16-byte request takes exactly a 16-byte
 * block, and `free` needs only the offset, because the bitmap tells the block's order.
 *
 * ## Costs
 *
 * `alloc` and `free` take O(log(size / minBlockSize)) steps. Space: 2 bits per minimum block for the
 * bitmap (16 KiB for a 1 MiB arena of 16-byte blocks). Internal fragmentation: up to half of a block
 * (a 513-byte request takes 1024 bytes).
 *
 * @module
 */

// This file: the class and its hot paths (alloc, free, resize, grow and the block tree and free lists
// they work on, as private methods). Listing, counting, validating and explaining a rejected
// offset are free functions in _inspect.ts, over the layout that _layout.ts writes out.

import { checkSize } from "../_size.ts";
import {
  checkArenaGeometry,
  DEFAULT_ARENA_SIZE,
  DEFAULT_MIN_BLOCK_SIZE,
  MAX_ARENA_SIZE,
} from "./_geometry.ts";
import type { BuddyOptions } from "./_geometry.ts";
import {
  type BuddyBlock,
  checkInvariants,
  countFreeBlocks,
  listBlocks,
  rejectionAt,
} from "./_inspect.ts";

export { checkArenaGeometry, DEFAULT_ARENA_SIZE, DEFAULT_MIN_BLOCK_SIZE, MAX_ARENA_SIZE };
export type { BuddyBlock, BuddyOptions };

/** End-of-list marker in the free lists: _layout.ts's NIL, kept local for the hot paths. */
const NIL = -1;

/**
 * A binary buddy allocator over an arena of `size` bytes, handing out offsets. It keeps its state in
 * a bitmap with one bit per node of the block tree, and free lists threaded through the free blocks.
 *
 * @example Splitting and merging
 * ```ts
 * import { BuddyAllocator } from "@pseudo/malloc";
 * import assert from "node:assert/strict";
 *
 * const buddy = new BuddyAllocator({ size: 1024, minBlockSize: 16 });
 * const a = buddy.alloc(100); // a 128-byte block
 * const b = buddy.alloc(16);
 * assert.equal(a, 0);
 * assert.equal(buddy.blockSize(a), 128);
 * assert.equal(b, 128);
 * buddy.free(a);
 * buddy.free(b);
 * assert.equal(buddy.freeBytes, 1024); // merged back into one block
 * buddy.validate();
 * ```
 */
export class BuddyAllocator {
  /** Arena size in bytes. */
  readonly size: number;
  /** Smallest block size in bytes; every offset returned is a multiple of it. */
  readonly minBlockSize: number;
  /** Order of the whole arena: `size === minBlockSize << maxOrder`. */
  readonly maxOrder: number;
  /** The block tree, one bit per node (see the module documentation for the layout). */
  readonly bitmap: Uint8Array;

  #minShift: number;
  #heads: Int32Array; // first free block of each order, or NIL
  #links: Int32Array; // in-band links: [offset >> 2] = next, [(offset >> 2) + 1] = previous
  #freeBytes: number;

  /**
   * Creates an allocator whose whole arena is one free block.
   *
   * @param options Arena size, minimum block size and backing memory; every field has a default.
   */
  constructor(options: BuddyOptions = {}) {
    const size = options.size ?? DEFAULT_ARENA_SIZE;
    const minBlockSize = options.minBlockSize ?? DEFAULT_MIN_BLOCK_SIZE;
    checkArenaGeometry(size, minBlockSize);
    const memory = options.memory ?? new ArrayBuffer(size);
    if (memory.byteLength < size) {
      throw new RangeError(
        `Cannot use ${memory.byteLength} bytes of memory for an arena of ${size} bytes`,
      );
    }
    this.size = size;
    this.minBlockSize = minBlockSize;
    this.#minShift = Math.log2(minBlockSize);
    this.maxOrder = Math.log2(size / minBlockSize);
    // Nodes 1 .. 2^(maxOrder+1) - 1, one bit each.
    this.bitmap = new Uint8Array(Math.max(1, 2 ** (this.maxOrder + 1) / 8));
    this.#heads = new Int32Array(this.maxOrder + 1).fill(NIL);
    this.#links = new Int32Array(memory, 0, size / 4);
    this.#push(this.maxOrder, 0);
    this.#freeBytes = size;
  }

  /** Bytes in free blocks. */
  get freeBytes(): number {
    return this.#freeBytes;
  }

  /** Size of the largest free block, 0 when the arena is full. O(maxOrder). */
  get largestFreeBlock(): number {
    for (let k = this.maxOrder; k >= 0; k--) {
      if (this.#heads[k] !== NIL) return this.minBlockSize << k;
    }
    return 0;
  }

  /**
   * The order of the block that serves `size` bytes: the smallest `k` with
   * `minBlockSize << k >= size`, or -1 when `size` exceeds the arena.
   *
   * @param size Requested bytes.
   * @returns The order, or -1.
   *
   * @example Orders of a few sizes
   * ```ts
   * import { BuddyAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * const buddy = new BuddyAllocator(); // 1 MiB of 16-byte blocks
   * assert.equal(buddy.orderFor(0), 0);
   * assert.equal(buddy.orderFor(16), 0);
   * assert.equal(buddy.orderFor(17), 1);
   * assert.equal(buddy.orderFor(100), 3); // 128 bytes
   * assert.equal(buddy.orderFor(2 ** 21), -1);
   * ```
   */
  orderFor(size: number): number {
    checkSize(size, "allocate");
    if (size > this.size) return -1;
    if (size <= this.minBlockSize) return 0;
    // ceil(log2(size)) = 32 - clz32(size - 1): 100 -> 99 = 0b1100011, clz32 = 25, 32 - 25 = 7.
    return 32 - Math.clz32(size - 1) - this.#minShift;
  }

  /**
   * Allocates a block of at least `size` bytes.
   *
   * @param size Requested bytes; 0 takes a minimum block.
   * @returns The block's offset (a multiple of `minBlockSize`), or -1 when no free block fits.
   *
   * @example Allocating until full
   * ```ts
   * import { BuddyAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * const buddy = new BuddyAllocator({ size: 64, minBlockSize: 16 });
   * assert.deepEqual([buddy.alloc(32), buddy.alloc(16), buddy.alloc(16)], [0, 32, 48]);
   * assert.equal(buddy.alloc(1), -1);
   * ```
   */
  alloc(size: number): number {
    const order = this.orderFor(size);
    return order < 0 ? -1 : this.allocOrder(order);
  }

  /**
   * Allocates a block of `order` (`minBlockSize << order` bytes), for a caller that knows the
   * order already: {@linkcode BuddyAllocator.prototype.alloc} without the size check.
   *
   * @param order From 0 to `maxOrder`.
   * @returns The block's offset, or -1 when no free block is large enough.
   *
   * @example A 64-byte block
   * ```ts
   * import { BuddyAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * const buddy = new BuddyAllocator({ size: 1024, minBlockSize: 16 });
   * assert.equal(buddy.allocOrder(2), 0);
   * assert.equal(buddy.blockSize(0), 64);
   * ```
   */
  allocOrder(order: number): number {
    // 1. Find the smallest order at or above the request that has a free block.
    let k = order;
    while (this.#heads[k] === NIL) {
      if (++k > this.maxOrder) return -1;
    }
    // 2. Take that block off its list.
    const offset = this.#heads[k];
    this.#unlink(k, offset);
    // 3. Split it down: the block becomes a split node, its upper half a free block one order lower.
    while (k > order) {
      this.#set(this.#node(k, offset));
      k--;
      this.#push(k, offset + (this.minBlockSize << k));
    }
    // 4. Mark the lower half allocated.
    this.#set(this.#node(order, offset));
    this.#freeBytes -= this.minBlockSize << order;
    return offset;
  }

  /**
   * Frees the block that starts at `offset` and merges it with its buddies as far up as they are
   * free. Throws, and changes nothing, when no allocated block starts at `offset`.
   *
   * @param offset The offset that {@linkcode BuddyAllocator.prototype.alloc} returned.
   * @param base Added to `offset` in error messages (the arena's address); 0 by default.
   * @returns The size of the freed block.
   * @throws {DoubleFreeError} When `offset` lies in a free block.
   * @throws {InvalidFreeError} When `offset` is outside the arena, misaligned, or inside a block.
   *
   * @example Freeing twice
   * ```ts
   * import { BuddyAllocator, DoubleFreeError } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * const buddy = new BuddyAllocator({ size: 1024 });
   * const offset = buddy.alloc(16);
   * assert.equal(buddy.free(offset), 16);
   * assert.throws(() => buddy.free(offset), DoubleFreeError);
   * ```
   */
  free(offset: number, base = 0): number {
    const order = this.#allocatedOrder(offset);
    if (order < 0) throw this.rejection(offset, "free", base);
    this.#release(offset, order);
    return this.minBlockSize << order;
  }

  /**
   * Resizes the allocated block at `offset` in place when the new size needs no larger block.
   * Shrinking gives the block's unneeded upper halves back to the free lists.
   *
   * @param offset A block's offset.
   * @param size The new size in bytes.
   * @param base Added to `offset` in error messages; 0 by default.
   * @returns The block's new size, or -1 when `size` needs a larger block (nothing changed).
   * @throws {DoubleFreeError} When `offset` lies in a free block.
   * @throws {InvalidFreeError} When no allocated block starts at `offset`.
   *
   * @example Shrinking a block in place
   * ```ts
   * import { BuddyAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * const buddy = new BuddyAllocator({ size: 1024 });
   * const offset = buddy.alloc(512);
   * assert.equal(buddy.resize(offset, 100), 128); // 128 + 256 bytes go back to the free lists
   * assert.equal(buddy.freeBytes, 1024 - 128);
   * assert.equal(buddy.resize(offset, 200), -1); // would need a 256-byte block
   * ```
   */
  resize(offset: number, size: number, base = 0): number {
    const order = this.#allocatedOrder(offset);
    if (order < 0) throw this.rejection(offset, "reallocate", base);
    const wanted = this.orderFor(size);
    if (wanted < 0 || wanted > order) return -1;
    // Each step down splits the block: the lower half stays in use, the upper half becomes free.
    for (let k = order; k > wanted; k--) {
      this.#set(this.#node(k - 1, offset));
      this.#push(k - 1, offset + (this.minBlockSize << (k - 1)));
    }
    this.#freeBytes += (this.minBlockSize << order) - (this.minBlockSize << wanted);
    return this.minBlockSize << wanted;
  }

  /**
   * Grows the allocated block at `offset` in place to the block that serves `size` bytes, by
   * taking the free buddies above it (see {@linkcode BuddyAllocator.prototype.growOrder}). A block
   * that already serves `size` is left as it is.
   *
   * @param offset A block's offset.
   * @param size The new size in bytes.
   * @param base Added to `offset` in error messages; 0 by default.
   * @returns The block's size afterwards, or -1 when it cannot grow that far in place (nothing
   *   changed: the caller moves the block).
   * @throws {DoubleFreeError} When `offset` lies in a free block.
   * @throws {InvalidFreeError} When no allocated block starts at `offset`.
   *
   * @example Growing into the free buddy above
   * ```ts
   * import { BuddyAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * const buddy = new BuddyAllocator({ size: 1024 });
   * const offset = buddy.alloc(100); // 128 bytes at 0; 128, 256 and 512 free above it
   * assert.equal(buddy.grow(offset, 1000), 1024); // it takes them all: the whole arena
   * assert.equal(buddy.freeBytes, 0);
   * buddy.validate();
   * ```
   */
  grow(offset: number, size: number, base = 0): number {
    const order = this.#allocatedOrder(offset);
    if (order < 0) throw this.rejection(offset, "reallocate", base);
    const wanted = this.orderFor(size);
    if (wanted < 0) return -1;
    if (wanted <= order) return this.minBlockSize << order;
    return this.growOrder(offset, order, wanted) ? this.minBlockSize << wanted : -1;
  }

  /**
   * The primitive behind {@linkcode BuddyAllocator.prototype.grow}, for a caller that knows the
   * block: grows the allocated block of `order` at `offset` to order `wanted` in place, or changes
   * nothing. Unchecked: the block must be allocated, of `order`, and `order <= wanted <= maxOrder`.
   *
   * A block at offset `o` of order `k` becomes order `k + 1` only when `o` is a multiple of the
   * order-`k + 1` size (it is the lower half of its parent) and its buddy `o + size` is a whole
   * free block of order `k`; then the buddy leaves its free list and the parent is the allocated
   * block. That repeats up to `wanted`; every step is checked before anything changes. Example, in
   * a 256-byte arena of 16-byte blocks with 16 bytes allocated at 0x00, 0x10 free, 32 bytes at
   * 0x20 free and 64 at 0x40 allocated: the block at 0x00 grows to 16 → 32 (takes 0x10) → 64
   * (takes 0x20), but not to 128: its buddy 0x40 is in use. A block at 0x10 never grows: it is
   * an upper half.
   *
   * @param offset The block's offset.
   * @param order Its order.
   * @param wanted The order to grow to.
   * @returns True when the block is of order `wanted` now; false when it cannot be (nothing
   *   changed).
   *
   * @example Growing a 16-byte block to 64 bytes
   * ```ts
   * import { BuddyAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * const buddy = new BuddyAllocator({ size: 256, minBlockSize: 16 });
   * const offset = buddy.allocOrder(0); // 16 bytes at 0
   * assert.equal(buddy.growOrder(offset, 0, 2), true);
   * assert.equal(buddy.blockSize(offset), 64);
   * const lower = buddy.allocOrder(0); // 16 bytes at 64 (its buddy at 80 free)
   * const upper = buddy.allocOrder(0); // 16 bytes at 80
   * assert.equal(buddy.growOrder(upper, 0, 1), false); // an upper half
   * assert.equal(buddy.growOrder(lower, 0, 1), false); // its buddy is in use now
   * buddy.validate();
   * ```
   */
  growOrder(offset: number, order: number, wanted: number): boolean {
    const min = this.minBlockSize;
    // 1. Check every step first: lower half of its parent, and the buddy above a free block (a
    //    clear bit under an in-use parent, which the growing block's parent is).
    for (let k = order; k < wanted; k++) {
      if ((offset & (min << k)) !== 0) return false;
      if (this.#test(this.#node(k, offset + (min << k))) !== 0) return false;
    }
    // 2. Take each buddy off its list; the parent, in use already, loses its used child and so is
    //    the allocated block.
    for (let k = order; k < wanted; k++) {
      this.#unlink(k, offset + (min << k));
      this.#clear(this.#node(k, offset));
    }
    this.#freeBytes -= (min << wanted) - (min << order);
    return true;
  }

  /**
   * The size of the allocated block that starts at `offset`.
   *
   * @param offset A block's offset.
   * @param base Added to `offset` in error messages; 0 by default.
   * @returns The block size in bytes (128 for a 100-byte request).
   * @throws {InvalidAddressError} When no allocated block starts at `offset`.
   *
   * @example Block size of a 100-byte request
   * ```ts
   * import { BuddyAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * const buddy = new BuddyAllocator();
   * assert.equal(buddy.blockSize(buddy.alloc(100)), 128);
   * ```
   */
  blockSize(offset: number, base = 0): number {
    const order = this.#allocatedOrder(offset);
    if (order < 0) throw this.rejection(offset, "find the size of", base);
    return this.minBlockSize << order;
  }

  /**
   * How many free blocks each order has: `result[k]` counts the free blocks of
   * `minBlockSize << k` bytes. Walks the free lists: O(free blocks).
   *
   * @returns One count per order, `maxOrder + 1` in all.
   *
   * @example After one split
   * ```ts
   * import { BuddyAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * const buddy = new BuddyAllocator({ size: 64 });
   * buddy.alloc(16);
   * assert.deepEqual(buddy.freeBlockCounts(), [1, 1, 0]); // 16 bytes at 16, 32 bytes at 32
   * ```
   */
  freeBlockCounts(): number[] {
    return countFreeBlocks(this, this.#heads, this.#links);
  }

  /**
   * The order of the allocated block that starts at `offset`, or -1 when none does. Never throws.
   *
   * @param offset Any offset.
   * @returns The block's order (its size is `minBlockSize << order`), or -1.
   *
   * @example Orders of live blocks
   * ```ts
   * import { BuddyAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * const buddy = new BuddyAllocator({ size: 1024 });
   * const offset = buddy.alloc(100);
   * assert.equal(buddy.orderAt(offset), 3);
   * assert.equal(buddy.orderAt(offset + 16), -1);
   * ```
   */
  orderAt(offset: number): number {
    return this.#allocatedOrder(offset);
  }

  /**
   * Lists every block, allocated or free, in address order. Walks the tree: for inspection and
   * pictures, not for hot paths.
   *
   * @returns The blocks, lowest offset first.
   *
   * @example The blocks after one allocation
   * ```ts
   * import { BuddyAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * const buddy = new BuddyAllocator({ size: 64 });
   * buddy.alloc(16);
   * assert.deepEqual(buddy.blocks().map((b) => [b.offset, b.size, b.allocated]), [
   *   [0, 16, true],
   *   [16, 16, false],
   *   [32, 32, false],
   * ]);
   * ```
   */
  blocks(): BuddyBlock[] {
    return listBlocks(this);
  }

  /**
   * Checks every invariant of the bitmap and the free lists, and throws an `Error` naming the first
   * one broken. O(size / minBlockSize): for tests and debugging, never on a hot path.
   *
   * Invariants: below a free or allocated block every bit is 0; no split node has two free halves;
   * every free block is on the list of its order exactly once, and the lists hold nothing else;
   * the lists' back links match their forward links; `freeBytes` is the sum of the free blocks.
   *
   * @example Validating after some work
   * ```ts
   * import { BuddyAllocator } from "@pseudo/malloc";
   *
   * const buddy = new BuddyAllocator({ size: 4096 });
   * buddy.free(buddy.alloc(100));
   * buddy.validate();
   * ```
   */
  validate(): void {
    checkInvariants(this, this.#heads, this.#links, this.#freeBytes);
  }

  // --- the block tree ---------------------------------------------------------------------------

  /** Heap-order number of the node of the block of `order` at `offset`. */
  #node(order: number, offset: number): number {
    return (1 << (this.maxOrder - order)) + (offset >>> (this.#minShift + order));
  }

  #test(node: number): number {
    return (this.bitmap[node >>> 3]! >>> (node & 7)) & 1;
  }

  #set(node: number): void {
    this.bitmap[node >>> 3]! |= 1 << (node & 7);
  }

  #clear(node: number): void {
    this.bitmap[node >>> 3]! &= ~(1 << (node & 7));
  }

  #hasUsedChild(node: number): boolean {
    return (this.#test(2 * node) | this.#test(2 * node + 1)) === 1;
  }

  /**
   * The order of the allocated block that starts at `offset`, or -1 if there is none. Walks up from
   * the smallest order: the first in-use node whose start is `offset` must be that block.
   */
  #allocatedOrder(offset: number): number {
    if (
      typeof offset !== "number" || !(offset >= 0 && offset < this.size) ||
      (offset | 0) !== offset || (offset & (this.minBlockSize - 1)) !== 0 // (no slow fmod)
    ) return -1;
    for (let k = 0; k <= this.maxOrder; k++) {
      // No block of order k or higher starts at an offset that is not a multiple of its size.
      if ((offset & ((this.minBlockSize << k) - 1)) !== 0) return -1;
      const node = this.#node(k, offset);
      if (this.#test(node)) {
        // In use: allocated when no child is in use; if split, the half at `offset` was free.
        return k === 0 || !this.#hasUsedChild(node) ? k : -1;
      }
    }
    return -1;
  }

  /** Marks the block free and merges it with free buddies, then lists the result. */
  #release(offset: number, order: number): void {
    this.#clear(this.#node(order, offset));
    this.#freeBytes += this.minBlockSize << order;
    let k = order;
    while (k < this.maxOrder) {
      // 1. The buddy differs from the block only in the bit worth the block size.
      const buddy = offset ^ (this.minBlockSize << k);
      // 2. Stop if the buddy is in use; below a split parent a clear bit means a free block.
      if (this.#test(this.#node(k, buddy))) break;
      // 3. Take the buddy off its list; the parent starts at the lower of the two.
      this.#unlink(k, buddy);
      offset &= ~(this.minBlockSize << k);
      k++;
      // 4. The parent was split; now it is one free block.
      this.#clear(this.#node(k, offset));
    }
    this.#push(k, offset);
  }

  /**
   * The error for an offset where no allocated block starts, naming what lies there: a free block
   * (a double free), the inside of an allocated block, a misaligned or an outside offset. For the
   * verbs "free" and "reallocate" it is an {@linkcode InvalidFreeError} or a
   * {@linkcode DoubleFreeError}, for others an {@linkcode InvalidAddressError}.
   *
   * @param offset The rejected offset.
   * @param verb What was attempted, for the message: "free", "reallocate", "find the size of"...
   * @param base Added to offsets in the message (the arena's address); 0 by default.
   * @returns The error, to throw.
   *
   * @example Explaining an interior offset
   * ```ts
   * import { BuddyAllocator } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * const buddy = new BuddyAllocator({ size: 1024 });
   * buddy.alloc(64);
   * assert.match(buddy.rejection(16, "free").message, /inside the block \[0x0, 0x40\)/);
   * ```
   */
  rejection(offset: number, verb: string, base = 0): Error {
    return rejectionAt(this, offset, verb, base);
  }

  // --- free lists (links inside the free blocks) -----------------------------------------------

  #next(offset: number): number {
    return this.#links[offset >>> 2]!;
  }

  #prev(offset: number): number {
    return this.#links[(offset >>> 2) + 1]!;
  }

  #push(order: number, offset: number): void {
    const head = this.#heads[order]!;
    this.#links[offset >>> 2] = head;
    this.#links[(offset >>> 2) + 1] = NIL;
    if (head !== NIL) this.#links[(head >>> 2) + 1] = offset;
    this.#heads[order] = offset;
  }

  #unlink(order: number, offset: number): void {
    const next = this.#next(offset);
    const prev = this.#prev(offset);
    if (prev === NIL) this.#heads[order] = next;
    else this.#links[prev >>> 2] = next;
    if (next !== NIL) this.#links[(next >>> 2) + 1] = prev;
  }
}
