// The trace replayer: parser, generators, the checking replay (against deliberately broken
// allocators), utilization arithmetic, timing, and every allocator on every built-in trace.
import assert from "node:assert/strict";
import {
  type Allocator,
  type AllocatorStats,
  type BumpAllocator,
  MmapAllocator,
  OutOfMemoryError,
  PseudoMalloc,
} from "../mod.ts";
import {
  ALLOCATOR_NAMES,
  BUILTIN_TRACES,
  builtinTraces,
  configureAllocator,
  formatTrace,
  generateTrace,
  LibcAllocator,
  measureLibcFootprint,
  OP_ALLOC,
  OP_FREE,
  OP_REALLOC,
  parseTrace,
  replay,
  type ReplayResult,
  summarize,
  timeLibcReplay,
  timeReplay,
  type Trace,
  TraceBuilder,
  type TraceRun,
  TraceSyntaxError,
} from "../src/trace/cli.ts";

// --- parser --------------------------------------------------------------------------------------

const GOOD = `20000 3 6 1
a 0 100
a 1 24
r 0 300
f 1
f -1
f 0
`;

Deno.test("parseTrace reads a one-line header and every kind of operation", () => {
  const trace = parseTrace(GOOD, "good.rep");
  assert.equal(trace.name, "good.rep");
  assert.equal(trace.suggestedHeapSize, 20000);
  assert.equal(trace.idCount, 3);
  assert.equal(trace.weight, 1);
  assert.equal(trace.length, 6);
  assert.deepEqual([...trace.kinds], [OP_ALLOC, OP_ALLOC, OP_REALLOC, OP_FREE, OP_FREE, OP_FREE]);
  assert.deepEqual([...trace.ids], [0, 1, 0, 1, -1, 0]);
  assert.deepEqual([...trace.sizes], [100, 24, 300, 0, 0, 0]);
  assert.deepEqual([...trace.lines], [2, 3, 4, 5, 6, 7]);
  assert.equal(trace.idLimit, 2);
  assert.equal(trace.maxRequest, 300);
  assert.equal(trace.peakLiveBytes, 324);
  assert.equal(trace.peakOp, 2);
  assert.equal(trace.requestedBytes, 424);
});

Deno.test("parseTrace takes CRLF, a header over four lines, blank lines, whitespace and comments", () => {
  const text = "# a comment\r\n  20000\r\n3\r\n\r\n6 \r\n1\t\r\n" +
    "a 0 100\r\n\r\na  1\t24  \r\nr 0 300\r\nf 1\r\nf -1\r\nf 0";
  const trace = parseTrace(text, "crlf.rep");
  const reference = parseTrace(GOOD, "good.rep");
  assert.deepEqual(trace.kinds, reference.kinds);
  assert.deepEqual(trace.ids, reference.ids);
  assert.deepEqual(trace.sizes, reference.sizes);
  assert.deepEqual([...trace.lines], [7, 9, 10, 11, 12, 13]);
  assert.equal(trace.peakLiveBytes, 324);
});

Deno.test("parseTrace accepts a trace with no operations", () => {
  const trace = parseTrace("0 0 0 0\n", "empty-ops.rep");
  assert.equal(trace.length, 0);
  assert.equal(trace.peakLiveBytes, 0);
  assert.equal(trace.peakOp, -1);
});

/** Asserts that parsing fails on `line` with a reason matching `pattern`. */
function assertSyntax(text: string, line: number, pattern: RegExp): void {
  assert.throws(
    () => parseTrace(text, "bad.rep"),
    (error: unknown) => {
      assert.ok(error instanceof TraceSyntaxError, String(error));
      assert.equal(error.file, "bad.rep");
      assert.equal(error.line, line, error.message);
      assert.match(error.reason, pattern);
      assert.equal(error.message, `bad.rep:${line}: ${error.reason}`);
      return true;
    },
  );
}

