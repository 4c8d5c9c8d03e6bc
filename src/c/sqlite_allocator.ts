// SQLite's allocator hooks: a ready `sqlite3_mem_methods` struct for
// `sqlite3_config(SQLITE_CONFIG_MALLOC, pointer)`, served by any allocator of the package. The
// lifecycle (callbacks, counters, guard, close) is CallbackSet's in _callbacks.ts; the errors and
// threads are as c_allocator.ts's module documentation says.
//
// The struct, eight pointer-sized members on LP64 (64 bytes):
//
//   offset  member     C type                     offset  member      C type
//        0  xMalloc    void *(*)(int)                 32  xRoundup    int (*)(int)
//        8  xFree      void (*)(void *)               40  xInit       int (*)(void *)
//       16  xRealloc   void *(*)(void *, int)         48  xShutdown   void (*)(void *)
//       24  xSize      int (*)(void *)                56  pAppData    void *
//
// SQLite copies the struct during `sqlite3_config`, so it lives in a plain typed array held by the
// adapter, not in the heap (it is not a block C could leak).
//
// What SQLite calls, and why `xSize` and `xRoundup` must be cheap. With memory statistics on (the
// default, SQLITE_DEFAULT_MEMSTATUS 1) every `sqlite3_malloc(n)` calls `xRoundup(n)` and then
// `xMalloc` of the rounded size, every `sqlite3_free(p)` calls `xSize(p)` to count the bytes freed,
// and every `sqlite3_realloc(p, n)` calls `xSize(p)` and `xRoundup(n)` and keeps `p` when the two
// are equal. So about 60 % of the calls are the two queries, not allocations. `xRoundup` therefore
// answers the heap's own block size (worked example, `PseudoMalloc` with 16-byte minimum blocks and
// a 1024-byte mmapThreshold on 4 KiB pages: 1 -> 16, 100 -> 128, 1000 -> 1023 (1024 would be a
// large block: the largest small request is used instead), 5000 -> 8192), so SQLite asks for the
// whole block, uses its slack, and a realloc within the block costs no `xRealloc` call. Both
// queries are one closure each, with a counter, no allocation and no bigint made.
//
// Why every block is asked for whole. SQLite takes `xSize` as the block's capacity and writes up to
// it (a growing string or record buffer uses its slack, then reallocs). An allocator whose `realloc`
// keeps only the bytes *requested* when it moves a block, while `usableSize` answers the whole
// block, would lose the slack: a block asked for 100 bytes, filled to its 128 by SQLite and moved,
// would lose 28 bytes (tried: a segmentation fault within 100 rows, before PseudoMalloc's `realloc`
// copied whole blocks; the family's allocators are not all held to that). So `xMalloc(n)`
// and `xRealloc(p, n)` ask the heap for the block size of `n` (the same rule as `xRoundup`, whatever
// `roundup` option is given), and what `xSize` answers is exactly what was asked: the block, or,
// for the one block size that reaches the threshold (1024 above), the `threshold - 1` bytes asked.
// An allocator without that geometry gets SQLite's sizes as they are.

import type { Allocator } from "../allocator.ts";
import { addressOf, CallbackSet, freeOp, mallocOp, reallocOp } from "./_callbacks.ts";
import type { CAllocatorFunction, CAllocatorOptions, CAllocatorStats } from "./c_allocator.ts";

/** The largest C `int`: SQLite's sizes are `int`, so no answer may exceed it. */
const INT_MAX = 0x7fff_ffff;

/**
 * The FFI signatures of the seven function members of `sqlite3_mem_methods`, for
 * `Deno.UnsafeFnPointer` (to call one from JavaScript). Sizes are C `int` (`i32`); addresses are
 * `usize`, as in {@linkcode C_ALLOCATOR_DEFINITIONS}.
 *
 * | key         | C type                           |
 * | ----------- | -------------------------------- |
 * | `xMalloc`   | `void *(*)(int size)`            |
 * | `xFree`     | `void (*)(void *address)`        |
 * | `xRealloc`  | `void *(*)(void *address, int size)` |
 * | `xSize`     | `int (*)(void *address)`         |
 * | `xRoundup`  | `int (*)(int size)`              |
 * | `xInit`     | `int (*)(void *appData)`         |
 * | `xShutdown` | `void (*)(void *appData)`        |
 *
 * @example Calling xRoundup as SQLite would
 * ```ts
 * import { PseudoMalloc, SQLITE_MEM_METHODS_DEFINITIONS, sqliteMemMethods } from "@pseudo/malloc";
 * import assert from "node:assert/strict";
 *
 * using heap = new PseudoMalloc();
 * using methods = sqliteMemMethods(heap);
 * const roundup = new Deno.UnsafeFnPointer(
 *   methods.callbacks.xRoundup.pointer,
 *   SQLITE_MEM_METHODS_DEFINITIONS.xRoundup,
 * );
 * assert.equal(roundup.call(100), 128);
 * ```
 */
