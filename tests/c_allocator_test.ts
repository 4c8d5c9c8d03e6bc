// The heap handed to C: function pointers called the way C calls them, the zlib and lua_Alloc
// adapters, and the system zlib running on the heap (needs --allow-ffi).
import assert from "node:assert/strict";
import {
  type Allocator,
  C_ALLOCATOR_DEFINITIONS,
  cAllocator,
  type CAllocatorFunction,
  type CAllocatorOptions,
  type CAllocatorStats,
  DoubleFreeError,
  FirstFitAllocator,
  HeapClosedError,
  InvalidAddressError,
  InvalidFreeError,
  luaAllocator,
  MAX_SIZE,
  MmapAllocator,
  PseudoMalloc,
  SegregatedAllocator,
  zlibAllocator,
} from "../mod.ts";
import { openZlib, sampleData } from "../examples/_zlib.ts";

const zlib = openZlib();
const NO_ZLIB = zlib === undefined;
if (NO_ZLIB) {
  console.warn("c_allocator_test: no system zlib (libz.so.1 / libz.dylib): zlib tests skipped");
}
addEventListener("unload", () => zlib?.close());

const defs = C_ALLOCATOR_DEFINITIONS;

/** The five functions as C sees them, callable from JavaScript. */
function fromC(c: ReturnType<typeof cAllocator>) {
  const malloc = new Deno.UnsafeFnPointer(c.malloc, defs.malloc);
  const free = new Deno.UnsafeFnPointer(c.free, defs.free);
  const calloc = new Deno.UnsafeFnPointer(c.calloc, defs.calloc);
  const realloc = new Deno.UnsafeFnPointer(c.realloc, defs.realloc);
  const usableSize = new Deno.UnsafeFnPointer(c.usableSize, defs.usableSize);
  return {
    malloc: (size: number) => Number(malloc.call(BigInt(size))),
    free: (address: number) => free.call(BigInt(address)),
    calloc: (count: number, size: number) => Number(calloc.call(BigInt(count), BigInt(size))),
    realloc: (address: number, size: number) => Number(realloc.call(BigInt(address), BigInt(size))),
    usableSize: (address: number) => Number(usableSize.call(BigInt(address))),
  };
}

/** An onError that records what it is given. */
function recorder() {
  const seen: { error: Error; source: CAllocatorFunction }[] = [];
  return {
    seen,
    onError: (error: Error, source: CAllocatorFunction) => seen.push({ error, source }),
  };
}

Deno.test("cAllocator: malloc and free through the C pointers serve heap blocks", () => {
  using heap = new PseudoMalloc();
  using c = cAllocator(heap);
  const C = fromC(c);
  const small = C.malloc(100);
  const large = C.malloc(100_000);
  assert.equal(heap.usableSize(small), 128);
  assert.equal(large % heap.pageSize, 0);
  assert.ok(large > 2 ** 32, "a 64-bit address crosses the boundary intact");
  heap.bytes(small, 3).set([1, 2, 3]);
  assert.deepEqual([...heap.bytes(small, 3)], [1, 2, 3]);
  assert.equal(heap.stats().liveAllocations, 2);
  C.free(small);
  C.free(large);
  C.free(0); // free(NULL) does nothing
  assert.equal(heap.stats().liveAllocations, 0);
  assert.deepEqual(c.stats(), { calls: 5, errors: 0, outOfMemory: 0, allocations: 2, frees: 2 });
  assert.ok(C.malloc(0) !== 0, "malloc(0) returns a unique block");
  heap.validate();
});

Deno.test("cAllocator: calloc zeroes a block that held data", () => {
  using heap = new PseudoMalloc();
  using c = cAllocator(heap);
  const C = fromC(c);
  for (const size of [48, 3000]) {
    const dirty = C.malloc(size);
    heap.bytes(dirty).fill(0xff);
    C.free(dirty);
    const clean = C.calloc(size / 4, 4);
    assert.ok(heap.bytes(clean, size).every((byte) => byte === 0), `calloc of ${size} bytes`);
    C.free(clean);
  }
  assert.equal(heap.stats().liveAllocations, 0);
});

