// Seeded randomized differential test: PseudoMalloc against a simple model of live blocks.
import assert from "node:assert/strict";
import { InvalidFreeError, PseudoMalloc, type PseudoMallocOptions } from "../mod.ts";
import { mulberry32 } from "./_random.ts";

interface Live {
  size: number; // requested bytes
  usable: number; // block bytes: the extent that must not overlap another block
  fill: number; // the byte value written over the first `size` bytes
}

/** The model: live blocks by address, their sorted addresses, and the expected counters. */
class Model {
  live = new Map<number, Live>();
  starts: number[] = [];
  liveBytes = 0;
  peakLiveBytes = 0;
  small = 0;
  totalAllocations = 0;
  totalFrees = 0;

  constructor(readonly threshold: number) {}

  #index(address: number): number {
    let lo = 0;
    let hi = this.starts.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.starts[mid]! < address) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  add(address: number, block: Live): void {
    assert.ok(!this.live.has(address), `address ${address.toString(16)} handed out twice`);
    const at = this.#index(address);
    const before = this.starts[at - 1];
    const after = this.starts[at];
    if (before !== undefined) {
      assert.ok(before + this.live.get(before)!.usable <= address, "overlaps the block before");
    }
    if (after !== undefined) assert.ok(address + block.usable <= after, "overlaps the block after");
    this.starts.splice(at, 0, address);
    this.live.set(address, block);
    this.liveBytes += block.size;
    this.peakLiveBytes = Math.max(this.peakLiveBytes, this.liveBytes);
    if (block.size < this.threshold) this.small++;
  }

  remove(address: number): Live {
    const block = this.live.get(address)!;
    this.starts.splice(this.#index(address), 1);
    this.live.delete(address);
    this.liveBytes -= block.size;
    if (block.size < this.threshold) this.small--;
    return block;
  }
}

function verify(heap: PseudoMalloc, address: number, length: number, fill: number): void {
  const view = heap.bytes(address, length);
  for (let i = 0; i < length; i++) {
    if (view[i] !== fill) assert.fail(`byte ${i} of ${address.toString(16)} is ${view[i]}`);
  }
}

