// SQLite on the heap, measured: the 20,000-row workload of tests/fixtures/sqlite_workload.ts with
// sqliteMemMethods(PseudoMalloc), with JavaScript callbacks that only forward to libc (the floor of
// any JavaScript allocator behind SQLite: the C-to-JavaScript crossing and libc), and with SQLite's
// own allocator. sqlite3_config works once per process, so every measurement is a child process;
// the modes alternate within each round, and each process runs the workload --runs times on fresh
// in-memory databases (the first run is a warm-up and is dropped).
//
//   deno run --allow-run --allow-read bench/sqlite_bench.ts [--rounds=3] [--runs=6] [--rows=20000]
//
// Prints, per setting (memory statistics on or off, lookaside sizes, mmapThreshold), the median
// time of each mode over the rounds with its range, the ratio to the forwarding floor (taken within
// each round, then the median), and the allocator calls per workload by member.

const args = Object.fromEntries(
  Deno.args.map((arg) => arg.replace(/^--/, "").split("=", 2) as [string, string]),
);
const rounds = Number(args.rounds ?? 3);
const runs = Number(args.runs ?? 6);
const rows = Number(args.rows ?? 20_000);

const fixture = new URL("../tests/fixtures/sqlite_workload.ts", import.meta.url).pathname;

interface Setting {
  name: string;
  flags: string[];
  heapFlags?: string[];
}

const SETTINGS: Setting[] = [
  { name: "SQLite's defaults (memory statistics on)", flags: [] },
  { name: "SQLITE_CONFIG_MEMSTATUS 0", flags: ["--memstatus=0"] },
  // Debian's SQLite is built with SQLITE_OMIT_LOOKASIDE: there this setting changes nothing.
  { name: "MEMSTATUS 0, LOOKASIDE 256 x 1024", flags: ["--memstatus=0", "--lookaside=256,1024"] },
  {
    name: "MEMSTATUS 0, heap mmapThreshold 64 KiB",
    flags: ["--memstatus=0"],
    heapFlags: ["--threshold=65536"],
  },
  {
    name: "defaults, heap mmapThreshold 64 KiB",
    flags: [],
    heapFlags: ["--threshold=65536"],
  },
];

const MODES = ["default", "forward", "heap"] as const;
type Mode = (typeof MODES)[number];

interface Report {
  version: string;
  times: number[];
  stats?: Record<string, number>;
}

async function run(mode: Mode, flags: string[]): Promise<Report> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-ffi",
      "--v8-flags=--no-maglev",
      fixture,
      `--mode=${mode}`,
      `--rows=${rows}`,
      `--runs=${runs}`,
      ...flags,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (code !== 0) throw new Error(`Cannot run ${mode}: ${new TextDecoder().decode(stderr)}`);
  const text = new TextDecoder().decode(stdout).trim().split("\n").at(-1)!;
  return JSON.parse(text);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

const ms = (value: number) => value.toFixed(1);
let version = "";
const lines: string[] = [];
for (const setting of SETTINGS) {
  const times: Record<Mode, number[]> = { default: [], forward: [], heap: [] };
  const ratios: number[] = [];
  const defaultRatios: number[] = [];
  let stats: Record<string, Record<string, number> | undefined> = {};
  for (let round = 0; round < rounds; round++) {
    const medians = {} as Record<Mode, number>;
    // Alternate the order between rounds so that no mode always runs first.
    const order = round % 2 ? [...MODES].reverse() : MODES;
    for (const mode of order) {
      const flags = [...setting.flags, ...(mode === "heap" ? setting.heapFlags ?? [] : [])];
      const report = await run(mode, flags);
      version = report.version;
      medians[mode] = median(report.times.slice(1));
      times[mode].push(medians[mode]);
      stats = { ...stats, [mode]: report.stats };
    }
    ratios.push(medians.heap / medians.forward);
    defaultRatios.push(medians.heap / medians.default);
  }
  const range = (values: number[]) =>
    `${ms(median(values))} ms (${ms(Math.min(...values))}-${ms(Math.max(...values))})`;
  // The counters cover every run of the process: per workload, divided by the runs.
  const per = (value: number | undefined) => Math.round((value ?? 0) / runs);
  const heapStats = stats.heap!;
  lines.push(
    `${setting.name}`,
    `  default ${range(times.default)}  forward ${range(times.forward)}  heap ${range(times.heap)}`,
    `  heap / forward ${median(ratios).toFixed(2)}x ` +
      `(${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)}), ` +
      `heap / default ${median(defaultRatios).toFixed(2)}x`,
    `  calls per workload: ${per(heapStats.calls)} (xSize ${per(heapStats.sizeCalls)}, ` +
      `xRoundup ${per(heapStats.roundupCalls)}, blocks ${per(heapStats.allocations)}); ` +
      `forward ${per(stats.forward!.calls)} (xSize ${per(stats.forward!.sizeCalls)}, ` +
      `xRoundup ${per(stats.forward!.roundupCalls)})`,
  );
  console.log(lines.slice(-4).join("\n"));
}
console.log(
  `\nSQLite ${version}, ${rows} rows, ${rounds} rounds x ${runs - 1} warm runs, ` +
    `Deno ${Deno.version.deno}, ${Deno.build.os} ${Deno.build.arch}`,
);