Deno.test("cAllocator: realloc keeps contents, allocates from NULL, frees on size 0", () => {
  using heap = new PseudoMalloc();
  using c = cAllocator(heap);
  const C = fromC(c);
  let address = C.realloc(0, 16); // realloc(NULL, n) is malloc(n)
  assert.ok(address !== 0);
  heap.bytes(address, 4).set([9, 8, 7, 6]);
  address = C.realloc(address, 50_000); // moves to a mapping of its own
  assert.deepEqual([...heap.bytes(address, 4)], [9, 8, 7, 6]);
  assert.equal(C.realloc(address, 0), 0); // realloc(p, 0) frees p
  assert.equal(heap.stats().liveAllocations, 0);
  assert.deepEqual(c.stats(), { calls: 3, errors: 0, outOfMemory: 0, allocations: 2, frees: 2 });
  heap.validate();
});

Deno.test("cAllocator: usable_size of small, large and NULL; a foreign address reports", () => {
  using heap = new PseudoMalloc();
  const { seen, onError } = recorder();
  using c = cAllocator(heap, { onError });
  const C = fromC(c);
  const small = C.malloc(100);
  const large = C.malloc(5000);
  assert.equal(C.usableSize(small), 128);
  assert.equal(C.usableSize(large), 2 * heap.pageSize);
  assert.equal(C.usableSize(0), 0);
  assert.equal(seen.length, 0);
  assert.equal(C.usableSize(small + 16), 0);
  assert.ok(seen[0]!.error instanceof InvalidAddressError);
  assert.equal(seen[0]!.source, "usable_size");
  C.free(small);
  C.free(large);
});

Deno.test("cAllocator: a double free from C reaches onError and leaves the heap valid", () => {
  using heap = new PseudoMalloc();
  const { seen, onError } = recorder();
  using c = cAllocator(heap, { onError });
  const free = new Deno.UnsafeFnPointer(c.free, defs.free);
  const malloc = new Deno.UnsafeFnPointer(c.malloc, defs.malloc);
  const keep = malloc.call(64n);
  for (const size of [64n, 10_000n]) {
    const address = malloc.call(size);
    free.call(address);
    free.call(address); // the double free
  }
  assert.equal(seen.length, 2);
  for (const { error, source } of seen) {
    assert.ok(error instanceof DoubleFreeError, error.message);
    assert.equal(source, "free");
  }
  assert.equal(c.stats().errors, 2);
  assert.equal(c.stats().frees, 2);
  assert.equal(heap.stats().liveAllocations, 1);
  heap.validate();
  // The heap still works: the freed blocks are reused, the kept one is intact.
  const again = malloc.call(64n);
  assert.notEqual(again, keep);
  free.call(again);
  free.call(keep);
  heap.validate();
});

Deno.test("cAllocator: an invalid free from C (interior, foreign, beyond 2^53) reaches onError", () => {
  using heap = new PseudoMalloc();
  const { seen, onError } = recorder();
  using c = cAllocator(heap, { onError });
  const C = fromC(c);
  const free = new Deno.UnsafeFnPointer(c.free, defs.free);
  const small = C.malloc(64);
  const large = C.malloc(10_000);
  C.free(small + 16);
  C.free(large + 8);
  C.free(0x1234_5670);
  free.call(0xffff_ffff_ffff_fff0n);
  assert.equal(seen.length, 4);
  for (const { error } of seen) assert.ok(error instanceof InvalidFreeError, error.message);
  assert.ok(!seen.some(({ error }) => error instanceof DoubleFreeError));
  assert.equal(heap.stats().liveAllocations, 2);
  heap.validate();
  C.free(small);
  C.free(large);
  assert.deepEqual(c.stats(), { calls: 8, errors: 4, outOfMemory: 0, allocations: 2, frees: 2 });
});

