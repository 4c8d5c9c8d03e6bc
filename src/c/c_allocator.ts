/**
 * Giving a heap to C: C function pointers for `malloc`, `free`, `calloc`, `realloc` and
 * `usable_size` made with `Deno.UnsafeCallback`, and ready adapters for zlib's `zalloc`/`zfree`
 * pair and Lua's `lua_Alloc`. Any {@linkcode Allocator} of the package can serve them.
 *
 * ## The boundary
 *
 * Every parameter and result is declared `usize` (or `u32`), never `pointer`, so a call creates no
 * pointer object: Deno hands a `usize` parameter to the callback as a bigint, which one `Number()`
 * turns into an address, and takes the address back as a number.
 *
 * An exception thrown by a callback cannot cross into C (Deno aborts the process), so no callback
 * throws. Running out of memory returns NULL (0), as C expects, and is counted in
 * {@linkcode CAllocatorStats.outOfMemory}. Misuse by the C side (freeing an address the heap never
 * returned, a double free, a size beyond 2^47, a call after the heap was closed) leaves the heap as
 * it was, returns NULL where the function returns anything, is counted in
 * {@linkcode CAllocatorStats.errors} and goes to the `onError` option: by default the first error
 * is printed on stderr and the others only counted.
 *
 * ## Threads
 *
 * The callbacks run on the JavaScript thread that created them. Called from that thread (a
 * synchronous FFI call that allocates, as zlib does) they run at once. Called from another thread,
 * Deno queues the call to the JavaScript thread and blocks the caller until the event loop runs it:
 * pass `threadSafe: true` so such a call wakes the event loop (the callbacks then keep the process
 * alive until `close()`), and call the library with `nonblocking: true` symbols so the event loop
 * can turn. A synchronous FFI call that waits for a thread that allocates deadlocks.
 *
 * @module
 */

import type { Allocator } from "../allocator.ts";
import { InvalidFreeError, OutOfMemoryError } from "../errors.ts";

/**
 * The FFI signatures of the callbacks, for `Deno.UnsafeFnPointer` (to call a pointer from
 * JavaScript) or for declaring a C function that takes one. Every address and size is a `usize`;
 * zlib's `items` and `size` are C `unsigned`, `u32`.
 *
 * | key          | C type                                                 |
 * | ------------ | ------------------------------------------------------ |
 * | `malloc`     | `void *(*)(size_t size)`                               |
 * | `free`       | `void (*)(void *address)`                              |
 * | `calloc`     | `void *(*)(size_t count, size_t size)`                 |
 * | `realloc`    | `void *(*)(void *address, size_t size)`                |
 * | `usableSize` | `size_t (*)(void *address)`                            |
 * | `zalloc`     | `void *(*)(void *opaque, unsigned items, unsigned size)` |
 * | `zfree`      | `void (*)(void *opaque, void *address)`                |
 * | `luaAlloc`   | `void *(*)(void *ud, void *ptr, size_t osize, size_t nsize)` |
 *
 * @example Calling the malloc pointer as C would
 * ```ts
 * import { C_ALLOCATOR_DEFINITIONS, cAllocator, PseudoMalloc } from "@pseudo/malloc";
 * import assert from "node:assert/strict";
 *
 * using heap = new PseudoMalloc();
 * using c = cAllocator(heap);
 * const malloc = new Deno.UnsafeFnPointer(c.malloc, C_ALLOCATOR_DEFINITIONS.malloc);
 * const address = malloc.call(100n);
 * assert.equal(heap.usableSize(Number(address)), 128);
 * ```
 */
export const C_ALLOCATOR_DEFINITIONS = {
  malloc: { parameters: ["usize"], result: "usize" },
  free: { parameters: ["usize"], result: "void" },
  calloc: { parameters: ["usize", "usize"], result: "usize" },
  realloc: { parameters: ["usize", "usize"], result: "usize" },
  usableSize: { parameters: ["usize"], result: "usize" },
  zalloc: { parameters: ["usize", "u32", "u32"], result: "usize" },
  zfree: { parameters: ["usize", "usize"], result: "void" },
  luaAlloc: { parameters: ["usize", "usize", "usize", "usize"], result: "usize" },
} as const;

