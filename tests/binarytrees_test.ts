// binary-trees on every variant at a small depth: same check lines as the JS objects, nothing left
// live, and a well-formed chart (needs --allow-ffi).
import assert from "node:assert/strict";
import * as pseudo from "../mod.ts";
import { nodeCount, peakNodes } from "../bench/_binarytrees_program.ts";
import {
  markdownTable,
  renderSvg,
  type Row,
  sameChecks,
  systemCallsText,
} from "../bench/_binarytrees_report.ts";
import {
  bumpPoolSize,
  closeLibc,
  runBinaryTrees,
  variants,
} from "../bench/_binarytrees_variants.ts";

const DEPTH = 6;

/** The benchmarks game's published output for depth 10. */
const REFERENCE_10 = [
  "stretch tree of depth 11\t check: 4095",
  "1024\t trees of depth 4\t check: 31744",
  "256\t trees of depth 6\t check: 32512",
  "64\t trees of depth 8\t check: 32704",
  "16\t trees of depth 10\t check: 32752",
  "long lived tree of depth 10\t check: 2047",
];

const all = variants(DEPTH);
const js = all.find((variant) => variant.kind === "js")!;
const expected = runBinaryTrees(js, DEPTH).lines;

Deno.test("runBinaryTrees on JS objects prints the benchmarks game's output", () => {
  assert.deepEqual(runBinaryTrees(js, 10).lines, REFERENCE_10);
  assert.deepEqual(expected, [
    "stretch tree of depth 7\t check: 255",
    "64\t trees of depth 4\t check: 1984",
    "16\t trees of depth 6\t check: 2032",
    "long lived tree of depth 6\t check: 127",
  ]);
});

Deno.test("runBinaryTrees raises a depth below 6 to 6, as the benchmark does", () => {
  assert.deepEqual(runBinaryTrees(js, 2).lines, expected);
});

Deno.test("variants covers every Allocator class mod.ts exports, then libc and JS", () => {
  const exported = Object.entries(pseudo)
    .filter(([, value]) =>
      typeof value === "function" && typeof value.prototype?.malloc === "function" &&
      typeof value.prototype?.stats === "function"
    )
    .map(([name]) => name)
    .sort();
  const family = all.filter((variant) => variant.kind === "allocator").map((v) => v.name);
  assert.deepEqual([...family].sort(), exported);
  assert.ok(family.includes("PseudoMalloc"));
  assert.deepEqual(all.slice(-2).map((variant) => variant.kind), ["libc", "js"]);
});

for (const variant of all.filter((variant) => variant.kind !== "js")) {
  Deno.test(`runBinaryTrees on ${variant.name} prints the same checks as JS objects`, () => {
    const result = runBinaryTrees(variant, DEPTH, { validate: true });
    assert.deepEqual(result.lines, expected);
    assert.ok(result.ms >= 0);
    if (variant.kind === "allocator") {
      const stats = result.stats!;
      assert.equal(stats.liveAllocations, 0, "live allocations after the run");
      assert.equal(stats.liveBytes, 0, "live bytes after the run");
      assert.equal(stats.totalAllocations, nodeCount(DEPTH));
      assert.equal(stats.totalFrees, nodeCount(DEPTH));
      assert.equal(stats.peakLiveBytes, peakNodes(DEPTH) * 16);
      assert.equal(result.memoryBytes, stats.peakMappedBytes);
      assert.ok(stats.peakMappedBytes >= stats.peakLiveBytes);
    }
  });
}

Deno.test("nodeCount and peakNodes count the benchmark's nodes", () => {
  // depth 6: stretch 255 + long-lived 127 + 64 trees of 31 + 16 trees of 127.
  assert.equal(nodeCount(DEPTH), 255 + 127 + 64 * 31 + 16 * 127);
  assert.equal(peakNodes(DEPTH), 255);
  assert.equal(peakNodes(16), 2 ** 18 - 1); // the stretch tree beats 2 × (2^17 - 1)
  assert.ok(bumpPoolSize(16, 32) >= nodeCount(16) * 32);
});