Deno.test("cAllocator: out of memory returns NULL, counted, without onError", () => {
  // One 4 KiB arena, and no mapping of its own below 4 KiB: two 2000-byte blocks fill it.
  using heap = new PseudoMalloc({ maxArenas: 1, arenaSize: 4096, mmapThreshold: 4096 });
  const { seen, onError } = recorder();
  using c = cAllocator(heap, { onError });
  const C = fromC(c);
  const a = C.malloc(2000);
  const b = C.malloc(2000);
  assert.ok(a !== 0 && b !== 0);
  assert.equal(C.malloc(16), 0);
  assert.equal(C.calloc(4, 4), 0);
  heap.bytes(a, 3).set([1, 2, 3]);
  assert.equal(C.realloc(a, 3000), 0, "a failed realloc returns NULL");
  assert.deepEqual([...heap.bytes(a, 3)], [1, 2, 3], "and leaves the block untouched");
  // A request the OS refuses: 2^47 bytes, the whole user address space.
  assert.equal(C.malloc(MAX_SIZE), 0);
  assert.equal(seen.length, 0);
  assert.equal(c.stats().outOfMemory, 4);
  assert.equal(c.stats().errors, 0);
  assert.equal(heap.stats().liveAllocations, 2);
  heap.validate();
  C.free(a);
  C.free(b);
});

Deno.test("cAllocator: sizes beyond 2^47 and calloc overflow return NULL and reach onError", () => {
  using heap = new PseudoMalloc();
  const { seen, onError } = recorder();
  using c = cAllocator(heap, { onError });
  const malloc = new Deno.UnsafeFnPointer(c.malloc, defs.malloc);
  const calloc = new Deno.UnsafeFnPointer(c.calloc, defs.calloc);
  assert.equal(malloc.call(0xffff_ffff_ffff_ffffn), 0n); // malloc((size_t) -1)
  assert.equal(calloc.call(1n << 32n, 1n << 32n), 0n); // count * size overflows
  assert.deepEqual(seen.map(({ error, source }) => [error.name, source]), [
    ["RangeError", "malloc"],
    ["RangeError", "calloc"],
  ]);
  assert.equal(heap.stats().liveAllocations, 0);
  heap.validate();
});

Deno.test("cAllocator: calls after the heap closed return NULL and report HeapClosedError", () => {
  const heap = new PseudoMalloc();
  const { seen, onError } = recorder();
  using c = cAllocator(heap, { onError });
  const C = fromC(c);
  const address = C.malloc(8);
  heap.close();
  assert.equal(C.malloc(8), 0);
  C.free(address);
  assert.equal(seen.length, 2);
  assert.ok(seen.every(({ error }) => error instanceof HeapClosedError));
});

Deno.test("cAllocator: the default onError prints the first error once and counts them all", () => {
  using heap = new PseudoMalloc();
  using c = cAllocator(heap);
  const C = fromC(c);
  const printed: unknown[][] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => printed.push(args);
  try {
    const address = C.malloc(32);
    C.free(address);
    C.free(address);
    C.free(address);
    C.free(12345);
  } finally {
    console.error = original;
  }
  assert.equal(c.stats().errors, 3);
  assert.equal(printed.length, 1);
  assert.match(String(printed[0]![0]), /misused the heap in free: DoubleFreeError/);
  heap.validate();
});

Deno.test("cAllocator: an onError that throws is contained (nothing crosses into C)", () => {
  using heap = new PseudoMalloc();
  using c = cAllocator(heap, {
    onError: () => {
      throw new Error("from onError");
    },
  });
  const C = fromC(c);
  const printed: unknown[][] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => printed.push(args);
  try {
    C.free(4096);
  } finally {
    console.error = original;
  }
  assert.equal(c.stats().errors, 1);
  assert.match(String(printed[0]![0]), /onError threw/);
});

Deno.test("cAllocator: close is idempotent and stats stay readable", () => {
  using heap = new PseudoMalloc();
  const c = cAllocator(heap);
  fromC(c).free(0);
  assert.equal(c.closed, false);
  c.close();
  c.close();
  c[Symbol.dispose]();
  assert.equal(c.closed, true);
  assert.equal(c.stats().calls, 1);
  assert.equal(c.allocator, heap);
});

Deno.test("cAllocator: the definitions are frozen", () => {
  assert.ok(Object.isFrozen(defs));
  assert.ok(Object.isFrozen(defs.malloc));
  assert.ok(Object.isFrozen(defs.malloc.parameters));
  assert.deepEqual(defs.zalloc.parameters, ["usize", "u32", "u32"]);
});