export const SQLITE_MEM_METHODS_DEFINITIONS = {
  xMalloc: { parameters: ["i32"], result: "usize" },
  xFree: { parameters: ["usize"], result: "void" },
  xRealloc: { parameters: ["usize", "i32"], result: "usize" },
  xSize: { parameters: ["usize"], result: "i32" },
  xRoundup: { parameters: ["i32"], result: "i32" },
  xInit: { parameters: ["usize"], result: "i32" },
  xShutdown: { parameters: ["usize"], result: "void" },
} as const;

for (const definition of Object.values(SQLITE_MEM_METHODS_DEFINITIONS)) {
  Object.freeze(definition.parameters);
  Object.freeze(definition);
}
Object.freeze(SQLITE_MEM_METHODS_DEFINITIONS);

/**
 * The member a misuse was reported from, as passed to {@linkcode SqliteMemMethodsOptions.onError}.
 *
 * @example Naming the culprit
 * ```ts
 * import type { SqliteMemFunction } from "@pseudo/malloc";
 *
 * const where: SqliteMemFunction = "xFree";
 * ```
 */
export type SqliteMemFunction = "xMalloc" | "xFree" | "xRealloc" | "xSize" | "xRoundup";

/**
 * Options of {@linkcode sqliteMemMethods}.
 *
 * @example Collecting misuse and rounding to 8 bytes, as SQLite's own allocator does
 * ```ts
 * import { PseudoMalloc, sqliteMemMethods, type SqliteMemMethodsOptions } from "@pseudo/malloc";
 *
 * const misuse: Error[] = [];
 * const options: SqliteMemMethodsOptions = {
 *   onError: (error) => misuse.push(error),
 *   roundup: (size) => (size + 7) & ~7,
 * };
 * using heap = new PseudoMalloc();
 * using methods = sqliteMemMethods(heap, options);
 * ```
 */
export interface SqliteMemMethodsOptions {
  /**
   * Called, on the JavaScript thread and inside the C call, with each misuse by the C side (as
   * {@linkcode CAllocatorOptions.onError}): an invalid or double free, a bad size, a closed heap,
   * a `roundup` that threw or answered less than the size. The C caller gets NULL (or 0; `xRoundup`
   * answers the size itself). Whatever this function throws is caught and printed.
   * @default {print the first error on stderr, count the others silently}
   */
  onError?: (error: Error, source: SqliteMemFunction) => void;
  /**
   * Make the callbacks with `Deno.UnsafeCallback.threadSafe`, for SQLite used from threads of its
   * own (see {@linkcode CAllocatorOptions.threadSafe}).
   * @default {false}
   */
  threadSafe?: boolean;
  /**
   * `xRoundup`: the size SQLite will ask for instead of `size`, at least `size`, at most
   * 2^31 - 1, and no more than what `xSize` will answer for a block of `size` bytes.
   * @default {the block size of a heap with `mmapThreshold` and `pageSize` (a `PseudoMalloc`: the
   * next power of two of at least the minimum block, whole pages from mmapThreshold), else `size`}
   */
  roundup?: (size: number) => number;
}

/**
 * Counters of SQLite's calls, from {@linkcode SqliteMemMethods.prototype.stats}: the common
 * counters (`calls` counts every member's calls) and the queries and lifecycle calls apart.
 *
 * @example The share of the queries
 * ```ts
 * import { PseudoMalloc, sqliteMemMethods, type SqliteMemStats } from "@pseudo/malloc";
 *
 * using heap = new PseudoMalloc();
 * using methods = sqliteMemMethods(heap);
 * const stats: SqliteMemStats = methods.stats();
 * console.log(stats.sizeCalls + stats.roundupCalls, "of", stats.calls); // 0 of 0
 * ```
 */
export interface SqliteMemStats extends CAllocatorStats {
  /** `xSize` calls. */
  sizeCalls: number;
  /** `xRoundup` calls. */
  roundupCalls: number;
  /** `xInit` calls (one per `sqlite3_initialize` that initializes). */
  inits: number;
  /** `xShutdown` calls (one per `sqlite3_shutdown` that shuts down). */
  shutdowns: number;
}

