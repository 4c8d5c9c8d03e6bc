// Reading a BuddyAllocator's state from outside its hot paths: the list of blocks, the free
// blocks per order, the check of every invariant, and the error that says what lies at an offset
// where no allocated block starts. Free functions over the allocator's public geometry and its
// arrays (the class passes its private free-list heads, links and byte count), so that buddy.ts
// keeps only the class and its alloc, free and resize. None of these is on a hot path: the error
// is made only when a call is about to throw, the rest are for tests, debugging and pictures.

import { DoubleFreeError, hex, InvalidAddressError, InvalidFreeError } from "../errors.ts";
import { isFreeing, notAnAddress } from "../_checks.ts";
import { hasUsedChild, nextFree, NIL, nodeOf, prevFree, testBit } from "./_layout.ts";

/**
 * One block of the arena, as listed by {@linkcode BuddyAllocator.prototype.blocks}.
 *
 * @example The first block
 * ```ts
 * import { BuddyAllocator, type BuddyBlock } from "@pseudo/malloc";
 * import assert from "node:assert/strict";
 *
 * const first: BuddyBlock = new BuddyAllocator({ size: 64 }).blocks()[0]!;
 * assert.deepEqual(first, { offset: 0, size: 64, order: 2, allocated: false });
 * ```
 */
export interface BuddyBlock {
  /** Offset of the block's first byte. */
  offset: number;
  /** Block size in bytes. */
  size: number;
  /** The block's order: `size === minBlockSize << order`. */
  order: number;
  /** True for an allocated block, false for a free one. */
  allocated: boolean;
}

/** The public state of a BuddyAllocator that these functions read. */
export interface BuddyGeometry {
  readonly size: number;
  readonly minBlockSize: number;
  readonly maxOrder: number;
  readonly bitmap: Uint8Array;
}

/**
 * Every block, allocated or free, in address order: a walk of the tree from the root that goes
 * down through split nodes and stops at free and allocated blocks.
 *
 * @param buddy The allocator.
 * @returns The blocks, lowest offset first.
 */
export function listBlocks(buddy: BuddyGeometry): BuddyBlock[] {
  const { bitmap, minBlockSize } = buddy;
  const out: BuddyBlock[] = [];
  const visit = (node: number, order: number, offset: number): void => {
    const inUse = testBit(bitmap, node) === 1;
    if (inUse && order > 0 && hasUsedChild(bitmap, node)) {
      const half = minBlockSize << (order - 1);
      visit(2 * node, order - 1, offset);
      visit(2 * node + 1, order - 1, offset + half);
    } else {
      out.push({ offset, size: minBlockSize << order, order, allocated: inUse });
    }
  };
  visit(1, buddy.maxOrder, 0);
  return out;
}

/**
 * How many free blocks each order has, by walking the free lists.
 *
 * @param buddy The allocator.
 * @param heads The first free block of each order, or NIL.
 * @param links The arena's memory as 32-bit words.
 * @returns One count per order, `maxOrder + 1` in all.
 */
export function countFreeBlocks(
  buddy: BuddyGeometry,
  heads: Int32Array,
  links: Int32Array,
): number[] {
  const counts: number[] = [];
  for (let k = 0; k <= buddy.maxOrder; k++) {
    let count = 0;
    for (let offset = heads[k]!; offset !== NIL; offset = nextFree(links, offset)) count++;
    counts.push(count);
  }
  return counts;
}

/**
 * Checks every invariant of the bitmap and the free lists, and throws an `Error` naming the first
 * one broken (the invariants are listed in `BuddyAllocator.prototype.validate`'s documentation).
 *
 * @param buddy The allocator.
 * @param heads The first free block of each order, or NIL.
 * @param links The arena's memory as 32-bit words.
 * @param freeBytes The byte count the allocator keeps.
 */
