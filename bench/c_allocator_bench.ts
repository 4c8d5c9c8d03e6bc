// What a C-to-JavaScript allocation call costs. Run with `deno task bench` or
// `deno bench --allow-ffi bench/c_allocator_bench.ts`.
//
// - "round trip": JavaScript calls the C pointers of cAllocator through Deno.UnsafeFnPointer (JS ->
//   C trampoline -> JS callback), against libc's malloc/free called through FFI.
// - "C calls JS": libc's qsort calls a JavaScript comparator; the per-call time is the iteration
//   time divided by the comparisons in the bench's name. One comparator does nothing more; the
//   other also runs the JavaScript behind the malloc and free pointers, so the difference is the
//   allocation work and a C malloc+free pair costs about two crossings plus that.
// - "zlib": inflateInit_+inflateEnd (1 zalloc + 1 zfree) and deflateInit_+deflateEnd (5 + 5) with
//   the heap's hooks against zlib's default allocator (libc malloc).
import { cAllocator, PseudoMalloc, zlibAllocator } from "../mod.ts";
import { C_ALLOCATOR_DEFINITIONS as defs } from "../mod.ts";
import { openZlib, Z_STREAM_SIZE } from "../examples/_zlib.ts";

import { closeLibcMalloc, libcMalloc } from "../ffi/libc_malloc.ts";

const libc = libcMalloc();

const heap = new PseudoMalloc();
const c = cAllocator(heap);
const cMalloc = new Deno.UnsafeFnPointer(c.malloc, defs.malloc);
const cFree = new Deno.UnsafeFnPointer(c.free, defs.free);

Deno.bench("cAllocator malloc(64) + free, JS -> C -> JS", { group: "round trip" }, () => {
  cFree.call(cMalloc.call(64n));
});

Deno.bench("libc malloc(64) + free via FFI", { group: "round trip", baseline: true }, () => {
  libc.free(libc.malloc(64n));
});

Deno.bench("PseudoMalloc malloc(64) + free in JS", { group: "round trip" }, () => {
  heap.free(heap.malloc(64));
});

// qsort of a fixed shuffled array: the same comparisons every iteration.
const N = 1000;
const shuffled = new Uint32Array(N);
let seed = 12345;
for (let i = 0; i < N; i++) {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  shuffled[i] = seed;
}
const work = new Uint32Array(N);
const base = Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(work)));
const compareDefinition = { parameters: ["usize", "usize"], result: "i32" } as const;
let comparisons = 0;
const plain = new Deno.UnsafeCallback(compareDefinition, (a, b) => {
  comparisons++;
  const x = work[(Number(a) - base) >>> 2]!;
  const y = work[(Number(b) - base) >>> 2]!;
  return x < y ? -1 : x > y ? 1 : 0;
});
const mallocBody = c.callbacks.malloc.callback;
const freeBody = c.callbacks.free.callback;
const allocating = new Deno.UnsafeCallback(compareDefinition, (a, b) => {
  freeBody(BigInt(mallocBody(64n))); // the JavaScript C's malloc and free pointers run
  const x = work[(Number(a) - base) >>> 2]!;
  const y = work[(Number(b) - base) >>> 2]!;
  return x < y ? -1 : x > y ? 1 : 0;
});
work.set(shuffled);
libc.qsort(work, BigInt(N), 4n, plain.pointer);
const calls = comparisons;

Deno.bench(`qsort ${N} u32, JS comparator (${calls} C -> JS calls)`, {
  group: "C calls JS",
  baseline: true,
}, () => {
  work.set(shuffled);
  libc.qsort(work, BigInt(N), 4n, plain.pointer);
});

Deno.bench(`qsort ${N} u32, comparator + malloc/free callback bodies (${calls} calls)`, {
  group: "C calls JS",
}, () => {
  work.set(shuffled);
  libc.qsort(work, BigInt(N), 4n, allocating.pointer);
});

const zlib = openZlib();
if (zlib !== undefined) {
  const hooks = zlibAllocator(heap);
  // zlib's blocks (5952 to 65536 bytes) are large for the default heap (own mappings); this heap
  // serves them from its buddy arenas.
  const buddyHeap = new PseudoMalloc({ mmapThreshold: 1 << 20 });
  const buddyHooks = zlibAllocator(buddyHeap);
  const withHooks = zlib.stream(heap, hooks);
  const withBuddyHooks = zlib.stream(heap, buddyHooks);
  const withLibc = zlib.stream(heap, undefined);
  const z = zlib.symbols;
  const version = zlib.versionPointer;
  const inflateOnce = (stream: number) => {
    if (z.inflateInit_(BigInt(stream), version, Z_STREAM_SIZE) !== 0) throw new Error("init");
    z.inflateEnd(BigInt(stream));
  };
  const deflateOnce = (stream: number) => {
    if (z.deflateInit_(BigInt(stream), 6, version, Z_STREAM_SIZE) !== 0) throw new Error("init");
    z.deflateEnd(BigInt(stream));
  };
  Deno.bench("inflateInit_ + inflateEnd, heap hooks (2 C -> JS calls)", {
    group: "zlib inflate init",
  }, () => inflateOnce(withHooks));
  Deno.bench("inflateInit_ + inflateEnd, heap hooks, mmapThreshold 1 MiB", {
    group: "zlib inflate init",
  }, () => inflateOnce(withBuddyHooks));
  Deno.bench("inflateInit_ + inflateEnd, libc malloc", {
    group: "zlib inflate init",
    baseline: true,
  }, () => inflateOnce(withLibc));
  Deno.bench("deflateInit_ + deflateEnd, heap hooks (10 C -> JS calls)", {
    group: "zlib deflate init",
  }, () => deflateOnce(withHooks));
  Deno.bench("deflateInit_ + deflateEnd, heap hooks, mmapThreshold 1 MiB", {
    group: "zlib deflate init",
  }, () => deflateOnce(withBuddyHooks));
  Deno.bench("deflateInit_ + deflateEnd, libc malloc", {
    group: "zlib deflate init",
    baseline: true,
  }, () => deflateOnce(withLibc));
  addEventListener("unload", () => {
    heap.free(withHooks);
    heap.free(withLibc);
    heap.free(withBuddyHooks);
    hooks.close();
    buddyHooks.close();
    buddyHeap.close();
    zlib.close();
  });
} else {
  console.warn("c_allocator_bench: no system zlib: zlib benches skipped");
}

addEventListener("unload", () => {
  plain.close();
  allocating.close();
  c.close();
  heap.close();
  closeLibcMalloc();
});
