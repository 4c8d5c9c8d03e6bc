// SharedPseudoMalloc's goals (issue 14), measured in workers:
// - one worker on a shared heap against PseudoMalloc in one worker, on the 64-byte pair and on
//   churn (goal: at most 1.5x);
// - two workers at once on one shared heap, aggregate churn throughput against one worker's
//   (goal: at least 1.6x on two cores);
// - the same two workers with a SharedPseudoMalloc each (what sharing costs), and libc's own
//   scaling from one worker to two (what the machine gives);
// - per churn step, two workers on the shared heap against two workers calling libc's malloc/free
//   through FFI (goal: at most libc's).
//
// Every measurement runs in fresh workers (one allocator per worker: monomorphic loops), timed
// inside them between a shared start flag and the end of their loop; the measurements alternate
// within a round, and the rounds repeat. Without --child the script runs itself in `--processes`
// (default 3) child processes with --v8-flags=--no-maglev and prints the medians over processes of
// each process's median, with the spread (min-max).
//
//   deno run --allow-ffi --allow-read --allow-env --allow-run bench/shared_bench.ts [--processes 5]

import { SharedPseudoMalloc } from "../mod.ts";

const WORKER = new URL("./_shared_bench_worker.ts", import.meta.url);
const PAIRS = 10_000_000;
const STEPS = 4_000_000;
const ROUNDS = 5;

type Kind = "shared" | "own" | "pseudo" | "libc";

async function run(kind: Kind, workload: "pair" | "churn", count: number, workers: number) {
  const heap = kind === "shared" ? new SharedPseudoMalloc() : undefined;
  const flag = new SharedArrayBuffer(8);
  const words = new Int32Array(flag);
  const spawned = Array.from({ length: workers }, () => new Worker(WORKER, { type: "module" }));
  const times = spawned.map((worker) =>
    new Promise<number>((resolve, reject) => {
      worker.onmessage = (event) => resolve(event.data);
      worker.onerror = (event) => reject(new Error(event.message));
    })
  );
  const steps = workload === "pair" ? PAIRS : STEPS;
  for (const worker of spawned) {
    worker.postMessage({ kind, workload, handle: heap?.handle, steps: count || steps, flag });
  }
  while (Atomics.load(words, 1) < workers) await new Promise((resolve) => setTimeout(resolve, 1));
  Atomics.store(words, 0, 1);
  const elapsed = await Promise.all(times);
  spawned.forEach((worker) => worker.terminate());
  heap?.close();
  const ops = count || steps;
  return {
    /** ns per operation in each worker, averaged over the workers. */
    perOp: (elapsed.reduce((a, b) => a + b, 0) / workers) * 1e6 / ops,
    /** operations per microsecond, all workers together, until the slowest finished. */
    throughput: (ops * workers) / (Math.max(...elapsed) * 1e3),
  };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

async function child(): Promise<Record<string, number>> {
  const rows: Record<string, number[]> = {};
  const note = (name: string, value: number) => (rows[name] ??= []).push(value);
  for (let round = 0; round < ROUNDS; round++) {
    const pseudoPair = await run("pseudo", "pair", 0, 1);
    const sharedPair = await run("shared", "pair", 0, 1);
    note("pair: PseudoMalloc ns", pseudoPair.perOp);
    note("pair: shared ns", sharedPair.perOp);
    note("pair: shared / PseudoMalloc", sharedPair.perOp / pseudoPair.perOp);
    const pseudoChurn = await run("pseudo", "churn", 0, 1);
    const one = await run("shared", "churn", 0, 1);
    note("churn: PseudoMalloc ns", pseudoChurn.perOp);
    note("churn: shared ns", one.perOp);
    note("churn: shared / PseudoMalloc", one.perOp / pseudoChurn.perOp);
    const two = await run("shared", "churn", 0, 2);
    note("churn: 2 workers / 1 worker throughput", two.throughput / one.throughput);
    const own = await run("own", "churn", 0, 2);
    note("churn: 2 workers, a heap each / 1 worker", own.throughput / one.throughput);
    const libc = await run("libc", "churn", 0, 2);
    const libcOne = await run("libc", "churn", 0, 1);
    note("churn: libc 2 workers / 1 worker throughput", libc.throughput / libcOne.throughput);
    note("churn, 2 workers: shared ns", two.perOp);
    note("churn, 2 workers: libc ns", libc.perOp);
    note("churn, 2 workers: shared / libc", two.perOp / libc.perOp);
  }
  return Object.fromEntries(Object.entries(rows).map(([name, values]) => [name, median(values)]));
}

if (Deno.args.includes("--child")) {
  console.log(JSON.stringify(await child()));
} else {
  const at = Deno.args.indexOf("--processes");
  const processes = at >= 0 ? Number(Deno.args[at + 1]) : 3;
  const results: Record<string, number>[] = [];
  for (let p = 0; p < processes; p++) {
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--v8-flags=--no-maglev",
        "--allow-ffi",
        "--allow-read",
        "--allow-env", // bench/_workloads.ts's peers read NODE_ENV
        new URL(import.meta.url).pathname,
        "--child",
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (code !== 0) throw new Error(new TextDecoder().decode(stderr));
    results.push(JSON.parse(new TextDecoder().decode(stdout)));
    console.error(`process ${p + 1} of ${processes} done`);
  }
  console.log(`SharedPseudoMalloc, ${processes} processes x ${ROUNDS} rounds (median, min-max)`);
  for (const name of Object.keys(results[0]!)) {
    const values = results.map((result) => result[name]!);
    const f = (x: number) => x.toFixed(2);
    console.log(
      `${name.padEnd(42)} ${f(median(values)).padStart(7)}  (${f(Math.min(...values))}-${
        f(Math.max(...values))
      })`,
    );
  }
}
