// sqliteMemMethods: the struct and its members called the way SQLite calls them, every misuse and
// failure answered without throwing, and the system SQLite (libsqlite3.so.0) running a 20,000-row
// workload on the heap in child processes (sqlite3_config works once per process, before
// sqlite3_initialize): the same results as SQLite's own allocator, nothing live after
// sqlite3_shutdown, SQLITE_NOMEM when the heap is exhausted. Needs --allow-ffi and --allow-run.
import assert from "node:assert/strict";
import {
  FirstFitAllocator,
  PseudoMalloc,
  SQLITE_MEM_METHODS_DEFINITIONS,
  type SqliteMemFunction,
  sqliteMemMethods,
  type SqliteMemMethodsOptions,
} from "../mod.ts";
import { mulberry32 } from "./_random.ts";

const defs = SQLITE_MEM_METHODS_DEFINITIONS;

let NO_SQLITE = false;
try {
  Deno.dlopen("libsqlite3.so.0", { sqlite3_libversion: { parameters: [], result: "pointer" } })
    .close();
} catch {
  NO_SQLITE = true;
  console.warn("sqlite_allocator_test: no system SQLite (libsqlite3.so.0): SQLite runs skipped");
}

/** The members as SQLite sees them, callable from JavaScript. */
function fromSqlite(methods: ReturnType<typeof sqliteMemMethods>) {
  const c = methods.callbacks;
  return {
    xMalloc: new Deno.UnsafeFnPointer(c.xMalloc.pointer, defs.xMalloc),
    xFree: new Deno.UnsafeFnPointer(c.xFree.pointer, defs.xFree),
    xRealloc: new Deno.UnsafeFnPointer(c.xRealloc.pointer, defs.xRealloc),
    xSize: new Deno.UnsafeFnPointer(c.xSize.pointer, defs.xSize),
    xRoundup: new Deno.UnsafeFnPointer(c.xRoundup.pointer, defs.xRoundup),
    xInit: new Deno.UnsafeFnPointer(c.xInit.pointer, defs.xInit),
    xShutdown: new Deno.UnsafeFnPointer(c.xShutdown.pointer, defs.xShutdown),
  };
}

/** An onError that collects, and its log. */
function collector() {
  const log: { name: string; source: SqliteMemFunction }[] = [];
  const options: SqliteMemMethodsOptions = {
    onError: (error, source) => log.push({ name: error.name, source }),
  };
  return { log, options };
}

Deno.test("sqliteMemMethods: the struct holds the seven members in SQLite's order, then NULL", () => {
  using heap = new PseudoMalloc();
  const methods = sqliteMemMethods(heap);
  const c = methods.callbacks;
  const order = [c.xMalloc, c.xFree, c.xRealloc, c.xSize, c.xRoundup, c.xInit, c.xShutdown];
  assert.equal(methods.struct.length, 8);
  order.forEach((callback, i) => {
    assert.equal(methods.struct[i], BigInt(Deno.UnsafePointer.value(callback.pointer)), `${i}`);
  });
  assert.equal(methods.struct[7], 0n); // pAppData
  // The pointer is the struct's own memory, as C reads it.
  const view = new Deno.UnsafePointerView(methods.pointer);
  for (let i = 0; i < 8; i++) assert.equal(view.getBigUint64(i * 8), methods.struct[i]);
  methods.close();
  assert.equal(methods.closed, true);
  assert.ok(methods.struct.every((word) => word === 0n));
  methods.close(); // twice: nothing
  methods[Symbol.dispose]();
});

