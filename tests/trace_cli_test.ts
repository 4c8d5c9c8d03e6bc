// The trace CLI as a user runs it: a child `deno run` of src/trace/cli.ts (needs --allow-run), fed
// traces on standard input; and `main` in-process with a broken allocator of the test's own.
import assert from "node:assert/strict";
import type { Allocator, AllocatorStats } from "../mod.ts";
import { PseudoMalloc } from "../mod.ts";
import {
  builtinTraces,
  configureAllocator,
  main,
  replay,
  type SystemCalls,
} from "../src/trace/cli.ts";

const CLI = new URL("../src/trace/cli.ts", import.meta.url).pathname;

async function cli(
  args: string[],
  stdin = "",
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", "--allow-ffi", "--allow-read", "--allow-write", CLI, ...args],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(stdin));
  await writer.close();
  const { code, stdout, stderr } = await child.output();
  const decoder = new TextDecoder();
  return { code, stdout: decoder.decode(stdout), stderr: decoder.decode(stderr) };
}

const ALL = ["libc", "pseudo", "mmap", "bump", "cell", "firstfit", "segregated"];

Deno.test("trace CLI with no file replays every built-in trace on every allocator", async () => {
  const { code, stdout, stderr } = await cli(["--scale=0.02", "--time=0"]);
  assert.equal(code, 0, stderr);
  for (const trace of ["churn", "binary-tree", "realloc", "mixed"]) {
    assert.match(stdout, new RegExp(`^${trace} \\(built-in\\): [\\d,]+ operations`, "m"));
  }
  for (const name of ALL) {
    const rows = stdout.split("\n").filter((line) => line.startsWith(`  ${name} `));
    assert.equal(rows.length, 5, `${name}: 4 traces and the summary`); // 4 traces + summary
    for (const row of rows) assert.match(row, / ok /, row);
  }
  assert.match(stdout, /summary over 4 traces/);
  assert.match(stdout, /note: cell: cellSize \d+ \(the largest request/);
  assert.ok(!stderr.includes("\u001b["), "no progress bar when stderr is not a terminal");
});

Deno.test("trace CLI --json gives every measurement", async () => {
  const { code, stdout, stderr } = await cli([
    "--json",
    "--scale=0.02",
    "--time=0",
    "--allocator=segregated", // libc runs as the baseline anyway
  ]);
  assert.equal(code, 0, stderr);
  const report = JSON.parse(stdout);
  assert.equal(report.ok, true);
  assert.deepEqual(report.settings, {
    tag: "full",
    timing: true,
    heap: "both",
    minTimeSeconds: 0,
    seed: 1,
    scale: 0.02,
  });
  assert.equal(report.traces.length, 4);
  for (const trace of report.traces) {
    assert.deepEqual(trace.runs.map((run: { allocator: string }) => run.allocator), [
      "libc",
      "segregated",
    ]);
    const [libc, segregated] = trace.runs;
    assert.equal(libc.vsLibc, 1);
    assert.ok(segregated.ok && segregated.utilization > 0 && segregated.utilization <= 1);
    assert.equal(segregated.utilization, trace.peakLiveBytes / segregated.peakMappedBytes);
    assert.ok(segregated.opsPerSecond > 0);
    assert.ok(Math.abs(segregated.vsLibc - segregated.opsPerSecond / libc.opsPerSecond) < 1e-9);
    if (Deno.build.os === "linux") assert.equal(libc.approximate, true);
  }
  assert.deepEqual(report.summary.map((row: { allocator: string }) => row.allocator), [
    "libc",
    "segregated",
  ]);
});

Deno.test("trace CLI reads a trace from standard input, CRLF and all", async () => {
  const trace = "4096\r\n3\r\n6\r\n1\r\na 0 100\r\na 1 24\r\nr 0 300\r\nf 1\r\nf -1\r\nf 0\r\n";
  const { code, stdout, stderr } = await cli(
    ["--allocator=pseudo,cell", "--no-libc", "--time=0", "-"],
    trace,
  );
  assert.equal(code, 0, stderr);
  assert.match(
    stdout,
    /^stdin \(file\): 6 operations, 2 ids, peak live 324 B, largest request 300 B/m,
  );
  // 324 bytes over one 1 MiB arena, and over one 64 KiB chunk of 304-byte cells.
  // Then the ratios (no libc: n/a) and the system calls of the checking replay: one arena's
  // (its mapping, and its tag pages or none when the process already has them).
  assert.match(
    stdout,
    /^ {2}pseudo +ok +0\.031 % +1\.0 MiB +[\d.]+ [km]op\/s +n\/a +n\/a +[12]$/m,
  );
  assert.match(stdout, /^ {2}cell +ok +0\.49 % +64\.0 KiB/m);
  assert.match(stdout, /note: cell: cellSize 304 \(the largest request, 300 bytes/);
});

Deno.test("trace CLI reports a malformed trace with its line and exits with 2", async () => {
  const { code, stdout, stderr } = await cli(["-"], "0 2 2 1\na 0 8\nq 1 8\n");
  assert.equal(code, 2);
  assert.equal(stdout, "");
  assert.match(stderr, /^error: stdin:3: unknown operation "q"/);
});

Deno.test("trace CLI rejects bad options with 2 and explains itself with --help", async () => {
  const none = await cli(["--allocator=libc", "--no-libc"]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /no allocator left to run/);
  const bad = await cli(["--allocator=tcmalloc"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /unknown allocator "tcmalloc"/);
  assert.equal((await cli(["--frobnicate"])).code, 2);
  assert.equal((await cli(["--tag=some"])).code, 2);
  const help = await cli(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^Usage: deno task trace/);
  assert.match(help.stdout, /--allocator=LIST/);
});

/** PseudoMalloc, except that every 100th malloc hands out the previous block again. */
class Broken implements Allocator {
  #heap = new PseudoMalloc();
  #calls = 0;
  #last = 0;
  malloc(size: number): number {
    const address = this.#heap.malloc(size);
    if (++this.#calls % 100 === 0 && this.#last !== 0) return this.#last;
    this.#last = address;
    return address;
  }
  calloc(count: number, size: number): number {
    return this.#heap.calloc(count, size);
  }
  realloc(address: number, size: number): number {
    return this.#heap.realloc(address, size);
  }
  free(address: number): void {
    this.#heap.free(address);
  }
  usableSize(address: number): number {
    return this.#heap.usableSize(address);
  }
  bytes(address: number, length?: number): Uint8Array {
    return this.#heap.bytes(address, length);
  }
  stats(): AllocatorStats {
    return this.#heap.stats();
  }
  validate(): void {
    this.#heap.validate();
  }
  close(): void {
    this.#heap.close();
  }
  [Symbol.dispose](): void {
    this.close();
  }
}

async function quietly(fn: () => Promise<number>): Promise<{ code: number; output: string }> {
  const lines: string[] = [];
  const { log, error } = console;
  console.log = (...args: unknown[]) => void lines.push(args.join(" "));
  console.error = console.log;
  try {
    return { code: await fn(), output: lines.join("\n") };
  } finally {
    console.log = log;
    console.error = error;
  }
}

Deno.test("main exits with 1 when an allocator breaks a check, naming the line", async () => {
  const { code, output } = await quietly(() =>
    main(["--allocator=broken,pseudo", "--no-libc", "--no-timing", "--scale=0.02"], {
      allocators: {
        broken: () => ({ name: "broken", className: "Broken", create: () => new Broken() }),
      },
    })
  );
  assert.equal(code, 1, output);
  // No utilization, memory or timing; its system calls are those of the replay up to the failure.
  assert.match(output, /^ {2}broken +FAIL +n\/a +n\/a +n\/a +n\/a +n\/a +\d+$/m);
  assert.match(output, /^ {2}pseudo +ok/m);
  assert.match(
    output,
    /broken FAILED \(overlap\): churn:\d+ \(a 99 \d+\): malloc\(\d+\) returned \[0x[0-9a-f]+, \+\d+\), which overlaps id 98's block/,
  );
  assert.match(output, /^ {2}broken +FAIL 4/m); // the summary: failed on all 4 traces
});

Deno.test("main exits with 1 when a timed run throws after a clean checking replay", async () => {
  let instances = 0;
  const { code, output } = await quietly(() =>
    main(["--allocator=flaky", "--no-libc", "--time=0", "--scale=0.01"], {
      allocators: {
        flaky: () => ({
          name: "flaky",
          className: "Flaky",
          create: () => {
            const heap = new PseudoMalloc();
            // The first instance is the checking replay's of the first trace; then come its timed
            // runs.
            if (++instances > 1) {
              heap.malloc = () => {
                throw new Error("flaked");
              };
            }
            return heap;
          },
        }),
      },
    })
  );
  assert.equal(code, 1, output);
  assert.match(output, /flaky FAILED \(throw\): churn: a timed run threw Error: flaked/);
});

/** Every message of a bad command line, as `main` prints it: the error, then where to look. */
const USAGE_ERRORS: [args: string[], message: string][] = [
  [["--svg"], "--svg needs a value"],
  [["--no-timing", "--allocator"], "--allocator needs a value"],
  [["--json=yes"], "--json takes no value"],
  [["--no-libc="], "--no-libc takes no value"],
  [["--help=me"], "--help takes no value"],
  [["--frobnicate"], "unknown option --frobnicate"],
  [["--frobnicate=1"], "--frobnicate takes no value"],
  [["--seed=abc"], '--seed: "abc" is not a number'],
  [["--scale="], '--scale: "" is not a number'],
  [["--time=soon"], '--time: "soon" is not a number of seconds'],
  [["--seed=1.5"], "--seed must be an integer"],
  [["--scale=0"], "--scale must be positive"],
  [["--time=-1"], "--time must not be negative"],
  // A value may begin with a dash, after "=" or as the next argument.
  [["--time", "-1"], "--time must not be negative"],
  [["--tag", "--json"], '--tag must be full, ends or none, not "--json"'],
  [["--tag=some"], '--tag must be full, ends or none, not "some"'],
  [["--allocator=,"], "--allocator needs at least one name"],
  [["--heap=hot"], '--heap must be warm, fresh or both, not "hot"'],
  [["--heap"], "--heap needs a value"],
  [
    ["--allocator=pseudo,tcmalloc"],
    'unknown allocator "tcmalloc": expected pseudo, mmap, bump, cell, firstfit, segregated or libc',
  ],
  [["--allocator=libc", "--no-libc"], "no allocator left to run"],
  // The first bad argument is the one reported, and -h after it does not help.
  [["--seed=x", "--frobnicate"], '--seed: "x" is not a number'],
  [["--frobnicate", "-h"], "unknown option --frobnicate"],
];

Deno.test("main names each bad argument with its own message and exits with 2", async () => {
  for (const [args, message] of USAGE_ERRORS) {
    const { code, output } = await quietly(() => main(args));
    assert.equal(code, 2, `${args.join(" ")}: ${output}`);
    assert.equal(output, `error: ${message}\nRun with --help for the options.`, args.join(" "));
  }
});

Deno.test("main reads values given apart, files after --, and -h before anything bad", async () => {
  const help = await quietly(() => main(["-h", "--frobnicate"]));
  assert.equal(help.code, 0);
  assert.match(help.output, /^Usage: deno task trace/);
  // The published entry point says how to run it without a clone, too.
  assert.match(help.output, /^ +or: deno run --allow-ffi .*\n +jsr:@pseudo\/malloc\/trace /m);

  const { code, output } = await quietly(() =>
    main([
      "--seed",
      "5",
      "--scale",
      "0.01",
      "--allocator",
      "bump",
      "--no-libc",
      "--no-timing",
      "--json",
    ])
  );
  assert.equal(code, 0, output);
  const report = JSON.parse(output);
  assert.deepEqual(report.settings, {
    tag: "full",
    timing: false,
    heap: "both",
    minTimeSeconds: 0.2,
    seed: 5,
    scale: 0.01,
  });
  assert.deepEqual(report.traces[0].runs.map((run: { allocator: string }) => run.allocator), [
    "bump",
  ]);

  // After "--" every argument is a trace file, and so is one that begins with a single dash.
  for (const file of ["--json", "-x", "-hx"]) {
    const args = file.startsWith("--") ? ["--no-timing", "--", file] : ["--no-timing", file];
    const missing = await quietly(() => main(args));
    assert.equal(missing.code, 2);
    assert.match(missing.output, new RegExp(`^error: cannot read ${file}: .*\nRun with --help`));
  }
});

Deno.test("main shows each allocator's system calls: those of one replay on a new allocator", async () => {
  const args = ["--allocator=mmap,segregated,pseudo", "--no-timing", "--scale=0.02"];
  const json = await quietly(() => main([...args, "--json"]));
  assert.equal(json.code, 0, json.output);
  const text = await quietly(() => main(args));
  assert.equal(text.code, 0, text.output);
  const report = JSON.parse(json.output.slice(json.output.indexOf("{")));
  const sections = text.output.split("\n\n");
  const traces = builtinTraces({ scale: 0.02 });
  const total = (calls: SystemCalls) =>
    calls.mmap + calls.munmap + calls.mremap + calls.madvise + calls.mprotect;
  for (const [t, trace] of traces.entries()) {
    const section = sections[t]!;
    assert.ok(section.startsWith(`${trace.name} (built-in)`), section);
    assert.match(section, / sys calls$/m);
    const runs = report.traces[t].runs as { allocator: string; systemCalls: SystemCalls }[];
    for (const name of ["mmap", "segregated", "pseudo"]) {
      const allocator = configureAllocator(name, trace).create();
      assert.ok(replay(trace, allocator).ok);
      const expected = allocator.stats().systemCalls;
      allocator.close();
      const run = runs.find((r) => r.allocator === name)!;
      assert.deepEqual(run.systemCalls, expected, `${trace.name}, ${name}`);
      // The table's last column is their sum; the line under it says which calls.
      const row = section.split("\n").find((line) => line.startsWith(`  ${name} `))!;
      assert.equal(row.split(/ +/).at(-1), total(expected).toLocaleString("en"), row);
      const kinds = (Object.keys(expected) as (keyof SystemCalls)[])
        .filter((kind) => expected[kind] > 0)
        .map((kind) => `${expected[kind].toLocaleString("en")} ${kind}`);
      assert.ok(
        section.includes(`${name} ${kinds.length > 0 ? kinds.join(", ") : "none"}`),
        `${name}: ${kinds.join(", ")} in\n${section}`,
      );
    }
    // MmapAllocator: a mapping per block, each given back.
    const mmap = runs.find((r) => r.allocator === "mmap")!.systemCalls;
    assert.ok(mmap.mmap >= trace.idLimit / 2 && mmap.munmap === mmap.mmap, trace.name);
    // libc's calls are unknown.
    assert.match(section, /^ {2}libc .* n\/a$/m);
    assert.deepEqual(runs.find((r) => r.allocator === "libc")!.systemCalls, {
      mmap: null,
      munmap: null,
      mremap: null,
      madvise: null,
      mprotect: null,
    });
  }
});

Deno.test("main times warm heaps, fresh heaps or both (--heap)", async () => {
  const base = ["--allocator=pseudo", "--time=0", "--scale=0.01", "--json"];
  const runsOf = async (heap: string[]) => {
    const { code, output } = await quietly(() => main([...base, ...heap]));
    assert.equal(code, 0, output);
    const report = JSON.parse(output);
    return { report, runs: report.traces.flatMap((trace: { runs: unknown[] }) => trace.runs) };
  };
  const both = await runsOf([]);
  assert.equal(both.report.settings.heap, "both");
  for (const run of both.runs) {
    assert.ok(run.opsPerSecond > 0 && run.fresh.opsPerSecond > 0, JSON.stringify(run));
  }
  const [libc, pseudo] = both.report.traces[0].runs;
  assert.ok(
    Math.abs(pseudo.fresh.vsLibc - pseudo.fresh.opsPerSecond / libc.fresh.opsPerSecond) < 1e-9,
  );
  assert.ok(both.report.summary[1].freshVsLibc > 0);
  const warm = await runsOf(["--heap=warm"]);
  for (const run of warm.runs) assert.ok(run.opsPerSecond > 0 && run.fresh === undefined);
  assert.equal(warm.report.summary[1].freshVsLibc, null);
  const fresh = await runsOf(["--heap", "fresh"]);
  for (const run of fresh.runs) assert.equal(run.fresh.opsPerSecond, run.opsPerSecond);
  const text = await quietly(() =>
    main(["--allocator=pseudo", "--time=0", "--scale=0.01", "--heap=warm"])
  );
  assert.match(text.output, /^ {2}pseudo +ok .* [\d.]+× +n\/a +[\d,]+$/m); // no fresh ratio
});
