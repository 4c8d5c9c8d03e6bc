// LowAddressWindow over a fake OS (no FFI): where it asks to map, what it does on a miss, and how
// freed ranges of any length come back. The last test runs a real heap in a child process.
import assert from "node:assert/strict";
import {
  LOW_LIMIT,
  LOW_START,
  LowAddressWindow,
  type LowMemoryOs,
  MAX_MISSES,
} from "../src/heap/_low_memory.ts";
import { OsError, OutOfMemoryError } from "../src/errors.ts";
import { mulberry32 } from "./_random.ts";

const MiB = 1 << 20;
const GiB = 1 << 30;

/** A fake address space: `taken` ranges are someone else's; a hint there lands elsewhere. */
class FakeOs implements LowMemoryOs {
  mapped = new Map<number, number>();
  calls: string[] = [];
  /** The next unmap throws OsError (ENOMEM) without unmapping. */
  failUnmap = false;
  /** The next mapAt throws OutOfMemoryError without mapping. */
  failMapAt = false;
  constructor(public taken: [number, number][] = [], public honours = true) {}
  mapAt(address: number, length: number): number {
    this.calls.push(`map ${address.toString(16)}`);
    assert.ok(address >= LOW_START && address % length === 0, `asked for ${address}`);
    if (this.failMapAt) {
      this.failMapAt = false;
      throw new OutOfMemoryError(`Cannot map ${length} bytes: injected fault (errno 12)`, 12);
    }
    const busy = [...this.taken, ...this.mapped].some(([start, size]) =>
      address < start + size && start < address + length
    );
    if (busy || !this.honours) return 0;
    this.mapped.set(address, length);
    return address;
  }
  unmap(address: number, length: number): void {
    assert.equal(this.mapped.get(address), length, "unmaps exactly what was mapped");
    if (this.failUnmap) {
      this.failUnmap = false;
      this.calls.push(`unmap ${address.toString(16)} failed`);
      throw new OsError("munmap", 12, `Cannot unmap ${length} bytes: injected fault (errno 12)`);
    }
    this.mapped.delete(address);
    this.calls.push(`unmap ${address.toString(16)}`);
  }
}

/** What the window knows, to compare before and after a failed call. */
function snapshot(window: LowAddressWindow) {
  return { cursor: window.cursor, free: window.freeRanges(), open: window.open };
}

Deno.test("LowAddressWindow.map hands out consecutive aligned ranges from LOW_START", () => {
  const os = new FakeOs();
  const window = new LowAddressWindow();
  assert.equal(window.map(os, MiB), LOW_START);
  assert.equal(window.map(os, MiB), LOW_START + MiB);
  // A 4 MiB mapping is aligned to 4 MiB: the cursor at LOW_START + 2 MiB rounds up.
  assert.equal(window.map(os, 4 * MiB), LOW_START + 4 * MiB);
  assert.deepEqual(window.freeRanges(), [{ address: LOW_START + 2 * MiB, length: 2 * MiB }]);
  assert.equal(window.cursor, LOW_START + 8 * MiB);
});

Deno.test("LowAddressWindow.map skips ranges someone else holds, twice as far after each miss", () => {
  const os = new FakeOs([[LOW_START + MiB, 2 * MiB]]);
  const window = new LowAddressWindow();
  assert.equal(window.map(os, MiB), LOW_START);
  assert.equal(window.map(os, MiB), LOW_START + 4 * MiB, "misses at +1 and +2 (skip 1, then 2)");
  assert.deepEqual(os.calls, [
    `map ${LOW_START.toString(16)}`,
    `map ${(LOW_START + MiB).toString(16)}`,
    `map ${(LOW_START + 2 * MiB).toString(16)}`,
    `map ${(LOW_START + 4 * MiB).toString(16)}`,
  ]);
  assert.ok(window.open, "misses followed by a hit do not close the window");
  assert.equal(
    window.map(os, MiB),
    LOW_START + 5 * MiB,
    "after a hit, slots are consecutive again",
  );
  assert.deepEqual(window.freeRanges(), [], "missed and skipped slots are not free");
});

