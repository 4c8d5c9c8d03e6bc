// PseudoMalloc when the OS says no: every system call it makes, failed at each point with a
// fault-injecting OS (tests/_faulty_os.ts). After each failure the error is typed, `validate()`
// passes, every live block keeps its contents, and the same call succeeds once the OS heals.

import assert from "node:assert/strict";
import { HeapClosedError, OsError, OutOfMemoryError, PseudoMalloc } from "../mod.ts";
import type { OsCall } from "../ffi/os.ts";
import { FaultyOs } from "./_faulty_os.ts";
import { DECAY_RELEASES } from "../src/_mappings.ts";

const KiB = 1 << 10;
const MiB = 1 << 20;

/** Live blocks with a pattern each, checked after every failure. */
class Patterns {
  #blocks = new Map<number, number>(); // address -> size
  constructor(readonly heap: PseudoMalloc) {}
  add(address: number, size: number): number {
    this.#blocks.set(address, size);
    this.heap.bytes(address, size).fill(address % 251);
    return address;
  }
  remove(address: number): void {
    this.#blocks.delete(address);
  }
  /** Forgets the blocks that are no longer live (a close that failed halfway freed them). */
  forgetGone(): void {
    const live = new Set(this.heap.liveAllocations().map((block) => block.address));
    for (const address of this.#blocks.keys()) if (!live.has(address)) this.#blocks.delete(address);
  }
  check(): void {
    for (const [address, size] of this.#blocks) {
      const bytes = this.heap.bytes(address, size);
      assert.ok(bytes.every((byte) => byte === address % 251), `block ${address} changed`);
    }
    assert.equal(this.heap.stats().liveAllocations, this.#blocks.size);
  }
}

/**
 * Fails the n-th `call` of `act` for n = 0, 1, ... until `act` makes fewer than n + 1 such calls.
 * `setup` builds a fresh heap each time; after a failure `check` runs, then `act` is retried on the
 * healed OS and must succeed. Returns how many points were failed.
 */
function sweep(
  call: OsCall,
  setup: Setup,
  act: (heap: PseudoMalloc, patterns: Patterns) => void,
  errorType: typeof OsError | typeof OutOfMemoryError,
): number {
  return sweepOn(() => new FaultyOs(), call, setup, act, errorType);
}

type Setup = (os: FaultyOs) => { heap: PseudoMalloc; patterns: Patterns };

/** {@linkcode sweep} on the OS `makeOs` makes (one per point). */
function sweepOn(
  makeOs: () => FaultyOs,
  call: OsCall,
  setup: Setup,
  act: (heap: PseudoMalloc, patterns: Patterns) => void,
  errorType: typeof OsError | typeof OutOfMemoryError,
): number {
  for (let n = 0;; n++) {
    const os = makeOs();
    const { heap, patterns } = setup(os);
    os.fail(call, n);
    try {
      act(heap, patterns);
    } catch (error) {
      assert.ok(os.failed, `an error without a fault: ${error}`);
      assert.ok(error instanceof errorType, `${call} #${n}: ${error}`);
      assert.equal((error as OsError | OutOfMemoryError).errno, 12);
      heap.validate();
      patterns.check();
      os.heal();
      act(heap, patterns); // the same call again, now that the OS agrees
    }
    const reached = os.failed;
    os.heal();
    try {
      // The fast paths still work: a cached block of each of a few orders, taken and given back.
      for (const size of [8, 64, 500, 8, 64, 500]) heap.free(heap.malloc(size));
      heap.free(heap.calloc(4, 16));
      heap.validate();
      patterns.check();
    } catch (error) {
      if (!(error instanceof HeapClosedError)) throw error; // `act` closed the heap
    }
    heap.close();
    assert.equal(os.mappedBytes, 0, `${call} #${n}: a mapping leaked`);
    if (!reached) return n; // `act` makes n such calls: all of them were failed
  }
}

function fresh(options: ConstructorParameters<typeof PseudoMalloc>[0] = {}) {
  return (os: FaultyOs) => {
    const heap = new PseudoMalloc({ ...options, os });
    const patterns = new Patterns(heap);
    patterns.add(heap.malloc(40), 40);
    patterns.add(heap.malloc(5000), 5000);
    return { heap, patterns };
  };
}

/** Like {@linkcode fresh}, but nothing allocated: the first arena is mapped by `act`. */
function empty(options: ConstructorParameters<typeof PseudoMalloc>[0] = {}) {
  return (os: FaultyOs) => {
    const heap = new PseudoMalloc({ ...options, os });
    return { heap, patterns: new Patterns(heap) };
  };
}

Deno.test("PseudoMalloc: a failed mmap in malloc, calloc and realloc throws OutOfMemoryError", () => {
  const large = (heap: PseudoMalloc, patterns: Patterns) => {
    patterns.add(heap.malloc(100 * KiB), 100 * KiB);
  };
  assert.ok(sweep("map", fresh(), large, OutOfMemoryError) >= 1);
  const zeroed = (heap: PseudoMalloc, patterns: Patterns) => {
    const address = heap.calloc(1000, 100);
    assert.ok(heap.bytes(address, 100_000).every((byte) => byte === 0));
    patterns.add(address, 100_000);
  };
  assert.ok(sweep("map", fresh(), zeroed, OutOfMemoryError) >= 1);
  // realloc of a small block to a large one: the new mapping is made first.
  const grow = (heap: PseudoMalloc, patterns: Patterns) => {
    const small = patterns.add(heap.malloc(100), 100);
    const moved = heap.realloc(small, 50_000);
    patterns.remove(small);
    patterns.add(moved, 50_000);
  };
  assert.ok(sweep("map", fresh(), grow, OutOfMemoryError) >= 1);
});

Deno.test("PseudoMalloc: a failed mremap in realloc leaves the large block as it was", () => {
  let address = 0;
  const points = sweep("remap", (os) => {
    const { heap, patterns } = fresh()(os);
    address = patterns.add(heap.malloc(64 * KiB), 64 * KiB);
    return { heap, patterns };
  }, (heap, patterns) => {
    const moved = heap.realloc(address, 4 * MiB);
    patterns.remove(address);
    address = patterns.add(moved, 4 * MiB);
  }, OutOfMemoryError);
  assert.ok(points >= 1);
});

Deno.test("PseudoMalloc: a failed arena mapping throws OutOfMemoryError, low or not", () => {
  // The second arena: 64 KiB arenas, so that 1 KiB blocks fill the first one quickly.
  const options = { arenaSize: 64 * KiB, mmapThreshold: 2 * KiB };
  const fill = (heap: PseudoMalloc, patterns: Patterns) => {
    for (let i = 0; i < 70; i++) patterns.add(heap.malloc(1000), 1000);
  };
  assert.ok(sweep("map", fresh({ ...options, lowAddresses: false }), fill, OutOfMemoryError) >= 1);
  assert.ok(sweep("mapAt", fresh(options), fill, OutOfMemoryError) >= 1);
});

Deno.test("PseudoMalloc: a refused tag table reservation maps arenas anywhere", () => {
  const os = new FaultyOs().fail("reserve", 0, { sticky: true });
  using heap = new PseudoMalloc({ os });
  const patterns = new Patterns(heap);
  const addresses = Array.from({ length: 100 }, (_, i) => patterns.add(heap.malloc(i + 1), i + 1));
  assert.ok(os.failed);
  assert.ok(heap.stats().arenaDetails[0]!.address >= 2 ** 31, "the arena is not in the window");
  heap.validate();
  patterns.check();
  for (const address of addresses) heap.free(address);
  heap.validate();
});

Deno.test("PseudoMalloc: a failed munmap in free keeps the large block live", () => {
  // 40 MiB is more than the cache takes (MAX_CACHED, 32 MiB): freeing it unmaps it.
  let address = 0;
  const points = sweep("unmap", (os) => {
    const { heap, patterns } = fresh()(os);
    address = patterns.add(heap.malloc(40 * MiB), 40 * MiB);
    return { heap, patterns };
  }, (heap, patterns) => {
    heap.free(address);
    patterns.remove(address);
  }, OsError);
  assert.equal(points, 1);
});

Deno.test("PseudoMalloc: a failed munmap in cache eviction keeps the freed block live", () => {
  // Two 4 MiB blocks cached, then unused for DECAY_RELEASES releases (a 9 MiB block freed and
  // taken again): the free of a third gives them back first.
  let blocks: number[] = [];
  const points = sweep("unmap", (os) => {
    const { heap, patterns } = fresh()(os);
    blocks = [0, 1, 2].map(() => patterns.add(heap.malloc(4 * MiB), 4 * MiB));
    heap.free(blocks[0]!);
    patterns.remove(blocks[0]!);
    heap.free(blocks[1]!);
    patterns.remove(blocks[1]!);
    for (let i = 0; i < DECAY_RELEASES; i++) heap.free(heap.malloc(9 * MiB));
    return { heap, patterns };
  }, (heap, patterns) => {
    heap.free(blocks[2]!);
    patterns.remove(blocks[2]!);
  }, OsError);
  assert.ok(points >= 1);
});

Deno.test("PseudoMalloc: a failed munmap in trim keeps every record true", () => {
  const options = { arenaSize: 64 * KiB, mmapThreshold: 2 * KiB };
  const points = sweep("unmap", (os) => {
    const heap = new PseudoMalloc({ ...options, os });
    const patterns = new Patterns(heap);
    // Four arenas; the second keeps one live block, the others end up empty.
    const all = Array.from({ length: 4 * 64 }, () => heap.malloc(1000));
    for (const [i, address] of all.entries()) {
      if (i === 70) patterns.add(address, 1000);
      else heap.free(address);
    }
    patterns.add(heap.malloc(200 * KiB), 200 * KiB);
    const cached = heap.malloc(300 * KiB);
    heap.free(cached); // kept in the release cache, unmapped by trim
    return { heap, patterns };
  }, (heap) => {
    heap.trim();
    assert.equal(heap.stats().arenas, 1);
    assert.equal(heap.stats().largeCachedBytes, 0);
  }, OsError);
  assert.ok(points >= 4, `${points} unmaps in trim`);
});

Deno.test("PseudoMalloc: a failed munmap in close leaves the heap open and consistent", () => {
  const options = { arenaSize: 64 * KiB, mmapThreshold: 2 * KiB };
  const points = sweep("unmap", (os) => {
    const heap = new PseudoMalloc({ ...options, os });
    const patterns = new Patterns(heap);
    for (let i = 0; i < 3 * 64; i++) patterns.add(heap.malloc(1000), 1000);
    patterns.add(heap.malloc(200 * KiB), 200 * KiB);
    return { heap, patterns };
  }, (heap, patterns) => {
    try {
      heap.close();
    } catch (error) {
      // What close unmapped before the failure is freed; the rest is live and intact.
      patterns.forgetGone();
      throw error;
    }
    assert.throws(() => heap.malloc(8), HeapClosedError);
  }, OsError);
  assert.ok(points >= 4, `${points} unmaps in close`);
});

Deno.test("PseudoMalloc: a first arena that fails to map leaves the fast paths working", () => {
  // The tag table is reserved before the arena is mapped: the fast paths must get it all the same.
  const reuse = (heap: PseudoMalloc, patterns: Patterns) => {
    const address = heap.malloc(40);
    heap.free(address);
    patterns.add(heap.malloc(40), 40); // from the block cache, through the fast path
  };
  assert.ok(sweep("mapAt", empty(), reuse, OutOfMemoryError) >= 1);
  assert.ok(sweep("map", empty({ lowAddresses: false }), reuse, OutOfMemoryError) >= 1);
  assert.equal(sweep("reserve", empty(), reuse, OutOfMemoryError), 1); // the fallback: no error
});

Deno.test("PseudoMalloc: a large free that evicts cached mappings, then fails, keeps its counts", () => {
  // Two 3 MiB blocks cached (live blocks between them, so that they merge only if the kernel
  // placed them elsewhere side by side), left unused for DECAY_RELEASES releases, then a 7 MiB one
  // freed: it unmaps both first (two unmaps, oldest first; one when they merged), then is cached.
  // Each unmap fails once in the sweep.
  let big = 0;
  const points = sweep("unmap", (os) => {
    const { heap, patterns } = fresh()(os);
    const first = heap.malloc(3 * MiB);
    patterns.add(heap.malloc(64 * KiB), 64 * KiB);
    const second = heap.malloc(3 * MiB);
    patterns.add(heap.malloc(64 * KiB), 64 * KiB);
    heap.free(first);
    heap.free(second);
    big = patterns.add(heap.malloc(7 * MiB), 7 * MiB);
    for (let i = 0; i < DECAY_RELEASES; i++) heap.free(heap.malloc(9 * MiB));
    return { heap, patterns };
  }, (heap, patterns) => {
    heap.free(big);
    patterns.remove(big);
  }, OsError);
  assert.ok(points === 1 || points === 2, `${points} unmaps`);
});

Deno.test("PseudoMalloc: realloc of a large block to a small one keeps the old one when munmap fails", () => {
  let address = 0;
  const points = sweep("unmap", (os) => {
    const { heap, patterns } = fresh()(os);
    address = patterns.add(heap.malloc(40 * MiB), 100); // never cached: moving it unmaps it
    return { heap, patterns };
  }, (heap, patterns) => {
    const moved = heap.realloc(address, 100);
    patterns.remove(address);
    address = patterns.add(moved, 100);
  }, OsError);
  assert.ok(points >= 1);
});

Deno.test("PseudoMalloc: realloc where the OS has no mremap (map, copy, unmap) loses nothing", () => {
  let address = 0;
  const setup = (os: FaultyOs) => {
    const { heap, patterns } = fresh()(os);
    address = patterns.add(heap.malloc(64 * KiB), 64 * KiB);
    return { heap, patterns };
  };
  const grow = (heap: PseudoMalloc, patterns: Patterns) => {
    const moved = heap.realloc(address, 4 * MiB);
    patterns.remove(address);
    address = patterns.add(moved, 4 * MiB);
  };
  const noRemap = () => new FaultyOs({ remap: false });
  assert.ok(sweepOn(noRemap, "map", setup, grow, OutOfMemoryError) >= 1);
  // The old block goes to the cache once copied: the move makes no munmap at all. (A failed munmap
  // after the copy, without the cache, is tested on MmapAllocator.)
  assert.equal(sweepOn(noRemap, "unmap", setup, grow, OsError), 0);
});

Deno.test("PseudoMalloc: a large realloc that fails after the cache changed keeps every count true", () => {
  // Without mremap the block is copied; freeing the old one first gives back an aged cached block,
  // whose munmap fails: the realloc throws, the copy goes back to the cache, and the heap's count
  // of what is mapped follows.
  const os = new FaultyOs({ remap: false });
  const heap = new PseudoMalloc({ os });
  const a = heap.malloc(MiB);
  heap.bytes(a, MiB).fill(8);
  const aged = heap.malloc(200 * KiB);
  // The churning block must not touch the aged one (a neighbour would merge with it and make it
  // young again); the kernel decides where mappings go, so one that touches is kept aside.
  const touches = (b: number) => b + 512 * KiB === aged || aged + 200 * KiB === b;
  const aside: number[] = [];
  let churn = heap.malloc(512 * KiB);
  while (touches(churn)) {
    aside.push(churn);
    churn = heap.malloc(512 * KiB);
  }
  heap.free(aged);
  heap.free(churn);
  // Taken and freed again (too small for the 2 MiB to come: that is mapped anew).
  for (let i = 1; i < DECAY_RELEASES; i++) heap.free(heap.malloc(512 * KiB));
  os.fail("unmap", 0);
  assert.throws(() => heap.realloc(a, 2 * MiB), OsError);
  heap.validate();
  assert.equal(heap.usableSize(a), MiB);
  assert.ok(heap.bytes(a, MiB).every((byte) => byte === 8));
  for (const address of aside) heap.free(address);
  heap.close();
  assert.equal(os.mappedBytes, 0);
});

// --- debug mode: its guard-paged mappings and its quarantine ------------------------------------

/** A debug heap with small and guard-paged blocks live, and some of each in the quarantine. */
function debugHeap(options: { quarantine?: number } = {}): Setup {
  return (os) => {
    const heap = new PseudoMalloc({ os, debug: { ...options }, onLeaks: () => {} });
    const patterns = new Patterns(heap);
    for (const size of [100, 5000, 30_000, 40]) patterns.add(heap.malloc(size), size);
    for (const size of [200, 9000]) heap.free(heap.malloc(size));
    return { heap, patterns };
  };
}

Deno.test("PseudoMalloc (debug): a failed mmap of a guard-paged block throws and changes nothing", () => {
  const points = sweep("map", debugHeap(), (heap, patterns) => {
    patterns.add(heap.malloc(12_000), 12_000);
    const small = patterns.add(heap.malloc(10), 10);
    const moved = heap.realloc(small, 50_000); // a failure leaves the small block live, intact
    patterns.remove(small);
    patterns.add(moved, 50_000);
  }, OutOfMemoryError);
  assert.ok(points >= 2, `${points} mmaps`);
});

Deno.test("PseudoMalloc (debug): a refused mprotect unmaps the new mapping and throws OutOfMemoryError", () => {
  const os = new FaultyOs();
  using heap = new PseudoMalloc({ os, debug: true });
  const before = os.mappedBytes;
  os.fail("protect");
  assert.throws(() => heap.malloc(8000), (error: OutOfMemoryError) => {
    assert.ok(error instanceof OutOfMemoryError);
    assert.match(error.message, /guard page: mprotect refused .*vm\.max_map_count/);
    return true;
  });
  assert.equal(os.mappedBytes, before, "the mapping was given back");
  assert.equal(heap.stats().liveAllocations, 0);
  heap.validate();
  heap.free(heap.malloc(8000)); // healed
});

Deno.test("PseudoMalloc (debug): a failed munmap as a block leaves the quarantine keeps it there", () => {
  // A quarantine of 40 KiB: the frees below push the guard-paged blocks out, one munmap each.
  const points = sweep("unmap", debugHeap({ quarantine: 40 * KiB }), (heap, patterns) => {
    for (let i = 0; i < 4; i++) {
      const address = patterns.add(heap.malloc(20_000), 20_000);
      heap.free(address); // a failure leaves this block live, intact, and the quarantine as it was
      patterns.remove(address);
    }
    heap.check();
  }, OsError);
  assert.ok(points >= 2, `${points} munmaps`);
  // trim() empties the quarantine: the guard-paged block in it is one munmap.
  assert.equal(sweep("unmap", debugHeap(), (heap) => void heap.trim(), OsError), 1);
});

Deno.test("PseudoMalloc (debug): a failed munmap in close leaves the heap open and consistent", () => {
  const points = sweep("unmap", debugHeap(), (heap, patterns) => {
    try {
      heap.close();
    } catch (error) {
      patterns.forgetGone();
      throw error;
    }
    assert.throws(() => heap.malloc(8), HeapClosedError);
  }, OsError);
  assert.ok(points >= 4, `${points} munmaps in close`);
});

Deno.test("PseudoMalloc (debug, no quarantine): a failed munmap in free keeps the block live", () => {
  const points = sweep("unmap", debugHeap({ quarantine: 0 }), (heap, patterns) => {
    const address = patterns.add(heap.malloc(20_000), 20_000);
    heap.free(address);
    patterns.remove(address);
  }, OsError);
  assert.ok(points >= 1, `${points} munmaps`);
});

Deno.test("PseudoMalloc (debug): a close retried after a failed munmap still reports every leak", () => {
  const os = new FaultyOs();
  let leaks: number[] = [];
  const heap = new PseudoMalloc({ os, debug: true, onLeaks: (l) => leaks = l.map((b) => b.size) });
  heap.malloc(77);
  heap.malloc(9000); // guarded: unmapped first by close
  // close unmaps the guarded block (1 munmap), then the arena: fail that one.
  os.fail("unmap", 1);
  assert.throws(() => heap.close(), OsError);
  heap.validate();
  heap.close();
  assert.deepEqual(leaks.sort((a, b) => a - b), [77, 9000]);
});

Deno.test("PseudoMalloc (debug, no quarantine): a realloc whose old block's munmap fails keeps only the old block", () => {
  const os = new FaultyOs();
  using heap = new PseudoMalloc({ os, debug: { quarantine: 0 }, onLeaks: () => {} });
  const patterns = new Patterns(heap);
  const a = patterns.add(heap.malloc(100_000), 100_000);
  os.fail("unmap"); // the old block's, after the move's copy
  assert.throws(() => heap.realloc(a, 200_000), OsError);
  heap.validate();
  patterns.check(); // the old block only, intact
  const moved = heap.realloc(a, 200_000);
  patterns.remove(a);
  patterns.add(moved, 200_000);
  patterns.check();
});

Deno.test("PseudoMalloc (debug): damage found before a refused munmap is still reported after", () => {
  const os = new FaultyOs();
  using heap = new PseudoMalloc({ os, debug: { quarantine: 0 }, onLeaks: () => {} });
  const a = heap.malloc(20_000); // guarded
  new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(heap.pointer(a - 1)!, 1))[0] = 0;
  os.fail("unmap");
  assert.throws(() => heap.free(a), OsError);
  assert.throws(() => heap.check(), /written before its start at offset -1/);
  heap.free(a);
  heap.validate();
});