// Read-only at run time too: every callback is made from these objects.
for (const definition of Object.values(C_ALLOCATOR_DEFINITIONS)) {
  Object.freeze(definition.parameters);
  Object.freeze(definition);
}
Object.freeze(C_ALLOCATOR_DEFINITIONS);

/**
 * The C function a misuse was reported from, as passed to {@linkcode CAllocatorOptions.onError}.
 *
 * @example Naming the culprit
 * ```ts
 * import type { CAllocatorFunction } from "@pseudo/malloc";
 *
 * const where: CAllocatorFunction = "free";
 * ```
 */
export type CAllocatorFunction =
  | "malloc"
  | "free"
  | "calloc"
  | "realloc"
  | "usable_size"
  | "zalloc"
  | "zfree"
  | "lua_Alloc";

/**
 * Options of {@linkcode cAllocator}, {@linkcode zlibAllocator} and {@linkcode luaAllocator}.
 *
 * @example Collecting misuse instead of printing it
 * ```ts
 * import { cAllocator, type CAllocatorOptions, PseudoMalloc } from "@pseudo/malloc";
 *
 * const misuse: Error[] = [];
 * const options: CAllocatorOptions = { onError: (error) => misuse.push(error) };
 * using heap = new PseudoMalloc();
 * using c = cAllocator(heap, options);
 * ```
 */
export interface CAllocatorOptions {
  /**
   * Called, on the JavaScript thread and inside the C call, with each misuse by the C side: an
   * `InvalidFreeError` or `DoubleFreeError` from `free` or `realloc`, a `RangeError` for a size
   * beyond 2^47, a `HeapClosedError`. The heap is unchanged and the C caller gets NULL (or 0).
   * Whatever this function throws is caught and printed: nothing may cross into C. It must not
   * call back into the C library.
   * @default {print the first error on stderr, count the others silently}
   */
  onError?: (error: Error, source: CAllocatorFunction) => void;
  /**
   * Create the callbacks with `Deno.UnsafeCallback.threadSafe`, for libraries that allocate from
   * threads of their own: such a call then wakes the event loop. The callbacks keep the process
   * alive until `close()`. Either way they run on the JavaScript thread.
   * @default {false}
   */
  threadSafe?: boolean;
}

/**
 * Counters of the calls C made, from `stats()` of {@linkcode CAllocator},
 * {@linkcode ZlibAllocator} and {@linkcode LuaAllocator}. Blocks still held by C:
 * `allocations - frees`.
 *
 * @example Blocks C still holds
 * ```ts
 * import { cAllocator, type CAllocatorStats, PseudoMalloc } from "@pseudo/malloc";
 *
 * using heap = new PseudoMalloc();
 * using c = cAllocator(heap);
 * const stats: CAllocatorStats = c.stats();
 * console.log(stats.allocations - stats.frees); // 0
 * ```
 */
export interface CAllocatorStats {
  /** Calls made through any of the function pointers. */
  calls: number;
  /** Misuse reported to `onError`. */
  errors: number;
  /** Requests answered with NULL because memory ran out (not misuse: C code handles it). */
  outOfMemory: number;
  /** Blocks handed to C (a `realloc` that moves counts one). */
  allocations: number;
  /** Blocks C gave back (a `realloc` that moves counts one). */
  frees: number;
}

/**
 * The `Deno.UnsafeCallback` objects behind {@linkcode CAllocator}'s pointers.
 *
 * @example Reading a definition
 * ```ts
 * import { cAllocator, type CAllocatorCallbacks, PseudoMalloc } from "@pseudo/malloc";
 *
 * using heap = new PseudoMalloc();
 * using c = cAllocator(heap);
 * const callbacks: CAllocatorCallbacks = c.callbacks;
 * console.log(callbacks.malloc.definition.result); // "usize"
 * ```
 */
