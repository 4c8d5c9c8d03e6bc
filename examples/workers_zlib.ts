// A pool of workers compressing chunks with the system zlib into blocks of one SharedPseudoMalloc:
// the main thread copies each chunk into a heap block and sends its address; a worker compresses it
// (zlib's own allocations on the same heap), frees the input block, and sends back the address of
// a block holding the compressed chunk; the main thread writes it out and frees it. Every block is
// freed by another thread than the one that allocated it. Then the output is checked by inflating
// it, and the heap must have nothing live. Run with `deno task example:workers-zlib`.
import { SharedPseudoMalloc } from "../mod.ts";
import { openZlib, sampleData } from "./_zlib.ts";

const zlib = openZlib();
if (zlib === undefined) {
  console.error("No system zlib found (libz.so.1 on Linux, libz.dylib on macOS): nothing to do.");
  Deno.exit(1);
}

const WORKERS = 4;
const CHUNK = 256 * 1024;
const input = sampleData(8 * 1024 * 1024);
const chunks = Math.ceil(input.length / CHUNK);

const heap = new SharedPseudoMalloc();
const workers = Array.from(
  { length: WORKERS },
  () => new Worker(new URL("./_workers_zlib_worker.ts", import.meta.url), { type: "module" }),
);
const output: Uint8Array[] = new Array(chunks);
const started = performance.now();
await new Promise<void>((resolve, reject) => {
  let next = 0;
  let received = 0;
  const send = (worker: Worker) => {
    if (next >= chunks) return;
    const piece = input.subarray(next * CHUNK, (next + 1) * CHUNK);
    const address = heap.malloc(piece.length);
    heap.bytes(address, piece.length).set(piece);
    worker.postMessage({ index: next++, address, length: piece.length });
  };
  for (const worker of workers) {
    worker.onerror = (event) => reject(new Error(event.message));
    worker.onmessage = (event) => {
      const { index, address, length } = event.data;
      output[index] = heap.bytes(address, length).slice(); // "write the result"
      heap.free(address); // allocated by the worker, freed here
      if (++received === chunks) resolve();
      else send(worker);
    };
    worker.postMessage({ handle: heap.handle });
    send(worker);
    send(worker); // two chunks in flight per worker
  }
});
const elapsed = performance.now() - started;

// Each chunk is a zlib stream of its own: inflate them back and compare.
const compressed = output.reduce((sum, piece) => sum + piece.length, 0);
let offset = 0;
for (const piece of output) {
  const back = zlib.inflate(heap, undefined, piece);
  const original = input.subarray(offset, offset + back.length);
  if (back.length === 0 || !back.every((byte, i) => byte === original[i])) {
    throw new Error(`chunk at ${offset} did not come back`);
  }
  offset += back.length;
}
if (offset !== input.length) throw new Error("the output is short");

const finals = await Promise.all(
  workers.map((worker) =>
    new Promise<{ id: number; stats: { allocations: number; frees: number } }>((resolve) => {
      worker.onmessage = (event) => resolve(event.data);
      worker.postMessage({ done: true });
    })
  ),
);
workers.forEach((worker) => worker.terminate());
const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(2)} MiB`;
console.log(
  `${chunks} chunks of ${CHUNK / 1024} KiB: ${mib(input.length)} -> ${mib(compressed)} ` +
    `by ${WORKERS} workers in ${elapsed.toFixed(0)} ms; every chunk inflated back`,
);
for (const { id, stats } of finals) {
  console.log(
    `  worker attachment ${id}: ${stats.allocations} blocks allocated, ${stats.frees} freed`,
  );
}
heap.validate();
const stats = heap.stats();
console.log(
  `heap: ${stats.liveAllocations} blocks live, ${stats.totalAllocations} allocated in all, ` +
    `${stats.arenas} arenas`,
);
if (stats.liveAllocations !== 0) throw new Error("blocks were left live");
heap.close();
zlib.close();