Deno.test("parseTrace reports malformed lines with their line numbers", () => {
  assertSyntax("", 1, /empty trace/);
  assertSyntax("\n\n", 1, /empty trace/);
  assertSyntax("100 2\n", 1, /ends after 2 of its four numbers/);
  assertSyntax("100 2 1 1 7\na 0 1\n", 1, /more than four numbers/);
  assertSyntax("100\nx\n", 2, /number of ids .*found "x"/);
  assertSyntax("100 2 1 1\n\nx 0 8\n", 3, /unknown operation "x"/);
  assertSyntax("100 2 1 1\na 0\n", 2, /missing argument: expected "a <id> <bytes>"/);
  assertSyntax("100 2 1 1\nf 0 8\n", 2, /unexpected "8": expected "f <id>"/);
  assertSyntax("100 2 1 1\na zero 8\n", 2, /id "zero" is not an integer/);
  assertSyntax("100 2 1 1\na 0 -8\n", 2, /size "-8" is not a non-negative integer/);
  assertSyntax("100 2 1 1\na 0 8.5\n", 2, /size "8.5"/);
  assertSyntax("100 2 1 1\na 0 99999999999999999999\n", 2, /too large/);
  assertSyntax("100 2 1 1\na 2 8\n", 2, /id 2 is out of range: the header declares 2 ids/);
  assertSyntax("100 2 1 1\na -1 8\n", 2, /can only be freed/);
  assertSyntax("100 2 1 1\nf -2\n", 2, /negative/);
  assertSyntax("100 2 1 1\r\na 0 8\r\na 1 8\r\n", 3, /more operations than the 1/);
  assertSyntax("100 2 3 1\na 0 8\nf 0\n\n", 3, /declares 3 operations, the file has 2/);
});

Deno.test("parseTrace reports operations the trace semantics forbid", () => {
  assertSyntax("0 2 2 1\na 0 8\na 0 8\n", 3, /id 0 is allocated while it is live/);
  assertSyntax("0 2 1 1\nf 1\n", 2, /id 1 is freed but was never allocated.*f -1/);
  assertSyntax("0 2 3 1\na 0 8\nf 0\nf 0\n", 4, /id 0 is freed after it was freed on line 3/);
  assertSyntax("0 2 3 1\na 0 8\nr 0 0\nr 0 8\n", 4, /reallocated after it was freed on line 3/);
  assertSyntax("0 2 1 1\nr 1 8\n", 2, /id 1 is reallocated but was never allocated/);
  // An id may be used again once freed.
  assert.equal(parseTrace("0 1 3 1\na 0 8\nf 0\na 0 16\n", "reuse.rep").length, 3);
});

Deno.test("formatTrace writes what parseTrace reads, with the lines a generated trace records", () => {
  const trace = generateTrace("mixed", { scale: 0.02 });
  const again = parseTrace(formatTrace(trace), "mixed.rep");
  assert.deepEqual(again.kinds, trace.kinds);
  assert.deepEqual(again.ids, trace.ids);
  assert.deepEqual(again.sizes, trace.sizes);
  assert.deepEqual(again.lines, trace.lines);
  assert.equal(again.peakLiveBytes, trace.peakLiveBytes);
  assert.equal(again.peakOp, trace.peakOp);
});

// --- generators ----------------------------------------------------------------------------------

