// BuddyAllocator without FFI: orders, splitting, merging, buddies, a full arena, bad frees.
import assert from "node:assert/strict";
import {
  BuddyAllocator,
  DEFAULT_ARENA_SIZE,
  DEFAULT_MIN_BLOCK_SIZE,
  DoubleFreeError,
  InvalidAddressError,
  InvalidFreeError,
} from "../mod.ts";
import { mulberry32 } from "./_random.ts";

const MIN = DEFAULT_MIN_BLOCK_SIZE; // 16
const ARENA = DEFAULT_ARENA_SIZE; // 1 MiB
const MAX_ORDER = Math.log2(ARENA / MIN); // 16

/** Reads bit `node` of the bitmap. */
function bit(buddy: BuddyAllocator, node: number): number {
  return (buddy.bitmap[node >> 3]! >> (node & 7)) & 1;
}

Deno.test("BuddyAllocator defaults to a 1 MiB arena of 16-byte blocks", () => {
  const buddy = new BuddyAllocator();
  assert.equal(buddy.size, ARENA);
  assert.equal(buddy.minBlockSize, MIN);
  assert.equal(buddy.maxOrder, MAX_ORDER);
  assert.equal(buddy.freeBytes, ARENA);
  assert.equal(buddy.largestFreeBlock, ARENA);
  // One bit per node of a tree with 2^(maxOrder+1) - 1 nodes, numbered from 1.
  assert.equal(buddy.bitmap.length, 2 ** (MAX_ORDER + 1) / 8);
  assert.ok(buddy.bitmap.every((byte) => byte === 0));
  buddy.validate();
});

Deno.test("BuddyAllocator.orderFor rounds up to the next power of two", () => {
  const buddy = new BuddyAllocator();
  const cases: [number, number][] = [
    [0, 0],
    [1, 0],
    [MIN, 0],
    [MIN + 1, 1],
    [100, 3],
    [128, 3],
    [129, 4],
    [512, 5],
    [1000, 6],
    [ARENA / 2 + 1, MAX_ORDER],
    [ARENA, MAX_ORDER],
    [ARENA + 1, -1],
  ];
  for (const [size, order] of cases) assert.equal(buddy.orderFor(size), order, `size ${size}`);
});

Deno.test("BuddyAllocator constructor rejects sizes that are not powers of two", () => {
  assert.throws(() => new BuddyAllocator({ size: 1000 }), RangeError);
  assert.throws(() => new BuddyAllocator({ minBlockSize: 24 }), RangeError);
  assert.throws(() => new BuddyAllocator({ minBlockSize: 4 }), /at least 8/);
  assert.throws(() => new BuddyAllocator({ size: 8, minBlockSize: 16 }), RangeError);
  assert.throws(() => new BuddyAllocator({ size: 2 ** 31 }), RangeError);
  assert.throws(
    () => new BuddyAllocator({ size: 1024, memory: new ArrayBuffer(512) }),
    /512 bytes of memory/,
  );
});

Deno.test("BuddyAllocator.alloc splits the arena down to the requested order", () => {
  const buddy = new BuddyAllocator({ size: 128, minBlockSize: MIN });
  assert.equal(buddy.alloc(16), 0);
  buddy.validate();
  // Splitting 128 -> 64 + 64 -> 32 + 32 -> 16 + 16 left one free block at each lower order.
  assert.deepEqual(
    buddy.blocks().map((b) => [b.offset, b.size, b.allocated]),
    [[0, 16, true], [16, 16, false], [32, 32, false], [64, 64, false]],
  );
  assert.equal(buddy.freeBytes, 128 - 16);
  assert.equal(buddy.alloc(32), 32);
  buddy.validate();
  // The bitmap of the module documentation's example: nodes 1, 2, 4, 5 and 8 in use.
  assert.deepEqual([...buddy.bitmap], [0b00110110, 0b00000001]);
  for (const node of [1, 2, 4, 5, 8]) assert.equal(bit(buddy, node), 1, `node ${node}`);
  for (const node of [3, 6, 7, 9, 10, 11, 12, 13, 14, 15]) assert.equal(bit(buddy, node), 0);
});

