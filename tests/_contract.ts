// The contract every Allocator keeps, as one suite run against each implementation, and the check
// of what it keeps when the OS refuses a system call.
//
// Usage, in an allocator's own test file:
//   contractSuite("BumpAllocator", () => new BumpAllocator(), { ... capabilities ... });
//   const failed = failEachCall({
//     call: "unmap",
//     setup: (os, live) => { const a = new BumpAllocator({ os }); live.malloc(a, 100); return a; },
//     act: (a) => a.close(),
//     closes: true,
//   });
//   assert.equal(failed, 1); // close makes one munmap, and it was failed once
import assert from "node:assert/strict";
import {
  type Allocator,
  DoubleFreeError,
  HeapClosedError,
  InvalidAddressError,
  InvalidFreeError,
  type OsCall,
  OsError,
  OutOfMemoryError,
} from "../mod.ts";
import { FaultyOs } from "./_faulty_os.ts";
import { mulberry32 } from "./_random.ts";

/** What a design can do; the suite checks exactly what is promised. */
export interface Capabilities {
  /** Largest request served; larger ones must throw RangeError. Default: no limit in the suite. */
  maxRequest?: number;
  /** free/realloc of an already freed block throws DoubleFreeError. */
  detectsDoubleFree: boolean;
  /** free of an address never returned (foreign or interior) throws InvalidFreeError. */
  detectsInvalidFree: boolean;
  /** Freed memory is used again by later requests (false for a bump allocator). */
  reusesMemory: boolean;
}

/** Every block is aligned to this many bytes, as C's malloc aligns to alignof(max_align_t). */
export const ALIGNMENT = 16;

const SIZES = [0, 1, 7, 8, 15, 16, 17, 24, 100, 255, 256, 1000, 1023, 1024, 4096, 5000, 100_000];

function stamp(allocator: Allocator, address: number, length: number, seed: number): void {
  const view = allocator.bytes(address, length);
  for (let i = 0; i < length; i++) view[i] = (seed + i * 13) & 0xff;
}

function assertStamp(allocator: Allocator, address: number, length: number, seed: number): void {
  const view = allocator.bytes(address, length);
  for (let i = 0; i < length; i++) {
    if (view[i] !== ((seed + i * 13) & 0xff)) {
      assert.fail(`byte ${i} of block ${address.toString(16)} changed`);
    }
  }
}