export interface CAllocatorCallbacks {
  /** `void *malloc(size_t size)`. */
  readonly malloc: Deno.UnsafeCallback<(typeof C_ALLOCATOR_DEFINITIONS)["malloc"]>;
  /** `void free(void *address)`. */
  readonly free: Deno.UnsafeCallback<(typeof C_ALLOCATOR_DEFINITIONS)["free"]>;
  /** `void *calloc(size_t count, size_t size)`. */
  readonly calloc: Deno.UnsafeCallback<(typeof C_ALLOCATOR_DEFINITIONS)["calloc"]>;
  /** `void *realloc(void *address, size_t size)`. */
  readonly realloc: Deno.UnsafeCallback<(typeof C_ALLOCATOR_DEFINITIONS)["realloc"]>;
  /** `size_t usable_size(void *address)`. */
  readonly usableSize: Deno.UnsafeCallback<(typeof C_ALLOCATOR_DEFINITIONS)["usableSize"]>;
}

/**
 * The `Deno.UnsafeCallback` objects behind {@linkcode ZlibAllocator}'s pointers.
 *
 * @example Reading a definition
 * ```ts
 * import { PseudoMalloc, zlibAllocator, type ZlibAllocatorCallbacks } from "@pseudo/malloc";
 *
 * using heap = new PseudoMalloc();
 * using z = zlibAllocator(heap);
 * const callbacks: ZlibAllocatorCallbacks = z.callbacks;
 * console.log(callbacks.zalloc.definition.parameters); // ["usize", "u32", "u32"]
 * ```
 */
export interface ZlibAllocatorCallbacks {
  /** `void *zalloc(void *opaque, unsigned items, unsigned size)`. */
  readonly zalloc: Deno.UnsafeCallback<(typeof C_ALLOCATOR_DEFINITIONS)["zalloc"]>;
  /** `void zfree(void *opaque, void *address)`. */
  readonly zfree: Deno.UnsafeCallback<(typeof C_ALLOCATOR_DEFINITIONS)["zfree"]>;
}

/** What C called and how it went; shared by the callbacks of one set. */
class Guard {
  calls = 0;
  errors = 0;
  outOfMemory = 0;
  allocations = 0;
  frees = 0;
  #onError: (error: Error, source: CAllocatorFunction) => void;

  constructor(onError: ((error: Error, source: CAllocatorFunction) => void) | undefined) {
    this.#onError = onError ?? printFirstError();
  }

  /** Turns an exception into the C result 0: out of memory is counted, anything else reported. */
  fail(error: unknown, source: CAllocatorFunction): 0 {
    // By name too: an allocator from another copy of the package throws another class.
    if (error instanceof OutOfMemoryError || (error as Error | null)?.name === "OutOfMemoryError") {
      this.outOfMemory++;
      return 0;
    }
    this.errors++;
    try {
      this.#onError(error instanceof Error ? error : new Error(String(error)), source);
    } catch (thrown) {
      try {
        console.error(
          `@pseudo/malloc: onError threw while reporting misuse from ${source}:`,
          thrown,
        );
      } catch {
        // Nothing may cross into C.
      }
    }
    return 0;
  }

  stats(): CAllocatorStats {
    return {
      calls: this.calls,
      errors: this.errors,
      outOfMemory: this.outOfMemory,
      allocations: this.allocations,
      frees: this.frees,
    };
  }
}

/** The default `onError`: prints the first error of a callback set, then stays quiet. */
function printFirstError(): (error: Error, source: CAllocatorFunction) => void {
  let printed = false;
  return (error, source) => {
    if (printed) return;
    printed = true;
    console.error(
      `@pseudo/malloc: C code misused the heap in ${source}: ${error.name}: ${error.message} ` +
        `(the heap is unchanged; further errors are only counted in stats().errors)`,
    );
  };
}

/** A numeric address from a `usize` parameter; addresses above 2^53 cannot be the heap's. */
function addressOf(value: number | bigint): number {
  const address = Number(value);
  if (address > Number.MAX_SAFE_INTEGER) {
    throw new InvalidFreeError(
      `Cannot use 0x${value.toString(16)}: it is not an address of this heap`,
      address,
    );
  }
  return address;
}

// The operations, shared by the C allocator and the adapters. Each counts the call, never throws.

function mallocOp(
  allocator: Allocator,
  guard: Guard,
  size: number,
  source: CAllocatorFunction,
): number {
  guard.calls++;
  try {
    const address = allocator.malloc(size);
    guard.allocations++;
    return address;
  } catch (error) {
    return guard.fail(error, source);
  }
}