Deno.test("BuddyAllocator.alloc takes the smallest free block that fits", () => {
  const buddy = new BuddyAllocator({ size: 256, minBlockSize: MIN });
  const a = buddy.alloc(16); // splits 256 -> ... leaves free 16@16, 32@32, 64@64, 128@128
  const b = buddy.alloc(64); // takes 64@64, not a split of 128@128
  const c = buddy.alloc(16); // takes 16@16
  assert.deepEqual([a, b, c], [0, 64, 16]);
  assert.equal(buddy.largestFreeBlock, 128);
  buddy.validate();
});

Deno.test("BuddyAllocator.free merges buddies all the way up", () => {
  const buddy = new BuddyAllocator({ size: 1024, minBlockSize: MIN });
  const offsets = Array.from({ length: 1024 / MIN }, () => buddy.alloc(MIN));
  assert.deepEqual(offsets, offsets.map((_, i) => i * MIN));
  assert.equal(buddy.freeBytes, 0);
  buddy.validate();
  // Free every other block: no two free blocks are buddies, so nothing merges.
  for (let i = 0; i < offsets.length; i += 2) {
    assert.equal(buddy.free(offsets[i]!), MIN);
    buddy.validate();
  }
  assert.equal(buddy.largestFreeBlock, MIN);
  // Freeing the rest merges each pair, then pairs of pairs, up to the whole arena.
  for (let i = 1; i < offsets.length; i += 2) {
    buddy.free(offsets[i]!);
    buddy.validate();
  }
  assert.deepEqual(buddy.blocks(), [{ offset: 0, size: 1024, order: 6, allocated: false }]);
  assert.equal(buddy.largestFreeBlock, 1024);
  assert.ok(buddy.bitmap.every((byte) => byte === 0));
});

Deno.test("BuddyAllocator buddy of an offset is offset ^ blockSize", () => {
  // In units of 16 bytes, order 1 (2 units): 8 ^ 2 = 10. Allocate both, free one, then the other:
  // only after the second free do they merge into the order-2 block at unit 8.
  const buddy = new BuddyAllocator({ size: 256, minBlockSize: MIN });
  const all = Array.from({ length: 8 }, () => buddy.alloc(32)); // units 0, 2, 4, ..., 14
  assert.equal(all[4], 8 * MIN);
  assert.equal(all[5], 10 * MIN);
  assert.equal((8 * MIN) ^ (2 * MIN), 10 * MIN);
  buddy.free(8 * MIN);
  assert.equal(buddy.largestFreeBlock, 32);
  buddy.free(10 * MIN);
  assert.equal(buddy.largestFreeBlock, 64);
  assert.ok(buddy.blocks().some((b) => b.offset === 8 * MIN && b.size === 64 && !b.allocated));
  buddy.validate();
});

Deno.test("BuddyAllocator holds exactly 2048 blocks of 512 bytes in 1 MiB", () => {
  const buddy = new BuddyAllocator();
  const offsets = new Set<number>();
  for (let i = 0; i < 2048; i++) {
    const offset = buddy.alloc(512);
    assert.equal(offset, i * 512);
    offsets.add(offset);
  }
  assert.equal(buddy.freeBytes, 0);
  assert.equal(buddy.alloc(0), -1);
  assert.equal(buddy.alloc(512), -1);
  buddy.validate();
  for (const offset of offsets) buddy.free(offset);
  assert.equal(buddy.freeBytes, ARENA);
  buddy.validate();
});

Deno.test("BuddyAllocator gives a 16-byte request exactly one 16-byte block", () => {
  const buddy = new BuddyAllocator({ size: 4096 });
  for (let i = 0; i < 4096 / 16; i++) assert.equal(buddy.alloc(16), i * 16);
  assert.equal(buddy.alloc(1), -1);
  buddy.validate();
});

Deno.test("BuddyAllocator.alloc returns -1 when no block fits", () => {
  const buddy = new BuddyAllocator({ size: 1024 });
  assert.equal(buddy.alloc(2048), -1);
  const half = buddy.alloc(512);
  assert.equal(buddy.alloc(513), -1);
  assert.equal(buddy.alloc(512), 512);
  buddy.free(half);
  buddy.validate();
});