/**
 * The `Deno.UnsafeCallback` objects behind the struct's seven function members.
 *
 * @example Reading a definition
 * ```ts
 * import { PseudoMalloc, type SqliteMemCallbacks, sqliteMemMethods } from "@pseudo/malloc";
 *
 * using heap = new PseudoMalloc();
 * using methods = sqliteMemMethods(heap);
 * const callbacks: SqliteMemCallbacks = methods.callbacks;
 * console.log(callbacks.xSize.definition.result); // "i32"
 * ```
 */
export interface SqliteMemCallbacks {
  /** `void *xMalloc(int size)`. */
  readonly xMalloc: Deno.UnsafeCallback<(typeof SQLITE_MEM_METHODS_DEFINITIONS)["xMalloc"]>;
  /** `void xFree(void *address)`. */
  readonly xFree: Deno.UnsafeCallback<(typeof SQLITE_MEM_METHODS_DEFINITIONS)["xFree"]>;
  /** `void *xRealloc(void *address, int size)`. */
  readonly xRealloc: Deno.UnsafeCallback<(typeof SQLITE_MEM_METHODS_DEFINITIONS)["xRealloc"]>;
  /** `int xSize(void *address)`. */
  readonly xSize: Deno.UnsafeCallback<(typeof SQLITE_MEM_METHODS_DEFINITIONS)["xSize"]>;
  /** `int xRoundup(int size)`. */
  readonly xRoundup: Deno.UnsafeCallback<(typeof SQLITE_MEM_METHODS_DEFINITIONS)["xRoundup"]>;
  /** `int xInit(void *appData)`. */
  readonly xInit: Deno.UnsafeCallback<(typeof SQLITE_MEM_METHODS_DEFINITIONS)["xInit"]>;
  /** `void xShutdown(void *appData)`. */
  readonly xShutdown: Deno.UnsafeCallback<(typeof SQLITE_MEM_METHODS_DEFINITIONS)["xShutdown"]>;
}

/** The Guard's source type is the C allocator's; SQLite's member names are passed through it. */
const source = (name: SqliteMemFunction) => name as string as CAllocatorFunction;

/**
 * What the adapter asks of a heap whose geometry it can read (numeric `mmapThreshold` and
 * `pageSize`, as `PseudoMalloc`): `block(n)`, the block size a request of `n` gets, asked for
 * whole (see the opening comment); `gap`, the block size of a request of `threshold - 1`, which
 * may reach the threshold: such blocks were asked for `gapSize` bytes, which `xSize` answers.
 * Undefined for other allocators. The minimum block is read from one probe block, allocated and
 * freed at once.
 */
function geometryOf(
  allocator: Allocator,
): { block(size: number): number; gap: number; gapSize: number } | undefined {
  const { mmapThreshold: threshold, pageSize } = allocator as Partial<
    Record<"mmapThreshold" | "pageSize", unknown>
  >;
  if (typeof threshold !== "number" || typeof pageSize !== "number") return undefined;
  const probe = allocator.malloc(1);
  const minBlock = allocator.usableSize(probe);
  allocator.free(probe);
  const pageMask = pageSize - 1;
  const block = (size: number) => {
    if (size < threshold) {
      const whole = size <= minBlock ? minBlock : 2 ** (32 - Math.clz32(size - 1));
      // A whole block at the threshold would be a large request: ask for the largest small one.
      return whole < threshold ? whole : threshold - 1;
    }
    const pages = size + (-size & pageMask);
    return pages <= INT_MAX ? pages : size;
  };
  // The block a request of `threshold - 1` bytes gets, asked for `block(threshold - 1)` bytes.
  const gap = threshold > 1 ? Math.max(minBlock, 2 ** (32 - Math.clz32(threshold - 2))) : 0;
  return { block, gap, gapSize: threshold > 1 ? block(threshold - 1) : 0 };
}