Deno.test("sqliteMemMethods: the members called the way SQLite calls them", () => {
  using heap = new PseudoMalloc();
  using methods = sqliteMemMethods(heap);
  const x = fromSqlite(methods);
  assert.equal(x.xInit.call(0n), 0); // SQLITE_OK
  const block = x.xMalloc.call(100);
  assert.equal(x.xSize.call(block), 128);
  heap.bytes(Number(block), 4).set([1, 2, 3, 4]);
  const grown = x.xRealloc.call(block, 5000);
  assert.deepEqual([...heap.bytes(Number(grown), 4)], [1, 2, 3, 4]);
  assert.equal(x.xSize.call(grown), 8192);
  assert.equal(x.xSize.call(0n), 0);
  x.xFree.call(grown);
  x.xFree.call(0n); // NULL: nothing
  x.xShutdown.call(0n);
  assert.equal(heap.stats().liveAllocations, 0);
  assert.deepEqual(methods.stats(), {
    calls: 9,
    errors: 0,
    outOfMemory: 0,
    allocations: 2,
    frees: 2,
    sizeCalls: 3,
    roundupCalls: 0,
    inits: 1,
    shutdowns: 1,
  });
  heap.validate();
});

Deno.test("sqliteMemMethods: xRoundup answers the heap's block size", () => {
  using heap = new PseudoMalloc(); // 16-byte minimum blocks, mmapThreshold 1024, 4 KiB pages
  using methods = sqliteMemMethods(heap);
  const { xRoundup } = fromSqlite(methods);
  const page = heap.pageSize;
  const threshold = heap.mmapThreshold;
  const expected: [number, number][] = [
    [1, 16],
    [16, 16],
    [17, 32],
    [100, 128],
    [threshold / 2 + 1, threshold - 1], // a whole block at the threshold would be large
    [threshold - 1, threshold - 1],
    [threshold, page],
    [page + 1, 2 * page],
    [0x7fff_f000, 0x7fff_f000],
    [0x7fff_f001, 0x7fff_f001], // whole pages would pass INT_MAX: the size itself
  ];
  for (const [size, rounded] of expected) assert.equal(xRoundup.call(size), rounded, `${size}`);
  assert.equal(methods.stats().roundupCalls, expected.length);
  assert.equal(heap.stats().liveAllocations, 0); // the probe of the minimum block was freed
});

Deno.test("sqliteMemMethods: a block of xRoundup(n) bytes holds at least that, at least n (seeded)", () => {
  const seed = 0x5_911e;
  const random = mulberry32(seed);
  for (const options of [{}, { mmapThreshold: 64 << 10 }, { minBlockSize: 64 }]) {
    using heap = new PseudoMalloc(options);
    using methods = sqliteMemMethods(heap);
    const x = fromSqlite(methods);
    for (let i = 0; i < 400; i++) {
      const size = 1 + Math.floor(random() ** 3 * 200_000);
      const rounded = x.xRoundup.call(size);
      assert.ok(rounded >= size, `seed ${seed}: ${size} -> ${rounded}`);
      const block = x.xMalloc.call(rounded);
      assert.ok(x.xSize.call(block) >= rounded, `seed ${seed}: ${JSON.stringify(options)} ${size}`);
      // A realloc to the rounded size of a size in the same block keeps the block: the reason
      // xRoundup exists (sqlite3Realloc compares xSize with xRoundup and keeps equal blocks).
      x.xFree.call(block);
    }
    assert.equal(heap.stats().liveAllocations, 0);
    heap.validate();
  }
});

Deno.test("sqliteMemMethods: every byte xSize promises survives xRealloc's moves", () => {
  // SQLite writes up to xSize and then reallocs: the heap must keep all of it (the adapter asks
  // for whole blocks; a 100-byte request filled to its 128 bytes would otherwise lose 28).
  for (const roundup of [undefined, (size: number) => (size + 7) & ~7]) {
    using heap = new PseudoMalloc(); // mmapThreshold 1024: the 1024-byte block is the gap
    using methods = sqliteMemMethods(heap, roundup ? { roundup } : {});
    const x = fromSqlite(methods);
    for (
      const [size, next, promised] of [[100, 5000, 128], [1000, 3000, 1023], [5000, 40_000, 8192]]
    ) {
      let block = x.xMalloc.call(size!);
      assert.equal(x.xSize.call(block), promised, `${size}`);
      heap.bytes(Number(block), promised).fill(0x5a);
      block = x.xRealloc.call(block, next!);
      assert.ok(heap.bytes(Number(block), promised).every((byte) => byte === 0x5a), `${size}`);
      block = x.xRealloc.call(block, 20); // shrinks: the first 20 bytes kept
      assert.ok(heap.bytes(Number(block), 20).every((byte) => byte === 0x5a), `${size}`);
      assert.equal(x.xSize.call(block), 32);
      x.xFree.call(block);
    }
    assert.equal(heap.stats().liveAllocations, 0);
    heap.validate();
  }
});