Deno.test("BuddyAllocator.alloc rejects bad sizes without changing state", () => {
  const buddy = new BuddyAllocator({ size: 1024 });
  const before = buddy.bitmap.slice();
  assert.throws(() => buddy.alloc(-1), /Cannot allocate -1 bytes: size must be a non-negative/);
  assert.throws(() => buddy.alloc(1.5), RangeError);
  assert.throws(() => buddy.alloc(NaN), RangeError);
  assert.throws(() => buddy.alloc(Infinity), RangeError);
  assert.throws(() => buddy.alloc("8" as unknown as number), TypeError);
  assert.deepEqual(buddy.bitmap, before);
  assert.equal(buddy.freeBytes, 1024);
  buddy.validate();
});

Deno.test("BuddyAllocator.free tells double, interior, misaligned and outside frees apart", () => {
  const buddy = new BuddyAllocator({ size: 1024 });
  const a = buddy.alloc(64);
  const b = buddy.alloc(16);
  const snapshot = () => [buddy.bitmap.slice(), buddy.freeBytes, buddy.blocks()] as const;
  const before = snapshot();
  assert.throws(() => buddy.free(a + 16), (e) => {
    assert.ok(e instanceof InvalidFreeError && !(e instanceof DoubleFreeError));
    assert.match(e.message, /inside the block \[0x0, 0x40\)/);
    return true;
  });
  assert.throws(() => buddy.free(a + 3), /16-byte aligned/);
  assert.throws(() => buddy.free(1024), /not an address of this heap/);
  assert.throws(() => buddy.free(-16), InvalidFreeError);
  assert.throws(() => buddy.free(0.5), InvalidFreeError);
  assert.throws(() => buddy.free("0" as unknown as number), TypeError);
  assert.throws(() => buddy.free(512), DoubleFreeError); // never allocated, lies in free space
  assert.deepEqual(snapshot(), before);
  buddy.validate();
  buddy.free(b);
  assert.throws(() => buddy.free(b), DoubleFreeError);
  buddy.free(a);
  assert.throws(() => buddy.free(a), DoubleFreeError);
  assert.equal(buddy.freeBytes, 1024);
  buddy.validate();
});

Deno.test("BuddyAllocator.blockSize rejects offsets without a live block", () => {
  const buddy = new BuddyAllocator({ size: 1024 });
  const a = buddy.alloc(200);
  assert.equal(buddy.blockSize(a), 256);
  assert.throws(() => buddy.blockSize(a + 16), InvalidAddressError);
  assert.throws(() => buddy.blockSize(512), InvalidAddressError);
  assert.throws(() => buddy.blockSize(512), (e) => !(e instanceof InvalidFreeError));
});

Deno.test("BuddyAllocator.resize shrinks in place and refuses to grow", () => {
  const buddy = new BuddyAllocator({ size: 1024 });
  const a = buddy.alloc(512);
  assert.equal(buddy.resize(a, 512), 512);
  assert.equal(buddy.resize(a, 600), -1);
  assert.equal(buddy.resize(a, 2000), -1);
  assert.equal(buddy.resize(a, 40), 64);
  buddy.validate();
  assert.equal(buddy.blockSize(a), 64);
  assert.equal(buddy.freeBytes, 1024 - 64);
  // The freed halves are usable at once.
  assert.equal(buddy.alloc(256), 256);
  assert.equal(buddy.alloc(128), 128);
  assert.equal(buddy.alloc(64), 64);
  buddy.validate();
  assert.throws(() => buddy.resize(512, 8), DoubleFreeError);
  assert.throws(() => buddy.resize(a + 16, 8), InvalidFreeError);
});

Deno.test("BuddyAllocator keeps its free lists inside the given memory", () => {
  const memory = new ArrayBuffer(256);
  const buddy = new BuddyAllocator({ size: 256, memory });
  buddy.alloc(16);
  const links = new Int32Array(memory);
  // The free 128-byte block at 128 is alone on its list: next = -1, previous = -1.
  assert.deepEqual([links[128 / 4], links[128 / 4 + 1]], [-1, -1]);
  // Corrupting a link is caught by validate().
  links[128 / 4] = 16;
  assert.throws(() => buddy.validate(), /invariant broken/);
});