Deno.test("LowAddressWindow.map crosses a long taken stretch in a few tries", () => {
  // Another worker's window holds 300 arenas from LOW_START.
  const os = new FakeOs([[LOW_START, 300 * MiB]]);
  const window = new LowAddressWindow();
  const address = window.map(os, MiB);
  assert.equal(address, LOW_START + 511 * MiB, "tries at 0, 1, 3, 7, …, 255, then 511");
  assert.equal(os.calls.length, 10);
});

Deno.test("LowAddressWindow gives up after MAX_MISSES misses in a row, until a range comes back", () => {
  const os = new FakeOs([], false); // an OS that never honours a hint
  const window = new LowAddressWindow(LOW_START, 2 ** 46); // room for every skip
  assert.equal(window.map(os, MiB), 0);
  assert.equal(os.calls.length, MAX_MISSES);
  assert.equal(window.open, false);
  assert.equal(window.map(os, MiB), 0);
  assert.equal(os.calls.length, MAX_MISSES, "no more attempts once closed");
});

Deno.test("LowAddressWindow opens again when a mapping is unmapped", () => {
  const os = new FakeOs();
  const window = new LowAddressWindow(LOW_START, 2 ** 46);
  const first = window.map(os, MiB);
  os.honours = false;
  assert.equal(window.map(os, MiB), 0);
  assert.equal(window.open, false);
  os.honours = true;
  const calls = os.calls.length;
  assert.equal(window.map(os, MiB), 0, "closed: no tries although the OS would honour now");
  assert.equal(os.calls.length, calls);
  window.unmap(os, first, MiB);
  assert.equal(window.open, true, "space came back");
  assert.equal(window.map(os, MiB), first);
});

Deno.test("LowAddressWindow closes after MAX_MISSES misses in free ranges, too", () => {
  const os = new FakeOs();
  const window = new LowAddressWindow();
  const blocks = Array.from({ length: MAX_MISSES + 2 }, () => window.map(os, MiB));
  for (const address of blocks.slice(0, -1)) window.unmap(os, address, MiB);
  assert.deepEqual(window.freeRanges(), [{ address: LOW_START, length: (MAX_MISSES + 1) * MiB }]);
  os.honours = false; // someone maps every freed slot meanwhile
  os.calls = [];
  assert.equal(window.map(os, MiB), 0);
  assert.equal(os.calls.length, MAX_MISSES, "one try per slot, then closed");
  assert.equal(window.open, false);
  assert.deepEqual(window.freeRanges(), [{ address: LOW_START + MAX_MISSES * MiB, length: MiB }]);
});

Deno.test("LowAddressWindow costs a handful of tries where the OS ignores hints (e.g. macOS)", () => {
  const os = new FakeOs([], false);
  const window = new LowAddressWindow();
  assert.equal(window.map(os, MiB), 0);
  // Skips of 1, 2, 4, … slots leave the 1,792-slot window after 11 tries.
  assert.equal(os.calls.length, 11);
  assert.equal(window.map(os, MiB), 0);
  assert.equal(os.calls.length, 11, "past the end, no more tries");
  assert.equal(window.map(os, 4 * MiB), 0);
  assert.equal(os.calls.length, 11, "nor at another length");
});

Deno.test("LowAddressWindow.map of 1 GiB arenas asks only for aligned addresses in the window", () => {
  const os = new FakeOs([[0x4000_0000, GiB]]); // the only 1 GiB slot is taken
  const window = new LowAddressWindow();
  assert.equal(window.map(os, GiB), 0);
  assert.deepEqual(os.calls, ["map 40000000"]);
  assert.equal(window.map(os, GiB), 0, "nothing left to try");
  assert.equal(os.calls.length, 1);
});

