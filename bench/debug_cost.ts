// What debug mode costs (`deno task bench:debug`): time per operation on three small workloads,
// the heap without debug against debug mode with its defaults and with stack traces off, and the
// memory each block takes (the inner block or mapping behind it) against the same heap without
// debug. Rounds alternate between the configurations in one process; the table gives medians and,
// in brackets, the range over the rounds. Times are wall clock on a possibly busy machine: read
// the ratios, measured side by side, rather than the nanoseconds.

import { type DebugOptions, PseudoMalloc } from "../mod.ts";

const ROUNDS = Number(Deno.args.find((arg) => arg.startsWith("--rounds="))?.slice(9) ?? 5);

interface Config {
  name: string;
  debug: boolean | DebugOptions;
}

const CONFIGS: Config[] = [
  { name: "no debug", debug: false },
  { name: "debug: true", debug: true },
  { name: "debug, sites: false", debug: { sites: false } },
  { name: "debug, sites: false, quarantine: 0", debug: { sites: false, quarantine: 0 } },
];

interface Workload {
  name: string;
  ops: number;
  run(heap: PseudoMalloc, ops: number): void;
}

/** A seeded xorshift, so every configuration sees the same sizes. */
function sizes(count: number, max: number): Int32Array {
  const out = new Int32Array(count);
  let x = 0x9e3779b9;
  for (let i = 0; i < count; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = 16 + ((x >>> 0) % (max - 16));
  }
  return out;
}
const CHURN_SIZES = sizes(1 << 16, 512);

const WORKLOADS: Workload[] = [
  {
    name: "pair: malloc(64) + free",
    ops: 20_000,
    run(heap, ops) {
      for (let i = 0; i < ops; i++) heap.free(heap.malloc(64));
    },
  },
  {
    name: "churn: 1,000 live, 16-512 B, one freed per malloc",
    ops: 20_000,
    run(heap, ops) {
      const live = new Float64Array(1000);
      for (let i = 0; i < live.length; i++) live[i] = heap.malloc(CHURN_SIZES[i]!);
      for (let i = 0; i < ops; i++) {
        const slot = (i * 7919) % live.length;
        heap.free(live[slot]!);
        live[slot] = heap.malloc(CHURN_SIZES[i & 0xffff]!);
      }
      for (const address of live) heap.free(address);
    },
  },
  {
    name: "large pair: malloc(16 KiB) + free",
    ops: 2_000,
    run(heap, ops) {
      for (let i = 0; i < ops; i++) heap.free(heap.malloc(16384));
    },
  },
];

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

function format(ns: number): string {
  return ns >= 1000 ? `${(ns / 1000).toFixed(2)} µs` : `${ns.toFixed(1)} ns`;
}

/** ns per operation, per configuration and round. */
function timeWorkload(workload: Workload): number[][] {
  const times = CONFIGS.map(() => [] as number[]);
  const heaps = CONFIGS.map((config) =>
    new PseudoMalloc({ debug: config.debug, onLeaks: () => {} })
  );
  for (let round = -1; round < ROUNDS; round++) { // round -1 warms every configuration up
    heaps.forEach((heap, index) => {
      const start = performance.now();
      workload.run(heap, workload.ops);
      const ns = (performance.now() - start) * 1e6 / workload.ops;
      if (round >= 0) times[index]!.push(ns);
    });
  }
  for (const heap of heaps) heap.close();
  return times;
}

const lines: string[] = [];
lines.push(
  `Debug mode's cost: ${ROUNDS} rounds per configuration, alternating, in one process ` +
    `(Deno ${Deno.version.deno}, ${Deno.build.os} ${Deno.build.arch}, --v8-flags=--no-maglev)`,
  "",
  `| workload | ${CONFIGS.map((config) => config.name).join(" | ")} |`,
  `|---|${CONFIGS.map(() => "---").join("|")}|`,
);
for (const workload of WORKLOADS) {
  const times = timeWorkload(workload);
  const base = median(times[0]!);
  const cells = times.map((values, index) => {
    const value = median(values);
    const range = `${format(Math.min(...values))}-${format(Math.max(...values))}`;
    return index === 0
      ? `${format(value)} [${range}]`
      : `${format(value)}: ${(value / base).toFixed(0)}x [${range}]`;
  });
  lines.push(`| ${workload.name} | ${cells.join(" | ")} |`);
}

// Memory: the bytes behind one live block, debug against no debug (whole blocks or mappings).
lines.push(
  "",
  "| request | bytes behind it, no debug | debug (16 B redzones) | extra |",
  "|---|---|---|---|",
);
for (const size of [16, 64, 100, 256, 1000, 4096, 65536]) {
  const [plain, debug] = [false, true].map((mode) => {
    using heap = new PseudoMalloc({ debug: mode, onLeaks: () => {} });
    const count = 64;
    const blocks = Array.from({ length: count }, () => heap.malloc(size));
    const stats = heap.stats();
    for (const address of blocks) heap.free(address);
    return stats.allocatedBytes / count;
  });
  lines.push(`| ${size} B | ${plain} B | ${debug} B | ${(debug! - plain!).toFixed(0)} B |`);
}
console.log(lines.join("\n"));