Deno.test("BuddyAllocator.validate catches a corrupted bitmap", () => {
  const buddy = new BuddyAllocator({ size: 256 });
  buddy.alloc(16);
  buddy.bitmap[1]! |= 0b10; // node 9, the free buddy of the allocated block at 0
  assert.throws(() => buddy.validate(), /invariant broken/);
});

Deno.test("BuddyAllocator random alloc/resize/free keeps every invariant", () => {
  const random = mulberry32(7);
  const buddy = new BuddyAllocator({ size: 1 << 14, minBlockSize: 16 });
  const live = new Map<number, number>(); // offset -> block size
  for (let step = 0; step < 3000; step++) {
    if (live.size > 0 && random() < 0.1) {
      // Shrink or try to grow in place.
      const keys = [...live.keys()];
      const offset = keys[Math.floor(random() * keys.length)]!;
      const size = Math.floor(random() * 2 * live.get(offset)!);
      const resized = buddy.resize(offset, size);
      if (resized < 0) assert.ok(size > live.get(offset)!);
      else live.set(offset, resized);
      assert.equal(buddy.blockSize(offset), live.get(offset));
    } else if (live.size > 0 && random() < 0.45) {
      const keys = [...live.keys()];
      const offset = keys[Math.floor(random() * keys.length)]!;
      assert.equal(buddy.free(offset), live.get(offset));
      live.delete(offset);
    } else {
      const size = Math.floor(random() ** 3 * 2048);
      const offset = buddy.alloc(size);
      if (offset < 0) {
        assert.ok(buddy.largestFreeBlock < Math.max(16, size));
        continue;
      }
      const block = buddy.blockSize(offset);
      assert.ok(block >= size && offset % block === 0);
      for (const [other, otherSize] of live) {
        assert.ok(offset + block <= other || other + otherSize <= offset, "blocks overlap");
      }
      live.set(offset, block);
    }
    buddy.validate();
    const used = [...live.values()].reduce((a, b) => a + b, 0);
    assert.equal(buddy.freeBytes, (1 << 14) - used);
  }
  for (const offset of live.keys()) buddy.free(offset);
  assert.equal(buddy.blocks().length, 1);
  buddy.validate();
});

Deno.test("BuddyAllocator.rejection: the exact message and class for each case, with a base", () => {
  const buddy = new BuddyAllocator({ size: 1024 });
  buddy.alloc(64); // [0x0, 0x40)
  const base = 0x7f00_0000;
  const cases: [unknown, string, ErrorConstructor | typeof InvalidAddressError, string][] = [
    ["0", "free", TypeError, "Cannot free 0: an address must be a number, got string"],
    [1024, "free", InvalidFreeError, "Cannot free 0x7f000400: it is not an address of this heap"],
    [
      -16,
      "reallocate",
      InvalidFreeError,
      "Cannot reallocate 0x7efffff0: it is not an address of this heap",
    ],
    [0.5, "free", InvalidFreeError, "Cannot free 0x7f000000.8: it is not an address of this heap"],
    [
      8,
      "free",
      InvalidFreeError,
      "Cannot free 0x7f000008: blocks are 16-byte aligned, this address is not",
    ],
    [
      16,
      "free",
      InvalidFreeError,
      "Cannot free 0x7f000010: it is inside the block [0x7f000000, 0x7f000040), not at its start",
    ],
    [
      0x40,
      "free",
      DoubleFreeError,
      "Cannot free 0x7f000040: it lies in free block [0x7f000040, 0x7f000080) (double free?)",
    ],
    [
      0x200,
      "find the size of",
      InvalidAddressError,
      "Cannot find the size of 0x7f000200: it lies in free block [0x7f000200, 0x7f000400) (double free?)",
    ],
    [
      16,
      "find the size of",
      InvalidAddressError,
      "Cannot find the size of 0x7f000010: it is inside the block [0x7f000000, 0x7f000040), not at its start",
    ],
  ];
  for (const [offset, verb, Class, message] of cases) {
    const error = buddy.rejection(offset as number, verb, base);
    assert.equal(error.constructor, Class, `${String(offset)} ${verb}: ${error.name}`);
    assert.equal(error.message, message);
  }
});

