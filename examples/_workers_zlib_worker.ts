// The worker of examples/workers_zlib.ts: attaches to the shared heap, and for each chunk it is
// sent compresses it with the system zlib (every zlib allocation on the shared heap), copies the
// result into a heap block of its own, and hands the block's address to the main thread, which
// frees it.
/// <reference lib="deno.worker" />

import { SharedPseudoMalloc, zlibAllocator } from "../mod.ts";
import { openZlib } from "./_zlib.ts";

let heap: SharedPseudoMalloc | undefined;
const zlib = openZlib()!;

self.onmessage = (event: MessageEvent) => {
  const message = event.data;
  if (message.handle !== undefined) {
    heap = SharedPseudoMalloc.attach(message.handle);
    return;
  }
  if (message.done) {
    self.postMessage({
      id: heap!.id,
      stats: heap!.stats().attachments.find((a) => a.id === heap!.id),
    });
    heap!.detach();
    zlib.close();
    return;
  }
  const { index, address, length } = message as { index: number; address: number; length: number };
  // The input is a heap block too, written by the main thread: read it in place.
  const input = heap!.bytes(address, length);
  using hooks = zlibAllocator(heap!);
  const compressed = zlib.deflate(heap!, hooks, input);
  const block = heap!.malloc(compressed.length);
  heap!.bytes(block, compressed.length).set(compressed);
  heap!.free(address); // the input chunk, allocated by the main thread
  self.postMessage({ index, address: block, length: compressed.length });
};
