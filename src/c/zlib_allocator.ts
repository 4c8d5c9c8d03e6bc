// zlib's allocator hooks: `zalloc`/`zfree` for the fields of a `z_stream`, served by any
// allocator of the package. The lifecycle (callbacks, counters, guard, close) is CallbackSet's in
// _callbacks.ts; the errors and threads are as c_allocator.ts's module documentation says.

import type { Allocator } from "../allocator.ts";
import { CallbackSet, freeOp, mallocOp } from "./_callbacks.ts";
import {
  C_ALLOCATOR_DEFINITIONS,
  type CAllocatorOptions,
  type CAllocatorStats,
} from "./c_allocator.ts";

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
  #set: CallbackSet;

  /**
   * Creates the callbacks. Prefer {@linkcode zlibAllocator}.
   *
   * @param allocator The allocator that serves every call.
   * @param options `onError` and `threadSafe`.
   */
  constructor(allocator: Allocator, options: CAllocatorOptions = {}) {
    const set = new CallbackSet(options);
    const guard = set.guard;
    this.allocator = allocator;
    this.#set = set;
    this.callbacks = Object.freeze({
      // Two 32-bit factors: the product is exact, and beyond 2^47 malloc rejects it.
      zalloc: set.make(
        C_ALLOCATOR_DEFINITIONS.zalloc,
        (_opaque, items, size) => mallocOp(allocator, guard, items * size, "zalloc"),
      ),
      zfree: set.make(
        C_ALLOCATOR_DEFINITIONS.zfree,
        (_opaque, address) => freeOp(allocator, guard, address, "zfree"),
      ),
    });
    this.zalloc = this.callbacks.zalloc.pointer;
    this.zfree = this.callbacks.zfree.pointer;
  }

  /** True after `close()`. */
  get closed(): boolean {
    return this.#set.closed;
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
    return this.#set.stats();
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
    this.#set.close();
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
