// The floor peers of the benchmarks: what the least JavaScript allocators cost, as lower bounds for
// PseudoMalloc (see docs/performance.md). Apart from `_workloads.ts` so that tests can import them
// without the npm peer (which reads the environment).

import type { Peer } from "./_workloads.ts";

/**
 * Where the floor peers pretend their blocks live: below 2^31, as PseudoMalloc maps its arenas, so
 * that addresses are small integers (with addresses above 2^31 in a `Float64Array`, the checked
 * floor measured 15 ns per pair instead of 6: the double conversions, not the checks, dominated).
 */
const FLOOR_BASE = 0x1000_0000;

/**
 * The floor: the least a JavaScript malloc/free pair can do. `malloc` pops an address off a typed-
 * array stack and `free` pushes it back: no size check, no arena, no statistics, no error. No JS
 * allocator can beat it, so its ratio to libc bounds what any of them can reach on workload 1.
 */
export class FloorPeer implements Peer<number, number> {
  #stack = new Int32Array(1024);
  #top = 1024;

  constructor() {
    for (let i = 0; i < 1024; i++) this.#stack[i] = FLOOR_BASE + i * 64;
  }

  malloc(_size: number): number {
    return this.#stack[--this.#top]!;
  }

  free(address: number): void {
    this.#stack[this.#top++] = address;
  }
}

/**
 * The floor with the contract: `FloorPeer` plus the per-call work any allocator with
 * PseudoMalloc's guarantees does: check the size (a number, a non-negative integer), pick the size
 * class, record the block as live (so that a double or invalid free is caught in O(1)), check that
 * on `free`, and keep the statistics PseudoMalloc keeps per call (live bytes and its peak, total
 * allocations and frees; live blocks are their difference). One arena, one stack per size class,
 * no routing, no slow paths: a lower bound for a *safe* JS allocator.
 */
export class CheckedFloorPeer implements Peer<number, number> {
  #stacks = new Int32Array(8 * 64);
  #tops = new Int32Array(8);
  #live = new Uint16Array(65536); // requested size + 1 per 16-byte slot, 0 = not live
  #closed = false;
  liveBytes = 0;
  peakLiveBytes = 0;
  totalAllocations = 0;
  totalFrees = 0;

  constructor() {
    for (let order = 0; order < 8; order++) {
      for (let i = 0; i < 64; i++) {
        this.#stacks[order * 64 + i] = FLOOR_BASE + order * 65536 + i * 1024;
      }
      this.#tops[order] = 64;
    }
  }

