// The benchmark's minimal JS allocator is evidence in docs/performance.md: it must be a correct allocator.
import assert from "node:assert/strict";
import { MinimalPeer } from "../bench/_floors.ts";
import { mulberry32 } from "./_random.ts";

/** Block size of a request, as MinimalPeer rounds it: a power of two from 16 to 1024. */
const blockOf = (size: number) => Math.max(16, 2 ** Math.ceil(Math.log2(Math.max(size, 1))));

function assertDisjoint(blocks: Map<number, number>): void {
  const sorted = [...blocks].sort(([a], [b]) => a - b);
  for (let i = 1; i < sorted.length; i++) {
    const [previous, size] = sorted[i - 1]!;
    assert.ok(previous + blockOf(size) <= sorted[i]![0], "blocks overlap");
  }
}

Deno.test("MinimalPeer hands out disjoint blocks and reuses freed ones through its slow paths", () => {
  const peer = new MinimalPeer();
  const random = mulberry32(7);
  const live = new Map<number, number>();
  for (let step = 0; step < 20_000; step++) {
    if (live.size > 0 && random() < 0.45) {
      const [address] = [...live][Math.floor(random() * live.size)]!;
      peer.free(address);
      live.delete(address);
    } else {
      const size = Math.floor(random() * 1024);
      const address = peer.malloc(size);
      assert.equal(address % 16, 0);
      assert.ok(!live.has(address), "a live block handed out twice");
      live.set(address, size);
    }
  }
  assertDisjoint(live);
  assert.equal(peer.live, live.size);
  assert.equal(peer.liveBytes, [...live.values()].reduce((sum, size) => sum + size, 0));
});

Deno.test("MinimalPeer rejects bad sizes and invalid or double frees", () => {
  const peer = new MinimalPeer();
  assert.throws(() => peer.malloc(-1), RangeError);
  assert.throws(() => peer.malloc(1024), RangeError);
  assert.throws(() => peer.malloc(1.5), RangeError);
  const address = peer.malloc(100);
  assert.throws(() => peer.free(address + 16), Error);
  peer.free(address);
  assert.throws(() => peer.free(address), /double free/);
  // Past the 64-block stack: the overflow path checks too.
  const many = Array.from({ length: 100 }, () => peer.malloc(100));
  for (const block of many) peer.free(block);
  assert.throws(() => peer.free(many[99]!), /double free/);
  assert.equal(peer.live, 0);
});

// The peers of bench/large_bench.ts (issue 11), each through a short correctness run of the
// benchmark's own loops (bench/_peer_check.ts), in a process of its own: the npm peers read the
// environment, which the test task does not allow.
const LARGE_PEERS = [
  "libc",
  "pseudo",
  "segregated",
  "first-fit",
  "mmap-allocator",
  "thing",
  "dlmalloc",
  "tlsf",
];
const LARGE_WORKLOADS = ["medium", "medium-written", "large-mixed", "realloc-chain"];

Deno.test("every peer of the issue 11 benchmarks keeps its blocks live, disjoint and freed", async () => {
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-ffi",
      "--allow-env=NODE_ENV,UMBRELLA_ASSERTS,CI",
      new URL("../bench/_peer_check.ts", import.meta.url).pathname,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(output.stderr);
  assert.equal(output.code, 0, stderr);
  const { results } = JSON.parse(new TextDecoder().decode(output.stdout)) as {
    results: { workload: string; peer: string; steps: number; problems: string[] }[];
  };
  for (const peer of LARGE_PEERS) {
    for (const workload of LARGE_WORKLOADS) {
      // dlmalloc as sql.js ships it exports no realloc.
      if (peer === "dlmalloc" && workload === "realloc-chain") continue;
      const result = results.find((r) => r.peer === peer && r.workload === workload);
      assert.ok(result !== undefined, `${peer} was not checked on ${workload}`);
      assert.ok(result.steps > 0);
      assert.deepEqual(result.problems, [], `${peer} on ${workload}`);
    }
  }
});
