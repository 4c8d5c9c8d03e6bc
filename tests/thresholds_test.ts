// The mmapThreshold table (bench/thresholds.ts): a row for every threshold and built-in trace, its
// utilization and system calls those of a replay on a heap with that threshold, and the markdown
// (needs --allow-ffi). No timing is asserted; the rows here are not timed.
import assert from "node:assert/strict";
import { builtinTraces, replay } from "../src/trace/cli.ts";
import {
  heapWith,
  summarizeThresholds,
  thresholdMarkdown,
  thresholdRows,
  THRESHOLDS,
} from "../bench/thresholds.ts";

const traces = builtinTraces({ scale: 0.02 });
const rows = thresholdRows(traces, THRESHOLDS, { timing: false });

Deno.test("thresholdRows measures every threshold on every built-in trace", () => {
  assert.deepEqual(THRESHOLDS, [1024, 4096, 65536, 1048576]);
  assert.deepEqual(
    rows.map((row) => `${row.trace} ${row.threshold}`),
    traces.flatMap((trace) => THRESHOLDS.map((threshold) => `${trace.name} ${threshold}`)),
  );
  for (const row of rows) {
    const heap = heapWith(row.threshold);
    const trace = traces.find((t) => t.name === row.trace)!;
    const result = replay(trace, heap);
    const calls = heap.stats().systemCalls;
    heap.close();
    assert.ok(row.ok, `${row.trace} ${row.threshold}`);
    assert.equal(row.utilization, result.utilization, `${row.trace} ${row.threshold}`);
    assert.equal(row.peakMappedBytes, result.peakMappedBytes);
    assert.deepEqual(row.systemCalls, calls, `${row.trace} ${row.threshold}`);
    assert.ok(Number.isNaN(row.seconds) && Number.isNaN(row.libcSeconds), "not timed");
  }
});

Deno.test("the threshold decides where a request goes: below it a buddy block", () => {
  // 3,000 bytes: a mapping of its own under the 1 KiB threshold, a 4 KiB buddy block under 4 KiB.
  for (const [threshold, mapped] of [[1024, true], [4096, false]] as const) {
    using heap = heapWith(threshold);
    heap.malloc(16); // the first arena
    const arena = heap.stats().systemCalls.mmap;
    heap.malloc(3000);
    assert.equal(heap.stats().systemCalls.mmap > arena, mapped, `threshold ${threshold}`);
  }
  // The realloc trace grows buffers to 64 KiB: with a 1 MiB threshold all of it is in arenas.
  const realloc = rows.filter((row) => row.trace === "realloc");
  const low = realloc.find((row) => row.threshold === 1024)!;
  const high = realloc.find((row) => row.threshold === 1048576)!;
  assert.ok(low.systemCalls.mremap + low.systemCalls.mmap > high.systemCalls.mmap);
  assert.equal(high.systemCalls.mremap, 0);
});

Deno.test("thresholdMarkdown has a row per threshold and trace, and a summary per threshold", () => {
  const lines = thresholdMarkdown(rows).split("\n");
  const body = lines.filter((line) => /^\| (churn|binary-tree|realloc|mixed) \|/.test(line));
  assert.equal(body.length, traces.length * THRESHOLDS.length);
  assert.match(
    body[0]!,
    /^\| churn \| 1 KiB \| n\/a \| n\/a \| [\d.]+ % \| [\d.]+ [KM]iB \| .*mmap/,
  );
  for (const size of ["1 KiB", "4 KiB", "64 KiB", "1 MiB"]) {
    assert.ok(lines.some((line) => line.startsWith(`| ${size} | n/a | `)), size);
  }
  const summary = summarizeThresholds(rows);
  assert.deepEqual(summary.map((s) => s.threshold), THRESHOLDS);
  for (const s of summary) {
    const mine = rows.filter((row) => row.threshold === s.threshold);
    const mean = mine.reduce((sum, row) => sum + row.utilization, 0) / mine.length;
    assert.ok(Math.abs(s.meanUtilization - mean) < 1e-12);
    assert.ok(Number.isNaN(s.vsLibc));
  }
});