Deno.test("sqliteMemMethods: another allocator and a custom roundup", () => {
  using heap = new FirstFitAllocator();
  using plain = sqliteMemMethods(heap);
  assert.equal(fromSqlite(plain).xRoundup.call(100), 100); // no geometry to read: the size
  const { log, options } = collector();
  using eight = sqliteMemMethods(heap, { ...options, roundup: (size) => (size + 7) & ~7 });
  assert.equal(fromSqlite(eight).xRoundup.call(100), 104);
  // A rule that answers less than the size, or throws, is misuse: xRoundup answers the size.
  let answer = 0;
  using bad = sqliteMemMethods(heap, {
    ...options,
    roundup: () => {
      if (answer < 0) throw new Error("no");
      return answer;
    },
  });
  const xRoundup = fromSqlite(bad).xRoundup;
  assert.equal(xRoundup.call(100), 100);
  answer = 1.5;
  assert.equal(xRoundup.call(1), 1);
  answer = -1;
  assert.equal(xRoundup.call(7), 7);
  assert.deepEqual(log, [
    { name: "RangeError", source: "xRoundup" },
    { name: "RangeError", source: "xRoundup" },
    { name: "Error", source: "xRoundup" },
  ]);
  assert.equal(bad.stats().errors, 3);
});

Deno.test("sqliteMemMethods: misuse from C is reported with the member's name, never thrown", () => {
  using heap = new PseudoMalloc();
  const { log, options } = collector();
  using methods = sqliteMemMethods(heap, options);
  const x = fromSqlite(methods);
  const block = x.xMalloc.call(64);
  const foreign = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(new Uint8Array(64))));
  x.xFree.call(block + 16n); // interior
  x.xFree.call(foreign);
  assert.equal(x.xSize.call(foreign), 0);
  assert.equal(x.xRealloc.call(foreign, 10), 0n);
  assert.equal(x.xMalloc.call(-1), 0n); // a negative int
  x.xFree.call(block);
  x.xFree.call(block); // double free
  assert.equal(x.xSize.call(block), 0);
  assert.deepEqual(log.map((entry) => entry.source), [
    "xFree",
    "xFree",
    "xSize",
    "xRealloc",
    "xMalloc",
    "xFree",
    "xSize",
  ]);
  assert.equal(log[0]!.name, "InvalidFreeError");
  assert.equal(log[4]!.name, "RangeError");
  assert.equal(log[5]!.name, "DoubleFreeError");
  const stats = methods.stats();
  assert.equal(stats.errors, 7);
  assert.equal(stats.allocations, 1);
  assert.equal(stats.frees, 1);
  assert.equal(heap.stats().liveAllocations, 0);
  heap.validate();
});

Deno.test("sqliteMemMethods: out of memory answers NULL and leaves a realloc'ed block intact", () => {
  using heap = new PseudoMalloc({ maxArenas: 1, arenaSize: 4096, mmapThreshold: 4096 });
  const { log, options } = collector();
  using methods = sqliteMemMethods(heap, options);
  const x = fromSqlite(methods);
  const block = x.xMalloc.call(2048);
  heap.bytes(Number(block), 3).set([7, 8, 9]);
  assert.equal(x.xMalloc.call(4000), 0n);
  assert.equal(x.xRealloc.call(block, 4000), 0n);
  assert.deepEqual([...heap.bytes(Number(block), 3)], [7, 8, 9]);
  x.xFree.call(block);
  assert.deepEqual(log, []); // not misuse
  assert.equal(methods.stats().outOfMemory, 2);
  assert.equal(heap.stats().liveAllocations, 0);
});

