// Interior addresses and typed views on every allocator of the family (issue 12): `blockOf`,
// `bytesAt`, `view` and `dataView` of MmapAllocator, BumpAllocator, CellAllocator,
// FirstFitAllocator and SegregatedAllocator, with the same cases run on PseudoMalloc to show that
// the semantics match: the first, middle and last byte of a block, one byte past it, freed and
// foreign addresses, bad arguments, misaligned and too long views, a closed heap, a block that
// realloc moved, large blocks (past each design's own threshold), and a seeded random workload
// checked against a model of the live blocks at random addresses, gaps and headers included.

import assert from "node:assert/strict";
import {
  type Allocator,
  type BlockInfo,
  BumpAllocator,
  CellAllocator,
  FirstFitAllocator,
  HeapClosedError,
  InvalidAddressError,
  libcOs,
  MmapAllocator,
  PseudoMalloc,
  SegregatedAllocator,
  SharedPseudoMalloc,
  type TypedArrayConstructor,
} from "../mod.ts";
import { mulberry32 } from "./_random.ts";
import { memoryView } from "../ffi/libc.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
const PAGE = libcOs.pageSize();

/** An allocator with the four methods under test. */
interface Viewing extends Allocator {
  blockOf(address: number): BlockInfo;
  bytesAt(address: number, length?: number): Uint8Array;
  view<T>(address: number, Type: TypedArrayConstructor<T>, length?: number): T;
  dataView(address: number, length?: number): DataView;
}

interface Subject {
  name: string;
  create(): Viewing;
  /** The largest request served. */
  maxSize: number;
  /** Sizes past the design's own threshold for large blocks (or its largest block). */
  large: number[];
  /** A size that realloc of a 24-byte block (with a live block after it) must move it to. */
  moveTo: number;
  /** False where the design may keep the block in place (or must). */
  mustMove: boolean;
}

const subjects: Subject[] = [
  {
    name: "PseudoMalloc",
    create: () => new PseudoMalloc(),
    maxSize: Infinity,
    large: [20 * KiB, 2 * MiB],
    moveTo: 5000,
    mustMove: true,
  },
  {
    name: "SharedPseudoMalloc",
    create: () => new SharedPseudoMalloc(),
    maxSize: Infinity,
    large: [20 * KiB, 2 * MiB],
    moveTo: 5000,
    mustMove: true,
  },
  {
    name: "MmapAllocator",
    create: () => new MmapAllocator(),
    maxSize: Infinity,
    large: [300 * KiB, 2 * MiB],
    moveTo: 100 * KiB,
    mustMove: false, // mremap may grow the mapping where it is
  },
  {
    name: "BumpAllocator",
    create: () => new BumpAllocator(),
    maxSize: Infinity,
    large: [300 * KiB, 2 * MiB],
    moveTo: 5000,
    mustMove: true,
  },
  {
    name: "CellAllocator",
    create: () => new CellAllocator(),
    maxSize: 32,
    large: [32], // no large blocks: the largest is a whole cell
    moveTo: 32,
    mustMove: false, // every block is one cell: realloc never moves
  },
  {
    name: "FirstFitAllocator",
    create: () => new FirstFitAllocator({ chunkSize: 64 * KiB }),
    maxSize: Infinity,
    large: [200 * KiB, 2 * MiB], // larger than a chunk: a chunk of its own
    moveTo: 5000,
    mustMove: true,
  },
  {
    name: "SegregatedAllocator",
    create: () => new SegregatedAllocator(),
    maxSize: Infinity,
    large: [100 * KiB, 2 * MiB], // above the largest class, 64 KiB
    moveTo: 5000,
    mustMove: true,
  },
];

/** The block of `model` (start to usable size) that holds `address`: a 0-byte block its start. */
function holder(model: Map<number, number>, address: number): BlockInfo | undefined {
  for (const [start, size] of model) {
    if (address >= start && address < start + Math.max(size, 1)) return { address: start, size };
  }
  return undefined;
}