/** Registers the contract tests of one allocator. */
export function contractSuite(name: string, create: () => Allocator, caps: Capabilities): void {
  const limit = caps.maxRequest ?? Infinity;
  const sizes = SIZES.filter((size) => size <= limit);
  const test = (what: string, fn: (allocator: Allocator) => void) =>
    Deno.test(`${name} contract: ${what}`, () => {
      using allocator = create();
      fn(allocator);
    });

  test("malloc returns aligned, distinct, usable blocks", (a) => {
    const blocks = sizes.map((size) => [a.malloc(size), size] as const);
    for (const [address, size] of blocks) {
      assert.notEqual(address, 0);
      assert.equal(address % ALIGNMENT, 0, `malloc(${size}) = ${address} is not aligned`);
      assert.ok(a.usableSize(address) >= size, `usableSize < ${size}`);
      assert.equal(a.bytes(address).length, a.usableSize(address));
    }
    assert.equal(new Set(blocks.map(([address]) => address)).size, blocks.length);
    a.validate();
  });

  test("blocks never overlap and keep their contents", (a) => {
    const random = mulberry32(1);
    const live = new Map<number, [number, number]>(); // address -> [usable, seed]
    for (let step = 0; step < 600; step++) {
      if (live.size > 0 && random() < 0.4) {
        const keys = [...live.keys()];
        const address = keys[Math.floor(random() * keys.length)]!;
        const [usable, seed] = live.get(address)!;
        assertStamp(a, address, usable, seed);
        a.free(address);
        live.delete(address);
      } else {
        const size = Math.min(limit, Math.floor(random() ** 3 * 20_000));
        const address = a.malloc(size);
        const usable = a.usableSize(address);
        for (const [other, [otherUsable]] of live) {
          assert.ok(address + usable <= other || other + otherUsable <= address, "overlap");
        }
        stamp(a, address, usable, step);
        live.set(address, [usable, step]);
      }
      a.validate();
    }
    for (const [address, [usable, seed]] of live) assertStamp(a, address, usable, seed);
  });

  test("calloc returns zeroed memory, also over reused blocks", (a) => {
    for (const size of sizes) {
      const dirty = a.malloc(size);
      a.bytes(dirty).fill(0xa5);
      a.free(dirty);
      const address = a.calloc(1, size);
      assert.ok(a.bytes(address, size).every((byte) => byte === 0), `calloc(1, ${size})`);
    }
    const address = a.calloc(4, Math.min(limit, 64) / 4);
    assert.ok(a.bytes(address, Math.min(limit, 64)).every((byte) => byte === 0));
    assert.throws(() => a.calloc(2 ** 40, 2 ** 10), RangeError);
    a.validate();
  });

  test("realloc keeps the contents up to the smaller size", (a) => {
    let address = a.malloc(10);
    stamp(a, address, 10, 3);
    for (const size of sizes.filter((size) => size >= 10)) {
      address = a.realloc(address, size);
      assertStamp(a, address, 10, 3);
      a.validate();
    }
    address = a.realloc(address, 5);
    assertStamp(a, address, 5, 3);
    a.free(address);
    a.validate();
  });

  test("realloc(0, n) allocates and realloc(a, 0) frees", (a) => {
    const address = a.realloc(0, 8);
    assert.notEqual(address, 0);
    assert.ok(a.usableSize(address) >= 8);
    assert.equal(a.realloc(address, 0), 0);
    assert.equal(a.stats().liveAllocations, 0);
    a.validate();
  });

  test("free(0) does nothing", (a) => {
    a.free(0);
    assert.equal(a.stats().totalFrees, 0);
  });

  test("bad sizes throw TypeError or RangeError and change nothing", (a) => {
    const keep = a.malloc(8);
    stamp(a, keep, 8, 9);
    const before = a.stats();
    for (const bad of ["8", null, undefined, 8n]) {
      assert.throws(() => a.malloc(bad as unknown as number), TypeError);
    }
    for (const bad of [-1, NaN, Infinity, 1.5, 2 ** 48]) {
      assert.throws(() => a.malloc(bad), RangeError);
      assert.throws(() => a.calloc(1, bad), RangeError);
      assert.throws(() => a.realloc(keep, bad), RangeError);
    }
    if (limit !== Infinity) {
      assert.throws(() => a.malloc(limit + 1), RangeError);
      assert.throws(() => a.realloc(keep, limit + 1), RangeError);
    }
    assert.deepEqual(a.stats(), before);
    assertStamp(a, keep, 8, 9);
    a.validate();
  });

  test("bytes rejects lengths beyond the usable size", (a) => {
    const address = a.malloc(16);
    assert.throws(() => a.bytes(address, a.usableSize(address) + 1), RangeError);
    assert.throws(() => a.bytes(address, -1), RangeError);
    assert.equal(a.bytes(address, 0).length, 0);
  });

  if (caps.detectsInvalidFree) {
    test("free of a foreign or interior address throws InvalidFreeError", (a) => {
      // 64 bytes, or the largest request when smaller: address + 16 must stay inside the block.
      const size = Math.min(limit, 64);
      const address = a.malloc(size);
      stamp(a, address, size, 1);
      const before = a.stats();
      for (const bad of [8, 12345, address + 16, address + 1]) {
        assert.throws(() => a.free(bad), InvalidFreeError, `free(${bad})`);
      }
      assert.throws(() => a.usableSize(12345), InvalidAddressError);
      assert.throws(() => a.free("1" as unknown as number), TypeError);
      assert.deepEqual(a.stats(), before);
      assertStamp(a, address, size, 1);
      a.validate();
    });
  }

  if (caps.detectsDoubleFree) {
    test("a second free of a block throws DoubleFreeError", (a) => {
      const keep = a.malloc(Math.min(limit, 32));
      for (const size of sizes.filter((size) => size > 0)) {
        const address = a.malloc(size);
        a.free(address);
        const before = a.stats();
        assert.throws(() => a.free(address), DoubleFreeError, `double free of ${size} bytes`);
        assert.throws(() => a.realloc(address, 1), InvalidFreeError);
        assert.deepEqual(a.stats(), before);
      }
      a.free(keep);
      a.validate();
    });
  }

  if (caps.reusesMemory) {
    test("freed memory is used again", (a) => {
      const size = Math.min(limit, 48);
      const first = a.malloc(size);
      a.free(first);
      const seen = new Set<number>();
      for (let i = 0; i < 64; i++) {
        const address = a.malloc(size);
        seen.add(address);
        a.free(address);
      }
      assert.ok(seen.size < 64, "64 malloc/free pairs never reused a block");
      assert.equal(a.stats().liveAllocations, 0);
    });
  }

  test("stats count live, requested and total bytes", (a) => {
    const small = a.malloc(Math.min(limit, 10));
    const other = a.malloc(Math.min(limit, 30));
    a.free(small);
    const stats = a.stats();
    assert.equal(stats.liveAllocations, 1);
    assert.equal(stats.liveBytes, Math.min(limit, 30));
    assert.equal(stats.peakLiveBytes, Math.min(limit, 10) + Math.min(limit, 30));
    assert.equal(stats.totalAllocations, 2);
    assert.equal(stats.totalFrees, 1);
    assert.ok(stats.allocatedBytes >= stats.liveBytes);
    assert.ok(stats.mappedBytes >= stats.allocatedBytes);
    assert.ok(stats.peakMappedBytes >= stats.mappedBytes);
    a.free(other);
    assert.equal(a.stats().liveBytes, 0);
    a.validate();
  });

  test("close gives the memory back and later calls throw HeapClosedError", (a) => {
    const address = a.malloc(8);
    a.close();
    assert.throws(() => a.malloc(8), HeapClosedError);
    assert.throws(() => a.calloc(1, 8), HeapClosedError);
    assert.throws(() => a.realloc(address, 16), HeapClosedError);
    assert.throws(() => a.free(address), HeapClosedError);
    assert.throws(() => a.usableSize(address), HeapClosedError);
    assert.throws(() => a.bytes(address), HeapClosedError);
    assert.throws(() => a.stats(), HeapClosedError);
    a.close();
  });

  test("random operations keep every invariant", (a) => {
    const random = mulberry32(99);
    const live = new Map<number, [number, number]>(); // address -> [size, fill]
    let liveBytes = 0;
    for (let step = 0; step < 3000; step++) {
      const r = random();
      if (live.size === 0 || r < 0.45) {
        const size = Math.min(limit, Math.floor(random() ** 4 * 70_000));
        const address = r < 0.1 ? a.calloc(1, size) : a.malloc(size);
        const fill = step & 0xff;
        a.bytes(address, size).fill(fill);
        live.set(address, [size, fill]);
        liveBytes += size;
      } else {
        const keys = [...live.keys()];
        const address = keys[Math.floor(random() * keys.length)]!;
        const [size, fill] = live.get(address)!;
        assert.ok(a.bytes(address, size).every((byte) => byte === fill), "contents changed");
        live.delete(address);
        liveBytes -= size;
        if (r < 0.6) {
          const next = Math.min(limit, Math.floor(random() ** 4 * 70_000)) || 1;
          const moved = a.realloc(address, next);
          const kept = Math.min(size, next);
          assert.ok(a.bytes(moved, kept).every((byte) => byte === fill), "realloc lost data");
          a.bytes(moved, next).fill(fill);
          live.set(moved, [next, fill]);
          liveBytes += next;
        } else {
          a.free(address);
        }
      }
      a.validate();
      const stats = a.stats();
      assert.equal(stats.liveAllocations, live.size);
      assert.equal(stats.liveBytes, liveBytes);
    }
  });

  Deno.test(`${name} contract: works with using`, () => {
    let escaped: Allocator;
    {
      using allocator = create();
      allocator.malloc(1);
      escaped = allocator;
    }
    assert.throws(() => escaped.malloc(1), HeapClosedError);
  });
}