Deno.test({
  name: "cAllocator: threadSafe callbacks serve a malloc called from another thread",
  ignore: Deno.build.os !== "linux" && Deno.build.os !== "darwin",
  async fn() {
    const libc = Deno.dlopen(
      Deno.build.os === "darwin" ? "/usr/lib/libSystem.B.dylib" : "libc.so.6",
      {
        pthread_create: { parameters: ["buffer", "usize", "pointer", "usize"], result: "i32" },
        pthread_join: { parameters: ["usize", "buffer"], result: "i32", nonblocking: true },
      },
    );
    try {
      using heap = new PseudoMalloc();
      using c = cAllocator(heap, { threadSafe: true });
      // malloc has the shape of a thread's start routine, void *(*)(void *): the new thread
      // calls malloc(100) and exits with the address.
      const thread = new BigUint64Array(1);
      assert.equal(libc.symbols.pthread_create(thread, 0n, c.malloc, 100n), 0);
      const result = new BigUint64Array(1);
      assert.equal(await libc.symbols.pthread_join(thread[0]!, result), 0);
      const address = Number(result[0]);
      assert.equal(heap.usableSize(address), 128);
      assert.equal(c.stats().allocations, 1);
      heap.free(address);
    } finally {
      libc.close();
    }
  },
});

Deno.test("luaAllocator: free, malloc, realloc and free(NULL) by the arguments", () => {
  using heap = new PseudoMalloc();
  const { seen, onError } = recorder();
  using lua = luaAllocator(heap, { onError });
  const fn = new Deno.UnsafeFnPointer(lua.alloc, defs.luaAlloc);
  const alloc = (ptr: number, osize: number, nsize: number) =>
    Number(fn.call(0xdeadn, BigInt(ptr), BigInt(osize), BigInt(nsize)));
  // ptr NULL: malloc(nsize); osize carries Lua's type tag, ignored.
  const block = alloc(0, 5, 40);
  assert.equal(heap.usableSize(block), 64);
  heap.bytes(block, 4).set([4, 3, 2, 1]);
  // ptr and nsize: realloc, contents kept.
  const grown = alloc(block, 40, 3000);
  assert.deepEqual([...heap.bytes(grown, 4)], [4, 3, 2, 1]);
  const shrunk = alloc(grown, 3000, 20);
  assert.deepEqual([...heap.bytes(shrunk, 4)], [4, 3, 2, 1]);
  // nsize 0: free, returns NULL.
  assert.equal(alloc(shrunk, 20, 0), 0);
  assert.equal(heap.stats().liveAllocations, 0);
  // free(NULL): nothing.
  assert.equal(alloc(0, 0, 0), 0);
  assert.deepEqual(lua.stats(), { calls: 5, errors: 0, outOfMemory: 0, allocations: 3, frees: 3 });
  // A double free through nsize 0 is reported.
  assert.equal(alloc(shrunk, 20, 0), 0);
  assert.equal(seen[0]?.source, "lua_Alloc");
  assert.ok(seen[0]?.error instanceof DoubleFreeError);
  heap.validate();
});

Deno.test("luaAllocator: a failed resize returns NULL and keeps the block", () => {
  using heap = new PseudoMalloc({ maxArenas: 1, arenaSize: 4096, mmapThreshold: 4096 });
  using lua = luaAllocator(heap);
  const fn = new Deno.UnsafeFnPointer(lua.alloc, defs.luaAlloc);
  const block = Number(fn.call(0n, 0n, 0n, 2000n));
  const other = Number(fn.call(0n, 0n, 0n, 2000n));
  heap.bytes(block, 2).set([7, 7]);
  assert.equal(fn.call(0n, BigInt(block), 2000n, 3000n), 0n);
  assert.deepEqual([...heap.bytes(block, 2)], [7, 7]);
  assert.equal(lua.stats().outOfMemory, 1);
  fn.call(0n, BigInt(block), 2000n, 0n);
  fn.call(0n, BigInt(other), 2000n, 0n);
  assert.equal(heap.stats().liveAllocations, 0);
  lua.close();
  lua.close();
  assert.equal(lua.closed, true);
});

