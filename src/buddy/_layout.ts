// The layout of a BuddyAllocator's state, as free functions over its arrays, for the code that
// reads that state from outside the class (inspection, validation, error messages in _inspect.ts).
// buddy.ts's module documentation explains the layout with worked examples; in short:
//
// - The bitmap has one bit per node of the block tree, in heap order: the root (the whole arena,
//   order maxOrder) is node 1, the children of node n are 2n and 2n + 1. Bit n (byte n >> 3, bit
//   n & 7) is 1 when node n is in use: allocated, or split with at least one half in use.
// - The free list of each order is doubly linked through the free blocks themselves: the 32-bit
//   word at offset >> 2 of the arena's memory is the next block, the one after it the previous,
//   NIL ends a list.
//
// The class keeps its own private copies of these one-liners for alloc, free and resize, so that
// its hot paths make no call into another module (nor read an imported constant). The two must
// agree: validate() reads the state through these functions, and tests/buddy_test.ts checks
// blocks(), freeBlockCounts() and rejection() against orderAt() after every step of a random run.

/** End-of-list marker in the free lists (buddy.ts keeps the same constant for its hot paths). */
export const NIL = -1;

/**
 * Heap-order number of the node of the block of `order` at `offset`.
 *
 * Example: maxOrder 3, minShift 4 (16-byte blocks): the 32-byte block at 0x20 (order 1) is node
 * `(1 << 2) + (0x20 >>> 5)` = 5.
 *
 * @param maxOrder The arena's order.
 * @param minShift `log2(minBlockSize)`.
 * @param order The block's order.
 * @param offset The block's offset, a multiple of its size.
 * @returns The node number, from 1.
 */
export function nodeOf(maxOrder: number, minShift: number, order: number, offset: number): number {
  return (1 << (maxOrder - order)) + (offset >>> (minShift + order));
}

/**
 * Bit `node` of the bitmap.
 *
 * @param bitmap The allocator's bitmap.
 * @param node A node number.
 * @returns 1 when the node is in use, 0 otherwise.
 */
export function testBit(bitmap: Uint8Array, node: number): number {
  return (bitmap[node >>> 3]! >>> (node & 7)) & 1;
}

/**
 * Whether one of the two children of `node` is in use: an in-use node with such a child is split,
 * one without is an allocated block.
 *
 * @param bitmap The allocator's bitmap.
 * @param node A node above the lowest level.
 * @returns True when node `2 * node` or `2 * node + 1` is in use.
 */
export function hasUsedChild(bitmap: Uint8Array, node: number): boolean {
  return (testBit(bitmap, 2 * node) | testBit(bitmap, 2 * node + 1)) === 1;
}

/**
 * The next free block on the list of the free block at `offset`.
 *
 * @param links The arena's memory as 32-bit words.
 * @param offset A free block's offset.
 * @returns The next block's offset, or {@linkcode NIL}.
 */
export function nextFree(links: Int32Array, offset: number): number {
  return links[offset >>> 2]!;
}

/**
 * The previous free block on the list of the free block at `offset`.
 *
 * @param links The arena's memory as 32-bit words.
 * @param offset A free block's offset.
 * @returns The previous block's offset, or {@linkcode NIL} for the head of its list.
 */
export function prevFree(links: Int32Array, offset: number): number {
  return links[(offset >>> 2) + 1]!;
}