/**
 * A ready `sqlite3_mem_methods` served by an {@linkcode Allocator}: pass
 * {@linkcode SqliteMemMethods.prototype.pointer} to `sqlite3_config(SQLITE_CONFIG_MALLOC, pointer)`
 * (option 4) before `sqlite3_initialize`, once per process. Made by {@linkcode sqliteMemMethods}.
 * Close it only after `sqlite3_shutdown`: SQLite keeps calling the members until then.
 *
 * `xMalloc` answers NULL when memory runs out (SQLite then reports `SQLITE_NOMEM`, 7), `xRealloc`
 * leaves the block untouched when it fails, `xSize` gives the block's usable size (capped at
 * 2^31 - 1; on a `PseudoMalloc` both ask for whole blocks, so that every byte `xSize` promises
 * survives a `realloc` that moves the block), `xRoundup` the block size a request gets (see
 * {@linkcode SqliteMemMethodsOptions.roundup}), `xInit` answers `SQLITE_OK` and `xShutdown` does
 * nothing (both are counted). No member throws into C; misuse goes to `onError`.
 *
 * @example With the system SQLite (tests/fixtures/sqlite_workload.ts is a whole program)
 * ```ts ignore
 * import { PseudoMalloc, sqliteMemMethods } from "@pseudo/malloc";
 *
 * const sqlite = Deno.dlopen("libsqlite3.so.0", {
 *   sqlite3_config: { parameters: ["i32", "pointer"], result: "i32" }, // variadic in C
 *   sqlite3_initialize: { parameters: [], result: "i32" },
 *   sqlite3_shutdown: { parameters: [], result: "i32" },
 * });
 * using heap = new PseudoMalloc();
 * using methods = sqliteMemMethods(heap);
 * sqlite.symbols.sqlite3_config(4, methods.pointer); // SQLITE_CONFIG_MALLOC
 * sqlite.symbols.sqlite3_initialize();
 * // ... sqlite3_open, queries, sqlite3_close ...
 * sqlite.symbols.sqlite3_shutdown();
 * console.log(heap.stats().liveAllocations); // 0
 * sqlite.close();
 * ```
 */
export class SqliteMemMethods implements Disposable {
  /** The allocator serving the calls. */
  readonly allocator: Allocator;
  /** The struct's eight members (the seven function pointers, then `pAppData`, NULL). */
  readonly struct: BigUint64Array;
  /** The struct's address, for `sqlite3_config(SQLITE_CONFIG_MALLOC, pointer)`. */
  readonly pointer: Deno.PointerObject;
  /** The callbacks behind the function members. */
  readonly callbacks: SqliteMemCallbacks;
  /** The `xRoundup` rule in use. */
  readonly roundup: (size: number) => number;
  #set: CallbackSet;
  #counts = { size: 0, roundup: 0, inits: 0, shutdowns: 0 };

  /**
   * Creates the callbacks and the struct. Prefer {@linkcode sqliteMemMethods}.
   *
   * @param allocator The allocator that serves every call.
   * @param options `onError`, `threadSafe` and `roundup`.
   */
  constructor(allocator: Allocator, options: SqliteMemMethodsOptions = {}) {
    const setOptions: CAllocatorOptions = {};
    const onError = options.onError;
    if (onError !== undefined) {
      setOptions.onError = (error, from) => onError(error, from as string as SqliteMemFunction);
    }
    if (options.threadSafe !== undefined) setOptions.threadSafe = options.threadSafe;
    const set = new CallbackSet(setOptions);
    const guard = set.guard;
    const counts = this.#counts;
    const geometry = geometryOf(allocator);
    // What is asked of the heap: the whole block where its geometry is known.
    const grant = geometry?.block ?? ((size: number) => size);
    const gap = geometry?.gap ?? 0;
    const gapSize = geometry?.gapSize ?? 0;
    const roundup = options.roundup ?? grant;
    const defs = SQLITE_MEM_METHODS_DEFINITIONS;
    const X_MALLOC = source("xMalloc");
    const X_FREE = source("xFree");
    const X_REALLOC = source("xRealloc");
    const X_SIZE = source("xSize");
    const X_ROUNDUP = source("xRoundup");
    this.allocator = allocator;
    this.roundup = roundup;
    this.#set = set;
    this.callbacks = Object.freeze({
      xMalloc: set.make(
        defs.xMalloc,
        (size) => mallocOp(allocator, guard, size > 0 ? grant(size) : size, X_MALLOC),
      ),
      xFree: set.make(defs.xFree, (address) => freeOp(allocator, guard, address, X_FREE)),
      xRealloc: set.make(
        defs.xRealloc,
        (address, size) =>
          reallocOp(allocator, guard, address, size > 0 ? grant(size) : size, X_REALLOC),
      ),
      xSize: set.make(defs.xSize, (value) => {
        counts.size++;
        try {
          const address = addressOf(value);
          if (address === 0) return 0;
          const usable = allocator.usableSize(address);
          if (usable === gap) return gapSize; // asked for threshold - 1 bytes
          return usable < INT_MAX ? usable : INT_MAX;
        } catch (error) {
          return guard.fail(error, X_SIZE);
        }
      }),
      xRoundup: set.make(defs.xRoundup, (size) => {
        counts.roundup++;
        try {
          const rounded = roundup(size);
          if ((rounded | 0) === rounded && rounded >= size) return rounded;
          throw new RangeError(
            `Cannot round ${size} up to ${rounded}: it must be an int of at least the size`,
          );
        } catch (error) {
          guard.fail(error, X_ROUNDUP);
          return size;
        }
      }),
      xInit: set.make(defs.xInit, () => {
        counts.inits++;
        return 0; // SQLITE_OK
      }),
      xShutdown: set.make(defs.xShutdown, () => {
        counts.shutdowns++;
      }),
    });
    const c = this.callbacks;
    this.struct = new BigUint64Array(8);
    [c.xMalloc, c.xFree, c.xRealloc, c.xSize, c.xRoundup, c.xInit, c.xShutdown].forEach(
      (callback, index) => {
        this.struct[index] = BigInt(Deno.UnsafePointer.value(callback.pointer));
      },
    );
    this.pointer = Deno.UnsafePointer.of(this.struct)!;
  }