Deno.test("zlibAllocator: zalloc takes items × size bytes, zfree gives them back", () => {
  using heap = new PseudoMalloc();
  using z = zlibAllocator(heap);
  const zalloc = new Deno.UnsafeFnPointer(z.zalloc, defs.zalloc);
  const zfree = new Deno.UnsafeFnPointer(z.zfree, defs.zfree);
  const state = zalloc.call(0n, 1, 5952);
  const window = zalloc.call(0n, 32768, 2);
  assert.equal(heap.usableSize(Number(window)), 65536);
  assert.equal(heap.stats().liveBytes, 5952 + 65536);
  zfree.call(0n, window);
  zfree.call(0n, state);
  zfree.call(0n, 0n);
  assert.equal(heap.stats().liveAllocations, 0);
  assert.deepEqual(z.stats(), { calls: 5, errors: 0, outOfMemory: 0, allocations: 2, frees: 2 });
});

/** Compresses and decompresses `input` with zlib allocating from `allocator`; checks the books. */
function roundTrip(allocator: Allocator, input: Uint8Array) {
  using buffers = new PseudoMalloc(); // z_stream, input and output: apart from zlib's blocks
  const { seen, onError } = recorder();
  using hooks = zlibAllocator(allocator, { onError });
  const liveBefore = allocator.stats().liveAllocations;
  const totalBefore = allocator.stats().totalAllocations;

  const compressed = zlib!.deflate(buffers, hooks, input);
  const deflated = hooks.stats();
  assert.ok(deflated.allocations >= 4, `deflate made ${deflated.allocations} allocations`);
  assert.equal(deflated.frees, deflated.allocations);
  assert.equal(allocator.stats().liveAllocations, liveBefore, "no block live after deflateEnd");

  const restored = zlib!.inflate(buffers, hooks, compressed);
  const total = hooks.stats();
  assert.ok(total.allocations - deflated.allocations >= 1, "inflate allocated");
  assert.equal(total.frees, total.allocations);
  assert.equal(allocator.stats().liveAllocations, liveBefore, "no block live after inflateEnd");
  assert.equal(
    allocator.stats().totalAllocations - totalBefore,
    total.allocations,
    "the allocator counted every zlib allocation",
  );
  assert.equal(seen.length, 0);
  assert.equal(total.errors + total.outOfMemory, 0);
  assert.ok(compressed.length < input.length / 2);
  assert.equal(restored.length, input.length);
  assert.ok(restored.every((byte, i) => byte === input[i]), "byte-identical round trip");
  allocator.validate();
  return { compressed, total };
}

Deno.test({
  name: "zlib: a 4 MiB round trip with every zlib allocation served by PseudoMalloc",
  ignore: NO_ZLIB,
  fn() {
    using heap = new PseudoMalloc();
    const { total } = roundTrip(heap, sampleData(4 << 20));
    // zlib 1.2.x: deflate takes 5 blocks (state, window, prev, head, pending), inflate 2.
    assert.ok(total.allocations >= 6 && total.allocations <= 10, `${total.allocations}`);
    assert.equal(heap.stats().liveAllocations, 0);
  },
});

Deno.test({
  name: "zlib: the adapters work with other allocators of the family",
  ignore: NO_ZLIB,
  fn() {
    const input = sampleData(1 << 20, 7);
    for (
      const allocator of [new SegregatedAllocator(), new FirstFitAllocator(), new MmapAllocator()]
    ) {
      try {
        roundTrip(allocator, input);
      } finally {
        allocator.close();
      }
    }
  },
});

Deno.test({
  name: "zlib: a full heap makes deflateInit fail with Z_MEM_ERROR, and zlib frees what it took",
  ignore: NO_ZLIB,
  fn() {
    // One 128 KiB arena serving every size: deflate's state and window fit, prev does not.
    using small = new PseudoMalloc({
      maxArenas: 1,
      arenaSize: 128 << 10,
      mmapThreshold: 128 << 10,
    });
    using buffers = new PseudoMalloc();
    const { seen, onError } = recorder();
    using hooks = zlibAllocator(small, { onError });
    assert.throws(() => zlib!.deflate(buffers, hooks, sampleData(1000)), /failed with -4/);
    const stats = hooks.stats();
    assert.ok(stats.outOfMemory >= 1, `${stats.outOfMemory} NULL results`);
    assert.equal(stats.allocations, stats.frees);
    assert.equal(seen.length, 0, "running out of memory is not misuse");
    assert.equal(small.stats().liveAllocations, 0);
    assert.equal(buffers.stats().liveAllocations, 0);
    small.validate();
  },
});