// --- the chart and the table -------------------------------------------------------------------

/** Checks that `svg` is well-formed at the tag level; returns the element names in order. */
function parseTags(svg: string): string[] {
  const names: string[] = [];
  const stack: string[] = [];
  const body = svg.replace(/^<\?xml[^>]*\?>\s*/, "");
  for (
    const match of body.matchAll(/<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/g)
  ) {
    const [, closing, name, , selfClosing] = match;
    if (closing) {
      assert.equal(stack.pop(), name, `</${name}> closes the wrong element`);
    } else {
      names.push(name!);
      if (!selfClosing) stack.push(name!);
    }
  }
  assert.deepEqual(stack, [], "unclosed elements");
  // Nothing tag-like is left once the tags are removed: no stray < or unescaped &.
  const text = body.replace(/<[^>]*>/g, "");
  assert.doesNotMatch(text, /[<>]/);
  assert.doesNotMatch(text, /&(?!(amp|lt|gt|quot|apos);)/);
  return names;
}

function fakeRows(): Row[] {
  return all.map((variant, i) => ({
    variant: variant.name,
    kind: variant.kind,
    matches: true,
    result: {
      variant: variant.name,
      kind: variant.kind,
      lines: expected,
      ms: 100 * (i + 1),
      memoryBytes: variant.kind === "libc" ? undefined : 1 << 20,
      memorySource: "test",
      nodes: nodeCount(DEPTH),
      totalNodes: nodeCount(DEPTH),
      complete: true,
    },
  }));
}

Deno.test("renderSvg draws a well-formed chart with one bar per variant", () => {
  const rows = fakeRows();
  rows.push({ variant: "Broken <& Co>", kind: "allocator", error: "boom" });
  const svg = renderSvg(rows, "binary-trees <test> & co");
  assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  const names = parseTags(svg);
  assert.equal(names[0], "svg");
  assert.equal(names.filter((name) => name === "svg").length, 1);
  assert.equal([...svg.matchAll(/<rect class="bar"/g)].length, all.length);
  for (const variant of all) assert.ok(svg.includes(`>${variant.name}</text>`), variant.name);
  assert.match(svg, /time \(ms; shorter is faster\)/);
  assert.ok(svg.includes("binary-trees &lt;test&gt; &amp; co"));
});

Deno.test("renderSvg switches to a log axis when times differ by more than 20×", () => {
  const rows = fakeRows();
  rows[0]!.result!.ms = 10;
  rows[1]!.result!.ms = 50_000;
  const svg = renderSvg(rows, "wide");
  parseTags(svg);
  assert.match(svg, /logarithmic/);
  const widths = [...svg.matchAll(/<rect class="bar" x="[\d.]+" y="[\d.]+" width="([\d.]+)"/g)]
    .map((match) => Number(match[1]));
  assert.equal(widths.length, all.length);
  assert.ok(widths.every((width) => width > 0));
  assert.deepEqual(widths, [...widths].sort((a, b) => a - b), "bars sorted fastest first");
});

Deno.test("renderSvg on real results has one bar per variant", () => {
  const rows: Row[] = all.map((variant) => {
    const result = runBinaryTrees(variant, DEPTH);
    return { variant: variant.name, kind: variant.kind, result, matches: true };
  });
  const svg = renderSvg(rows, "binary-trees, depth 6");
  parseTags(svg);
  assert.equal([...svg.matchAll(/<rect class="bar"/g)].length, all.length);
});

Deno.test("markdownTable lists every variant with its ratio to libc, failures last", () => {
  const rows = fakeRows();
  rows.unshift({ variant: "Broken", kind: "allocator", error: "OutOfMemoryError: full" });
  const table = markdownTable(rows).split("\n");
  assert.equal(table.length, 2 + rows.length);
  assert.match(table[0]!, /^\| variant \| time \(ms\) \| × libc time \|/);
  assert.match(table.at(-1)!, /^\| Broken \| failed \|.*OutOfMemoryError: full/);
  const libcLine = table.find((line) => line.startsWith("| libc"))!;
  assert.match(libcLine, /\| 1\.00 \| n\/a \|/);
});