  /** True after `close()`. */
  get closed(): boolean {
    return this.#set.closed;
  }

  /**
   * The counters of SQLite's calls so far; readable after `close()` too.
   *
   * @returns A fresh snapshot; `allocations - frees` is what SQLite still holds.
   *
   * @example Before SQLite is configured
   * ```ts
   * import { PseudoMalloc, sqliteMemMethods } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new PseudoMalloc();
   * using methods = sqliteMemMethods(heap);
   * assert.equal(methods.stats().calls, 0);
   * ```
   */
  stats(): SqliteMemStats {
    const stats = this.#set.stats();
    const counts = this.#counts;
    return {
      ...stats,
      calls: stats.calls + counts.size + counts.roundup + counts.inits + counts.shutdowns,
      sizeCalls: counts.size,
      roundupCalls: counts.roundup,
      inits: counts.inits,
      shutdowns: counts.shutdowns,
    };
  }

  /**
   * Closes the callbacks and zeroes the struct; SQLite must be shut down (`sqlite3_shutdown`)
   * first. The allocator and its blocks are left alone. Closing twice does nothing.
   *
   * @example Explicit close
   * ```ts
   * import { PseudoMalloc, sqliteMemMethods } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new PseudoMalloc();
   * const methods = sqliteMemMethods(heap);
   * methods.close();
   * assert.equal(methods.struct[0], 0n);
   * ```
   */
  close(): void {
    this.#set.close();
    this.struct.fill(0n);
  }

  /**
   * Same as {@linkcode SqliteMemMethods.prototype.close}, for `using`.
   *
   * @example Scoped methods
   * ```ts
   * import { PseudoMalloc, sqliteMemMethods } from "@pseudo/malloc";
   *
   * using heap = new PseudoMalloc();
   * {
   *   using methods = sqliteMemMethods(heap);
   * } // closed here; the heap lives on
   * ```
   */
  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Makes a ready `sqlite3_mem_methods` served by `allocator`, for
 * `sqlite3_config(SQLITE_CONFIG_MALLOC, methods.pointer)`. Needs `--allow-ffi`.
 *
 * @param allocator Any allocator of the package; it must outlive SQLite's use (until
 *   `sqlite3_shutdown`).
 * @param options `onError` for misuse (default: print the first error), `threadSafe`, `roundup`.
 * @returns The struct, its pointer, the callbacks, counters and `close()`.
 *
 * @example Calling the members the way SQLite does
 * ```ts
 * import { PseudoMalloc, SQLITE_MEM_METHODS_DEFINITIONS, sqliteMemMethods } from "@pseudo/malloc";
 * import assert from "node:assert/strict";
 *
 * using heap = new PseudoMalloc();
 * using methods = sqliteMemMethods(heap);
 * const defs = SQLITE_MEM_METHODS_DEFINITIONS;
 * const c = methods.callbacks;
 * const xMalloc = new Deno.UnsafeFnPointer(c.xMalloc.pointer, defs.xMalloc);
 * const xSize = new Deno.UnsafeFnPointer(c.xSize.pointer, defs.xSize);
 * const xFree = new Deno.UnsafeFnPointer(c.xFree.pointer, defs.xFree);
 * const block = xMalloc.call(100);
 * assert.equal(xSize.call(block), 128);
 * xFree.call(block);
 * assert.equal(heap.stats().liveAllocations, 0);
 * assert.equal(methods.stats().calls, 3);
 * ```
 */
export function sqliteMemMethods(
  allocator: Allocator,
  options?: SqliteMemMethodsOptions,
): SqliteMemMethods {
  return new SqliteMemMethods(allocator, options);
}
