// LowAddressWindow over a fake OS (no FFI): where it asks to map, and what it does on a miss.
import assert from "node:assert/strict";
import {
  LOW_LIMIT,
  LOW_START,
  LowAddressWindow,
  type LowMemoryOs,
  MAX_MISSES,
} from "../src/heap/_low_memory.ts";

const MiB = 1 << 20;

/** A fake address space: `taken` ranges are someone else's; a hint there lands elsewhere. */
class FakeOs implements LowMemoryOs {
  mapped = new Map<number, number>();
  calls: string[] = [];
  constructor(public taken: [number, number][] = [], public honours = true) {}
  mapAt(address: number, length: number): number {
    this.calls.push(`map ${address.toString(16)}`);
    assert.ok(address >= LOW_START && address % length === 0, `asked for ${address}`);
    const busy = [...this.taken, ...this.mapped].some(([start, size]) =>
      address < start + size && start < address + length
    );
    if (busy || !this.honours) return 0;
    this.mapped.set(address, length);
    return address;
  }
  unmap(address: number, length: number): void {
    assert.equal(this.mapped.get(address), length, "unmaps exactly what was mapped");
    this.mapped.delete(address);
    this.calls.push(`unmap ${address.toString(16)}`);
  }
}

Deno.test("LowAddressWindow.map hands out consecutive aligned ranges from LOW_START", () => {
  const window = new LowAddressWindow(new FakeOs());
  assert.equal(window.map(MiB), LOW_START);
  assert.equal(window.map(MiB), LOW_START + MiB);
  // A 4 MiB mapping is aligned to 4 MiB: the cursor at LOW_START + 2 MiB rounds up.
  assert.equal(window.map(4 * MiB), LOW_START + 4 * MiB);
  assert.equal(window.map(MiB), LOW_START + 8 * MiB);
});

Deno.test("LowAddressWindow.map skips ranges someone else holds, twice as far after each miss", () => {
  const os = new FakeOs([[LOW_START + MiB, 2 * MiB]]);
  const window = new LowAddressWindow(os);
  assert.equal(window.map(MiB), LOW_START);
  assert.equal(window.map(MiB), LOW_START + 4 * MiB, "misses at +1 and +2 (skip 1, then 2)");
  assert.deepEqual(os.calls, [
    `map ${LOW_START.toString(16)}`,
    `map ${(LOW_START + MiB).toString(16)}`,
    `map ${(LOW_START + 2 * MiB).toString(16)}`,
    `map ${(LOW_START + 4 * MiB).toString(16)}`,
  ]);
  assert.ok(window.open, "misses followed by a hit do not close the window");
  assert.equal(window.map(MiB), LOW_START + 5 * MiB, "after a hit, slots are consecutive again");
});

Deno.test("LowAddressWindow.map crosses a long taken stretch in a few tries", () => {
  // Another worker's window holds 300 arenas from LOW_START.
  const os = new FakeOs([[LOW_START, 300 * MiB]]);
  const window = new LowAddressWindow(os);
  const address = window.map(MiB);
  assert.equal(address, LOW_START + 511 * MiB, "tries at 0, 1, 3, 7, …, 255, then 511");
  assert.equal(os.calls.length, 10);
});

Deno.test("LowAddressWindow gives up after MAX_MISSES misses in a row, for good", () => {
  const os = new FakeOs([], false); // an OS that never honours a hint
  const window = new LowAddressWindow(os, LOW_START, 2 ** 46); // room for every skip
  assert.equal(window.map(MiB), 0);
  assert.equal(os.calls.length, MAX_MISSES);
  assert.equal(window.open, false);
  assert.equal(window.map(MiB), 0);
  assert.equal(os.calls.length, MAX_MISSES, "no more attempts once closed");
});

Deno.test("LowAddressWindow costs a handful of tries where the OS ignores hints (e.g. macOS)", () => {
  const os = new FakeOs([], false);
  const window = new LowAddressWindow(os);
  assert.equal(window.map(MiB), 0);
  // Skips of 1, 2, 4, … slots leave the 1,792-slot window after 11 tries.
  assert.equal(os.calls.length, 11);
  assert.equal(window.map(MiB), 0);
  assert.equal(os.calls.length, 11, "past the end, no more tries");
});

Deno.test("LowAddressWindow.map of 1 GiB arenas asks only for aligned addresses in the window", () => {
  const os = new FakeOs([[0x4000_0000, 1 << 30]]); // the only 1 GiB slot is taken
  const window = new LowAddressWindow(os);
  assert.equal(window.map(1 << 30), 0);
  assert.deepEqual(os.calls, ["map 40000000"]);
  assert.equal(window.map(1 << 30), 0, "nothing left to try");
  assert.equal(os.calls.length, 1);
});

Deno.test("LowAddressWindow.map returns 0 rather than reach past the limit", () => {
  const window = new LowAddressWindow(new FakeOs(), LOW_LIMIT - 2 * MiB);
  assert.equal(window.map(MiB), LOW_LIMIT - 2 * MiB);
  assert.equal(window.map(MiB), LOW_LIMIT - MiB);
  assert.equal(window.map(MiB), 0);
  assert.equal(window.map(2 * MiB), 0);
});

Deno.test("LowAddressWindow.unmap gives the slot back for the next mapping of that length", () => {
  const os = new FakeOs();
  const window = new LowAddressWindow(os);
  const first = window.map(MiB);
  const second = window.map(MiB);
  window.unmap(first, MiB);
  assert.equal(os.mapped.has(first), false);
  assert.equal(window.map(2 * MiB), LOW_START + 2 * MiB, "a longer mapping does not take the slot");
  assert.equal(window.map(MiB), first);
  assert.equal(window.map(MiB), LOW_START + 4 * MiB);
  assert.ok(os.mapped.has(second));
});

Deno.test("LowAddressWindow.map moves on when a given-back slot was taken meanwhile", () => {
  const os = new FakeOs();
  const window = new LowAddressWindow(os);
  const first = window.map(MiB);
  window.unmap(first, MiB);
  os.taken.push([first, MiB]);
  assert.equal(window.map(MiB), LOW_START + MiB);
});
