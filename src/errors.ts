/**
 * Error classes thrown by the allocators.
 *
 * Every error is thrown before the heap is changed: after catching one, the heap is exactly as it
 * was, every live block keeps its contents and `validate()` passes.
 *
 * ```
 * Error
 * ├── InvalidAddressError      an address this heap does not own (usableSize, bytes)
 * │   └── InvalidFreeError     free/realloc of an address this heap never returned
 * │       └── DoubleFreeError  free/realloc of a block that is already free
 * ├── OutOfMemoryError         no arena has room and the OS refused more memory
 * ├── OsError                  the OS refused another call (munmap); nothing was changed
 * └── HeapClosedError          any call after close()
 * ```
 *
 * Sizes that are not numbers throw the built-in `TypeError`; negative, fractional, non-finite or
 * impossibly large sizes throw the built-in `RangeError`.
 *
 * @module
 */

/** Formats an address or offset the way C programmers read them: `0x7f3a12c00010`. */
export function hex(value: number): string {
  return Number.isFinite(value) && value >= 0 ? `0x${value.toString(16)}` : String(value);
}

/**
 * Thrown when an address is not the start of a live block of this heap.
 *
 * @example Asking the size of a foreign address
 * ```ts
 * import { InvalidAddressError, PseudoMalloc } from "@pseudo/malloc";
 * import assert from "node:assert/strict";
 *
 * using heap = new PseudoMalloc();
 * assert.throws(() => heap.usableSize(12345), InvalidAddressError);
 * ```
 */
export class InvalidAddressError extends Error {
  /** The address (or, for {@linkcode BuddyAllocator}, the offset) that was rejected. */
  readonly address: number;

  /**
   * Creates the error.
   *
   * @param message What was wrong, naming the address.
   * @param address The rejected address or offset.
   */
  constructor(message: string, address: number) {
    super(message);
    this.name = new.target.name;
    this.address = address;
  }
}

/**
 * Thrown by `free` and `realloc` for an address this heap never returned: foreign, interior to a
 * block, or misaligned.
 *
 * @example Freeing an interior address
 * ```ts
 * import { InvalidFreeError, PseudoMalloc } from "@pseudo/malloc";
 * import assert from "node:assert/strict";
 *
 * using heap = new PseudoMalloc();
 * const address = heap.malloc(64);
 * assert.throws(() => heap.free(address + 16), InvalidFreeError);
 * heap.free(address);
 * ```
 */
export class InvalidFreeError extends InvalidAddressError {}

/**
 * Thrown by `free` and `realloc` for a block that is already free. It extends
 * {@linkcode InvalidFreeError}, so one `catch` handles both.
 *
 * @example Freeing twice
 * ```ts
 * import { DoubleFreeError, PseudoMalloc } from "@pseudo/malloc";
 * import assert from "node:assert/strict";
 *
 * using heap = new PseudoMalloc();
 * const address = heap.malloc(64);
 * heap.free(address);
 * assert.throws(() => heap.free(address), DoubleFreeError);
 * ```
 */
export class DoubleFreeError extends InvalidFreeError {}

/**
 * Thrown when a request cannot be served: every arena is full and `maxArenas` is reached, or the
 * operating system refused to map more memory (then `errno` holds the OS error number).
 *
 * @example A single full arena
 * ```ts
 * import { OutOfMemoryError, PseudoMalloc } from "@pseudo/malloc";
 * import assert from "node:assert/strict";
 *
 * using heap = new PseudoMalloc({ maxArenas: 1, arenaSize: 4096, mmapThreshold: 4096 });
 * heap.malloc(4000);
 * assert.throws(() => heap.malloc(16), OutOfMemoryError);
 * ```
 */
export class OutOfMemoryError extends Error {
  /** The OS error number when a system call failed, otherwise `undefined`. */
  readonly errno: number | undefined;

  /**
   * Creates the error.
   *
   * @param message What could not be served.
   * @param errno The OS error number, when a system call failed.
   */
  constructor(message: string, errno?: number) {
    super(message);
    this.name = "OutOfMemoryError";
    this.errno = errno;
  }
}

/**
 * Thrown when the operating system refuses a call other than a request for memory, such as
 * `munmap` failing with ENOMEM because splitting a mapping would pass Linux's `vm.max_map_count`.
 * Like every error here it is thrown before the heap changes (or after its change was put back):
 * the memory is still mapped, every live block keeps its contents, and the call can be retried.
 *
 * @example Reading the fields
 * ```ts
 * import { OsError } from "@pseudo/malloc";
 * import assert from "node:assert/strict";
 *
 * const error = new OsError("munmap", 12, "Cannot unmap 4096 bytes: munmap said ENOMEM");
 * assert.equal(error.call, "munmap");
 * assert.equal(error.errno, 12);
 * ```
 */
export class OsError extends Error {
  /** The C function that failed, e.g. `"munmap"`. */
  readonly call: string;
  /** The OS error number it set. */
  readonly errno: number;

  /**
   * Creates the error.
   *
   * @param call The C function that failed.
   * @param errno The OS error number.
   * @param message The whole message, "Cannot X: reason", naming the call and the error.
   */
  constructor(call: string, errno: number, message: string) {
    super(message);
    this.name = "OsError";
    this.call = call;
    this.errno = errno;
  }
}

/**
 * Thrown by every method of a heap after `close()`.
 *
 * @example Using a closed heap
 * ```ts
 * import { HeapClosedError, PseudoMalloc } from "@pseudo/malloc";
 * import assert from "node:assert/strict";
 *
 * const heap = new PseudoMalloc();
 * heap.close();
 * assert.throws(() => heap.malloc(8), HeapClosedError);
 * ```
 */
export class HeapClosedError extends Error {
  /**
   * Creates the error.
   *
   * @param operation The method that was called.
   */
  constructor(operation: string) {
    super(`Cannot call ${operation}: the heap is closed`);
    this.name = "HeapClosedError";
  }
}
