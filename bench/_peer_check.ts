// A short correctness run of every peer of bench/large_bench.ts, for tests/bench_peers_test.ts
// (which runs it in a process of its own: the npm peers read the environment, which the test task
// does not allow). For each peer and workload it runs the benchmark's own loops for a few thousand
// steps through `CheckedPeer`, which keeps every live block and checks that no address is handed
// out twice or overlaps another live block, that only live blocks are freed, and that the peer's
// own count of live blocks (where it keeps one) agrees; the written workload then reads back the
// last block it wrote. Everything is freed at the end: the peer's count must be 0, and a wasm
// memory must not grow when the same run is repeated (it would if blocks leaked). Prints one JSON
// line: `{ results: [{ workload, peer, steps, problems }] }`.
//
//   deno run --allow-ffi --allow-env=NODE_ENV,UMBRELLA_ASSERTS,CI bench/_peer_check.ts

import { FirstFitAllocator, MmapAllocator, PseudoMalloc, SegregatedAllocator } from "../mod.ts";
import { closeLibcMalloc, libcMalloc } from "../ffi/libc_malloc.ts";
import {
  BigintMemset,
  BufferFill,
  type ChurnData,
  closeMemset,
  generateLarge,
  LARGE_LIVE,
  MEDIUM_LIVE,
  NumberMemset,
  runChurnWritten,
  type Writer,
} from "./_large_workloads.ts";
import {
  fillLive,
  generate,
  MemPoolPeer,
  type Peer,
  runChurn,
  runReallocChains,
} from "./_workloads.ts";
import { compiledTlsf, dlmalloc, TlsfPeer } from "./_wasm_peers.ts";

/** Churn steps per check (a few thousand: enough to reuse every live slot several times). */
const STEPS = 4096;

/** A peer with its blocks kept and checked. Slow; never timed. */
class CheckedPeer<S extends number | bigint, A extends number | bigint> {
  readonly blocks = new Map<A, number>();
  readonly problems: string[] = [];
  #peer: Peer<S, A>;

  constructor(peer: Peer<S, A>) {
    this.#peer = peer;
  }

  #add(address: A, size: S): A {
    if (Number(address) === 0) this.problems.push(`malloc(${size}) returned 0`);
    else if (this.blocks.has(address)) this.problems.push(`${address} handed out twice`);
    this.blocks.set(address, Number(size));
    return address;
  }

  #remove(address: A, op: string): void {
    if (!this.blocks.delete(address)) this.problems.push(`${op} of ${address}, not live`);
  }

  malloc(size: S): A {
    return this.#add(this.#peer.malloc(size), size);
  }

  realloc(address: A, size: S): A {
    this.#remove(address, "realloc");
    return this.#add(this.#peer.realloc!(address, size), size);
  }

  free(address: A): void {
    this.#remove(address, "free");
    this.#peer.free(address);
  }

  /** Overlapping live blocks, as problems. */
  checkDisjoint(): void {
    const sorted = [...this.blocks].map(([a, size]) => [Number(a), size] as const)
      .sort(([a], [b]) => a - b);
    for (let i = 1; i < sorted.length; i++) {
      const [start, size] = sorted[i - 1]!;
      if (start + size > sorted[i]![0]) this.problems.push(`${start} (+${size}) overlaps the next`);
    }
  }
}

interface Subject<S extends number | bigint, A extends number | bigint> {
  peer: string;
  make(): Peer<S, A>;
  /** Its own count of live blocks, where it keeps one. */
  live?(peer: Peer<S, A>): number;
  /** Bytes of its memory, where it only grows (wasm): must not grow on a repeated run. */
  memory?(peer: Peer<S, A>): number;
  sizes(data: { numbers: Uint32Array; bigints: readonly bigint[] }): ArrayLike<S>;
  /** Workload 8's writer, whether it takes bigint sizes, and a reader of one byte of a block. */
  writer?(peer: Peer<S, A>): {
    writer: Writer<A, unknown>;
    bigints: boolean;
    byte(address: A, at: number): number;
  };
  realloc: boolean;
}

const libc = libcMalloc();
const readNative = (address: number | bigint, at: number) =>
  new Deno.UnsafePointerView(Deno.UnsafePointer.create(BigInt(address) + BigInt(at))!).getUint8();
const numbers = { sizes: (data: { numbers: Uint32Array }) => data.numbers };
const familyLive = (peer: unknown) =>
  (peer as { stats(): { liveAllocations: number } }).stats().liveAllocations;
const nativeWriter = () => ({
  writer: new NumberMemset() as Writer<number, unknown>,
  bigints: true,
  byte: readNative,
});
const dl = await dlmalloc();
const tlsfModule = await compiledTlsf();
const bufferWriter = (buffer: () => ArrayBufferLike) => ({
  writer: new BufferFill(buffer) as Writer<number, unknown>,
  bigints: false,
  byte: (address: number, at: number) => new Uint8Array(buffer())[address + at]!,
});