// The lifecycle every adapter shares (src/c/_callbacks.ts), seen through each adapter.

/** Runs `fn` with `Deno.UnsafeCallback.prototype.close` recording each callback it closes. */
function recordingCloses(fn: (closed: Deno.UnsafeCallback[]) => void): void {
  const prototype = Deno.UnsafeCallback.prototype;
  const original = prototype.close;
  const closed: Deno.UnsafeCallback[] = [];
  prototype.close = function (this: Deno.UnsafeCallback) {
    closed.push(this);
    original.call(this);
  };
  try {
    fn(closed);
  } finally {
    prototype.close = original;
  }
}

Deno.test("adapters: close() closes every callback of the adapter exactly once", () => {
  using heap = new PseudoMalloc();
  recordingCloses((closed) => {
    const c = cAllocator(heap);
    const z = zlibAllocator(heap);
    const lua = luaAllocator(heap, { threadSafe: true });
    const cases = [
      { name: "cAllocator", adapter: c, callbacks: Object.values(c.callbacks), count: 5 },
      { name: "zlibAllocator", adapter: z, callbacks: Object.values(z.callbacks), count: 2 },
      { name: "luaAllocator", adapter: lua, callbacks: [lua.callback], count: 1 },
    ];
    for (const { name, adapter, callbacks, count } of cases) {
      closed.length = 0;
      assert.equal(adapter.closed, false, name);
      adapter.close();
      adapter.close();
      adapter[Symbol.dispose]();
      assert.equal(adapter.closed, true, name);
      assert.equal(closed.length, count, `${name} closed ${closed.length} callbacks`);
      assert.equal(new Set(closed).size, count, `${name} closed each callback once`);
      for (const callback of callbacks) assert.ok(closed.includes(callback), name);
    }
  });
});

Deno.test("CallbackSet: closes what it made once, keeps its stats, makes nothing once closed", async () => {
  const { CallbackSet } = await import("../src/c/_callbacks.ts");
  recordingCloses((closed) => {
    const set = new CallbackSet({});
    const made = [
      set.make(defs.free, () => {}),
      set.make(defs.malloc, () => 0),
      set.make(defs.zfree, () => {}),
    ];
    set.guard.calls = 3;
    set.close();
    set.close();
    assert.equal(set.closed, true);
    assert.deepEqual(closed, made);
    assert.equal(set.stats().calls, 3);
    assert.throws(() => set.make(defs.free, () => {}), /Cannot make a callback: .* closed/);
    assert.equal(closed.length, 3);
  });
});

/** The three C calls, the way each adapter's C side makes them (zlib has no realloc). */
interface CSide extends Disposable {
  name: string;
  malloc(size: number): number;
  free(address: number): void;
  realloc?(address: number, size: number): number;
  stats(): CAllocatorStats;
}

const ADAPTERS = ["cAllocator", "zlibAllocator", "luaAllocator"] as const;

/** The C side of adapter `name` over `allocator`. */
function cSide(
  name: (typeof ADAPTERS)[number],
  allocator: Allocator,
  options: CAllocatorOptions,
): CSide {
  if (name === "cAllocator") {
    const c = cAllocator(allocator, options);
    return { name, ...fromC(c), stats: () => c.stats(), [Symbol.dispose]: () => c.close() };
  }
  if (name === "zlibAllocator") {
    const z = zlibAllocator(allocator, options);
    const zalloc = new Deno.UnsafeFnPointer(z.zalloc, defs.zalloc);
    const zfree = new Deno.UnsafeFnPointer(z.zfree, defs.zfree);
    return {
      name,
      malloc: (size) => Number(zalloc.call(0n, 1, size)),
      free: (address) => zfree.call(0n, BigInt(address)),
      stats: () => z.stats(),
      [Symbol.dispose]: () => z.close(),
    };
  }
  const lua = luaAllocator(allocator, options);
  const alloc = new Deno.UnsafeFnPointer(lua.alloc, defs.luaAlloc);
  const call = (ptr: number, nsize: number) =>
    Number(alloc.call(0n, BigInt(ptr), 0n, BigInt(nsize)));
  return {
    name,
    malloc: (size) => call(0, size),
    free: (address) => void call(address, 0),
    realloc: (address, size) => call(address, size),
    stats: () => lua.stats(),
    [Symbol.dispose]: () => lua.close(),
  };
}

