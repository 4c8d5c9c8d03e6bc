// The hot-path rules of docs/hot_paths.md, checked in child processes that run fixed workloads
// with fixed V8 flags, so that what they print is the same on every run (counts and compiler
// decisions, no timings):
// - allocation: a warmed malloc/free, calloc/free or churn loop on a default heap creates no JS
//   heap object per call (`deno task bench:alloc`'s measure), while a control loop that creates
//   one object per call shows in the same process;
// - inlining: in TurboFan's `--trace-turbo-inlining` trace of a hot loop, `malloc` and `free` are
//   inlined into the loop, and the slow path is weighed and refused as too big, never inlined.
// Linux only, as the heap's low arenas are (macOS reserves the low 4 GiB: arenas there are high).
import assert from "node:assert/strict";

// --- what the rules name -------------------------------------------------------------------------
// The heap's methods as V8 names them in its traces. A refactor that renames one changes it here.

/** The public fast paths. */
const MALLOC = "malloc";
const CALLOC = "calloc";
const FREE = "free";
/** The one out-of-line slow path, bigger on purpose than V8 inlines. */
const SLOW_PATH = "outOfLine";

/** V8's reason for not inlining a function of more than `--max-inlined-bytecode-size` (460). */
const TOO_BIG = "exceeds bytecode limit";
/** A loop is allocation-free when it grows the JS heap by less than this per operation. */
const ALLOCATION_FREE_BYTES = 1;
/** The control (one small object per malloc) must measure at least this much more per pair. */
const SENSITIVITY_BYTES = 8;

/**
 * V8 flags that make tiering a function of the workload alone: every compilation on the main thread
 * at a point fixed by the operations run so far, none on a background thread whose timing would
 * decide which functions are compiled first (measured: with background Sparkplug, which of
 * `malloc` and the loop TurboFan compiled first changed from run to run). No mid tier (Maglev)
 * and no on-stack replacement: hot loops go to TurboFan once, on entry.
 */
const DETERMINISTIC_FLAGS = [
  "--single-threaded",
  "--no-concurrent-recompilation",
  "--no-concurrent-sparkplug",
  "--no-concurrent-osr",
  "--no-use-osr",
  "--no-maglev",
];
/** V8 flags of the allocation fixture: young generation larger than a measurement, and `gc()`. */
const ALLOCATION_FLAGS = [
  "--expose-gc",
  "--max-semi-space-size=128",
  "--min-semi-space-size=128",
  ...DETERMINISTIC_FLAGS,
];
/** V8 flags of the inlining fixture: the trace, and each compilation's start and end. */
const INLINING_FLAGS = ["--trace-turbo-inlining", "--trace-opt", ...DETERMINISTIC_FLAGS];

const NOT_LINUX = Deno.build.os !== "linux";
const RESULT_TAG = "HOT_PATH_RESULT ";

// --- running a fixture ---------------------------------------------------------------------------

interface Run {
  stdout: string;
  /** The fixture's `HOT_PATH_RESULT` line, parsed. */
  result: Record<string, unknown>;
}

/** Runs `tests/fixtures/<name>` with `flags` for V8; fails unless it exits 0 with a result line. */
async function runFixture(name: string, flags: string[], args: string[] = []): Promise<Run> {
  const fixture = new URL(`./fixtures/${name}`, import.meta.url).pathname;
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-ffi", `--v8-flags=${flags.join(",")}`, fixture, ...args],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const out = new TextDecoder().decode(stdout);
  const err = new TextDecoder().decode(stderr);
  assert.equal(code, 0, `${name} ${args.join(" ")} failed:\n${err}`);
  const line = [...out.split("\n"), ...err.split("\n")].find((text) => text.startsWith(RESULT_TAG));
  assert.ok(line !== undefined, `${name} printed no result line:\n${err}`);
  return { stdout: out, result: JSON.parse(line.slice(RESULT_TAG.length)) };
}

// --- the allocation check ------------------------------------------------------------------------

interface Row {
  bytesPerOp: number;
  repeats: number[];
  dropped: number;
}

Deno.test({
  name: "hot paths: warmed malloc/free, calloc/free and churn loops create no JS heap object",
  ignore: NOT_LINUX,
  async fn() {
    const { result } = await runFixture("hot_path_alloc.ts", ALLOCATION_FLAGS);
    const rows = result.rows as Record<"pair" | "calloc" | "churn" | "control", Row>;
    const shown = (row: Row) =>
      `${row.bytesPerOp} B/op (repeats ${row.repeats.join(", ")}; ${row.dropped} segments dropped)`;
    assert.equal(result.low, true, "the heaps' arenas must be below 2^31 for these rules to hold");
    // First the control: a measurement that cannot see one object per call proves nothing.
    const sensitivity = rows.control.bytesPerOp - rows.pair.bytesPerOp;
    assert.ok(
      sensitivity >= SENSITIVITY_BYTES,
      `the measurement is not sensitive: one { size } per malloc measured ${
        shown(rows.control)
      }, only ${sensitivity} B above the bare pair (need ${SENSITIVITY_BYTES})`,
    );
    const allocating = (["pair", "calloc", "churn"] as const)
      .filter((id) => !(rows[id].bytesPerOp < ALLOCATION_FREE_BYTES))
      .map((id) => `${id}: ${shown(rows[id])}`);
    assert.deepEqual(
      allocating,
      [],
      `at least ${ALLOCATION_FREE_BYTES} B per operation: a JS heap object per call ` +
        `(an object, closure, bigint or boxed number)`,
    );
  },
});

// --- the inlining check --------------------------------------------------------------------------