const SUBJECTS: Subject<number | bigint, number | bigint>[] = [
  {
    peer: "libc",
    make: () => libc,
    sizes: (data) => data.bigints,
    writer: () => ({
      writer: new BigintMemset() as Writer<bigint, unknown>,
      bigints: true,
      byte: readNative,
    }),
    realloc: true,
  },
  ...[
    ["pseudo", () => new PseudoMalloc()],
    ["segregated", () => new SegregatedAllocator()],
    ["first-fit", () => new FirstFitAllocator()],
    ["mmap-allocator", () => new MmapAllocator()],
  ].map(([peer, make]) => ({
    peer: peer as string,
    make: make as () => Peer<number, number>,
    live: familyLive,
    ...numbers,
    writer: nativeWriter,
    realloc: true,
  })),
  {
    peer: "thing",
    make: () => new MemPoolPeer(256 << 20),
    live: (peer) => (peer as MemPoolPeer).live,
    ...numbers,
    writer: (peer) => bufferWriter(() => (peer as MemPoolPeer).buf),
    realloc: true,
  },
  {
    peer: "dlmalloc",
    make: () => dl,
    memory: () => dl.memory.buffer.byteLength,
    ...numbers,
    writer: () => bufferWriter(() => dl.memory.buffer),
    realloc: false,
  },
  {
    peer: "tlsf",
    make: () => new TlsfPeer(tlsfModule),
    memory: (peer) => (peer as TlsfPeer).memory.buffer.byteLength,
    ...numbers,
    writer: (peer) => bufferWriter(() => (peer as TlsfPeer).memory.buffer),
    realloc: true,
  },
] as Subject<number | bigint, number | bigint>[];

const data = generateLarge();
const chain = generate().reallocSizes;

/** One round of a churn workload from empty to empty; returns the checked peer. */
function churnRound(
  subject: Subject<number | bigint, number | bigint>,
  peer: Peer<number | bigint, number | bigint>,
  churn: ChurnData,
  live: number,
  written: boolean,
): CheckedPeer<number | bigint, number | bigint> {
  const checked = new CheckedPeer(peer);
  const blocks: (number | bigint)[] = new Array(live).fill(0);
  fillLive(checked, 0, subject.sizes(churn.initial), blocks);
  const sizes = subject.sizes(churn.sizes);
  if (written) {
    const { writer, bigints, byte } = subject.writer!(peer);
    const writeSizes = bigints ? churn.sizes.bigints : churn.sizes.numbers;
    runChurnWritten(checked, 0, blocks, churn.indices, sizes, STEPS, writer, writeSizes);
    const last = blocks[churn.indices[STEPS - 1]!]!;
    const size = churn.sizes.numbers[STEPS - 1]!;
    if (byte(last, 0) !== 1 || byte(last, size - 1) !== 1) {
      checked.problems.push(`the last block written (${size} B at ${last}) does not read back 1`);
    }
  } else {
    runChurn(checked, 0, blocks, churn.indices, sizes, STEPS);
  }
  if (checked.blocks.size !== live) {
    checked.problems.push(`${checked.blocks.size} live, not ${live}`);
  }
  const own = subject.live?.(peer);
  if (own !== undefined && own !== live) checked.problems.push(`the peer counts ${own} live`);
  checked.checkDisjoint();
  for (const block of blocks) checked.free(block);
  return checked;
}

const results: { workload: string; peer: string; steps: number; problems: string[] }[] = [];
for (const subject of SUBJECTS) {
  const workloads: [string, (peer: Peer<number | bigint, number | bigint>) => string[]][] = [
    ["medium", (peer) => churnRound(subject, peer, data.medium, MEDIUM_LIVE, false).problems],
    [
      "medium-written",
      (peer) => churnRound(subject, peer, data.medium, MEDIUM_LIVE, true).problems,
    ],
    ["large-mixed", (peer) => churnRound(subject, peer, data.large, LARGE_LIVE, false).problems],
  ];
  if (subject.realloc) {
    workloads.push(["realloc-chain", (peer) => {
      const checked = new CheckedPeer(peer);
      runReallocChains(checked, 0, subject.sizes(chain), 64);
      return checked.blocks.size === 0 ? checked.problems : [...checked.problems, "blocks left"];
    }]);
  }
  for (const [workload, round] of workloads) {
    const peer = subject.make();
    const problems = round(peer);
    const own = subject.live?.(peer);
    if (own !== undefined && own !== 0) problems.push(`${own} live after everything was freed`);
    if (subject.memory !== undefined) {
      const before = subject.memory(peer);
      problems.push(...round(peer));
      const after = subject.memory(peer);
      if (after > before) problems.push(`memory grew from ${before} to ${after} B on a second run`);
    }
    (peer as { close?: () => void }).close?.();
    (peer as { release?: () => void }).release?.();
    results.push({ workload, peer: subject.peer, steps: STEPS, problems });
  }
}

console.log(JSON.stringify({ results }));
closeMemset();
closeLibcMalloc();
