// A tour of @pseudo/malloc: a seeded workload, two libc calls on heap memory, then the heap's state.
// Run with `deno task demo` (that is, `deno run --allow-ffi demo.ts`).

import { PseudoMalloc } from "./mod.ts";
// A tiny seeded PRNG (the package's own, not part of its API), so every run does the same work.
import { mulberry32 } from "./src/_random.ts";

/** A whole number in [low, high]. */
function between(random: () => number, low: number, high: number): number {
  return low + Math.floor(random() * (high - low + 1));
}

/** Bytes for people: 1536 -> "1.5 KiB". */
function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 ** 2) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
}

const libc = Deno.dlopen(
  Deno.build.os === "darwin" ? "/usr/lib/libSystem.B.dylib" : "libc.so.6",
  {
    strlen: { parameters: ["pointer"], result: "usize" },
    qsort: { parameters: ["pointer", "usize", "usize", "function"], result: "void" },
  },
);

using heap = new PseudoMalloc();
const random = mulberry32(2024);

// 1. A mixed workload: mostly small blocks (served by the buddy arena), some large ones (own mmap).
console.log("1. Workload: 3000 seeded operations, small blocks of 16..1000 B, large of 4..256 KiB");
const OPERATIONS = 3000;
const live: { address: number; size: number; tag: number }[] = [];
let allocations = 0;
let frees = 0;
for (let op = 0; op < OPERATIONS; op++) {
  if (live.length > 0 && random() < 0.4) {
    // Free a random live block, after checking that its bytes are still what we wrote.
    const index = between(random, 0, live.length - 1);
    const { address, size, tag } = live[index]!;
    const bytes = heap.bytes(address, size);
    if (bytes[0] !== tag || bytes[size - 1] !== tag) throw new Error("a block was overwritten");
    heap.free(address);
    live[index] = live[live.length - 1]!;
    live.pop();
    frees++;
  } else {
    const size = random() < 0.9 ? between(random, 16, 1000) : between(random, 4096, 256 * 1024);
    const address = heap.malloc(size);
    const tag = op & 0xff;
    heap.bytes(address, size).fill(tag);
    live.push({ address, size, tag });
    allocations++;
  }
}
const largeLive = live.filter((block) => block.size >= heap.mmapThreshold).length;
console.log(
  `   ${allocations} mallocs, ${frees} frees; ${live.length} blocks stay live ` +
    `(${live.length - largeLive} small, ${largeLive} large)`,
);

// 2a. A C string in a heap block, measured by libc's strlen.
const text = "Hello from a PseudoMalloc block, read by C!";
const encoded = new TextEncoder().encode(`${text}\0`);
const stringAddress = heap.malloc(encoded.length);
heap.bytes(stringAddress, encoded.length).set(encoded);
const length = libc.symbols.strlen(heap.pointer(stringAddress));
console.log(`2. strlen on a heap block: C counts ${length} chars, JS expects ${text.length}`);
if (length !== BigInt(text.length)) throw new Error("strlen disagrees");
heap.free(stringAddress);

// 2b. int32 values in a heap block, sorted in place by libc's qsort with a JS comparator.
const COUNT = 1000;
const arrayAddress = heap.malloc(COUNT * 4);
const block = heap.bytes(arrayAddress, COUNT * 4);
const numbers = new Int32Array(block.buffer, block.byteOffset, COUNT);
for (let i = 0; i < COUNT; i++) numbers[i] = between(random, -1_000_000, 1_000_000);
const compare = new Deno.UnsafeCallback(
  { parameters: ["pointer", "pointer"], result: "i32" } as const,
  (a, b) => {
    const x = new Deno.UnsafePointerView(a!).getInt32();
    const y = new Deno.UnsafePointerView(b!).getInt32();
    return x < y ? -1 : x > y ? 1 : 0;
  },
);
try {
  libc.symbols.qsort(heap.pointer(arrayAddress), BigInt(COUNT), 4n, compare.pointer);
} finally {
  compare.close();
}
const sorted = numbers.every((value, i) => i === 0 || numbers[i - 1]! <= value);
console.log(
  `   qsort on ${COUNT} int32s in a heap block: ${sorted ? "sorted" : "NOT sorted"} ` +
    `(min ${numbers[0]}, max ${numbers[COUNT - 1]})`,
);
if (!sorted) throw new Error("qsort left the array unsorted");
heap.free(arrayAddress);
libc.close();

// 3. The heap's own view of itself.
heap.validate();
console.log("3. heap.validate() passed: buddy trees, free lists and counters all agree");
console.log("   heap.stats(): what is mapped, what is live, and the totals so far");
const { arenaDetails, internalFragmentation, systemCalls, debug: _, ...counters } = heap.stats();
for (const [name, value] of Object.entries(counters)) {
  const human = /Bytes$/.test(name) ? `  (${formatBytes(value)})` : "";
  console.log(`     ${name.padEnd(18)}${value.toLocaleString("en-US").padStart(12)}${human}`);
}
const calls = Object.entries(systemCalls).map(([call, count]) => `${count} ${call}`).join(", ");
console.log(`     ${"systemCalls".padEnd(18)}${calls}`);
const percent = (fraction: number) => `${(fraction * 100).toFixed(1)} %`;
console.log(
  `     ${"internalFragmentation".padEnd(22)}${percent(internalFragmentation).padStart(8)}`,
);
for (const [index, arena] of arenaDetails.entries()) {
  console.log(
    `     arena ${index}: largest free block ${formatBytes(arena.largestFreeBlock)} of ` +
      `${formatBytes(arena.freeBytes)} free: external fragmentation ` +
      percent(arena.externalFragmentation),
  );
}
console.log("   heap.heapMap(): arena occupancy, one cell per 1 KiB, from · (free) to █ (full)");
console.log(heap.heapMap());