/** Asserts that `heap.blockOf(address)` is what the model says: a block, or none. */
function expectAt(heap: Viewing, model: Map<number, number>, address: number, context: string) {
  const expected = holder(model, address);
  if (expected === undefined) {
    assert.throws(() => heap.blockOf(address), InvalidAddressError, `${context}: no block`);
  } else {
    assert.deepEqual(heap.blockOf(address), expected, context);
    const rest = expected.address + expected.size - address;
    assert.equal(heap.bytesAt(address).length, rest, `${context}: bytesAt to the block's end`);
  }
}

const hex = (address: number) => `0x${address.toString(16)}`;

for (const subject of subjects) {
  const { name } = subject;
  const sizes = [0, 1, 24, 100, 1000, 5000].filter((size) => size <= subject.maxSize);

  Deno.test(`${name}: blockOf finds a block from its first, middle and last byte`, () => {
    using heap = subject.create();
    const blocks = sizes.map((size) => heap.malloc(size));
    for (const address of blocks) {
      const size = heap.usableSize(address);
      for (const offset of new Set([0, 1, size >> 1, size - 1].filter((o) => o >= 0 && o < size))) {
        assert.deepEqual(heap.blockOf(address + offset), { address, size }, `+${offset}`);
        assert.equal(heap.bytesAt(address + offset).length, size - offset);
      }
    }
    heap.validate();
  });

  Deno.test(`${name}: nothing one byte past a block or before it`, () => {
    using heap = subject.create();
    const address = heap.malloc(24);
    const size = heap.usableSize(address);
    assert.throws(() => heap.blockOf(address + size), InvalidAddressError, "one past the end");
    assert.throws(() => heap.blockOf(address - 1), InvalidAddressError, "one before the start");
    assert.throws(() => heap.bytesAt(address + size), InvalidAddressError);
    assert.equal(heap.bytesAt(address + size - 1, 1).length, 1);
    assert.throws(() => heap.bytesAt(address + size - 1, 2), RangeError, "past the end");
  });

  Deno.test(`${name}: a freed block is no block`, () => {
    using heap = subject.create();
    const freed = heap.malloc(24);
    const kept = heap.malloc(24);
    heap.free(freed);
    for (const address of [freed, freed + 8, freed + 23]) {
      assert.throws(() => heap.blockOf(address), InvalidAddressError, hex(address));
      assert.throws(() => heap.bytesAt(address), InvalidAddressError);
      assert.throws(() => heap.view(address, Uint8Array), InvalidAddressError);
      assert.throws(() => heap.dataView(address), InvalidAddressError);
    }
    assert.equal(heap.blockOf(kept + 8).address, kept);
  });

  Deno.test(`${name}: foreign addresses and bad arguments`, () => {
    using heap = subject.create();
    using other = subject.create();
    const mine = heap.malloc(24);
    const foreign = other.malloc(24);
    for (const address of [foreign, foreign + 8, 0, 16, 0x1000, 12345, -16, 2 ** 47, 2 ** 53]) {
      assert.throws(() => heap.blockOf(address), InvalidAddressError, hex(address));
      assert.throws(() => heap.bytesAt(address, 1), InvalidAddressError, hex(address));
    }
    for (const address of [NaN, Infinity, -Infinity]) {
      assert.throws(() => heap.blockOf(address), InvalidAddressError, String(address));
    }
    for (const bad of ["1", null, undefined, 1n, {}, [mine]]) {
      const address = bad as unknown as number;
      assert.throws(() => heap.blockOf(address), TypeError, String(bad));
      assert.throws(() => heap.bytesAt(address), TypeError, String(bad));
      assert.throws(() => heap.view(address, Int32Array), TypeError, String(bad));
      assert.throws(() => heap.dataView(address), TypeError, String(bad));
    }
    assert.throws(() => heap.blockOf(mine + 0.5), /not an integer/);
    assert.equal(heap.blockOf(mine).address, mine, "the heap is as it was");
  });

  Deno.test(`${name}: views are aligned and bounded by the block`, () => {
    using heap = subject.create();
    const address = heap.malloc(Math.min(24, subject.maxSize));
    heap.malloc(8); // a neighbour, so that the block's end is not the heap's
    const size = heap.usableSize(address);
    const ints = heap.view(address, Int32Array);
    assert.equal(ints.length, Math.floor(size / 4));
    assert.equal(ints.byteLength, 4 * ints.length, "the block, not the memory behind it");
    ints[1] = -7;
    assert.equal(heap.dataView(address).getInt32(4, true), -7);
    assert.equal(heap.view(address + 4, Int32Array, 1)[0], -7);
    assert.equal(heap.bytes(address)[4], 0xf9, "the same memory");
    heap.bytesAt(address + 8, 8).set([1, 0, 0, 0, 0, 0, 0, 0]);
    assert.equal(heap.view(address + 8, BigUint64Array, 1)[0], 1n);
    assert.equal(heap.view(address + 8, BigUint64Array).length, Math.floor((size - 8) / 8));
    assert.equal(heap.dataView(address + 8).byteLength, size - 8);
    assert.throws(() => heap.view(address + 2, Int32Array), /not aligned to 4 bytes/);
    assert.throws(() => heap.view(address + 4, Float64Array), /not aligned to 8 bytes/);
    assert.throws(() => heap.view(address, Float64Array, size / 8 + 1), RangeError, "too long");
    assert.throws(() => heap.view(address, Int32Array, -1), RangeError);
    assert.throws(() => heap.view(address, Object as never), TypeError);
    assert.throws(() => heap.dataView(address, size + 1), RangeError);
    assert.throws(() => heap.dataView(address + 8, size - 7), RangeError);
    assert.throws(() => heap.bytesAt(address, size + 1), RangeError);
    for (const length of [-1, 1.5, NaN]) {
      assert.throws(() => heap.bytesAt(address, length), RangeError, String(length));
    }
    assert.equal(heap.bytesAt(address, 0).length, 0);
  });

  Deno.test(`${name}: every call throws HeapClosedError after close`, () => {
    const heap = subject.create();
    const address = heap.malloc(24);
    heap.close();
    for (const what of [address, address + 8, "1" as unknown as number]) {
      assert.throws(() => heap.blockOf(what), HeapClosedError);
      assert.throws(() => heap.bytesAt(what), HeapClosedError);
      assert.throws(() => heap.view(what, Uint8Array), HeapClosedError);
      assert.throws(() => heap.dataView(what), HeapClosedError);
    }
  });

  Deno.test(`${name}: a block that realloc moved is found at its new place only`, () => {
    using heap = subject.create();
    const old = heap.malloc(24);
    heap.malloc(24); // after it: it cannot grow in place
    heap.bytes(old, 24).set(Array.from({ length: 24 }, (_, i) => i + 1));
    const moved = heap.realloc(old, subject.moveTo);
    if (subject.mustMove) assert.notEqual(moved, old, "realloc moved it");
    const size = heap.usableSize(moved);
    assert.deepEqual(heap.blockOf(moved + size - 1), { address: moved, size });
    assert.deepEqual([...heap.bytesAt(moved + 4, 20)], Array.from({ length: 20 }, (_, i) => i + 5));
    if (moved !== old) {
      assert.throws(() => heap.blockOf(old), InvalidAddressError, "the old place");
      assert.throws(() => heap.blockOf(old + 8), InvalidAddressError, "inside the old place");
    }
    heap.validate();
  });

  Deno.test(`${name}: large blocks, deep inside, as blocks come and go`, () => {
    using heap = subject.create();
    const model = new Map<number, number>();
    const take = (size: number) => {
      const address = heap.malloc(size);
      model.set(address, heap.usableSize(address));
      return address;
    };
    const probe = (address: number) => {
      const size = model.get(address)!;
      for (
        const offset of [0, 1, PAGE - 1, PAGE, 17 * PAGE + 8, size >> 1, size - PAGE, size - 1]
      ) {
        if (offset >= 0 && offset < size) {
          assert.deepEqual(heap.blockOf(address + offset), { address, size }, `+${offset}`);
        }
      }
      expectAt(heap, model, address + size, "one past the end");
      expectAt(heap, model, address - 1, "one before the start");
    };
    const blocks = subject.large.map((size) => take(size));
    take(24);
    blocks.forEach(probe);
    // Blocks come and go between lookups: what is found follows them.
    const [first] = blocks;
    heap.free(first!);
    model.delete(first!);
    assert.throws(() => heap.blockOf(first! + (subject.large[0]! >> 1)), InvalidAddressError);
    const again = take(subject.large.at(-1)!);
    probe(again);
    blocks.slice(1).forEach(probe);
    heap.validate();
  });

  Deno.test(`${name}: blockOf agrees with a model of the live blocks under random use`, () => {
    const seeds = [1, 2, crypto.getRandomValues(new Uint32Array(1))[0]!];
    for (const seed of seeds) {
      console.log(`${name}: seed ${seed}`);
      using heap = subject.create();
      const random = mulberry32(seed);
      const model = new Map<number, number>();
      const live: number[] = [];
      const size = () => {
        const kind = random();
        const wanted = kind < 0.7
          ? Math.floor(random() * 257)
          : kind < 0.95
          ? Math.floor(random() * 8 * KiB)
          : 64 * KiB + Math.floor(random() * 256 * KiB);
        return Math.min(wanted, subject.maxSize);
      };
      const add = (address: number) => {
        model.set(address, heap.usableSize(address));
        live.push(address);
      };
      for (let step = 1; step <= 1200; step++) {
        const action = random();
        if (live.length > 0 && action < 0.35) {
          const address = live.splice(Math.floor(random() * live.length), 1)[0]!;
          model.delete(address);
          heap.free(address);
        } else if (live.length > 0 && action < 0.45) {
          const address = live.splice(Math.floor(random() * live.length), 1)[0]!;
          model.delete(address);
          add(heap.realloc(address, Math.max(1, size())));
        } else {
          add(heap.malloc(size()));
        }
        if (step % 40 !== 0) continue;
        const context = `seed ${seed}, step ${step}`;
        heap.validate();
        for (const address of live) {
          const usable = model.get(address)!;
          const inside = address + Math.floor(random() * Math.max(usable, 1));
          expectAt(heap, model, inside, `${context}, inside ${hex(address)}`);
        }
        for (let i = 0; i < 60 && live.length > 0; i++) {
          // Near a live block: its gaps, headers and neighbours too.
          const near = live[Math.floor(random() * live.length)]!;
          const span = model.get(near)! + 128;
          const address = near - 64 + Math.floor(random() * span);
          expectAt(heap, model, address, `${context}, near ${hex(near)}`);
        }
      }
    }
  });
}

