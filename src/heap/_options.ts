// PseudoMalloc's options, checked and completed with their defaults before the heap exists. A
// value of the wrong type is a `TypeError` naming the option (`{ maxArenas: "2" }` would otherwise
// compare as a number); a number out of range is a `RangeError`.

import type { Os } from "../../ffi/os.ts";
import { libcOs } from "../../ffi/libc.ts";
import { checkArenaGeometry, DEFAULT_ARENA_SIZE, DEFAULT_MIN_BLOCK_SIZE } from "../buddy/buddy.ts";
import { isPowerOfTwo } from "../_size.ts";
import type { DebugOptions, LiveAllocation, PseudoMallocOptions } from "./types.ts";

/** Debug mode's checks, each with its value (see `DebugOptions`); `undefined`: debug is off. */
export interface DebugConfig {
  /** Bytes before a block: `redzone` rounded up to 16. */
  front: number;
  /** Bytes after a block, at least. */
  back: number;
  quarantine: number;
  fill: boolean;
  /** Which blocks get a mapping and a guard page of their own. */
  guard: "large" | "all" | "none";
  alignment: number;
  sites: boolean;
}

/** Every option with its value. */
export interface HeapConfig {
  os: Os;
  pageSize: number;
  arenaSize: number;
  minBlockSize: number;
  /** `log2(minBlockSize)`. */
  minShift: number;
  threshold: number;
  maxArenas: number;
  lowAddresses: boolean;
  debug: DebugConfig | undefined;
  onLeaks: ((leaks: LiveAllocation[]) => void) | undefined;
}

/** Throws a `TypeError` unless `value` is undefined or of type `type`. */
function expectType(name: string, value: unknown, type: "number" | "boolean" | "function"): void {
  if (value !== undefined && typeof value !== type) {
    throw new TypeError(
      `Cannot use ${name} ${typeof value === "string" ? JSON.stringify(value) : String(value)}: ` +
        `it must be a ${type}, got ${typeof value}`,
    );
  }
}

/**
 * Checks `options` and fills in the defaults.
 *
 * @throws {TypeError} When an option has the wrong type.
 * @throws {RangeError} When an option is out of range.
 */
export function resolveOptions(options: PseudoMallocOptions): HeapConfig {
  for (const name of ["arenaSize", "minBlockSize", "mmapThreshold", "maxArenas"] as const) {
    expectType(name, options[name], "number");
  }
  expectType("lowAddresses", options.lowAddresses, "boolean");
  const debug = resolveDebug(options.debug);
  expectType("onLeaks", options.onLeaks, "function");
  if (options.os !== undefined && typeof options.os?.map !== "function") {
    throw new TypeError(`Cannot use os ${String(options.os)}: it must be an Os (see ffi/os.ts)`);
  }
  const os = options.os ?? libcOs;
  const pageSize = os.pageSize();
  const arenaSize = options.arenaSize ?? DEFAULT_ARENA_SIZE;
  const minBlockSize = options.minBlockSize ?? DEFAULT_MIN_BLOCK_SIZE;
  const threshold = options.mmapThreshold ?? pageSize / 4;
  const maxArenas = options.maxArenas ?? Infinity;
  if (!isPowerOfTwo(arenaSize) || arenaSize < pageSize) {
    throw new RangeError(
      `Cannot use arenaSize ${arenaSize}: it must be a power of two of at least the page size (${pageSize})`,
    );
  }
  // The rest of the arena geometry (minBlockSize, at most 1 GiB), checked as the buddy does.
  checkArenaGeometry(arenaSize, minBlockSize);
  if (!Number.isInteger(threshold) || threshold < 0 || threshold > arenaSize) {
    throw new RangeError(
      `Cannot use mmapThreshold ${threshold}: it must be an integer from 0 to arenaSize (${arenaSize})`,
    );
  }
  if (!(maxArenas >= 0) || (maxArenas % 1 !== 0 && maxArenas !== Infinity)) {
    throw new RangeError(
      `Cannot use maxArenas ${maxArenas}: it must be a non-negative integer or Infinity`,
    );
  }
  return {
    os,
    pageSize,
    arenaSize,
    minBlockSize,
    minShift: Math.log2(minBlockSize),
    threshold,
    maxArenas,
    lowAddresses: options.lowAddresses ?? true,
    debug,
    onLeaks: options.onLeaks,
  };
}

/** 16 MiB of freed blocks wait in the quarantine by default (AddressSanitizer keeps 256 MiB). */
const DEFAULT_QUARANTINE = 16 << 20;

/** Checks the `debug` option (a boolean or `DebugOptions`) and fills in the defaults. */
function resolveDebug(debug: boolean | DebugOptions | undefined): DebugConfig | undefined {
  if (debug === undefined || debug === false) return undefined;
  if (debug !== true && (typeof debug !== "object" || debug === null)) {
    expectType("debug", debug, "boolean"); // the TypeError of a wrong type
    throw new TypeError(`Cannot use debug ${String(debug)}: it must be a boolean or an object`);
  }
  const options: DebugOptions = debug === true ? {} : debug;
  for (const name of ["redzone", "quarantine", "alignment"] as const) {
    expectType(`debug.${name}`, options[name], "number");
  }
  expectType("debug.fill", options.fill, "boolean");
  expectType("debug.sites", options.sites, "boolean");
  const { guardPages = true } = options;
  if (typeof guardPages !== "boolean" && guardPages !== "all") {
    throw new TypeError(
      `Cannot use debug.guardPages ${JSON.stringify(guardPages)}: it must be true, false or "all"`,
    );
  }
  const { redzone = 16, quarantine = DEFAULT_QUARANTINE, alignment = 16 } = options;
  if (!Number.isInteger(redzone) || (redzone !== 0 && (redzone < 16 || redzone > 4096))) {
    throw new RangeError(`Cannot use debug.redzone ${redzone}: it must be 0 or from 16 to 4096`);
  }
  if (!Number.isSafeInteger(quarantine) || quarantine < 0) {
    throw new RangeError(
      `Cannot use debug.quarantine ${quarantine}: it must be a non-negative integer`,
    );
  }
  if (!isPowerOfTwo(alignment) || alignment > 4096) {
    throw new RangeError(
      `Cannot use debug.alignment ${alignment}: it must be a power of two up to 4096`,
    );
  }
  return {
    front: Math.ceil(redzone / 16) * 16,
    back: redzone,
    quarantine,
    fill: options.fill ?? true,
    guard: guardPages === "all" ? "all" : guardPages ? "large" : "none",
    alignment,
    sites: options.sites ?? true,
  };
}