Deno.test("BuddyAllocator: blocks, freeBlockCounts and rejection agree with the hot paths", () => {
  const random = mulberry32(11);
  const size = 1 << 13;
  const buddy = new BuddyAllocator({ size, minBlockSize: 16 });
  const live: number[] = [];
  for (let step = 0; step < 1500; step++) {
    if (live.length > 0 && random() < 0.45) {
      const [offset] = live.splice(Math.floor(random() * live.length), 1);
      buddy.free(offset!);
    } else if (live.length > 0 && random() < 0.1) {
      const offset = live[Math.floor(random() * live.length)]!;
      buddy.resize(offset, Math.floor(random() * buddy.blockSize(offset)));
    } else {
      const offset = buddy.alloc(Math.floor(random() ** 3 * 1024));
      if (offset >= 0) live.push(offset);
    }
    const blocks = buddy.blocks();
    const counts = new Array<number>(buddy.maxOrder + 1).fill(0);
    let end = 0;
    let freeBytes = 0;
    let largest = 0;
    for (const block of blocks) {
      assert.equal(block.offset, end, "the blocks tile the arena");
      assert.equal(block.size, buddy.minBlockSize << block.order);
      end += block.size;
      if (block.allocated) {
        assert.equal(buddy.orderAt(block.offset), block.order);
        if (block.order > 0) {
          assert.equal(buddy.orderAt(block.offset + 16), -1);
          assert.ok(buddy.rejection(block.offset + 16, "free") instanceof InvalidFreeError);
        }
      } else {
        counts[block.order]!++;
        freeBytes += block.size;
        largest = Math.max(largest, block.size);
        assert.equal(buddy.orderAt(block.offset), -1);
        assert.ok(buddy.rejection(block.offset, "free") instanceof DoubleFreeError);
      }
    }
    assert.equal(end, size);
    assert.deepEqual(buddy.freeBlockCounts(), counts, `step ${step}`);
    assert.equal(buddy.freeBytes, freeBytes);
    assert.equal(buddy.largestFreeBlock, largest);
    assert.deepEqual(live.map((offset) => buddy.orderAt(offset) >= 0), live.map(() => true));
  }
  buddy.validate();
});

// --- growing in place ---------------------------------------------------------------------------

/** The blocks as `offset:size` (allocated) or `offset:size free`, for worked examples. */
function layout(buddy: BuddyAllocator): string[] {
  return buddy.blocks().map((b) => `${b.offset}:${b.size}${b.allocated ? "" : " free"}`);
}

Deno.test("BuddyAllocator.grow takes the free buddies above, one order at a time", () => {
  // 256 bytes of 16-byte blocks: 16 at 0 allocated, then 16, 32, 64 and 128 free above it.
  const buddy = new BuddyAllocator({ size: 256, minBlockSize: 16 });
  const a = buddy.alloc(16);
  assert.deepEqual(layout(buddy), [
    "0:16",
    "16:16 free",
    "32:32 free",
    "64:64 free",
    "128:128 free",
  ]);
  assert.equal(buddy.grow(a, 17), 32); // takes 16
  assert.deepEqual(layout(buddy), ["0:32", "32:32 free", "64:64 free", "128:128 free"]);
  assert.equal(buddy.grow(a, 100), 128); // takes 32, then 64
  assert.deepEqual(layout(buddy), ["0:128", "128:128 free"]);
  assert.equal(buddy.freeBytes, 128);
  assert.deepEqual(buddy.freeBlockCounts(), [0, 0, 0, 1, 0]);
  assert.equal(buddy.grow(a, 50), 128, "a block that fits already stays as it is");
  assert.equal(buddy.grow(a, 257), -1, "larger than the arena");
  assert.equal(buddy.grow(a, 256), 256);
  assert.equal(buddy.freeBytes, 0);
  buddy.validate();
  assert.equal(buddy.free(a), 256);
  assert.equal(buddy.freeBytes, 256);
  buddy.validate();
});

