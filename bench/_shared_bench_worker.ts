// The worker of bench/shared_bench.ts: one workload on one allocator, timed inside the worker after
// a warm-up and a start flag shared with the other workers of the measurement. Workloads: "pair"
// (malloc(64) + free) and "churn" (free live block indices[k], allocate sizes[k] in its place, with
// CHURN_LIVE blocks live; bench/_workloads.ts). Allocators: an attachment of a SharedPseudoMalloc
// ("shared"), a PseudoMalloc of the worker's own ("pseudo"), libc's malloc/free through FFI
// ("libc"), or a SharedPseudoMalloc of the worker's own ("own": the control for what sharing
// costs). One allocator per worker, so the loops stay monomorphic.
/// <reference lib="deno.worker" />

import { PseudoMalloc, SharedPseudoMalloc } from "../mod.ts";
import { libcMalloc } from "../ffi/libc_malloc.ts";
import { generate, PAIR_SIZE, type Peer, runChurn, runPairs } from "./_workloads.ts";

interface Task {
  kind: "shared" | "own" | "pseudo" | "libc";
  workload: "pair" | "churn";
  handle: SharedPseudoMalloc["handle"];
  steps: number;
  flag: SharedArrayBuffer;
}

const data = generate();

function measure<S, A>(
  peer: Peer<S, A>,
  workload: "pair" | "churn",
  initial: S[],
  sizes: ArrayLike<S>,
  pairSize: S,
  steps: number,
  words: Int32Array,
): number {
  if (workload === "pair") {
    runPairs(peer, 0, pairSize, 1 << 20); // warm up
    Atomics.add(words, 1, 1);
    while (Atomics.load(words, 0) === 0);
    const start = performance.now();
    runPairs(peer, 0, pairSize, steps);
    return performance.now() - start;
  }
  const live = initial.map((size) => peer.malloc(size));
  runChurn(peer, 0, live, data.churnIndices, sizes, 1 << 18);
  Atomics.add(words, 1, 1);
  while (Atomics.load(words, 0) === 0);
  const start = performance.now();
  runChurn(peer, 0, live, data.churnIndices, sizes, steps);
  const elapsed = performance.now() - start;
  for (const address of live) peer.free(address);
  return elapsed;
}

self.onmessage = (event: MessageEvent<Task>) => {
  const { kind, workload, handle, steps, flag } = event.data;
  const words = new Int32Array(flag);
  const numbers = [...data.churnInitial.numbers];
  let elapsed: number;
  if (kind === "libc") {
    const libc = libcMalloc();
    const bigints = [...data.churnInitial.bigints];
    elapsed = measure(
      libc,
      workload,
      bigints,
      data.churnSizes.bigints,
      BigInt(PAIR_SIZE),
      steps,
      words,
    );
  } else if (kind === "pseudo") {
    const heap = new PseudoMalloc();
    elapsed = measure(heap, workload, numbers, data.churnSizes.numbers, PAIR_SIZE, steps, words);
    heap.close();
  } else if (kind === "own") {
    const heap = new SharedPseudoMalloc();
    elapsed = measure(heap, workload, numbers, data.churnSizes.numbers, PAIR_SIZE, steps, words);
    heap.close();
  } else {
    const heap = SharedPseudoMalloc.attach(handle);
    elapsed = measure(heap, workload, numbers, data.churnSizes.numbers, PAIR_SIZE, steps, words);
    heap.detach();
  }
  self.postMessage(elapsed);
};