export function checkInvariants(
  buddy: BuddyGeometry,
  heads: Int32Array,
  links: Int32Array,
  freeBytes: number,
): void {
  const { bitmap, maxOrder, minBlockSize, size } = buddy;
  const minShift = Math.log2(minBlockSize);
  const fail = (what: string): never => {
    throw new Error(`BuddyAllocator invariant broken: ${what}`);
  };
  if (testBit(bitmap, 0) !== 0) fail("node 0 (unused) has its bit set");
  // One pass over the nodes in heap order (parents before children) gives each node a role.
  const nodes = 2 ** (maxOrder + 1);
  const role = new Uint8Array(nodes); // BELOW a block, FREE or ALLOCATED block, SPLIT node
  const [BELOW, FREE, ALLOCATED, SPLIT] = [0, 1, 2, 3];
  let treeFreeBytes = 0;
  let freeBlocks = 0;
  for (let node = 1, order = maxOrder; node < nodes; node++) {
    if (node === 1 << (maxOrder - order + 1)) order--; // first node of the next level
    const parentSplit = node === 1 || role[node >>> 1] === SPLIT;
    if (!parentSplit) {
      if (testBit(bitmap, node)) fail(`node ${node} is set below a block`);
      continue; // role BELOW
    }
    if (!testBit(bitmap, node)) {
      role[node] = FREE;
      treeFreeBytes += minBlockSize << order;
      freeBlocks++;
      // Two free halves of one parent would have been merged.
      if (node > 1 && !testBit(bitmap, node ^ 1)) fail(`free node ${node} has a free buddy`);
    } else {
      role[node] = order > 0 && hasUsedChild(bitmap, node) ? SPLIT : ALLOCATED;
    }
  }
  if (role[0] !== BELOW) fail("node 0 has a role");
  if (treeFreeBytes !== freeBytes) {
    fail(`freeBytes is ${freeBytes} but the free blocks add up to ${treeFreeBytes}`);
  }
  // Walk the free lists: each entry a free block of the list's order, each free block listed once.
  let listed = 0;
  for (let k = 0; k <= maxOrder; k++) {
    let previous = NIL;
    for (let offset = heads[k]!; offset !== NIL; offset = nextFree(links, offset)) {
      const misaligned = offset % (minBlockSize << k) !== 0 || offset >= size;
      const node = misaligned ? 0 : nodeOf(maxOrder, minShift, k, offset);
      if (role[node] !== FREE) {
        fail(`free list ${k} holds ${hex(offset)}, which is not a free block of order ${k}`);
      }
      if (prevFree(links, offset) !== previous) {
        fail(`free list ${k}: bad back link at ${hex(offset)}`);
      }
      role[node] = BELOW; // listed: a second visit (a cycle or a duplicate) fails above
      listed++;
      previous = offset;
    }
  }
  if (listed !== freeBlocks) fail(`the free lists hold ${listed} blocks, the tree ${freeBlocks}`);
}

/**
 * The error for an offset where no allocated block starts, naming what lies there: a free block
 * (a double free), the inside of an allocated block, a misaligned or an outside offset. For the
 * verbs "free" and "reallocate" it is an `InvalidFreeError` or a `DoubleFreeError`, for others an
 * `InvalidAddressError`; an offset that is not a number gives a `TypeError`.
 *
 * Example: in a 1 KiB arena of 16-byte blocks with a 64-byte block allocated at 0,
 * `rejectionAt(buddy, 16, "free", 0)` walks down through the split nodes 1, 2, 4 and 8 to node 16
 * (order 2, [0x0, 0x40), in use with no child in use: allocated) and says that 0x10 "is inside
 * the block [0x0, 0x40), not at its start".
 *
 * @param buddy The allocator.
 * @param offset The rejected offset.
 * @param verb What was attempted, for the message: "free", "reallocate", "find the size of"...
 * @param base Added to offsets in the message (the arena's address).
 * @returns The error, to throw.
 */
export function rejectionAt(
  buddy: BuddyGeometry,
  offset: number,
  verb: string,
  base: number,
): Error {
  if (typeof offset !== "number") return notAnAddress(offset, verb);
  const { bitmap, minBlockSize } = buddy;
  const address = base + offset;
  const freeing = isFreeing(verb);
  const Invalid = freeing ? InvalidFreeError : InvalidAddressError;
  const where = `Cannot ${verb} ${hex(address)}`;
  if (!(offset >= 0 && offset < buddy.size) || !Number.isInteger(offset)) {
    return new Invalid(`${where}: it is not an address of this heap`, address);
  }
  if (offset % minBlockSize !== 0) {
    return new Invalid(
      `${where}: blocks are ${minBlockSize}-byte aligned, this address is not`,
      address,
    );
  }
  // Walk down from the root to the block that contains `offset`.
  let node = 1;
  let start = 0;
  for (let k = buddy.maxOrder;; k--) {
    const end = start + (minBlockSize << k);
    if (!testBit(bitmap, node)) {
      const Free = freeing ? DoubleFreeError : InvalidAddressError;
      return new Free(
        `${where}: it lies in free block [${hex(base + start)}, ${hex(base + end)}) (double free?)`,
        address,
      );
    }
    if (k === 0 || !hasUsedChild(bitmap, node)) {
      return new Invalid(
        `${where}: it is inside the block [${hex(base + start)}, ${
          hex(base + end)
        }), not at its start`,
        address,
      );
    }
    const half = minBlockSize << (k - 1);
    node *= 2;
    if (offset >= start + half) {
      node += 1;
      start += half;
    }
  }
}