Deno.test("markdownTable shows the system calls of each allocator's run, n/a for libc and JS", () => {
  const rows = all.map((variant): Row => ({
    variant: variant.name,
    kind: variant.kind,
    result: runBinaryTrees(variant, DEPTH),
  }));
  const table = markdownTable(rows).split("\n");
  assert.match(table[0]!, /\| checks \| system calls \|$/);
  const cell = (name: string) =>
    table.find((line) => line.startsWith(`| ${name} |`))!.split(" | ").at(-1);
  for (const row of rows) {
    const calls = row.result!.stats?.systemCalls;
    if (row.kind !== "allocator") {
      assert.equal(calls, undefined);
      assert.equal(cell(row.variant), "n/a |");
      continue;
    }
    // The cell names every kind of call made, with its count, and no other.
    const made = Object.entries(calls!).filter(([, n]) => n > 0);
    assert.equal(
      cell(row.variant),
      `${
        made.length === 0
          ? "none"
          : made.map(([kind, n]) => `${n.toLocaleString("en")} ${kind}`).join(", ")
      } |`,
    );
  }
  // A mapping per node, each given back: one mmap and one munmap per malloc and free.
  const mmap = rows.find((row) => row.variant === "MmapAllocator")!.result!;
  assert.equal(mmap.stats!.systemCalls.mmap, nodeCount(DEPTH));
  assert.equal(mmap.stats!.systemCalls.munmap, nodeCount(DEPTH));
  assert.equal(
    systemCallsText(mmap),
    `${nodeCount(DEPTH).toLocaleString("en")} mmap, ${
      nodeCount(DEPTH).toLocaleString("en")
    } munmap`,
  );
  // One buddy arena serves every node of the run.
  const buddy = rows.find((row) => row.variant === "PseudoMalloc")!.result!.stats!.systemCalls;
  assert.ok(buddy.mmap <= 2 && buddy.munmap === 0, JSON.stringify(buddy));
  assert.match(systemCallsText({ ...mmap, complete: false }), /^stopped early: [\d,]+ mmap/);
});

Deno.test("closeLibc closes the library the libc variant opened", () => {
  closeLibc();
  closeLibc();
});

Deno.test("runBinaryTrees with budgetMs stops early, frees every node and reports a partial run", () => {
  const pseudoMalloc = all.find((variant) => variant.name === "PseudoMalloc")!;
  const result = runBinaryTrees(pseudoMalloc, 10, { budgetMs: 0, validate: true });
  assert.equal(result.complete, false);
  assert.ok(result.nodes < result.totalNodes);
  assert.equal(result.totalNodes, nodeCount(10));
  assert.deepEqual(result.lines, REFERENCE_10.slice(0, result.lines.length));
  assert.ok(sameChecks(result, REFERENCE_10));
  assert.equal(result.stats!.liveAllocations, 0);
  assert.equal(result.stats!.totalAllocations, result.nodes);
  const table = markdownTable([{ variant: "PseudoMalloc", kind: "allocator", result }]);
  assert.match(table, /≥ [\d.]+ \(stopped after \d+% of the nodes; ≈ [\d.]+ at that rate\)/);
  const svg = renderSvg([{ variant: "PseudoMalloc", kind: "allocator", result }], "stopped");
  parseTags(svg);
  assert.match(svg, /≥ [\d.]+ ms \(stopped\)/);
});

Deno.test("sameChecks compares a complete run in full and a stopped run up to its last line", () => {
  const result = runBinaryTrees(js, 10);
  assert.ok(sameChecks(result, REFERENCE_10));
  assert.ok(!sameChecks({ ...result, lines: REFERENCE_10.slice(0, 3) }, REFERENCE_10));
  assert.ok(
    sameChecks({ ...result, lines: REFERENCE_10.slice(0, 3), complete: false }, REFERENCE_10),
  );
  assert.ok(!sameChecks({ ...result, lines: ["x"], complete: false }, REFERENCE_10));
});
