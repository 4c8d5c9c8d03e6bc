// Lua's allocator: one `lua_Alloc` that frees, allocates or resizes by its arguments, served by
// any allocator of the package. The lifecycle (callback, counters, guard, close) is
// CallbackSet's in _callbacks.ts; the errors and threads are as c_allocator.ts's module
// documentation says.

import type { Allocator } from "../allocator.ts";
import { CallbackSet, freeOp, mallocOp, reallocOp } from "./_callbacks.ts";
import {
  C_ALLOCATOR_DEFINITIONS,
  type CAllocatorOptions,
  type CAllocatorStats,
} from "./c_allocator.ts";

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
  #set: CallbackSet;

  /**
   * Creates the callback. Prefer {@linkcode luaAllocator}.
   *
   * @param allocator The allocator that serves every call.
   * @param options `onError` and `threadSafe`.
   */
  constructor(allocator: Allocator, options: CAllocatorOptions = {}) {
    const set = new CallbackSet(options);
    const guard = set.guard;
    this.allocator = allocator;
    this.#set = set;
    this.callback = set.make(
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
    return this.#set.closed;
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
    return this.#set.stats();
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
    this.#set.close();
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