  malloc(size: number): number {
    if (typeof size !== "number" || !(size >= 0 && size < 1024) || (size | 0) !== size) {
      throw new RangeError(`bad size ${size}`);
    }
    if (this.#closed) throw new Error("closed");
    const order = size <= 16 ? 0 : 28 - Math.clz32(size - 1);
    const top = this.#tops[order]! - 1;
    if (top < 0) throw new Error("empty");
    this.#tops[order] = top;
    const address = this.#stacks[order * 64 + top]!;
    this.#live[(address - FLOOR_BASE) >>> 4] = size + 1;
    this.totalAllocations++;
    this.liveBytes += size;
    if (this.liveBytes > this.peakLiveBytes) this.peakLiveBytes = this.liveBytes;
    return address;
  }

  free(address: number): void {
    if (typeof address !== "number" || this.#closed) throw new TypeError("bad address");
    const offset = address - FLOOR_BASE;
    const valid = offset >= 0 && offset < 1 << 20 && (offset & 15) === 0;
    const tag = valid ? this.#live[offset >>> 4]! : 0;
    if (tag === 0) throw new Error("invalid or double free");
    this.#live[offset >>> 4] = 0;
    const order = tag - 1 <= 16 ? 0 : 28 - Math.clz32(tag - 2);
    const top = this.#tops[order]!;
    this.#stacks[order * 64 + top] = address;
    this.#tops[order] = top + 1;
    this.totalFrees++;
    this.liveBytes -= tag - 1;
  }
}

/** Orders of `MinimalPeer`: blocks of 16 to 1024 bytes. */
const MINIMAL_ORDERS = 7;
/** Bytes `MinimalPeer`'s bump pointer may hand out: 64 MiB, tagged by a 4 M-entry table. */
const MINIMAL_SPAN = 64 << 20;

/**
 * The smallest _complete_ allocator: `CheckedFloorPeer`'s fast paths, plus the slow paths every
 * real allocator has. When an order's 64-entry stack is empty, `malloc` takes a block from that
 * order's overflow list, or else a fresh one from a bump pointer; when the stack is full, `free`
 * puts the block on the overflow list. Every size and address is checked on the slow path too
 * (errors thrown, nothing leaked). No arenas, no merging, no large blocks, no OS: addresses below
 * 2^31 are never touched. Its pair costs what any JS allocator's pair costs once its slow paths
 * have run somewhere in the program (here, in the batch and churn workloads): V8 then compiles the
 * slow branch of the inlined `malloc` and `free` as a real call instead of a deoptimization exit,
 * and reloads the allocator's fields after it.
 *
 * The fast paths repeat the slow paths' tagging and counting lines on purpose: moved into shared
 * helpers, the pair measured 10 ns instead of 8 (the helpers' feedback then mixes both paths).
 */
export class MinimalPeer implements Peer<number, number> {
  #stacks = new Int32Array(MINIMAL_ORDERS * 64);
  #tops = new Int32Array(MINIMAL_ORDERS);
  #overflow: number[][] = Array.from({ length: MINIMAL_ORDERS }, () => []);
  #live = new Uint16Array(MINIMAL_SPAN >>> 4); // requested size + 1 per 16-byte slot
  #bump = FLOOR_BASE;
  #closed = false;
  liveBytes = 0;
  peakLiveBytes = 0;
  totalAllocations = 0;
  totalFrees = 0;

  /** Live blocks, for the bench's leak check. */
  get live(): number {
    return this.totalAllocations - this.totalFrees;
  }

  malloc(size: number): number {
    if (
      typeof size === "number" && size >= 0 && size < 1024 && (size | 0) === size && !this.#closed
    ) {
      const order = size <= 16 ? 0 : 28 - Math.clz32(size - 1);
      const top = this.#tops[order]! - 1;
      if (top >= 0) {
        this.#tops[order] = top;
        const address = this.#stacks[order * 64 + top]!;
        this.#live[(address - FLOOR_BASE) >>> 4] = size + 1;
        this.totalAllocations++;
        this.liveBytes += size;
        if (this.liveBytes > this.peakLiveBytes) this.peakLiveBytes = this.liveBytes;
        return address;
      }
    }
    return this.#mallocSlow(size);
  }

  #mallocSlow(size: number): number {
    if (typeof size !== "number" || !(size >= 0 && size < 1024) || (size | 0) !== size) {
      throw new RangeError(`bad size ${size}`);
    }
    if (this.#closed) throw new Error("closed");
    const order = size <= 16 ? 0 : 28 - Math.clz32(size - 1);
    let address = this.#overflow[order]!.pop();
    if (address === undefined) {
      if (this.#bump + (16 << order) > FLOOR_BASE + MINIMAL_SPAN) throw new Error("out of memory");
      address = this.#bump;
      this.#bump += 16 << order;
    }
    this.#live[(address - FLOOR_BASE) >>> 4] = size + 1;
    this.totalAllocations++;
    this.liveBytes += size;
    if (this.liveBytes > this.peakLiveBytes) this.peakLiveBytes = this.liveBytes;
    return address;
  }

  free(address: number): void {
    if (typeof address === "number" && !this.#closed) {
      const offset = address - FLOOR_BASE;
      const valid = offset >= 0 && offset < MINIMAL_SPAN && (offset & 15) === 0;
      const tag = valid ? this.#live[offset >>> 4]! : 0;
      const order = tag - 1 <= 16 ? 0 : 28 - Math.clz32(tag - 2);
      const top = this.#tops[order]!;
      if (tag !== 0 && top < 64) {
        this.#live[offset >>> 4] = 0;
        this.#stacks[order * 64 + top] = address;
        this.#tops[order] = top + 1;
        this.totalFrees++;
        this.liveBytes -= tag - 1;
        return;
      }
    }
    this.#freeSlow(address);
  }

  #freeSlow(address: number): void {
    if (typeof address !== "number" || this.#closed) throw new TypeError("bad address");
    const offset = address - FLOOR_BASE;
    const valid = offset >= 0 && offset < MINIMAL_SPAN && (offset & 15) === 0;
    const tag = valid ? this.#live[offset >>> 4]! : 0;
    if (tag === 0) throw new Error("invalid or double free");
    this.#live[offset >>> 4] = 0;
    this.#overflow[tag - 1 <= 16 ? 0 : 28 - Math.clz32(tag - 2)]!.push(address);
    this.totalFrees++;
    this.liveBytes -= tag - 1;
  }
}