function freeOp(
  allocator: Allocator,
  guard: Guard,
  value: number | bigint,
  source: CAllocatorFunction,
): void {
  guard.calls++;
  try {
    const address = addressOf(value);
    if (address === 0) return;
    allocator.free(address);
    guard.frees++;
  } catch (error) {
    guard.fail(error, source);
  }
}

function reallocOp(
  allocator: Allocator,
  guard: Guard,
  value: number | bigint,
  size: number,
  source: CAllocatorFunction,
): number {
  guard.calls++;
  try {
    const address = addressOf(value);
    const moved = allocator.realloc(address, size);
    if (moved !== address) {
      if (moved !== 0) guard.allocations++;
      if (address !== 0) guard.frees++;
    }
    return moved;
  } catch (error) {
    return guard.fail(error, source);
  }
}

/** Closes every callback of a set once. */
function closeAll(callbacks: readonly { close(): void }[]): void {
  for (const callback of callbacks) callback.close();
}

/**
 * A callback body for definition `D` that may return a number where Deno's types say bigint.
 * Deno converts a number result to a 64-bit integer exactly (addresses stay below 2^53), and
 * returning the number saves making a bigint per call (about 15 to 60 ns of a 130 ns crossing).
 */
type Body<D extends Deno.UnsafeCallbackDefinition> = (
  ...args: Parameters<Deno.UnsafeCallbackFunction<D["parameters"], D["result"]>>
) => ReturnType<Deno.UnsafeCallbackFunction<D["parameters"], D["result"]>> | number;

/** `new Deno.UnsafeCallback` or, when asked, `Deno.UnsafeCallback.threadSafe`. */
function callbackMaker(options: CAllocatorOptions) {
  return <const D extends Deno.UnsafeCallbackDefinition>(
    definition: D,
    body: Body<D>,
  ): Deno.UnsafeCallback<D> => {
    const fn = body as Deno.UnsafeCallbackFunction<D["parameters"], D["result"]>;
    return options.threadSafe
      ? Deno.UnsafeCallback.threadSafe(definition, fn)
      : new Deno.UnsafeCallback(definition, fn);
  };
}

/**
 * C function pointers for `malloc`, `free`, `calloc`, `realloc` and `usable_size`, served by an
 * {@linkcode Allocator}. Made by {@linkcode cAllocator}. Hand the pointers to a C library (as
 * function-pointer arguments or struct fields); call `close()` once the library is done with
 * them: calling a closed pointer crashes the process.
 *
 * `malloc(0)` returns a unique block, `free(NULL)` does nothing, `realloc(NULL, n)` allocates,
 * `realloc(p, 0)` frees `p` and returns NULL, a failed `realloc` leaves the block untouched,
 * `usable_size(NULL)` is 0. See the module documentation for errors and threads.
 *
 * @example Misuse from C is reported, not thrown
 * ```ts
 * import { C_ALLOCATOR_DEFINITIONS, cAllocator, PseudoMalloc } from "@pseudo/malloc";
 * import assert from "node:assert/strict";
 *
 * using heap = new PseudoMalloc();
 * const errors: Error[] = [];
 * using c = cAllocator(heap, { onError: (error) => errors.push(error) });
 * const malloc = new Deno.UnsafeFnPointer(c.malloc, C_ALLOCATOR_DEFINITIONS.malloc);
 * const free = new Deno.UnsafeFnPointer(c.free, C_ALLOCATOR_DEFINITIONS.free);
 * const address = malloc.call(64n);
 * free.call(address);
 * free.call(address); // a double free
 * assert.equal(errors[0]!.name, "DoubleFreeError");
 * assert.deepEqual(c.stats(), { calls: 3, errors: 1, outOfMemory: 0, allocations: 1, frees: 1 });
 * heap.validate();
 * ```
 */
