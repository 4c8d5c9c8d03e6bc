/**
 * The trace replayer's command line: the help text ({@linkcode USAGE}) and the parser that turns
 * the arguments into {@linkcode Options}, stopping at the first bad one with a
 * {@linkcode UsageError}.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { BUILTIN_TRACES, DEFAULT_SEED } from "./generate.ts";
import { ALLOCATOR_NAMES } from "./targets.ts";

/** The text of `--help`. */
export const USAGE =
  `Usage: deno task trace [options] [trace.rep ...]          (in a clone of the repository)
   or: deno run --allow-ffi --allow-read --allow-write --v8-flags=--no-maglev \\
         jsr:@pseudo/malloc/trace [options] [trace.rep ...]

--allow-read is for trace files and --allow-write for --svg; --v8-flags=--no-maglev, which the
task passes too, keeps libc's FFI calls on Deno's fast path in the timings.

Replays malloc traces (CMU malloc-lab format; "-" reads standard input) through the allocators of
@pseudo/malloc and libc malloc, checking every block, and reports utilization and throughput.
Without files it replays the built-in synthetic traces: ${BUILTIN_TRACES.join(", ")}.

Options:
  --allocator=LIST  comma-separated: ${ALLOCATOR_NAMES.join(", ")} (default: all);
                    libc runs too, as the baseline (--allocator=libc: libc alone)
  --no-libc         do not run libc (no "vs libc" column)
  --json            machine-readable output on stdout
  --svg=FILE        write PseudoMalloc's heap map (SVG) at each trace's peak; with several
                    traces, FILE gets the trace's name before its extension
  --seed=N          seed of the built-in traces (default ${DEFAULT_SEED})
  --scale=X         size of the built-in traces (default 1: about 100,000 operations each)
  --tag=MODE        payload tagging: full (default), ends (first and last 16 bytes), none
  --time=SECONDS    least time spent timing each allocator on each trace (default 0.2)
  --heap=MODE       the heap the timed replays run on: warm, fresh or both (default both).
                    warm: one allocator replays the trace once untimed, then again and again
                    timed, freeing what the trace leaves live after each replay: a program's
                    steady state, and libc's (its heap is the process's). fresh: a new
                    allocator for each timed replay, so each pays a new heap's first use
                    (its first mappings, first-touch page faults, empty caches). both: the
                    throughput and "vs libc" columns are warm, the "fresh" column is the
                    ratio to libc on fresh heaps
  --no-timing       check and measure utilization only
  -h, --help        this text

Columns: utilization is the trace's peak live payload over the allocator's peak memory (the most
bytes it had mapped at once); "sys calls" counts the mmap, munmap, mremap, madvise and mprotect
calls of the checking replay (one replay on a new allocator, what the trace leaves live freed;
close not included), broken down by call under the table.

Exit status: 0 when every check passed, 1 when one failed, 2 for bad arguments or trace files.`;

/** Parsed command line. */
export interface Options {
  files: string[];
  allocators: string[];
  libc: boolean;
  json: boolean;
  svg: string | undefined;
  seed: number;
  scale: number;
  tag: "full" | "ends" | "none";
  time: number;
  timing: boolean;
  heap: "warm" | "fresh" | "both";
}

/** A bad argument or an unreadable trace file: exit status 2. */
export class UsageError extends Error {}

/**
 * The flags, as `node:util`'s `parseArgs` reads them: a `string` flag takes a value (`--seed=7` or
 * `--seed 7`), a `boolean` flag none.
 */