Deno.test("LowAddressWindow.map returns 0 rather than reach past the limit", () => {
  const os = new FakeOs();
  const window = new LowAddressWindow(LOW_LIMIT - 2 * MiB);
  assert.equal(window.map(os, MiB), LOW_LIMIT - 2 * MiB);
  assert.equal(window.map(os, MiB), LOW_LIMIT - MiB);
  assert.equal(window.map(os, MiB), 0);
  assert.equal(window.map(os, 2 * MiB), 0);
  assert.throws(() => window.map(os, 3 * MiB), RangeError, "a length that is no power of two");
});

Deno.test("LowAddressWindow.unmap gives the slot back for the next mapping that fits", () => {
  const os = new FakeOs();
  const window = new LowAddressWindow();
  const first = window.map(os, MiB);
  const second = window.map(os, MiB);
  window.unmap(os, first, MiB);
  assert.equal(os.mapped.has(first), false);
  assert.equal(window.map(os, 2 * MiB), LOW_START + 2 * MiB, "a longer mapping does not fit");
  assert.equal(window.map(os, MiB), first);
  assert.equal(window.map(os, MiB), LOW_START + 4 * MiB);
  assert.ok(os.mapped.has(second));
});

Deno.test("LowAddressWindow.map moves on when a given-back slot was taken meanwhile", () => {
  const os = new FakeOs();
  const window = new LowAddressWindow();
  const first = window.map(os, MiB);
  window.unmap(os, first, MiB);
  os.taken.push([first, MiB]);
  assert.equal(window.map(os, MiB), LOW_START + MiB);
});

Deno.test("LowAddressWindow serves 1 MiB slots from a freed 1 GiB slot, which merge back", () => {
  const os = new FakeOs();
  const window = new LowAddressWindow(GiB, 2 ** 32); // three 1 GiB slots
  assert.deepEqual([0, 1, 2].map(() => window.map(os, GiB)), [GiB, 2 * GiB, 3 * GiB]);
  window.unmap(os, 2 * GiB, GiB); // the middle one: live mappings on both sides
  assert.deepEqual(window.freeRanges(), [{ address: 2 * GiB, length: GiB }]);
  const small = [0, 1, 2, 3].map(() => window.map(os, MiB));
  assert.deepEqual(small, [0, 1, 2, 3].map((i) => 2 * GiB + i * MiB), "lowest first");
  assert.equal(window.map(os, 4 * MiB), 2 * GiB + 4 * MiB);
  assert.deepEqual(window.freeRanges(), [{ address: 2 * GiB + 8 * MiB, length: GiB - 8 * MiB }]);
  // Given back in a mixed order, they merge into the 1 GiB range again.
  for (const i of [2, 0, 3, 1]) window.unmap(os, small[i]!, MiB);
  assert.equal(window.freeRanges().length, 2, "the 4 MiB one is still live");
  window.unmap(os, 2 * GiB + 4 * MiB, 4 * MiB);
  assert.deepEqual(window.freeRanges(), [{ address: 2 * GiB, length: GiB }]);
  assert.equal(window.map(os, GiB), 2 * GiB, "and serve a 1 GiB mapping");
  assert.deepEqual(window.freeRanges(), []);
});

Deno.test("LowAddressWindow merges adjacent free ranges: a longer mapping fits where short ones were", () => {
  const os = new FakeOs();
  const window = new LowAddressWindow();
  const blocks = Array.from({ length: 5 }, () => window.map(os, MiB));
  window.unmap(os, blocks[1]!, MiB);
  window.unmap(os, blocks[3]!, MiB);
  assert.deepEqual(window.freeRanges(), [
    { address: LOW_START + MiB, length: MiB },
    { address: LOW_START + 3 * MiB, length: MiB },
  ]);
  window.unmap(os, blocks[2]!, MiB);
  assert.deepEqual(window.freeRanges(), [{ address: LOW_START + MiB, length: 3 * MiB }]);
  assert.equal(window.map(os, 2 * MiB), LOW_START + 2 * MiB, "the aligned 2 MiB slot inside");
  assert.deepEqual(window.freeRanges(), [{ address: LOW_START + MiB, length: MiB }]);
  assert.equal(window.cursor, LOW_START + 5 * MiB);
});

