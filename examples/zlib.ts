// The system zlib compresses and decompresses a few MiB with every one of its allocations served,
// counted and checked by a PseudoMalloc heap. Run with `deno task example:zlib`.
import { type Allocator, PseudoMalloc, zlibAllocator } from "../mod.ts";
import { openZlib, sampleData, Z_STREAM_SIZE } from "./_zlib.ts";

const zlib = openZlib();
if (zlib === undefined) {
  console.error("No system zlib found (libz.so.1 on Linux, libz.dylib on macOS): nothing to do.");
  Deno.exit(1);
}

using heap = new PseudoMalloc();
// zlib's hooks accept any Allocator: this one passes every call to the heap, noting the sizes.
const sizes: number[] = [];
const recorder: Allocator = {
  malloc: (size) => (sizes.push(size), heap.malloc(size)),
  calloc: (count, size) => (sizes.push(count * size), heap.calloc(count, size)),
  realloc: (address, size) => (sizes.push(size), heap.realloc(address, size)),
  free: (address) => heap.free(address),
  usableSize: (address) => heap.usableSize(address),
  bytes: (address, length) => heap.bytes(address, length),
  stats: () => heap.stats(),
  validate: () => heap.validate(),
  close: () => heap.close(),
  [Symbol.dispose]: () => heap.close(),
};
using hooks = zlibAllocator(recorder);
const input = sampleData(4 * 1024 * 1024);
const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(2)} MiB`;
console.log(`zlib ${zlib.version}, z_stream of ${Z_STREAM_SIZE} bytes in heap memory`);

const liveBefore = heap.stats().liveAllocations;

let started = performance.now();
const compressed = zlib.deflate(heap, hooks, input, 6);
const deflateMs = performance.now() - started;
const afterDeflate = hooks.stats();
console.log(
  `deflate: ${mib(input.length)} -> ${mib(compressed.length)} ` +
    `(${(input.length / compressed.length).toFixed(2)}:1) in ${deflateMs.toFixed(1)} ms; ` +
    `zlib made ${afterDeflate.allocations} allocations, freed ${afterDeflate.frees}`,
);
console.log(`  sizes: ${sizes.splice(0).join(", ")} bytes`);
if (afterDeflate.allocations !== afterDeflate.frees) throw new Error("deflate leaked a block");
if (heap.stats().liveAllocations !== liveBefore) {
  throw new Error("a block is live after deflateEnd");
}

started = performance.now();
const restored = zlib.inflate(heap, hooks, compressed);
const inflateMs = performance.now() - started;
const total = hooks.stats();
console.log(
  `inflate: ${mib(compressed.length)} -> ${mib(restored.length)} in ${inflateMs.toFixed(1)} ms; ` +
    `zlib made ${total.allocations - afterDeflate.allocations} allocations, freed ` +
    `${total.frees - afterDeflate.frees}`,
);
console.log(`  sizes: ${sizes.splice(0).join(", ")} bytes`);
const stats = heap.stats();
if (total.allocations !== total.frees) throw new Error("inflate leaked a block");
if (stats.liveAllocations !== liveBefore) throw new Error("a block is live after inflateEnd");

const identical = restored.length === input.length &&
  restored.every((byte, i) => byte === input[i]);
if (!identical) throw new Error("the round trip changed the data");
heap.validate();

console.log(
  `round trip byte-identical: ${identical}; live blocks after deflateEnd/inflateEnd: ` +
    `${stats.liveAllocations}; C calls: ${total.calls}, errors: ${total.errors}`,
);
console.log(
  `heap: ${stats.totalAllocations} allocations in all (zlib's and the example's own buffers), ` +
    `peak live ${mib(stats.peakLiveBytes)}, peak mapped ${mib(stats.peakMappedBytes)}`,
);
zlib.close();
