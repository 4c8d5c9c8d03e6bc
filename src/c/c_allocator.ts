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

// This file: the FFI definitions, the options and counters every adapter shares, and the C
// allocator itself. The zlib adapter is in zlib_allocator.ts, the Lua one in lua_allocator.ts;
// the lifecycle they share (making the callbacks, counting, the guard that keeps exceptions out
// of C, closing once) is in _callbacks.ts. A new adapter is one short file like those two.

import type { Allocator } from "../allocator.ts";
import { addressOf, CallbackSet, freeOp, mallocOp, reallocOp } from "./_callbacks.ts";

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
  #set: CallbackSet;

  /**
   * Creates the callbacks. Prefer {@linkcode cAllocator}.
   *
   * @param allocator The allocator that serves every call.
   * @param options `onError` and `threadSafe`.
   */
  constructor(allocator: Allocator, options: CAllocatorOptions = {}) {
    const set = new CallbackSet(options);
    const guard = set.guard;
    const definitions = C_ALLOCATOR_DEFINITIONS;
    this.allocator = allocator;
    this.#set = set;
    this.callbacks = Object.freeze({
      malloc: set.make(
        definitions.malloc,
        (size) => mallocOp(allocator, guard, Number(size), "malloc"),
      ),
      free: set.make(definitions.free, (address) => freeOp(allocator, guard, address, "free")),
      calloc: set.make(definitions.calloc, (count, size) => {
        guard.calls++;
        try {
          const address = allocator.calloc(Number(count), Number(size));
          guard.allocations++;
          return address;
        } catch (error) {
          return guard.fail(error, "calloc");
        }
      }),
      realloc: set.make(
        definitions.realloc,
        (address, size) => reallocOp(allocator, guard, address, Number(size), "realloc"),
      ),
      usableSize: set.make(definitions.usableSize, (value) => {
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
    return this.#set.closed;
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
    return this.#set.stats();
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
    this.#set.close();
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