Deno.test("LowAddressWindow hands out the alignment gaps the cursor stepped over", () => {
  const os = new FakeOs();
  const window = new LowAddressWindow();
  assert.equal(window.map(os, MiB), LOW_START);
  assert.equal(window.map(os, 8 * MiB), LOW_START + 8 * MiB);
  assert.deepEqual(window.freeRanges(), [{ address: LOW_START + MiB, length: 7 * MiB }]);
  assert.equal(window.map(os, 4 * MiB), LOW_START + 4 * MiB);
  assert.equal(window.map(os, 2 * MiB), LOW_START + 2 * MiB);
  assert.equal(window.map(os, MiB), LOW_START + MiB);
  assert.deepEqual(window.freeRanges(), []);
  assert.equal(window.map(os, MiB), LOW_START + 16 * MiB, "then the cursor again");
});

Deno.test("LowAddressWindow after a 1 GiB mapping maps 1 MiB low, and its unmap pulls the cursor back", () => {
  const os = new FakeOs();
  const window = new LowAddressWindow();
  assert.equal(window.map(os, GiB), 0x4000_0000);
  assert.equal(window.cursor, LOW_LIMIT);
  assert.equal(window.map(os, MiB), LOW_START, "from the gap below it");
  window.unmap(os, 0x4000_0000, GiB);
  assert.equal(window.cursor, LOW_START + MiB, "back to the end of the highest live mapping");
  assert.deepEqual(window.freeRanges(), [], "the free ranges above it are the cursor's again");
  assert.equal(window.map(os, MiB), LOW_START + MiB);
  window.unmap(os, LOW_START + MiB, MiB);
  window.unmap(os, LOW_START, MiB);
  assert.equal(window.cursor, LOW_START, "as fresh");
  assert.equal(window.map(os, GiB), 0x4000_0000, "and a 1 GiB mapping fits again");
});

Deno.test("LowAddressWindow pulls the cursor back over lost slots: they are tried again", () => {
  const os = new FakeOs([[LOW_START + MiB, MiB]]);
  const window = new LowAddressWindow();
  assert.equal(window.map(os, MiB), LOW_START);
  assert.equal(window.map(os, MiB), LOW_START + 2 * MiB, "a miss at +1");
  os.taken = []; // its owner unmapped it
  assert.equal(window.map(os, MiB), LOW_START + 3 * MiB, "lost for now");
  window.unmap(os, LOW_START + 3 * MiB, MiB);
  assert.equal(window.cursor, LOW_START + 3 * MiB);
  assert.equal(window.map(os, MiB), LOW_START + 3 * MiB, "below a live mapping, still lost");
  window.unmap(os, LOW_START + 3 * MiB, MiB);
  window.unmap(os, LOW_START + 2 * MiB, MiB);
  assert.equal(window.cursor, LOW_START + MiB, "a new pass from the highest live mapping");
  assert.equal(window.map(os, MiB), LOW_START + MiB);
});

Deno.test("LowAddressWindow drops a free slot someone else mapped meanwhile: one try only", () => {
  const os = new FakeOs();
  const window = new LowAddressWindow();
  const blocks = Array.from({ length: 3 }, () => window.map(os, MiB));
  window.unmap(os, blocks[1]!, MiB);
  os.taken.push([blocks[1]!, MiB]);
  os.calls = [];
  assert.equal(window.map(os, MiB), LOW_START + 3 * MiB);
  assert.deepEqual(os.calls, [
    `map ${(LOW_START + MiB).toString(16)}`,
    `map ${(LOW_START + 3 * MiB).toString(16)}`,
  ], "the free slot missed, then the cursor hit");
  assert.deepEqual(window.freeRanges(), []);
  assert.equal(window.map(os, MiB), LOW_START + 4 * MiB);
  assert.equal(os.calls.length, 3, "the dropped slot is not tried again");
});