Deno.test("built-in traces are seeded, valid and of the documented sizes", () => {
  const traces = builtinTraces();
  assert.deepEqual(traces.map((t) => t.name), [...BUILTIN_TRACES]);
  for (const trace of traces) {
    assert.ok(trace.length >= 80_000 && trace.length <= 140_000, `${trace.name}: ${trace.length}`);
    assert.ok(trace.peakLiveBytes > 0);
    // Every trace frees everything it allocates.
    const live = new Set<number>();
    for (let i = 0; i < trace.length; i++) {
      const id = trace.ids[i]!;
      if (trace.kinds[i] === OP_FREE) live.delete(id);
      else if (trace.kinds[i] === OP_REALLOC && trace.sizes[i] === 0) live.delete(id);
      else live.add(id);
    }
    assert.equal(live.size, 0, `${trace.name} leaves blocks live`);
  }
  const again = generateTrace("churn");
  assert.deepEqual(again.sizes, traces[0]!.sizes);
  assert.notDeepEqual(generateTrace("churn", { seed: 2 }).sizes, again.sizes);
  assert.ok(traces.find((t) => t.name === "realloc")!.kinds.includes(OP_REALLOC));
  assert.ok(traces.find((t) => t.name === "mixed")!.maxRequest > 4096);
  assert.throws(() => generateTrace("nope"), RangeError);
  assert.throws(() => generateTrace("churn", { scale: 0 }), RangeError);
});

// --- broken allocators ---------------------------------------------------------------------------

/** Forwards every call to a PseudoMalloc; subclasses break one thing. */
class Wrapper implements Allocator {
  inner = new PseudoMalloc();
  calls = 0;
  malloc(size: number): number {
    this.calls++;
    return this.inner.malloc(size);
  }
  calloc(count: number, size: number): number {
    return this.inner.calloc(count, size);
  }
  realloc(address: number, size: number): number {
    return this.inner.realloc(address, size);
  }
  free(address: number): void {
    this.inner.free(address);
  }
  usableSize(address: number): number {
    return this.inner.usableSize(address);
  }
  bytes(address: number, length?: number): Uint8Array {
    return this.inner.bytes(address, length);
  }
  stats(): AllocatorStats {
    return this.inner.stats();
  }
  validate(): void {
    this.inner.validate();
  }
  close(): void {
    this.inner.close();
  }
  [Symbol.dispose](): void {
    this.close();
  }
}

/** The 5th malloc returns the block of the 4th again: two live payloads overlap. */
class Overlapping extends Wrapper {
  last = 0;
  override malloc(size: number): number {
    const address = super.malloc(size);
    if (this.calls === 5) return this.last;
    this.last = address;
    return address;
  }
  override usableSize(address: number): number {
    return Math.max(super.usableSize(address), 1 << 20); // so that only the overlap is at fault
  }
}

/** A realloc that moves every block and copies all but the 8th byte. */
class LossyRealloc extends Wrapper {
  override realloc(address: number, size: number): number {
    if (address === 0 || size === 0) return super.realloc(address, size);
    const oldSize = this.inner.usableSize(address);
    const moved = this.inner.malloc(size);
    const n = Math.min(oldSize, size);
    const to = this.inner.bytes(moved, n);
    to.set(this.inner.bytes(address, n));
    if (n > 7) to[7] = to[7]! ^ 0xff;
    this.inner.free(address);
    return moved;
  }
}

/** The first free scribbles on the first byte of the most recently allocated block. */
class Scribbler extends Wrapper {
  last = 0;
  done = false;
  override malloc(size: number): number {
    const address = super.malloc(size);
    if (size > 0) this.last = address;
    return address;
  }
  override free(address: number): void {
    super.free(address);
    if (!this.done && this.last !== 0 && this.last !== address) {
      this.done = true;
      const view = this.inner.bytes(this.last, 1);
      view[0] = view[0]! ^ 0x55;
    }
  }
}

/** Returns addresses 8 bytes past the block. */
class Misaligned extends Wrapper {
  override malloc(size: number): number {
    return super.malloc(size) + 8;
  }
}

/** Claims one more live block than it has. */
class Miscounting extends Wrapper {
  override stats(): AllocatorStats {
    const stats = super.stats();
    return { ...stats, liveAllocations: stats.liveAllocations + 1 };
  }
}

/** Returns 0 (NULL) for a 1000-byte request instead of throwing. */
class NullReturning extends Wrapper {
  override malloc(size: number): number {
    return size === 1000 ? 0 : super.malloc(size);
  }
}