function run(
  seed: number,
  operations: number,
  options: PseudoMallocOptions,
  every: number,
  maxLive: number,
) {
  const debug = options.debug !== undefined && options.debug !== false;
  // Every block its own mapping: none is "small" (served by an arena).
  const guardsAll = typeof options.debug === "object" && options.debug.guardPages === "all";
  const random = mulberry32(seed);
  using heap = new PseudoMalloc(options);
  // Debug mode: a block is large when its inner request, 32 bytes of redzones with it, is.
  const model = new Model(heap.mmapThreshold - (debug ? 32 : 0));
  const recentlyFreed: number[] = [];
  const pick = (): number => model.starts[Math.floor(random() * model.starts.length)]!;
  const size = (): number =>
    random() < 0.85
      ? Math.floor(random() ** 2 * heap.mmapThreshold)
      : heap.mmapThreshold + Math.floor(random() ** 3 * 300_000);
  const place = (address: number, requested: number): void => {
    const fill = Math.floor(random() * 256);
    heap.bytes(address, requested).fill(fill);
    model.add(address, { size: requested, usable: heap.usableSize(address), fill });
  };

  for (let step = 0; step < operations; step++) {
    const r = random();
    const freeBias = model.live.size > maxLive ? 0.3 : 0;
    if (model.live.size === 0 || r < 0.35 - freeBias) {
      // malloc
      const n = size();
      const address = heap.malloc(n);
      assert.equal(address % 16, 0);
      if (n >= heap.mmapThreshold && !debug) assert.equal(address % heap.pageSize, 0);
      place(address, n);
      model.totalAllocations++;
    } else if (r < 0.45 - freeBias) {
      // calloc
      const count = 1 + Math.floor(random() * 8);
      const each = Math.floor(size() / count);
      const address = heap.calloc(count, each);
      verify(heap, address, count * each, 0);
      place(address, count * each);
      model.totalAllocations++;
    } else if (r < 0.6 - freeBias) {
      // realloc: the prefix survives
      const address = pick();
      const n = size();
      const old = model.remove(address);
      const moved = heap.realloc(address, n);
      if (n === 0) {
        assert.equal(moved, 0);
        model.totalFrees++;
        recentlyFreed.push(address);
        continue;
      }
      verify(heap, moved, Math.min(old.size, n), old.fill);
      if (moved !== address) {
        model.totalAllocations++;
        model.totalFrees++;
        recentlyFreed.push(address);
      }
      place(moved, n);
    } else if (r < 0.99) {
      // free, after checking the contents
      const address = pick();
      const block = model.remove(address);
      verify(heap, address, block.size, block.fill);
      heap.free(address);
      model.totalFrees++;
      recentlyFreed.push(address);
    } else {
      // misuse: a freed or interior address must throw and change nothing
      const before = heap.stats();
      const freed = recentlyFreed.filter((a) => !model.live.has(a));
      const target = freed.length > 0 && random() < 0.5
        ? freed[Math.floor(random() * freed.length)]!
        : pick() + 16;
      const owner = model.live.get(target - 16);
      if (owner !== undefined && owner.usable <= 16) continue; // +16 is the next block
      if (model.live.has(target)) continue;
      assert.throws(() => heap.free(target), InvalidFreeError);
      assert.deepEqual(heap.stats(), before);
    }
    if (recentlyFreed.length > 64) recentlyFreed.splice(0, 32);
    if (step % every === 0) {
      if (debug) heap.check(); // no false positive: every redzone and quarantined block intact
      heap.validate();
      const stats = heap.stats();
      assert.equal(stats.liveAllocations, model.live.size);
      assert.equal(stats.liveBytes, model.liveBytes);
      assert.equal(stats.peakLiveBytes, model.peakLiveBytes);
      if (!guardsAll) {
        assert.equal(stats.smallAllocations, model.small);
        assert.equal(stats.largeAllocations, model.live.size - model.small);
      }
      assert.equal(stats.totalAllocations, model.totalAllocations);
      assert.equal(stats.totalFrees, model.totalFrees);
    }
  }
  // Every block kept its contents; freeing them all leaves each arena one free block.
  for (const [address, block] of model.live) {
    verify(heap, address, block.size, block.fill);
    heap.free(address);
  }
  heap.validate(); // includes: no free block has a free buddy
  if (debug) {
    heap.check();
    heap.trim(); // empties the quarantine, checking each block
  }
  const stats = heap.stats();
  assert.equal(stats.liveAllocations, 0);
  assert.equal(stats.allocatedBytes, 0);
  const arenaSize = options.arenaSize ?? 1 << 20;
  assert.equal(stats.mappedBytes, stats.arenas * arenaSize + stats.largeCachedBytes);
  const arenaLines = heap.heapMap().split("\n").filter((line) => line.startsWith("arena"));
  assert.equal(arenaLines.length, stats.arenas);
  for (const line of arenaLines) assert.match(line, /: (\d+) of \1 bytes free$/);
  // Once the block cache is merged back, every arena is one free block, so trim unmaps them all.
  assert.equal(heap.trim(), stats.mappedBytes);
  assert.equal(heap.stats().mappedBytes, 0);
  heap.validate();
  return stats;
}

Deno.test("PseudoMalloc matches a model over 100,000 random operations (validated each step)", () => {
  const stats = run(0x5eed, 100_000, { arenaSize: 1 << 14 }, 1, 300);
  assert.ok(stats.arenas > 1, "the run should need several arenas");
  assert.ok(stats.totalAllocations > 40_000);
});

Deno.test("PseudoMalloc matches a model with default 1 MiB arenas", () => {
  run(42, 30_000, {}, 250, 1500);
});

Deno.test("PseudoMalloc matches a model with arenas mapped anywhere (lowAddresses false)", () => {
  run(7, 30_000, { arenaSize: 1 << 14, lowAddresses: false }, 1, 300);
});

Deno.test("PseudoMalloc in debug mode matches the model, checked as it goes (no false positive)", () => {
  const stats = run(0xdeb6, 20_000, { arenaSize: 1 << 16, debug: true }, 50, 300);
  assert.ok(stats.totalAllocations > 8_000);
});

Deno.test("PseudoMalloc in debug mode matches the model with a small quarantine and every block guarded", () => {
  run(99, 3_000, { debug: { quarantine: 64 << 10, guardPages: "all" } }, 10, 200);
});