// --- when the OS says no -------------------------------------------------------------------------

/** Blocks a fault test keeps live across a failing call, each filled with a pattern of its own. */
export class LiveBlocks {
  #blocks = new Map<number, [size: number, seed: number]>();
  #seed = 0;

  /** Blocks recorded. */
  get count(): number {
    return this.#blocks.size;
  }

  /** Bytes requested by the blocks recorded. */
  get bytes(): number {
    let total = 0;
    for (const [size] of this.#blocks.values()) total += size;
    return total;
  }

  /** The recorded addresses. */
  addresses(): number[] {
    return [...this.#blocks.keys()];
  }

  /** Records the live block at `address` of `size` requested bytes and fills it with a pattern. */
  add(allocator: Allocator, address: number, size: number): number {
    const seed = ++this.#seed * 37;
    stamp(allocator, address, size, seed);
    this.#blocks.set(address, [size, seed]);
    return address;
  }

  /** Allocates `size` bytes and records them. */
  malloc(allocator: Allocator, size: number): number {
    return this.add(allocator, allocator.malloc(size), size);
  }

  /** Forgets a block that was freed. */
  delete(address: number): void {
    assert.ok(this.#blocks.delete(address), `block ${address.toString(16)} is not recorded`);
  }

  /** After `realloc(from, size)` returned `to`: checks the kept bytes, then records `to`. */
  moved(allocator: Allocator, from: number, to: number, size: number): void {
    const [old, seed] = this.#blocks.get(from)!;
    assertStamp(allocator, to, Math.min(old, size), seed);
    this.#blocks.delete(from);
    this.add(allocator, to, size);
  }

  /** Asserts that every recorded block still holds its pattern. */
  check(allocator: Allocator): void {
    for (const [address, [size, seed]] of this.#blocks) assertStamp(allocator, address, size, seed);
  }

  /**
   * After a `close` that failed half-way: forgets the blocks the allocator no longer knows (it
   * unmapped them before the failure) and returns how many it forgot.
   */
  forgetGone(allocator: Allocator): number {
    let gone = 0;
    for (const address of this.addresses()) {
      try {
        allocator.usableSize(address);
      } catch (error) {
        assert.ok(
          error instanceof InvalidAddressError,
          `usableSize after a failed close: ${error}`,
        );
        this.#blocks.delete(address);
        gone++;
      }
    }
    return gone;
  }
}

/** A call that may fail when the OS refuses one of its system calls, for {@linkcode failEachCall}. */
export interface FaultCase<A extends Allocator> {
  /** The system call to fail. */
  call: OsCall;
  /** A fresh allocator over `os`, with the blocks that must survive recorded in `live`. */
  setup(os: FaultyOs, live: LiveBlocks): A;
  /** The call under test; it records its effect in `live` only after the allocator returned. */
  act(allocator: A, live: LiveBlocks): void;
  /** The call closes the allocator: a failure may leave it with fewer blocks (see `forgetGone`). */
  closes?: boolean;
}

/**
 * Fails the n-th `call` of `act` for n = 0, 1, 2, ..., each time on a fresh allocator, until `act`
 * makes fewer calls than n + 1. After each failure: the error is the typed one (`OsError` from
 * `munmap`, `OutOfMemoryError` from a mapping call, with the injected errno), `validate()` passes,
 * every live block holds its contents, the counters agree with the blocks; then, the OS healed,
 * the same call succeeds. Returns the number of calls that were failed.
 */
export function failEachCall<A extends Allocator>(fault: FaultCase<A>): number {
  for (let n = 0;; n++) {
    const os = new FaultyOs();
    const live = new LiveBlocks();
    const allocator = fault.setup(os, live);
    try {
      os.fail(fault.call, n, { errno: INJECTED_ERRNO });
      let error: unknown;
      try {
        fault.act(allocator, live);
      } catch (caught) {
        error = caught;
      }
      if (!os.failed) {
        if (error !== undefined) throw error;
        return n;
      }
      const what = `${fault.call} #${n}`;
      if (fault.call === "unmap") {
        assert.ok(error instanceof OsError, `${what}: expected an OsError, got ${error}`);
        assert.equal(error.call, "munmap", what);
        assert.equal(error.errno, INJECTED_ERRNO, what);
      } else {
        assert.ok(
          error instanceof OutOfMemoryError,
          `${what}: expected OutOfMemoryError: ${error}`,
        );
        assert.equal(error.errno, INJECTED_ERRNO, what);
      }
      if (fault.closes) live.forgetGone(allocator);
      assertIntact(allocator, live, `after ${what} failed`);
      os.heal();
      fault.act(allocator, live);
      if (fault.closes) {
        assert.throws(() => allocator.stats(), HeapClosedError, `${what}: closed on retry`);
      } else {
        assertIntact(allocator, live, `after ${what} was retried`);
      }
    } finally {
      os.heal();
      allocator.close();
    }
  }
}

/** The errno the fault tests inject: EAGAIN, which no allocator makes up by itself. */
const INJECTED_ERRNO = 11;

/** `validate()` passes, the blocks hold their contents, and the counters agree with them. */
function assertIntact(allocator: Allocator, live: LiveBlocks, when: string): void {
  allocator.validate();
  live.check(allocator);
  const stats = allocator.stats();
  assert.equal(stats.liveAllocations, live.count, `liveAllocations ${when}`);
  assert.equal(stats.liveBytes, live.bytes, `liveBytes ${when}`);
  assert.ok(stats.allocatedBytes >= stats.liveBytes, `allocatedBytes ${when}`);
  assert.ok(stats.mappedBytes >= stats.allocatedBytes, `mappedBytes ${when}`);
}