Deno.test("LowAddressWindow.unmap that the OS refuses changes nothing and can be retried", () => {
  const os = new FakeOs();
  const window = new LowAddressWindow();
  const blocks = Array.from({ length: 3 }, () => window.map(os, MiB));
  window.unmap(os, blocks[0]!, MiB);
  for (const address of [blocks[1]!, blocks[2]!]) {
    const before = snapshot(window);
    os.failUnmap = true;
    assert.throws(() => window.unmap(os, address, MiB), (error) => {
      assert.ok(error instanceof OsError);
      assert.equal(error.errno, 12);
      return true;
    });
    assert.deepEqual(snapshot(window), before);
    assert.ok(os.mapped.has(address));
  }
  assert.equal(window.map(os, MiB), blocks[0], "the live ones are not handed out");
  assert.equal(window.map(os, MiB), LOW_START + 3 * MiB);
  window.unmap(os, blocks[1]!, MiB);
  assert.deepEqual(window.freeRanges(), [{ address: blocks[1]!, length: MiB }]);
  assert.throws(() => window.unmap(os, blocks[1]!, MiB), RangeError, "not live any more");
  assert.throws(() => window.unmap(os, blocks[2]!, 2 * MiB), RangeError, "not its length");
  assert.ok(os.mapped.has(blocks[2]!), "a rejected unmap calls nothing");
});

Deno.test("LowAddressWindow.map whose mapAt throws changes nothing", () => {
  const os = new FakeOs();
  const window = new LowAddressWindow();
  const first = window.map(os, MiB);
  window.map(os, MiB);
  window.unmap(os, first, MiB);
  for (const length of [MiB, 4 * MiB]) { // a free slot, then the cursor with an alignment gap
    const before = snapshot(window);
    os.failMapAt = true;
    assert.throws(() => window.map(os, length), OutOfMemoryError);
    assert.deepEqual(snapshot(window), before);
  }
  assert.equal(window.map(os, MiB), first);
  assert.equal(window.map(os, 4 * MiB), LOW_START + 4 * MiB);
});

/** Checks what the window reports against what the test knows to be mapped. */
function checkWindow(window: LowAddressWindow, live: Map<number, number>): void {
  let previousEnd = -1;
  for (const { address, length } of window.freeRanges()) {
    assert.ok(length > 0 && address > previousEnd, "free ranges are sorted and merged");
    assert.ok(address >= window.start && address + length <= window.cursor, "below the cursor");
    for (const [start, size] of live) {
      assert.ok(address + length <= start || start + size <= address, "free is not live");
    }
    previousEnd = address + length;
  }
  assert.ok(window.cursor >= window.start && window.cursor <= window.limit);
}