Deno.test("adapters: the same calls are counted the same through every adapter", () => {
  const seenBy = new Map<string, string[]>();
  for (const name of ADAPTERS) {
    using heap = new PseudoMalloc();
    const { seen, onError } = recorder();
    using side = cSide(name, heap, { onError });
    const a = side.malloc(40);
    const b = side.malloc(5000);
    side.free(a);
    side.free(a); // a double free
    side.free(0); // free(NULL)
    side.free(b);
    side.free(0x1234_5670); // an address the heap never returned
    assert.deepEqual(
      side.stats(),
      { calls: 7, errors: 2, outOfMemory: 0, allocations: 2, frees: 2 },
      side.name,
    );
    seenBy.set(side.name, seen.map(({ error }) => error.name));
    assert.equal(heap.stats().liveAllocations, 0, side.name);
    heap.validate();
  }
  for (const [name, errors] of seenBy) {
    assert.deepEqual(errors, ["DoubleFreeError", "InvalidFreeError"], name);
  }
});

Deno.test("adapters: out of memory and realloc are counted the same through every adapter", () => {
  for (const name of ADAPTERS) {
    // One 4 KiB arena serving every size: two 2000-byte blocks fill it.
    using heap = new PseudoMalloc({ maxArenas: 1, arenaSize: 4096, mmapThreshold: 4096 });
    const { seen, onError } = recorder();
    using side = cSide(name, heap, { onError });
    const a = side.malloc(2000);
    const b = side.malloc(2000);
    assert.ok(a !== 0 && b !== 0, side.name);
    assert.equal(side.malloc(16), 0, side.name);
    let c: number;
    if (side.realloc) {
      assert.equal(side.realloc(a, 3000), 0, side.name); // fails, a intact
      assert.equal(side.realloc(a, 0), 0, side.name); // frees a
      c = side.realloc(0, 100); // allocates
    } else {
      side.free(a);
      c = side.malloc(100);
    }
    assert.ok(c !== 0, side.name);
    side.free(b);
    side.free(c);
    const expected = side.realloc
      ? { calls: 8, errors: 0, outOfMemory: 2, allocations: 3, frees: 3 }
      : { calls: 7, errors: 0, outOfMemory: 1, allocations: 3, frees: 3 };
    assert.deepEqual(side.stats(), expected, side.name);
    assert.equal(seen.length, 0, `${side.name}: running out of memory is not misuse`);
    assert.equal(heap.stats().liveAllocations, 0, side.name);
    heap.validate();
  }
});

Deno.test("adapters: each adapter's default onError prints its own first error", () => {
  using heap = new PseudoMalloc();
  const printed: unknown[][] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => printed.push(args);
  try {
    const sides = ADAPTERS.map((name) => cSide(name, heap, {}));
    for (const side of sides) {
      side.free(0x1234_5670);
      side.free(0x1234_5670);
    }
    for (const side of sides) {
      assert.equal(side.stats().errors, 2, side.name);
      side[Symbol.dispose]();
    }
  } finally {
    console.error = original;
  }
  assert.deepEqual(printed.map((args) => /misused the heap in (\w+)/.exec(String(args[0]))?.[1]), [
    "free",
    "zfree",
    "lua_Alloc",
  ]);
});

Deno.test({
  name: "zlib: a 4 MiB round trip on a debug heap finds nothing wrong (no false positive)",
  ignore: NO_ZLIB,
  fn() {
    using heap = new PseudoMalloc({ debug: true });
    roundTrip(heap, sampleData(4 << 20, 3));
    heap.check(); // every quarantined block of zlib's is as zlib left it after free
    assert.ok(heap.stats().debug!.quarantinedBlocks >= 6);
    assert.equal(heap.stats().liveAllocations, 0);
  },
});