/** One TurboFan compilation in the trace: of which function, and what it did with each call. */
interface Compilation {
  function: string;
  /** Functions inlined into it, directly or into what was inlined. */
  inlined: Set<string>;
  /** Functions weighed for inlining into it (considered, or refused before that). */
  weighed: Set<string>;
  /** Functions refused outright, with V8's reason. */
  refused: Map<string, string>;
}

const COMPILING = /^\[compiling method .*?<JSFunction (.+?) \(sfi = [^)]*\)> \(target TURBOFAN/;
const INLINING = /^Inlining .*?<SharedFunctionInfo (.+?)>\} into .*?<SharedFunctionInfo (.+?)>\}$/;
const CONSIDERING = /^Considering .*?<SharedFunctionInfo (.+?)>\} for inlining/;
const REFUSED = /^Cannot consider .*?<SharedFunctionInfo (.+?)>\} for inlining \(reason: (.+)\)$/;

/**
 * The TurboFan compilations of a `--trace-turbo-inlining --trace-opt` trace, in order. Without
 * concurrent recompilation each compilation runs on the main thread from its `[compiling method`
 * line to its `[completed compiling` line, so every inlining line between them belongs to it.
 */
function compilations(trace: string): Compilation[] {
  const found: Compilation[] = [];
  let current: Compilation | undefined;
  for (const line of trace.split("\n")) {
    const start = COMPILING.exec(line);
    if (start !== null) {
      current = { function: start[1]!, inlined: new Set(), weighed: new Set(), refused: new Map() };
      found.push(current);
      continue;
    }
    if (line.startsWith("[completed compiling") || line.startsWith("[aborted")) {
      current = undefined;
      continue;
    }
    if (current === undefined) continue;
    const inlined = INLINING.exec(line);
    if (inlined !== null) {
      assert.equal(inlined[2], current.function, `an inlining outside its compilation: ${line}`);
      current.inlined.add(inlined[1]!);
    }
    const considered = CONSIDERING.exec(line);
    if (considered !== null) current.weighed.add(considered[1]!);
    const refused = REFUSED.exec(line);
    if (refused !== null) {
      current.weighed.add(refused[1]!);
      current.refused.set(refused[1]!, refused[2]!);
    }
  }
  return found;
}

/** Runs an inlining scenario; its compilations, and the last one of its loop function. */
async function traceScenario(
  scenario: string,
): Promise<{ all: Compilation[]; loop: Compilation; of: (name: string) => Compilation[] }> {
  const { stdout, result } = await runFixture("hot_path_inlining.ts", INLINING_FLAGS, [scenario]);
  assert.equal(result.low, true, "the heap's arenas must be below 2^31 for these rules to hold");
  assert.equal(result.live, 0);
  const all = compilations(stdout);
  const of = (name: string) => all.filter((compilation) => compilation.function === name);
  const loop = of(result.loop as string).at(-1);
  assert.ok(
    loop !== undefined,
    `no TurboFan compilation of ${result.loop} in the trace (V8 ${result.v8}): did the flags or ` +
      `the trace's format change?\n${stdout.slice(0, 2000)}`,
  );
  // Nothing anywhere inlined the slow path: not the loop, not a fast path compiled on its own.
  for (const compilation of all) {
    assert.ok(
      !compilation.inlined.has(SLOW_PATH),
      `${SLOW_PATH} was inlined into ${compilation.function}: it must stay above V8's limit`,
    );
  }
  return { all, loop, of };
}

function assertInlined(compilation: Compilation, ...names: string[]): void {
  for (const name of names) {
    assert.ok(
      compilation.inlined.has(name),
      `${name} was not inlined into ${compilation.function}; inlined: ${
        [...compilation.inlined].join(", ")
      }; refused: ${[...compilation.refused].map(([what, why]) => `${what} (${why})`).join(", ")}`,
    );
  }
}

function assertRefusedAsTooBig(compilation: Compilation, name: string): void {
  assert.equal(
    compilation.refused.get(name),
    TOO_BIG,
    `${name} was not refused as too big in ${compilation.function}; refused: ${
      [...compilation.refused].map(([what, why]) => `${what} (${why})`).join(", ")
    }`,
  );
}

Deno.test({
  name: "hot paths: a hot malloc/free loop inlines both fast paths, and not the slow path",
  ignore: NOT_LINUX,
  async fn() {
    const { loop } = await traceScenario("pair");
    assertInlined(loop, MALLOC, FREE);
  },
});

Deno.test({
  name: "hot paths: when the slow path runs often, V8 refuses to inline it as too big",
  ignore: NOT_LINUX,
  async fn() {
    const { loop } = await traceScenario("slow");
    assertInlined(loop, MALLOC, FREE);
    assertRefusedAsTooBig(loop, SLOW_PATH);
  },
});

Deno.test({
  name: "hot paths: calloc's own code and a calloc/free loop keep the slow path out",
  ignore: NOT_LINUX,
  async fn() {
    const { loop, of } = await traceScenario("calloc");
    // calloc is weighed in the loop (inlined or not: see docs/hot_paths.md), free is inlined.
    assert.ok(loop.weighed.has(CALLOC), `${CALLOC} was not weighed in ${loop.function}`);
    assertInlined(loop, FREE);
    // Wherever calloc was compiled, on its own or into the loop, the slow path was refused.
    const callocCode = [...of(CALLOC), ...(loop.inlined.has(CALLOC) ? [loop] : [])];
    assert.ok(callocCode.length > 0, `${CALLOC} was never compiled by TurboFan`);
    for (const compilation of callocCode) assertRefusedAsTooBig(compilation, SLOW_PATH);
  },
});
