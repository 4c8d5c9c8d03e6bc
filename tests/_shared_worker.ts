// The worker of tests/shared_workers_test.ts: attaches to a SharedPseudoMalloc by its handle and
// runs the task the first message names.
//
// - "stress": `ops` seeded random operations (malloc, free, realloc); every block stamped with a
//   pattern of its owner, address and size, verified before any free; a quarter of the frees sent
//   to the next worker (a MessagePort), which verifies and frees them. Ends when its own loop is
//   done and the previous worker said it is done; posts its counts.
// - "hold": allocates `count` blocks, posts them, frees half into its cache, posts its id, then
//   waits to be terminated.
// - "race": waits for a start flag (a SharedArrayBuffer), frees every address it was given and
//   counts the frees that succeeded and the DoubleFreeErrors.
/// <reference lib="deno.worker" />

import { DoubleFreeError } from "../mod.ts";
import { SharedPseudoMalloc } from "../src/shared/shared_pseudo_malloc.ts";
import { mulberry32 } from "./_random.ts";

function pattern(owner: number, address: number, size: number, i: number): number {
  return (owner * 61 + (address >>> 4) + size * 7 + i) & 0xff;
}

function stamp(heap: SharedPseudoMalloc, owner: number, address: number, size: number): void {
  const view = heap.bytes(address, size);
  for (let i = 0; i < size; i++) view[i] = pattern(owner, address, size, i);
}

function verify(heap: SharedPseudoMalloc, owner: number, address: number, size: number): void {
  const view = heap.bytes(address, size);
  for (let i = 0; i < size; i++) {
    if (view[i] !== pattern(owner, address, size, i)) {
      throw new Error(`block ${address.toString(16)} of worker ${owner} (${size} B): byte ${i}`);
    }
  }
}

function randomSize(random: () => number): number {
  const r = random();
  if (r < 0.9) return Math.floor(random() * 257);
  if (r < 0.99) return 257 + Math.floor(random() * 767);
  return 1024 + Math.floor(random() * 7168);
}

async function stress(message: StressMessage): Promise<void> {
  const { me, seed, ops, port } = message;
  const heap = SharedPseudoMalloc.attach(message.handle);
  const random = mulberry32(seed);
  const live: number[] = []; // address, size, owner triples
  let outgoing: number[] = [];
  let previousDone = false;
  let received = 0;
  let remote = 0;
  port.onmessage = (event: MessageEvent<{ blocks: number[]; done: boolean }>) => {
    const blocks = event.data.blocks;
    for (let i = 0; i < blocks.length; i += 3) {
      verify(heap, blocks[i + 2]!, blocks[i]!, blocks[i + 1]!);
      heap.free(blocks[i]!);
      received++;
    }
    if (event.data.done) previousDone = true;
  };
  const next = message.next;
  for (let op = 0; op < ops; op++) {
    const r = random();
    if (live.length === 0 || (r < 0.5 && live.length < 6000)) {
      const size = randomSize(random);
      const address = random() < 0.05 ? heap.calloc(1, size) : heap.malloc(size);
      stamp(heap, me, address, size);
      live.push(address, size, me);
    } else {
      const at = 3 * Math.floor(random() * (live.length / 3));
      const address = live[at]!;
      const size = live[at + 1]!;
      const owner = live[at + 2]!;
      verify(heap, owner, address, size);
      if (r < 0.55) {
        const grown = randomSize(random);
        const moved = heap.realloc(address, grown);
        const kept = Math.min(size, grown);
        const view = heap.bytes(moved, kept);
        for (let i = 0; i < kept; i++) {
          if (view[i] !== pattern(owner, address, size, i)) throw new Error("realloc lost data");
        }
        stamp(heap, me, moved, grown);
        live[at] = moved;
        live[at + 1] = grown;
        live[at + 2] = me;
        continue;
      }
      live[at] = live[live.length - 3]!;
      live[at + 1] = live[live.length - 2]!;
      live[at + 2] = live[live.length - 1]!;
      live.length -= 3;
      if (random() < 0.25) {
        outgoing.push(address, size, owner);
        remote++;
        if (outgoing.length >= 3 * 256) {
          next.postMessage({ blocks: outgoing, done: false });
          outgoing = [];
        }
      } else {
        heap.free(address);
      }
    }
    if ((op & 8191) === 8191) await new Promise((resolve) => setTimeout(resolve, 0));
  }
  // Every block left is freed here, but a quarter of them by the next worker.
  for (let at = 0; at < live.length; at += 3) {
    verify(heap, live[at + 2]!, live[at]!, live[at + 1]!);
    if (at % 12 === 0) {
      outgoing.push(live[at]!, live[at + 1]!, live[at + 2]!);
      remote++;
    } else heap.free(live[at]!);
  }
  next.postMessage({ blocks: outgoing, done: true });
  while (!previousDone) await new Promise((resolve) => setTimeout(resolve, 1));
  const stats = heap.stats().attachments.find((a) => a.id === heap.id)!;
  heap.detach();
  self.postMessage({ me, remote, received, allocations: stats.allocations, frees: stats.frees });
}

function hold(message: HoldMessage): void {
  const heap = SharedPseudoMalloc.attach(message.handle);
  const blocks: number[] = [];
  for (let i = 0; i < message.count; i++) blocks.push(heap.malloc(16 + (i % 200)));
  const kept = blocks.filter((_, i) => i % 2 === 0);
  blocks.filter((_, i) => i % 2 === 1).forEach((address) => heap.free(address));
  self.postMessage({ id: heap.id, live: kept, sizes: kept.map((a) => heap.usableSize(a)) });
  // Then nothing: the test terminates this worker between calls.
}

function race(message: RaceMessage): void {
  const heap = SharedPseudoMalloc.attach(message.handle);
  const flag = new Int32Array(message.flag);
  Atomics.add(flag, 1, 1); // ready
  while (Atomics.load(flag, 0) === 0);
  let freed = 0;
  let doubles = 0;
  const others: string[] = [];
  for (const address of message.addresses) {
    try {
      heap.free(address);
      freed++;
    } catch (error) {
      if (error instanceof DoubleFreeError) doubles++;
      else others.push(String(error));
    }
  }
  heap.detach();
  self.postMessage({ freed, doubles, others });
}

interface StressMessage {
  task: "stress";
  handle: ReturnType<() => SharedPseudoMalloc["handle"]>;
  me: number;
  seed: number;
  ops: number;
  port: MessagePort;
  next: MessagePort;
}
interface HoldMessage {
  task: "hold";
  handle: SharedPseudoMalloc["handle"];
  count: number;
}
interface RaceMessage {
  task: "race";
  handle: SharedPseudoMalloc["handle"];
  addresses: number[];
  flag: SharedArrayBuffer;
}

self.onmessage = (event: MessageEvent<StressMessage | HoldMessage | RaceMessage>) => {
  const message = event.data;
  if (message.task === "stress") {
    stress(message).catch((error) => {
      console.error(error);
      self.postMessage({ error: String(error?.stack ?? error) });
    });
  } else if (message.task === "hold") hold(message);
  else race(message);
};