export class CAllocator implements Disposable {
  /** The allocator serving the calls. */
  readonly allocator: Allocator;
  /** `void *malloc(size_t size)`. */
  readonly malloc: Deno.PointerObject<(typeof C_ALLOCATOR_DEFINITIONS)["malloc"]>;
  /** `void free(void *address)`. */
  readonly free: Deno.PointerObject<(typeof C_ALLOCATOR_DEFINITIONS)["free"]>;
  /** `void *calloc(size_t count, size_t size)`: zeroed memory. */
  readonly calloc: Deno.PointerObject<(typeof C_ALLOCATOR_DEFINITIONS)["calloc"]>;
  /** `void *realloc(void *address, size_t size)`. */
  readonly realloc: Deno.PointerObject<(typeof C_ALLOCATOR_DEFINITIONS)["realloc"]>;
  /** `size_t usable_size(void *address)`, like `malloc_usable_size`. */
  readonly usableSize: Deno.PointerObject<(typeof C_ALLOCATOR_DEFINITIONS)["usableSize"]>;
  /** The callbacks behind the pointers (for their definitions, or `ref()`/`unref()`). */
  readonly callbacks: CAllocatorCallbacks;
  #guard: Guard;
  #closed = false;

  /**
   * Creates the callbacks. Prefer {@linkcode cAllocator}.
   *
   * @param allocator The allocator that serves every call.
   * @param options `onError` and `threadSafe`.
   */
  constructor(allocator: Allocator, options: CAllocatorOptions = {}) {
    const guard = new Guard(options.onError);
    const make = callbackMaker(options);
    const definitions = C_ALLOCATOR_DEFINITIONS;
    this.allocator = allocator;
    this.#guard = guard;
    this.callbacks = Object.freeze({
      malloc: make(
        definitions.malloc,
        (size) => mallocOp(allocator, guard, Number(size), "malloc"),
      ),
      free: make(definitions.free, (address) => freeOp(allocator, guard, address, "free")),
      calloc: make(definitions.calloc, (count, size) => {
        guard.calls++;
        try {
          const address = allocator.calloc(Number(count), Number(size));
          guard.allocations++;
          return address;
        } catch (error) {
          return guard.fail(error, "calloc");
        }
      }),
      realloc: make(
        definitions.realloc,
        (address, size) => reallocOp(allocator, guard, address, Number(size), "realloc"),
      ),
      usableSize: make(definitions.usableSize, (value) => {
        guard.calls++;
        try {
          const address = addressOf(value);
          return address === 0 ? 0 : allocator.usableSize(address);
        } catch (error) {
          return guard.fail(error, "usable_size");
        }
      }),
    });
    this.malloc = this.callbacks.malloc.pointer;
    this.free = this.callbacks.free.pointer;
    this.calloc = this.callbacks.calloc.pointer;
    this.realloc = this.callbacks.realloc.pointer;
    this.usableSize = this.callbacks.usableSize.pointer;
  }

  /** True after `close()`. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * The counters of the calls made so far; readable after `close()` too.
   *
   * @returns A fresh snapshot.
   *
   * @example Counting
   * ```ts
   * import { C_ALLOCATOR_DEFINITIONS, cAllocator, PseudoMalloc } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * using heap = new PseudoMalloc();
   * using c = cAllocator(heap);
   * new Deno.UnsafeFnPointer(c.free, C_ALLOCATOR_DEFINITIONS.free).call(0n); // free(NULL)
   * assert.equal(c.stats().calls, 1);
   * assert.equal(c.stats().frees, 0);
   * ```
   */
  stats(): CAllocatorStats {
    return this.#guard.stats();
  }