Deno.test("BumpAllocator: a 0-byte block is found at its start, the next header is not", () => {
  using arena = new BumpAllocator({ size: 1 << 20 });
  const empty = arena.malloc(0);
  const next = arena.malloc(8);
  assert.deepEqual(arena.blockOf(empty), { address: empty, size: 0 });
  assert.equal(arena.bytesAt(empty).length, 0);
  assert.equal(next - empty, 16, "the next header starts where the empty block does");
  assert.throws(() => arena.blockOf(empty + 1), /in a block's header/);
  assert.throws(() => arena.bytesAt(empty, 1), RangeError);
});

Deno.test("BumpAllocator: a shrunk block's tail and a reset are no block", () => {
  using arena = new BumpAllocator({ size: 1 << 20 });
  const block = arena.malloc(200);
  arena.malloc(8); // so that the shrink leaves a tail record
  assert.equal(arena.realloc(block, 40), block);
  assert.deepEqual(arena.blockOf(block + 47), { address: block, size: 48 });
  assert.throws(() => arena.blockOf(block + 48), /in a block's header/);
  assert.throws(() => arena.blockOf(block + 100), /tail that a block shrank off/);
  arena.reset();
  assert.throws(() => arena.blockOf(block + 8), /beyond the bump pointer/);
  const fresh = arena.malloc(300); // over the old records: their headers are stale now
  assert.deepEqual(arena.blockOf(fresh + 250), { address: fresh, size: 304 });
});

Deno.test("BumpAllocator: past an overwritten header, blockOf says so instead of guessing", () => {
  using arena = new BumpAllocator({ size: 1 << 20 });
  const a = arena.malloc(16);
  const b = arena.malloc(16);
  // An overflow of a by 16 bytes, as C code might, rewrites b's state and check words only.
  new Uint8Array(memoryView(a + 24, 8)).fill(0xff);
  assert.deepEqual(arena.blockOf(a + 4), { address: a, size: 16 }, "below it: as before");
  assert.throws(() => arena.blockOf(b + 4), /headers below it are overwritten/);
});

Deno.test("FirstFitAllocator: stale headers inside a payload are not taken for blocks", () => {
  // A freed block keeps its header and footer; merged into a free neighbour and handed out
  // again as part of a larger block, they sit inside that block's payload, intact.
  using heap = new FirstFitAllocator({ chunkSize: 64 * KiB });
  const a = heap.malloc(100);
  const b = heap.malloc(100);
  heap.malloc(100); // keeps the merged hole from joining the chunk's free rest
  heap.free(a);
  heap.free(b); // merges with a: b's header and footer stay in the hole
  const big = heap.malloc(200); // first fit: the hole at a
  assert.equal(big, a);
  const size = heap.usableSize(big);
  for (const address of [b, b + 8, b + 50, big + size - 1]) {
    assert.deepEqual(heap.blockOf(address), { address: big, size }, hex(address));
  }
  assert.throws(() => heap.blockOf(big - 1), /in a block's header/);
  assert.throws(() => heap.blockOf(big + size), /in a block's footer/);
  // Found by the walk down from the chunk's end: the footer of the last block before its free rest.
  const last = heap.malloc(100);
  const end = last + heap.usableSize(last);
  assert.throws(() => heap.blockOf(end), /in a block's footer/);
  assert.throws(() => heap.blockOf(end + 7), /in a block's footer/);
  assert.throws(() => heap.blockOf(end + 8), /in a block's header/);
  assert.throws(() => heap.blockOf(end + 16), /lies in a free block/);
});

Deno.test("CellAllocator: the tail of a chunk past its last cell is no block", () => {
  using cells = new CellAllocator({ cellSize: 48, chunkSize: 4096 }); // 85 cells, 16 bytes left
  const first = cells.malloc(1);
  for (let i = 1; i < 85; i++) cells.malloc(1);
  assert.deepEqual(cells.blockOf(first + 84 * 48 + 47), { address: first + 84 * 48, size: 48 });
  assert.throws(() => cells.blockOf(first + 85 * 48), /past the last cell/);
});

Deno.test("SegregatedAllocator: the unused tail of a span is no block", () => {
  using heap = new SegregatedAllocator();
  const first = heap.malloc(320); // 12 blocks of 320 in a 4 KiB page, 256 bytes left
  for (let i = 1; i < 12; i++) heap.malloc(320);
  assert.deepEqual(heap.blockOf(first + 11 * 320 + 319), { address: first + 11 * 320, size: 320 });
  assert.throws(() => heap.blockOf(first + 12 * 320), /unused tail of a span/);
});

Deno.test("check() on every allocator of the family: the invariants, after work and once closed", () => {
  const make = [
    () => new MmapAllocator(),
    () => new BumpAllocator(),
    () => new CellAllocator(),
    () => new FirstFitAllocator(),
    () => new SegregatedAllocator(),
    () => new SharedPseudoMalloc(),
  ];
  for (const create of make) {
    const allocator = create();
    const address = allocator.malloc(16);
    assert.equal(allocator.check(), undefined);
    allocator.free(address);
    allocator.check();
    allocator.close();
    assert.throws(() => allocator.check(), HeapClosedError, allocator.constructor.name);
  }
});

Deno.test("FirstFitAllocator.blockOf: a write past a block into its footer is reported, not followed", () => {
  using heap = new FirstFitAllocator({ chunkSize: 1 << 16 });
  heap.malloc(16);
  heap.malloc(16);
  const x = heap.malloc(2000);
  const v = heap.malloc(100);
  // x's payload holds what looks like a live block's header (200 granules, the used tag)...
  const words = new Int32Array(heap.bytes(x).buffer, heap.bytes(x).byteOffset + 792, 2);
  words[0] = 200;
  words[1] = 0x5ea1_ed00;
  // ...and C writes one byte past v's usable end, into its footer.
  new Uint8Array(memoryView(v + heap.usableSize(v), 1))[0] = 84;
  assert.throws(() => heap.blockOf(x + 820), /the heap is corrupt around it/);
  assert.throws(() => heap.validate());
});