const FLAGS = {
  allocator: { type: "string" },
  "no-libc": { type: "boolean" },
  json: { type: "boolean" },
  svg: { type: "string" },
  seed: { type: "string" },
  scale: { type: "string" },
  tag: { type: "string" },
  time: { type: "string" },
  heap: { type: "string" },
  "no-timing": { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

type Flag = keyof typeof FLAGS;

/**
 * Reads the command line. `parseArgs` splits it into tokens, not strictly: it splits
 * `--flag=value`, gives a string flag the next argument as its value even when that begins with a
 * dash (`--time -1`), and makes every argument after `--` a positional one. It leaves the checks to
 * this function, which goes through the tokens in order and stops at the first bad one with the
 * message of its kind: `--svg needs a value`, `--json takes no value`, `unknown option --x`, then
 * the value's own check (`--seed must be an integer`, ...).
 */
export function parseOptions(args: readonly string[], extra: readonly string[]): Options | "help" {
  const options: Options = {
    files: [],
    allocators: [...ALLOCATOR_NAMES, ...extra, "libc"],
    libc: true,
    json: false,
    svg: undefined,
    seed: DEFAULT_SEED,
    scale: 1,
    tag: "full",
    time: 0.2,
    timing: true,
    heap: "both",
  };
  const { tokens } = parseArgs({
    args: [...args],
    options: FLAGS,
    allowPositionals: true,
    strict: false,
    tokens: true,
  });
  let shortArg = -1;
  for (const token of tokens) {
    if (token.kind === "option-terminator") continue;
    if (token.kind === "positional") {
      options.files.push(token.value); // "-" (standard input) among them
      continue;
    }
    // One dash: -h is the help; any other argument ("-x", "-hx", "-5") is a file's name. parseArgs
    // makes a token of each letter of a group (-hx); the argument is taken once, whole.
    const arg = args[token.index]!;
    if (!arg.startsWith("--")) {
      if (token.index === shortArg) continue;
      shortArg = token.index;
      if (arg === "-h") return "help";
      options.files.push(arg);
      continue;
    }
    const flag = token.rawName;
    const value = token.value;
    const valued = Object.hasOwn(FLAGS, token.name) && FLAGS[token.name as Flag].type === "string";
    if (valued && value === undefined) throw new UsageError(`${flag} needs a value`);
    if (!valued && value !== undefined) throw new UsageError(`${flag} takes no value`);
    const number = (what: string): number => {
      const n = Number(value);
      if (value === "" || !Number.isFinite(n)) {
        throw new UsageError(`${flag}: "${value}" is not a ${what}`);
      }
      return n;
    };
    switch (token.name as Flag) {
      case "allocator": {
        const names = value!.split(",").map((name) => name.trim()).filter((name) => name !== "");
        for (const name of names) {
          if (name !== "libc" && !ALLOCATOR_NAMES.includes(name) && !extra.includes(name)) {
            throw new UsageError(
              `unknown allocator "${name}": expected ${
                [...ALLOCATOR_NAMES, ...extra].join(", ")
              } or libc`,
            );
          }
        }
        if (names.length === 0) throw new UsageError("--allocator needs at least one name");
        options.allocators = names;
        break;
      }
      case "no-libc":
        options.libc = false;
        break;
      case "json":
        options.json = true;
        break;
      case "svg":
        options.svg = value!;
        break;
      case "seed":
        options.seed = number("number");
        if (!Number.isInteger(options.seed)) throw new UsageError("--seed must be an integer");
        break;
      case "scale":
        options.scale = number("number");
        if (!(options.scale > 0)) throw new UsageError("--scale must be positive");
        break;
      case "tag":
        if (value !== "full" && value !== "ends" && value !== "none") {
          throw new UsageError(`--tag must be full, ends or none, not "${value}"`);
        }
        options.tag = value;
        break;
      case "time":
        options.time = number("number of seconds");
        if (!(options.time >= 0)) throw new UsageError("--time must not be negative");
        break;
      case "heap":
        if (value !== "warm" && value !== "fresh" && value !== "both") {
          throw new UsageError(`--heap must be warm, fresh or both, not "${value}"`);
        }
        options.heap = value;
        break;
      case "no-timing":
        options.timing = false;
        break;
      case "help":
        return "help";
      default:
        throw new UsageError(`unknown option ${flag}`);
    }
  }
  // libc is the baseline: it runs unless --no-libc, whatever --allocator lists.
  options.allocators = options.allocators.filter((name) => name !== "libc");
  if (options.libc) options.allocators.push("libc");
  if (options.allocators.length === 0) throw new UsageError("no allocator left to run");
  return options;
}