/** Throws on the third malloc. */
class Throwing extends Wrapper {
  override malloc(size: number): number {
    if (this.calls === 2) throw new Error("boom");
    return super.malloc(size);
  }
}

function run(allocator: Allocator, trace: Trace, options = {}): ReplayResult {
  try {
    return replay(trace, allocator, options);
  } finally {
    allocator.close();
  }
}

const SMALL = parseTrace(
  `0 8 14 1
a 0 64
a 1 200
a 2 1000
a 3 48
a 4 48
r 1 400
f 0
r 1 100
f 3
f 4
a 5 16
f 2
f 1
f 5
`,
  "small.rep",
);

Deno.test("replay passes a correct allocator and reports the trace's peak", () => {
  const result = run(new Wrapper(), SMALL);
  assert.ok(result.ok, result.violation?.message);
  assert.equal(result.operations, 14);
  assert.equal(result.peakLiveBytes, 64 + 400 + 1000 + 48 + 48);
  assert.ok(result.utilization > 0 && result.utilization < 1);
  assert.equal(result.stats?.liveAllocations, 0);
});

/** Asserts a failed replay of `kind` at `line`, with a message matching `pattern`. */
function assertViolation(result: ReplayResult, kind: string, line: number, pattern: RegExp) {
  assert.equal(result.ok, false);
  assert.ok(result.violation);
  assert.equal(result.violation.kind, kind, result.violation.message);
  assert.equal(result.violation.line, line, result.violation.message);
  assert.match(result.violation.message, pattern);
  assert.ok(result.violation.message.startsWith(`small.rep:${line} (`));
}

