// PseudoMalloc's options, checked and completed with their defaults before the heap exists. A
// value of the wrong type is a `TypeError` naming the option (`{ maxArenas: "2" }` would otherwise
// compare as a number); a number out of range is a `RangeError`.

import type { Os } from "../../ffi/os.ts";
import { libcOs } from "../../ffi/libc.ts";
import { checkArenaGeometry, DEFAULT_ARENA_SIZE, DEFAULT_MIN_BLOCK_SIZE } from "../buddy/buddy.ts";
import { isPowerOfTwo } from "../_size.ts";
import type { LiveAllocation, PseudoMallocOptions } from "./types.ts";

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
  debug: boolean;
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
  expectType("debug", options.debug, "boolean");
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
    debug: options.debug ?? false,
    onLeaks: options.onLeaks,
  };
}