Deno.test("LowAddressWindow against a model: live mappings in the window, aligned, apart", () => {
  const start = LOW_START;
  const limit = LOW_START + 64 * MiB;
  let fresh = 0;
  for (let seed = 1; seed <= 40; seed++) {
    const random = mulberry32(seed);
    const pick = <T>(items: T[]): T => items[Math.floor(random() * items.length)]!;
    const os = new FakeOs();
    const window = new LowAddressWindow(start, limit);
    const live = new Map<number, number>();
    let step = 0;
    try {
      for (; step < 2000; step++) {
        const action = random();
        if (action < 0.45) {
          const length = 2 ** (16 + Math.floor(random() * 8)); // 64 KiB to 8 MiB
          const inject = random() < 0.03;
          const before = snapshot(window);
          os.failMapAt = inject;
          let address: number;
          try {
            address = window.map(os, length);
          } catch (error) {
            assert.ok(inject && error instanceof OutOfMemoryError);
            assert.deepEqual(snapshot(window), before, "a throwing mapAt changes nothing");
            continue;
          }
          os.failMapAt = false;
          if (address === 0) continue;
          assert.equal(address % length, 0, "aligned to its length");
          assert.ok(address >= start && address + length <= limit, "inside the window");
          for (const [other, size] of [...live, ...os.taken]) {
            assert.ok(address + length <= other || other + size <= address, "overlaps nothing");
          }
          live.set(address, length);
        } else if (action < 0.8 && live.size > 0) {
          const [address, length] = pick([...live]);
          if (random() < 0.1) {
            const before = snapshot(window);
            os.failUnmap = true;
            assert.throws(() => window.unmap(os, address, length), OsError);
            assert.deepEqual(snapshot(window), before, "a refused unmap changes nothing");
          }
          window.unmap(os, address, length);
          live.delete(address);
          assert.ok(window.open, "an unmap opens the window");
        } else if (action < 0.92) {
          // Someone else maps a range nobody holds (mmap never replaces a mapping).
          const length = 4096 * (1 + Math.floor(random() * 512));
          const address = start + 4096 * Math.floor(random() * ((limit - start) / 4096));
          const busy = [...os.mapped, ...os.taken].some(([other, size]) =>
            address < other + size && other < address + length
          );
          if (!busy) os.taken.push([address, length]);
        } else if (os.taken.length > 0) {
          os.taken.splice(Math.floor(random() * os.taken.length), 1);
        }
        checkWindow(window, live);
        assert.deepEqual(new Map([...os.mapped]), live, "the OS holds exactly the live mappings");
      }
      // Everything given back: the window is as fresh. (With nothing live there is no unmap to
      // tell the window that space came back: it stays where its last pass ended.)
      os.taken = [];
      if (live.size === 0) continue;
      for (const [address, length] of live) window.unmap(os, address, length);
      live.clear();
      fresh++;
      assert.equal(window.cursor, start);
      assert.deepEqual(window.freeRanges(), []);
      assert.equal(window.map(os, 32 * MiB), start, "the whole window is usable again");
      assert.equal(window.map(os, 32 * MiB), start + 32 * MiB);
    } catch (error) {
      throw new Error(`seed ${seed}, step ${step}: ${(error as Error).message}`, { cause: error });
    }
  }
  assert.ok(fresh >= 30, `only ${fresh} of 40 runs ended with live mappings to give back`);
});

Deno.test({
  name: "PseudoMalloc after a heap with 1 GiB arenas is closed maps its arenas low again",
  ignore: Deno.build.os !== "linux",
  async fn() {
    // In a child process: a fresh low window, and real mappings (needs --allow-ffi).
    const fixture = new URL("./fixtures/low_memory_reuse.ts", import.meta.url).pathname;
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-ffi", fixture],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(code, 0, new TextDecoder().decode(stderr));
    const { bigArena, arena } = JSON.parse(new TextDecoder().decode(stdout));
    assert.equal(bigArena, 0x4000_0000, "the window's only 1 GiB slot");
    assert.equal(arena, LOW_START, "the window is as fresh");
  },
});

Deno.test("LowAddressWindow.lowestFreeSlot names the slot map would try first, without a call", () => {
  const window = new LowAddressWindow(0x1000_0000, 0x1100_0000);
  const calls: string[] = [];
  const os = {
    mapAt: (
      address: number,
      _length: number,
    ) => (calls.push(`mapAt ${address.toString(16)}`), address),
    unmap: (address: number, _length: number) => void calls.push(`unmap ${address.toString(16)}`),
  };
  const MiB = 1 << 20;
  assert.equal(window.lowestFreeSlot(MiB), Infinity, "no free range: map goes to the cursor");
  const [a, b, c] = [window.map(os, MiB), window.map(os, MiB), window.map(os, MiB)];
  window.unmap(os, b, MiB);
  calls.length = 0;
  assert.equal(window.lowestFreeSlot(MiB), b);
  assert.equal(window.lowestFreeSlot(2 * MiB), Infinity, "the 1 MiB hole holds no 2 MiB slot");
  assert.deepEqual(calls, [], "no call made");
  assert.equal(window.map(os, MiB), b, "map takes that slot");
  window.unmap(os, a, MiB);
  assert.equal(window.lowestFreeSlot(64 << 10), a);
  for (const address of [b, c]) window.unmap(os, address, MiB);
});