Deno.test("replay catches an allocator that returns overlapping blocks", () => {
  const result = run(new Overlapping(), SMALL);
  assertViolation(result, "overlap", 6, /malloc\(48\) returned .* overlaps id 3's block .*line 5/);
  assert.equal(result.operations, 4);
});

Deno.test("replay catches a realloc that does not keep the old contents", () => {
  const result = run(new LossyRealloc(), SMALL);
  assertViolation(result, "realloc-prefix", 7, /did not keep the first 200 bytes .* byte 7 is/);
});

Deno.test("replay catches a realloc corruption in ends-only tagging too", () => {
  const result = run(new LossyRealloc(), SMALL, { tag: "ends" });
  assertViolation(result, "realloc-prefix", 7, /byte 7 is/);
});

Deno.test("replay catches writes into live payloads", () => {
  const result = run(new Scribbler(), SMALL);
  // The first free (line 8) hits id 4's block; found when id 4 is freed on line 11.
  assertViolation(
    result,
    "corrupted",
    11,
    /payload of id 4's block .* overwritten before this free: byte 0/,
  );
});

Deno.test("replay catches misaligned, null and thrown results and lying counters", () => {
  assertViolation(run(new Misaligned(), SMALL), "alignment", 2, /not aligned to 16 bytes/);
  assertViolation(run(new NullReturning(), SMALL), "null", 4, /malloc\(1000\) returned 0/);
  assertViolation(run(new Throwing(), SMALL), "throw", 4, /malloc\(1000\) threw Error: boom/);
  const miscounting = run(new Miscounting(), SMALL);
  assert.equal(miscounting.violation?.kind, "stats");
  assert.match(miscounting.violation!.message, /reports 1 live blocks .* the trace has 0/);
});

Deno.test("replay handles zero-byte blocks, realloc to 0 and free(NULL)", () => {
  const trace = parseTrace("0 4 8 1\na 0 0\na 1 0\na 2 10\nr 2 0\nf -1\nf 0\na 3 5\nf 1\n", "z");
  using heap = new PseudoMalloc();
  const result = replay(trace, heap);
  assert.ok(result.ok, result.violation?.message);
  assert.equal(heap.stats().liveAllocations, 0); // id 3 was freed by the replay at the end
});

// --- utilization ---------------------------------------------------------------------------------

Deno.test("utilization: peak live payload over peak mapped bytes, by hand", () => {
  // Live bytes after each operation: 100, 300, 200, 250, 450, 50, 0. The peak, 450, comes after the
  // realloc (operation 4): blocks 2 (50 bytes) and 1 (400 bytes).
  const trace = parseTrace("0 3 7 1\na 0 100\na 1 200\nf 0\na 2 50\nr 1 400\nf 1\nf 2\n", "u");
  assert.equal(trace.peakLiveBytes, 450);
  assert.equal(trace.peakOp, 4);
  assert.equal(trace.requestedBytes, 750);
  assert.equal(trace.maxRequest, 400);

  // A heap that reports 900 mapped bytes at its peak: 50 %.
  class Fixed extends Wrapper {
    override stats(): AllocatorStats {
      return { ...super.stats(), peakMappedBytes: 900 };
    }
  }
  const fixed = run(new Fixed(), trace);
  assert.ok(fixed.ok);
  assert.equal(fixed.peakMappedBytes, 900);
  assert.equal(fixed.utilization, 0.5);

  // MmapAllocator maps each block on its own pages: at most two blocks of one page each are live.
  const mmap = new MmapAllocator();
  const page = mmap.pageSize;
  const result = run(mmap, trace);
  assert.ok(result.ok);
  assert.equal(result.peakMappedBytes, 2 * page);
  assert.equal(result.utilization, 450 / (2 * page));
});

Deno.test("atPeak is called once, right after the peak operation", () => {
  const trace = parseTrace("0 3 7 1\na 0 100\na 1 200\nf 0\na 2 50\nr 1 400\nf 1\nf 2\n", "u");
  const seen: [number, number][] = [];
  using heap = new PseudoMalloc();
  const result = replay(trace, heap, {
    atPeak: (allocator, op) => seen.push([op, allocator.stats().liveBytes]),
  });
  assert.ok(result.ok);
  assert.deepEqual(seen, [[4, 450]]);
});

Deno.test("atPeak sees the heap at its fullest: the moment the CLI's --svg draws", () => {
  // Live after each operation: {0}, {0, 1}, {0 (300 B), 1} (the peak), {0}, {}.
  const trace = parseTrace("0 2 5 1\na 0 100\na 1 24\nr 0 300\nf 1\nf 0\n", "svg");
  let svg = "";
  using heap = new PseudoMalloc();
  const result = replay(trace, heap, {
    atPeak: (allocator) => {
      svg = (allocator as PseudoMalloc).heapMap({ format: "svg" });
    },
  });
  assert.ok(result.ok);
  assert.ok(svg.startsWith("<svg") && svg.trimEnd().endsWith("</svg>"));
  assert.equal(svg.match(/class="block live"/g)?.length, 2);
});

Deno.test("TraceBuilder enforces the semantics and computes the peak", () => {
  const builder = new TraceBuilder();
  builder.alloc(3, 10);
  assert.throws(() => builder.alloc(3, 10), /live/);
  assert.throws(() => builder.free(4), /never allocated/);
  assert.throws(() => builder.alloc(-2, 1), /not an integer/);
  assert.throws(() => builder.alloc(5, 1.5), /size/);
  builder.realloc(3, 30);
  builder.free(-1);
  builder.free(3);
  const trace = builder.build("built");
  assert.equal(trace.idLimit, 4);
  assert.equal(trace.peakLiveBytes, 30);
  assert.deepEqual([...trace.lines], [2, 3, 4, 5]);
});

// --- every allocator, every built-in trace -------------------------------------------------------

const SMALL_BUILTINS = builtinTraces({ scale: 0.05 });

for (const name of ALLOCATOR_NAMES) {
  Deno.test(`${name} replays every built-in trace cleanly`, () => {
    for (const trace of SMALL_BUILTINS) {
      const setup = configureAllocator(name, trace);
      const result = run(setup.create(), trace);
      assert.ok(result.ok, `${trace.name}: ${result.violation?.message}`);
      assert.equal(result.operations, trace.length);
      assert.ok(
        result.utilization > 0 && result.utilization <= 1,
        `${trace.name}: utilization ${result.utilization}`,
      );
    }
  });
}

Deno.test("libc replays every built-in trace cleanly; its footprint is estimated", () => {
  for (const trace of SMALL_BUILTINS) {
    const result = run(new LibcAllocator(), trace);
    assert.ok(result.ok, `${trace.name}: ${result.violation?.message}`);
    assert.ok(Number.isNaN(result.peakMappedBytes));
    assert.ok(Number.isNaN(result.utilization));
  }
  const footprint = measureLibcFootprint(SMALL_BUILTINS[3]!);
  if (Deno.build.os === "linux") {
    assert.ok(footprint && footprint.samples >= 64);
    assert.equal(footprint.peakBytes, Math.max(footprint.sampledBytes, footprint.chunkBytes));
    // Each live block's chunk: its size plus 8, rounded up to 16, at least 32.
    assert.ok(footprint.chunkBytes >= SMALL_BUILTINS[3]!.peakLiveBytes);
  }
});

Deno.test("configureAllocator sizes cells to the largest request and the bump pool to the trace", () => {
  const trace = parseTrace("0 3 5 1\na 0 100\na 1 1000\nf 0\na 2 20\nr 2 40\n", "c");
  using cells = configureAllocator("cell", trace).create() as unknown as
    & { cellSize: number }
    & Allocator;
  assert.equal(cells.cellSize, 1008);
  const bump = configureAllocator("bump", trace);
  assert.match(bump.note!, /pool of 4096 bytes/); // 1,264 bytes used, rounded to a page
  assert.ok(run(bump.create(), trace).ok);
  assert.throws(() => configureAllocator("nope", trace), RangeError);
  const huge = parseTrace("0 1 1 1\na 0 1000000000\n", "h");
  assert.throws(() => configureAllocator("cell", huge), /CellAllocator cannot serve h/);
});

Deno.test("timeReplay and timeLibcReplay measure fresh runs", () => {
  const trace = SMALL_BUILTINS[0]!;
  let created = 0;
  const timing = timeReplay(trace, () => {
    created++;
    return new PseudoMalloc();
  }, { minTime: 0, minRuns: 3 });
  assert.equal(timing.runs, 3);
  assert.equal(created, 3);
  assert.ok(timing.opsPerSecond > 0 && timing.bestSeconds <= timing.totalSeconds);
  const libc = timeLibcReplay(trace, { minTime: 0, minRuns: 2 });
  assert.equal(libc.runs, 2);
  assert.ok(libc.opsPerSecond > 0);
});

Deno.test("timeReplay on a warm heap replays on one allocator, every block freed each time", () => {
  // binary-tree has no realloc, so every replay makes exactly its mallocs.
  const trace = SMALL_BUILTINS.find((t) => t.name === "binary-tree")!;
  let mallocs = 0;
  for (let i = 0; i < trace.length; i++) if (trace.kinds[i] === OP_ALLOC) mallocs++;
  assert.ok(trace.kinds.includes(OP_FREE) && !trace.kinds.includes(OP_REALLOC));
  const heaps: PseudoMalloc[] = [];
  const seen: { runs: number; allocations: number; frees: number; live: number }[] = [];
  let after = 0;
  const timing = timeReplay(trace, () => {
    const heap = new PseudoMalloc();
    heaps.push(heap);
    return heap;
  }, {
    heap: "warm",
    minTime: 0,
    minRuns: 3,
    afterReplay: (allocator) => {
      assert.equal(allocator, heaps[0]);
      assert.equal(allocator.stats().liveAllocations, 0); // the leftovers were freed first
      after++;
    },
    onRun: (runs) => {
      const stats = heaps[0]!.stats();
      seen.push({
        runs,
        allocations: stats.totalAllocations,
        frees: stats.totalFrees,
        live: stats.liveAllocations,
      });
    },
  });
  assert.equal(timing.heap, "warm");
  assert.equal(timing.runs, 3);
  assert.equal(heaps.length, 1, "one allocator for every replay");
  assert.equal(after, 4, "the warm-up replay and the 3 timed ones");
  // After timed replay k the heap has served k + 1 replays (the warm-up first), and nothing is live.
  assert.deepEqual(
    seen,
    [1, 2, 3].map((runs) => ({
      runs,
      allocations: (runs + 1) * mallocs,
      frees: (runs + 1) * mallocs,
      live: 0,
    })),
  );
  assert.throws(() => heaps[0]!.malloc(16), /closed/i, "closed after the last replay");

  const fresh = timeReplay(trace, () => new PseudoMalloc(), { minTime: 0, minRuns: 2 });
  assert.equal(fresh.heap, "fresh");
  const libc = timeLibcReplay(trace, { minTime: 0, minRuns: 2, heap: "warm" });
  assert.equal(libc.heap, "warm");
  assert.equal(libc.runs, 2);
  assert.ok(libc.opsPerSecond > 0 && timing.opsPerSecond > 0);
});

Deno.test("a warm BumpAllocator is reset after each replay, so its one-replay pool suffices", () => {
  for (const trace of SMALL_BUILTINS) {
    const setup = configureAllocator("bump", trace);
    let resets = 0;
    const timing = timeReplay(trace, setup.create, {
      heap: "warm",
      minTime: 0,
      minRuns: 2,
      afterReplay: (allocator) => {
        resets++;
        setup.afterReplay!(allocator);
        assert.equal((allocator as BumpAllocator).stats().usedBytes, 0);
      },
    });
    assert.equal(timing.runs, 2, trace.name);
    assert.equal(resets, 3, trace.name);
  }
  // Without the reset, the second replay does not fit the pool.
  const trace = SMALL_BUILTINS[0]!;
  assert.throws(
    () => timeReplay(trace, configureAllocator("bump", trace).create, { heap: "warm", minRuns: 1 }),
    OutOfMemoryError,
  );
});

Deno.test("LibcAllocator rejects foreign frees instead of crashing", () => {
  using libc = new LibcAllocator();
  const address = libc.malloc(24);
  libc.bytes(address, 24).fill(1);
  assert.throws(() => libc.free(address + 16), /not a live libc block/);
  assert.equal(libc.realloc(address, 0), 0);
  assert.equal(libc.stats().liveAllocations, 0);
});

// --- summary -------------------------------------------------------------------------------------

Deno.test("summarize pools throughput and averages utilization", () => {
  const row = (allocator: string, utilization: number, seconds: number) => ({
    allocator,
    className: allocator,
    ok: true,
    utilization,
    approximate: allocator === "libc",
    peakMappedBytes: 1,
    opsPerSecond: 0,
    seconds,
    vsLibc: NaN,
  });
  const traces: TraceRun[] = [
    {
      name: "a",
      source: "file",
      operations: 1000,
      ids: 1,
      peakLiveBytes: 1,
      maxRequest: 1,
      runs: [row("libc", 0.8, 0.001), row("x", 0.5, 0.002)],
    },
    {
      name: "b",
      source: "file",
      operations: 3000,
      ids: 1,
      peakLiveBytes: 1,
      maxRequest: 1,
      runs: [row("libc", 0.6, 0.003), row("x", 0.25, 0.002)],
    },
  ];
  const [libc, x] = summarize(traces);
  assert.equal(libc!.allocator, "libc");
  assert.ok(libc!.approximate);
  assert.equal(libc!.opsPerSecond, 4000 / 0.004);
  assert.equal(x!.meanUtilization, 0.375);
  assert.equal(x!.opsPerSecond, 4000 / 0.004);
  assert.equal(x!.vsLibc, 1);
  assert.equal(x!.passed, 2);
});