  /**
   * Closes the callbacks; the pointers are dead afterwards (C must not call them). The allocator
   * and its blocks are left alone. Closing twice does nothing.
   *
   * @example Explicit close
   * ```ts
   * import { cAllocator, PseudoMalloc } from "@pseudo/malloc";
   *
   * using heap = new PseudoMalloc();
   * const c = cAllocator(heap);
   * c.close();
   * c.close();
   * ```
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const { malloc, free, calloc, realloc, usableSize } = this.callbacks;
    closeAll([malloc, free, calloc, realloc, usableSize]);
  }

  /**
   * Same as {@linkcode CAllocator.prototype.close}, for `using`.
   *
   * @example Scoped callbacks
   * ```ts
   * import { cAllocator, PseudoMalloc } from "@pseudo/malloc";
   *
   * using heap = new PseudoMalloc();
   * {
   *   using c = cAllocator(heap);
   * } // closed here; the heap lives on
   * ```
   */
  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Makes C function pointers for `malloc`, `free`, `calloc`, `realloc` and `usable_size` served by
 * `allocator`: the way to give a heap to a C library that takes an allocator (SQLite's
 * `sqlite3_mem_methods`, libcurl's `curl_global_init_mem`, `uv_replace_allocator`, ...). Needs
 * `--allow-ffi`.
 *
 * @param allocator Any allocator of the package; it must outlive the pointers.
 * @param options `onError` for misuse from C (default: print the first error), `threadSafe`.
 * @returns The pointers, their callbacks, counters and `close()`.
 *
 * @example A malloc/free pair as C sees it
 * ```ts
 * import { C_ALLOCATOR_DEFINITIONS, cAllocator, PseudoMalloc } from "@pseudo/malloc";
 * import assert from "node:assert/strict";
 *
 * using heap = new PseudoMalloc();
 * using c = cAllocator(heap);
 * // Pass c.malloc and c.free to C. Here JavaScript calls them the way C would:
 * const malloc = new Deno.UnsafeFnPointer(c.malloc, C_ALLOCATOR_DEFINITIONS.malloc);
 * const free = new Deno.UnsafeFnPointer(c.free, C_ALLOCATOR_DEFINITIONS.free);
 * const address = malloc.call(100n);
 * assert.equal(heap.stats().liveAllocations, 1);
 * free.call(address);
 * assert.equal(heap.stats().liveAllocations, 0);
 * ```
 */
export function cAllocator(allocator: Allocator, options?: CAllocatorOptions): CAllocator {
  return new CAllocator(allocator, options);
}

/**
 * zlib's allocator hooks, served by an {@linkcode Allocator}: write
 * {@linkcode ZlibAllocator.prototype.zalloc} and {@linkcode ZlibAllocator.prototype.zfree} into
 * the `zalloc` and `zfree` fields of a `z_stream` before `deflateInit`/`inflateInit`; `opaque` is
 * ignored. Made by {@linkcode zlibAllocator}. Close it after `deflateEnd`/`inflateEnd`.
 *
 * @example With the system zlib (see examples/zlib.ts for the whole program)
 * ```ts ignore
 * import { PseudoMalloc, zlibAllocator } from "@pseudo/malloc";
 *
 * using heap = new PseudoMalloc();
 * using z = zlibAllocator(heap);
 * const stream = heap.calloc(1, 112); // z_stream on 64-bit Linux and macOS
 * const fields = new DataView(heap.bytes(stream).buffer, heap.bytes(stream).byteOffset, 112);
 * fields.setBigUint64(64, BigInt(heap.addressOf(z.zalloc)), true);
 * fields.setBigUint64(72, BigInt(heap.addressOf(z.zfree)), true);
 * // deflateInit_(stream, 6, zlibVersion(), 112) ... deflateEnd(stream)
 * console.log(z.stats().allocations === z.stats().frees); // true: nothing left live
 * ```
 */
export class ZlibAllocator implements Disposable {
  /** The allocator serving the calls. */
  readonly allocator: Allocator;
  /** `void *zalloc(void *opaque, unsigned items, unsigned size)`: `items * size` bytes. */
  readonly zalloc: Deno.PointerObject<(typeof C_ALLOCATOR_DEFINITIONS)["zalloc"]>;
  /** `void zfree(void *opaque, void *address)`. */
  readonly zfree: Deno.PointerObject<(typeof C_ALLOCATOR_DEFINITIONS)["zfree"]>;
  /** The callbacks behind the pointers. */
  readonly callbacks: ZlibAllocatorCallbacks;
  #guard: Guard;
  #closed = false;

  /**
   * Creates the callbacks. Prefer {@linkcode zlibAllocator}.
   *
   * @param allocator The allocator that serves every call.
   * @param options `onError` and `threadSafe`.
   */
  constructor(allocator: Allocator, options: CAllocatorOptions = {}) {
    const guard = new Guard(options.onError);
    const make = callbackMaker(options);
    this.allocator = allocator;
    this.#guard = guard;
    this.callbacks = Object.freeze({
      // Two 32-bit factors: the product is exact, and beyond 2^47 malloc rejects it.
      zalloc: make(
        C_ALLOCATOR_DEFINITIONS.zalloc,
        (_opaque, items, size) => mallocOp(allocator, guard, items * size, "zalloc"),
      ),
      zfree: make(
        C_ALLOCATOR_DEFINITIONS.zfree,
        (_opaque, address) => freeOp(allocator, guard, address, "zfree"),
      ),
    });
    this.zalloc = this.callbacks.zalloc.pointer;
    this.zfree = this.callbacks.zfree.pointer;
  }

  /** True after `close()`. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * The counters of zlib's calls so far: `allocations` is how many blocks zlib took.
   *
   * @returns A fresh snapshot.
   *
   * @example Before any stream
   * ```ts
   * import { PseudoMalloc, zlibAllocator } from "@pseudo/malloc";
   *
   * using heap = new PseudoMalloc();
   * using z = zlibAllocator(heap);
   * console.log(z.stats().allocations); // 0
   * ```
   */
  stats(): CAllocatorStats {
    return this.#guard.stats();
  }

  /**
   * Closes both callbacks; zlib must not call them any more. Closing twice does nothing.
   *
   * @example Explicit close
   * ```ts
   * import { PseudoMalloc, zlibAllocator } from "@pseudo/malloc";
   *
   * using heap = new PseudoMalloc();
   * const z = zlibAllocator(heap);
   * z.close();
   * ```
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    closeAll([this.callbacks.zalloc, this.callbacks.zfree]);
  }

  /**
   * Same as {@linkcode ZlibAllocator.prototype.close}, for `using`.
   *
   * @example Scoped hooks
   * ```ts
   * import { PseudoMalloc, zlibAllocator } from "@pseudo/malloc";
   *
   * using heap = new PseudoMalloc();
   * {
   *   using z = zlibAllocator(heap);
   * }
   * ```
   */
  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Makes zlib's `zalloc`/`zfree` pair, served by `allocator`, for the fields of a `z_stream`.
 *
 * @param allocator Any allocator of the package; it must outlive the streams.
 * @param options `onError` for misuse (default: print the first error), `threadSafe`.
 * @returns The two pointers, their callbacks, counters and `close()`.
 *
 * @example Calling the hooks the way zlib does
 * ```ts
 * import { C_ALLOCATOR_DEFINITIONS, PseudoMalloc, zlibAllocator } from "@pseudo/malloc";
 * import assert from "node:assert/strict";
 *
 * using heap = new PseudoMalloc();
 * using z = zlibAllocator(heap);
 * const zalloc = new Deno.UnsafeFnPointer(z.zalloc, C_ALLOCATOR_DEFINITIONS.zalloc);
 * const zfree = new Deno.UnsafeFnPointer(z.zfree, C_ALLOCATOR_DEFINITIONS.zfree);
 * const window = zalloc.call(0n, 32768, 2); // opaque, items, size
 * assert.equal(heap.usableSize(Number(window)), 65536);
 * zfree.call(0n, window);
 * assert.equal(heap.stats().liveAllocations, 0);
 * ```
 */
export function zlibAllocator(allocator: Allocator, options?: CAllocatorOptions): ZlibAllocator {
  return new ZlibAllocator(allocator, options);
}

/**
 * A `lua_Alloc` served by an {@linkcode Allocator}: one function that frees, allocates or resizes
 * by its arguments, for `lua_newstate(alloc, ud)` or `lua_setallocf`. Made by
 * {@linkcode luaAllocator}. `ud` and `osize` are ignored.
 *
 * | call                        | does                             | returns             |
 * | --------------------------- | -------------------------------- | ------------------- |
 * | `alloc(ud, ptr, osize, 0)`  | `free(ptr)` (nothing for NULL)   | NULL                |
 * | `alloc(ud, NULL, tag, n)`   | `malloc(n)`                      | the block, or NULL  |
 * | `alloc(ud, ptr, osize, n)`  | `realloc(ptr, n)`                | the block, or NULL (`ptr` intact) |
 *
 * @example Lua's four cases, called the way Lua does
 * ```ts
 * import { C_ALLOCATOR_DEFINITIONS, luaAllocator, PseudoMalloc } from "@pseudo/malloc";
 * import assert from "node:assert/strict";
 *
 * using heap = new PseudoMalloc();
 * using lua = luaAllocator(heap);
 * const alloc = new Deno.UnsafeFnPointer(lua.alloc, C_ALLOCATOR_DEFINITIONS.luaAlloc);
 * const block = alloc.call(0n, 0n, 4n, 24n); // malloc(24): a new table (tag 4 in osize)
 * const grown = alloc.call(0n, block, 24n, 200n); // realloc to 200 bytes
 * assert.equal(alloc.call(0n, grown, 200n, 0n), 0n); // free
 * assert.equal(alloc.call(0n, 0n, 0n, 0n), 0n); // free(NULL): nothing
 * assert.equal(heap.stats().liveAllocations, 0);
 * ```
 */
export class LuaAllocator implements Disposable {
  /** The allocator serving the calls. */
  readonly allocator: Allocator;
  /** `void *alloc(void *ud, void *ptr, size_t osize, size_t nsize)`. */
  readonly alloc: Deno.PointerObject<(typeof C_ALLOCATOR_DEFINITIONS)["luaAlloc"]>;
  /** The callback behind the pointer. */
  readonly callback: Deno.UnsafeCallback<(typeof C_ALLOCATOR_DEFINITIONS)["luaAlloc"]>;
  #guard: Guard;
  #closed = false;

  /**
   * Creates the callback. Prefer {@linkcode luaAllocator}.
   *
   * @param allocator The allocator that serves every call.
   * @param options `onError` and `threadSafe`.
   */
  constructor(allocator: Allocator, options: CAllocatorOptions = {}) {
    const guard = new Guard(options.onError);
    this.allocator = allocator;
    this.#guard = guard;
    this.callback = callbackMaker(options)(
      C_ALLOCATOR_DEFINITIONS.luaAlloc,
      (_ud, ptr, _osize, nsize) => {
        if (!nsize) {
          freeOp(allocator, guard, ptr, "lua_Alloc");
          return 0;
        }
        if (!ptr) return mallocOp(allocator, guard, Number(nsize), "lua_Alloc");
        return reallocOp(allocator, guard, ptr, Number(nsize), "lua_Alloc");
      },
    );
    this.alloc = this.callback.pointer;
  }

  /** True after `close()`. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * The counters of Lua's calls so far.
   *
   * @returns A fresh snapshot.
   *
   * @example Before any state
   * ```ts
   * import { luaAllocator, PseudoMalloc } from "@pseudo/malloc";
   *
   * using heap = new PseudoMalloc();
   * using lua = luaAllocator(heap);
   * console.log(lua.stats().calls); // 0
   * ```
   */
  stats(): CAllocatorStats {
    return this.#guard.stats();
  }

  /**
   * Closes the callback; call it after `lua_close`. Closing twice does nothing.
   *
   * @example Explicit close
   * ```ts
   * import { luaAllocator, PseudoMalloc } from "@pseudo/malloc";
   *
   * using heap = new PseudoMalloc();
   * const lua = luaAllocator(heap);
   * lua.close();
   * ```
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.callback.close();
  }

  /**
   * Same as {@linkcode LuaAllocator.prototype.close}, for `using`.
   *
   * @example Scoped allocator
   * ```ts
   * import { luaAllocator, PseudoMalloc } from "@pseudo/malloc";
   *
   * using heap = new PseudoMalloc();
   * {
   *   using lua = luaAllocator(heap);
   * }
   * ```
   */
  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Makes a `lua_Alloc` served by `allocator`, for `lua_newstate(lua.alloc, NULL)`.
 *
 * @param allocator Any allocator of the package; it must outlive the Lua state.
 * @param options `onError` for misuse (default: print the first error), `threadSafe`.
 * @returns The pointer, its callback, counters and `close()`.
 *
 * @example Handing it to Lua
 * ```ts ignore
 * import { luaAllocator, PseudoMalloc } from "@pseudo/malloc";
 *
 * const lua = Deno.dlopen("liblua5.4.so", {
 *   lua_newstate: { parameters: ["pointer", "pointer"], result: "pointer" },
 *   lua_close: { parameters: ["pointer"], result: "void" },
 * });
 * using heap = new PseudoMalloc();
 * using hooks = luaAllocator(heap);
 * const state = lua.symbols.lua_newstate(hooks.alloc, null);
 * console.log(heap.stats().liveAllocations); // Lua's blocks, served by the heap
 * lua.symbols.lua_close(state);
 * ```
 */
export function luaAllocator(allocator: Allocator, options?: CAllocatorOptions): LuaAllocator {
  return new LuaAllocator(allocator, options);
}
