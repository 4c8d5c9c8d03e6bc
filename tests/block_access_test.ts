// Reaching native memory through PseudoMalloc without hand-made views (issue 12): interior
// addresses (`blockOf`, `bytesAt`), typed views (`view`, `dataView`), C strings (`cstring`,
// `readCString`) and scoped blocks (`scoped`), with every bad input, and libc reading what JS wrote.

import assert from "node:assert/strict";
import { HeapClosedError, InvalidAddressError, PseudoMalloc } from "../mod.ts";

const KiB = 1024;
const PAGE = 4096;

Deno.test("blockOf finds the live block of any byte, small or large", () => {
  using heap = new PseudoMalloc();
  const small = heap.malloc(100); // a 128-byte block
  const large = heap.malloc(20 * KiB); // 5 pages
  for (const offset of [0, 1, 99, 127]) {
    assert.deepEqual(heap.blockOf(small + offset), { address: small, size: 128 });
  }
  for (const offset of [0, PAGE, 20 * KiB - 1]) {
    assert.deepEqual(heap.blockOf(large + offset), { address: large, size: 20 * KiB });
  }
  // A freed block, past a block's end, an address of no block: InvalidAddressError.
  const freed = heap.malloc(32);
  heap.free(freed);
  for (const address of [freed, freed + 8, large + 20 * KiB + 100, 0x1000, 12345]) {
    assert.throws(() => heap.blockOf(address), InvalidAddressError, `0x${address.toString(16)}`);
  }
  assert.throws(() => heap.blockOf("1" as unknown as number), TypeError);
  assert.throws(() => heap.blockOf(NaN), InvalidAddressError);
});

Deno.test("blockOf agrees with every live block's start under random use", () => {
  using heap = new PseudoMalloc();
  let seed = 12;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const live: number[] = [];
  for (let step = 0; step < 3000; step++) {
    if (live.length > 0 && next() < 0.45) {
      heap.free(live.splice(Math.floor(next() * live.length), 1)[0]!);
    } else {
      live.push(heap.malloc(1 + Math.floor(3000 * next() ** 3)));
    }
    if (step % 50 === 0) {
      for (const address of live) {
        const size = heap.usableSize(address);
        const inside = address + Math.floor(next() * size);
        assert.deepEqual(heap.blockOf(inside), { address, size }, `seed 12, step ${step}`);
      }
    }
  }
});

Deno.test("bytesAt gives bytes from inside a block, never past its end", () => {
  using heap = new PseudoMalloc();
  const address = heap.malloc(16);
  heap.bytes(address).set(Array.from({ length: 16 }, (_, i) => i));
  assert.deepEqual([...heap.bytesAt(address + 12)], [12, 13, 14, 15]);
  assert.deepEqual([...heap.bytesAt(address + 3, 2)], [3, 4]);
  assert.equal(heap.bytesAt(address + 16 - 1, 1).length, 1);
  for (const length of [5, -1, 1.5]) {
    assert.throws(() => heap.bytesAt(address + 12, length), RangeError, `${length}`);
  }
  assert.throws(() => heap.bytesAt(address + 16, 1), InvalidAddressError, "the next block's start");
});

Deno.test("view: a typed array over a block, aligned, bounded, never the whole arena", () => {
  using heap = new PseudoMalloc();
  const address = heap.malloc(128);
  const ints = heap.view(address, Int32Array);
  assert.equal(ints.length, 32, "as many as the 128-byte block holds");
  assert.equal(ints.byteLength, 128, "the block, not the arena behind it");
  ints[1] = -7;
  assert.equal(heap.dataView(address).getInt32(4, true), -7);
  assert.equal(heap.view(address + 4, Int32Array, 1)[0], -7);
  assert.equal(heap.view(address + 8, BigUint64Array).length, 15);
  assert.equal(heap.view(address, Float64Array, 16).length, 16);
  assert.throws(() => heap.view(address, Float64Array, 17), RangeError, "past the block's end");
  assert.throws(() => heap.view(address + 2, Int32Array), /not aligned to 4 bytes/);
  assert.throws(() => heap.view(address, Int32Array, -1), RangeError);
  assert.throws(() => heap.view(address, Object as never), TypeError);
  assert.throws(() => heap.dataView(address, 129), RangeError);
  heap.free(address);
  assert.throws(() => heap.view(address, Int32Array), InvalidAddressError, "freed");
  const large = heap.malloc(3 * PAGE);
  assert.equal(heap.view(large, Float64Array).length, 3 * PAGE / 8);
});