Deno.test("sqliteMemMethods: a closed heap is misuse, reported from every member", () => {
  const heap = new PseudoMalloc();
  const { log, options } = collector();
  using methods = sqliteMemMethods(heap, options);
  const x = fromSqlite(methods);
  const block = x.xMalloc.call(32);
  heap.close();
  assert.equal(x.xMalloc.call(32), 0n);
  assert.equal(x.xSize.call(block), 0);
  x.xFree.call(block);
  assert.deepEqual(log.map((entry) => `${entry.source} ${entry.name}`), [
    "xMalloc HeapClosedError",
    "xSize HeapClosedError",
    "xFree HeapClosedError",
  ]);
});

// --- The system SQLite, in child processes.

interface Report {
  version: string;
  results?: unknown[];
  times?: number[];
  stats?: Record<string, number>;
  errors: string[];
  live?: number;
  liveBeforeShutdown?: number;
  nomem?: { insertCode: number; message: string; after: unknown; again: unknown };
}

/** Runs tests/fixtures/sqlite_workload.ts with `args` and parses its report. */
async function workload(...args: string[]): Promise<Report> {
  const fixture = new URL("./fixtures/sqlite_workload.ts", import.meta.url).pathname;
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-ffi", fixture, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(stdout);
  assert.equal(code, 0, `${args.join(" ")}: ${new TextDecoder().decode(stderr)}`);
  return JSON.parse(text.trim().split("\n").at(-1)!);
}

Deno.test({
  name: "SQLite: a 20,000-row workload on the heap gives the default allocator's results",
  ignore: NO_SQLITE,
  async fn() {
    const [reference, heap, lean, eight] = await Promise.all([
      workload("--mode=default", "--rows=20000"),
      workload("--mode=heap", "--rows=20000"),
      // Lookaside has no effect where SQLite is built with SQLITE_OMIT_LOOKASIDE (Debian's is).
      workload("--mode=heap", "--rows=20000", "--memstatus=0", "--lookaside=128,256"),
      // SQLite's own rounding: blocks with slack beyond what SQLite asked (it uses the slack).
      workload("--mode=heap", "--rows=20000", "--roundup=8", "--threshold=65536"),
    ]);
    assert.ok(reference.results !== undefined);
    assert.deepEqual((reference.results[0] as string[][])[0]![0], "20000"); // count(*)
    assert.deepEqual(heap.results, reference.results);
    assert.deepEqual(lean.results, reference.results);
    assert.deepEqual(eight.results, reference.results);
    for (const report of [heap, lean, eight]) {
      const stats = report.stats!;
      assert.deepEqual(report.errors, []);
      assert.equal(stats.errors, 0);
      assert.equal(stats.outOfMemory, 0);
      assert.ok(stats.allocations! > 20_000, `${stats.allocations} allocations`);
      assert.equal(stats.inits, 1);
      assert.equal(stats.shutdowns, 1);
      // Nothing live after sqlite3_shutdown: every block SQLite took came back.
      assert.equal(stats.frees, stats.allocations);
      assert.equal(report.live, 0);
    }
    // Memory statistics off: no xRoundup on malloc, no xSize on free.
    assert.ok(
      lean.stats!.calls! < heap.stats!.calls! / 2,
      JSON.stringify([lean.stats, heap.stats]),
    );
  },
});

Deno.test({
  name: "SQLite: an exhausted heap gives SQLITE_NOMEM, and SQLite recovers",
  ignore: NO_SQLITE,
  async fn() {
    const report = await workload("--mode=nomem");
    const { nomem, stats } = report;
    assert.equal(nomem!.insertCode, 7, nomem!.message); // SQLITE_NOMEM
    assert.ok(stats!.outOfMemory! >= 1);
    assert.deepEqual(report.errors, []); // out of memory is not misuse
    assert.deepEqual(nomem!.after, [["0"]]); // the transaction was rolled back
    assert.deepEqual(nomem!.again, [["1", "again"]]); // and the database works again
    assert.equal(stats!.frees, stats!.allocations);
    assert.equal(report.live, 0);
  },
});
