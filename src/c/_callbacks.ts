// The lifecycle shared by every C adapter, written once: a set of `Deno.UnsafeCallback`s made
// from one options object, the counters of the calls C made through them, the guard that turns
// every exception into a C result (nothing may cross into C), and closing the whole set once.
//
// An adapter (c_allocator.ts, zlib_allocator.ts, lua_allocator.ts) is then one short file: it
// makes a `CallbackSet`, makes each of its callbacks with `set.make(definition, body)` from the
// operations below, and forwards `closed`, `stats()` and `close()` to the set. Every callback
// made through `make` is closed by `set.close()`, so an adapter cannot forget one.
//
// The operations (`mallocOp`, `freeOp`, `reallocOp`) count the call, call the allocator, count
// what moved, and never throw: an `OutOfMemoryError` becomes NULL and is counted in
// `outOfMemory`; anything else is misuse, counted in `errors` and handed to `onError`.
//
// Worked example, `realloc(p, n)` that moves the block: `calls` + 1, the new block counts one
// allocation and the old one one free, so `allocations - frees` (the blocks C holds) is
// unchanged; `realloc(NULL, n)` counts only the allocation, `realloc(p, 0)` only the free.

import type { Allocator } from "../allocator.ts";
import { InvalidFreeError, OutOfMemoryError } from "../errors.ts";
import type { CAllocatorFunction, CAllocatorOptions, CAllocatorStats } from "./c_allocator.ts";

/** What C called and how it went; shared by the callbacks of one set. */
export class Guard {
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
export function addressOf(value: number | bigint): number {
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

/** `malloc(size)` for C: the block, or 0 (counted) when it cannot be had. */
export function mallocOp(
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

/** `free(address)` for C: NULL does nothing, misuse is reported and leaves the heap as it was. */
export function freeOp(
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

/** `realloc(address, size)` for C: a move counts one allocation and one free. */
export function reallocOp(
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

/**
 * A callback body for definition `D` that may return a number where Deno's types say bigint.
 * Deno converts a number result to a 64-bit integer exactly (addresses stay below 2^53), and
 * returning the number saves making a bigint per call (about 15 to 60 ns of a 130 ns crossing).
 */
export type Body<D extends Deno.UnsafeCallbackDefinition> = (
  ...args: Parameters<Deno.UnsafeCallbackFunction<D["parameters"], D["result"]>>
) => ReturnType<Deno.UnsafeCallbackFunction<D["parameters"], D["result"]>> | number;

/**
 * One adapter's callbacks and their lifecycle: made from one options object, counted by one
 * {@linkcode Guard}, closed together once.
 */
export class CallbackSet {
  /** The counters and error handling the callbacks of this set share. */
  readonly guard: Guard;
  readonly #threadSafe: boolean;
  readonly #callbacks: { close(): void }[] = [];
  #closed = false;

  /** @param options `onError` for the guard, `threadSafe` for every callback of the set. */
  constructor(options: CAllocatorOptions) {
    this.guard = new Guard(options.onError);
    this.#threadSafe = options.threadSafe === true;
  }

  /**
   * Makes a callback of the set: `new Deno.UnsafeCallback` or, when asked,
   * `Deno.UnsafeCallback.threadSafe`; {@linkcode CallbackSet.prototype.close} closes it.
   */
  make<const D extends Deno.UnsafeCallbackDefinition>(
    definition: D,
    body: Body<D>,
  ): Deno.UnsafeCallback<D> {
    if (this.#closed) throw new Error("Cannot make a callback: the callback set is closed");
    const fn = body as Deno.UnsafeCallbackFunction<D["parameters"], D["result"]>;
    const callback = this.#threadSafe
      ? Deno.UnsafeCallback.threadSafe(definition, fn)
      : new Deno.UnsafeCallback(definition, fn);
    this.#callbacks.push(callback);
    return callback;
  }

  /** True after `close()`. */
  get closed(): boolean {
    return this.#closed;
  }

  /** A fresh snapshot of the counters; readable after `close()` too. */
  stats(): CAllocatorStats {
    return this.guard.stats();
  }

  /** Closes every callback made by the set, once; closing again does nothing. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const callback of this.#callbacks) callback.close();
  }
}