Deno.test("BuddyAllocator.grow changes nothing when a buddy is in use or the block is an upper half", () => {
  const buddy = new BuddyAllocator({ size: 256, minBlockSize: 16 });
  const a = buddy.alloc(16); // 0
  const b = buddy.alloc(16); // 16: the upper half of [0, 32)
  const c = buddy.alloc(64); // 64
  assert.deepEqual([a, b, c], [0, 16, 64]);
  const before = [...buddy.bitmap];
  const counts = buddy.freeBlockCounts();
  assert.equal(buddy.grow(b, 32), -1, "16 is an upper half: it can never grow");
  assert.equal(buddy.grow(a, 32), -1, "its buddy at 16 is in use");
  assert.equal(buddy.free(b), 16);
  // Now 0 can take 16 and 32, but not 64: that buddy is allocated. Nothing changes on -1, not
  // even the steps that would have succeeded.
  const bitmap = [...buddy.bitmap];
  assert.equal(buddy.grow(a, 128), -1);
  assert.deepEqual([...buddy.bitmap], bitmap);
  assert.equal(buddy.freeBytes, 256 - 16 - 64);
  assert.equal(buddy.grow(a, 64), 64);
  assert.deepEqual(layout(buddy), ["0:64", "64:64", "128:128 free"]);
  assert.ok(before.length > 0 && counts.length === 5);
  // The growOrder primitive: the same, unchecked, by order.
  assert.equal(buddy.growOrder(a, 2, 3), false);
  assert.equal(buddy.growOrder(c, 2, 3), false, "64 is an upper half");
  assert.equal(buddy.free(c), 64);
  assert.equal(buddy.growOrder(a, 2, 4), true);
  assert.equal(buddy.blockSize(a), 256);
  buddy.validate();
  assert.throws(() => buddy.grow(32, 64), InvalidFreeError, "inside the block");
  buddy.free(a);
  assert.throws(() => buddy.grow(a, 64), DoubleFreeError);
});

Deno.test("BuddyAllocator random alloc/grow/free keeps every invariant (seed 11)", () => {
  const random = mulberry32(11);
  const size = 1 << 14;
  const buddy = new BuddyAllocator({ size, minBlockSize: 16 });
  const live = new Map<number, number>(); // offset -> block size
  let grown = 0;
  let refused = 0;
  for (let step = 0; step < 4000; step++) {
    const keys = [...live.keys()];
    if (keys.length > 0 && random() < 0.3) {
      const offset = keys[Math.floor(random() * keys.length)]!;
      const old = live.get(offset)!;
      const wanted = old * (random() < 0.8 ? 2 : 4); // mostly one order up
      // Whether it can grow, worked out from the live blocks alone: aligned, nothing live above.
      const target = Math.min(wanted, size * 2);
      const free = target <= size && offset % target === 0 &&
        keys.every((other) => other === offset || other < offset || other >= offset + target);
      const bitmap = [...buddy.bitmap];
      const result = buddy.grow(offset, wanted);
      if (free) {
        assert.equal(result, wanted, `grow ${offset} from ${old} to ${wanted}`);
        live.set(offset, wanted);
        grown++;
      } else {
        assert.equal(result, -1, `grow ${offset} from ${old} to ${wanted} must fail`);
        assert.deepEqual([...buddy.bitmap], bitmap, "a refused grow changed the bitmap");
        refused++;
      }
      assert.equal(buddy.blockSize(offset), live.get(offset));
    } else if (keys.length > 0 && random() < 0.5) {
      const offset = keys[Math.floor(random() * keys.length)]!;
      assert.equal(buddy.free(offset), live.get(offset));
      live.delete(offset);
    } else {
      const offset = buddy.alloc(Math.floor(random() ** 3 * 512));
      if (offset >= 0) live.set(offset, buddy.blockSize(offset));
    }
    buddy.validate();
    const used = [...live.values()].reduce((a, b) => a + b, 0);
    assert.equal(buddy.freeBytes, size - used);
  }
  assert.ok(grown > 100 && refused > 100, `grown ${grown}, refused ${refused}`);
  for (const offset of live.keys()) buddy.free(offset);
  assert.deepEqual(layout(buddy), [`0:${size} free`]);
});