Deno.test("cstring and readCString: UTF-8 with a NUL, read back, never past the block", () => {
  using heap = new PseudoMalloc();
  const libc = Deno.dlopen(Deno.build.os === "darwin" ? "libSystem.B.dylib" : "libc.so.6", {
    strlen: { parameters: ["pointer"], result: "usize" },
  });
  try {
    const text = "héllo, wörld €";
    const address = heap.cstring(text);
    assert.equal(
      libc.symbols.strlen(heap.pointer(address)),
      BigInt(new TextEncoder().encode(text).length),
    );
    assert.equal(heap.readCString(address), text);
    assert.equal(heap.readCString(address + 7), text.slice(6), "from inside the block");
    assert.equal(heap.readCString(address, 5), "héll", "at most 5 bytes");
    assert.equal(heap.readCString(address, 0), "");
    heap.free(address);
    assert.equal(heap.readCString(heap.cstring("")), "");
  } finally {
    libc.close();
  }
  assert.throws(() => heap.cstring("a\0b"), TypeError);
  assert.throws(() => heap.cstring(42 as unknown as string), TypeError);
  const full = heap.malloc(16);
  heap.bytes(full).fill(0x41); // no NUL in the whole block
  assert.throws(() => heap.readCString(full), /no NUL in the 16 bytes/);
  assert.equal(heap.readCString(full, 16), "A".repeat(16));
  assert.throws(() => heap.readCString(full, -1), RangeError);
});

Deno.test("scoped: a block freed at the end of its using scope, once", () => {
  using heap = new PseudoMalloc();
  let address = 0;
  {
    using block = heap.scoped(40);
    address = block.address;
    assert.equal(block.size, 40);
    assert.equal(block.bytes().length, 40);
    assert.ok(block.pointer !== null);
    block.bytes().fill(9);
    assert.equal(heap.stats().liveAllocations, 1);
  }
  assert.equal(heap.stats().liveAllocations, 0);
  assert.throws(() => heap.usableSize(address), InvalidAddressError);
  const block = heap.scoped(8);
  block[Symbol.dispose]();
  block[Symbol.dispose](); // the second does nothing
  assert.equal(heap.stats().liveAllocations, 0);
  const late = heap.scoped(8);
  heap.close();
  late[Symbol.dispose](); // after close: nothing to free, no throw
  assert.throws(() => heap.scoped(8), HeapClosedError);
  assert.throws(() => heap.blockOf(address), HeapClosedError);
});

Deno.test("realloc keeps every usable byte of the old block, not only the requested ones", () => {
  // usableSize (malloc_usable_size in C) promises the whole block; SQLite writes up to it.
  using heap = new PseudoMalloc();
  for (const [from, to] of [[100, 600], [100, 5000], [5000, 300_000], [3000, 700]]) {
    const address = heap.malloc(from);
    const usable = heap.usableSize(address);
    heap.bytes(address).fill(0x5c);
    const moved = heap.realloc(address, to);
    const kept = Math.min(usable, heap.usableSize(moved));
    assert.ok(heap.bytes(moved, kept).every((byte) => byte === 0x5c), `${from} -> ${to}`);
    heap.free(moved);
  }
});

Deno.test("view of something that is not a typed-array type is a TypeError, null included", () => {
  using heap = new PseudoMalloc();
  const address = heap.malloc(16);
  for (const bad of [null, undefined, 4, Object]) {
    assert.throws(() => heap.view(address, bad as never), /not a typed array type/, String(bad));
  }
});
