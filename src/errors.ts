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
 * ├── HeapClosedError          any call after close()
 * └── HeapCorruptionError      debug mode: memory a block does not own was written
 *     ├── HeapOverflowError    past a block's end, or before its start (its redzones)
 *     └── UseAfterFreeError    into a freed block while it waited in the quarantine
 * ```
 *
 * A `HeapCorruptionError` reports damage done earlier, by other code; the heap's own state is
 * intact. Each is reported once (the bytes are repaired as it is thrown). `free` frees its block
 * all the same and throws after; `realloc` of a damaged block and `check()` throw having done
 * nothing else; a second corruption found by one call is thrown by the next `free` or `check()`.
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
export class DoubleFreeError extends InvalidFreeError {
  /** In debug mode: where the block was allocated (a stack trace), when it is known. */
  readonly allocatedAt: string | undefined;
  /** In debug mode: where it was freed the first time, when it is known. */
  readonly freedAt: string | undefined;

  /**
   * Creates the error.
   *
   * @param message What was wrong, naming the address (and, in debug mode, both sites).
   * @param address The block freed twice.
   * @param sites In debug mode, where the block was allocated and first freed.
   */
  constructor(message: string, address: number, sites: BlockSites = {}) {
    super(message, address);
    this.allocatedAt = sites.allocatedAt;
    this.freedAt = sites.freedAt;
  }
}

/**
 * Where a block was allocated and freed, as debug mode records them (stack traces, the caller's
 * frames only). Part of {@linkcode DoubleFreeError} and {@linkcode HeapCorruptionError}.
 *
 * @example Reading the sites of an error
 * ```ts
 * import { type BlockSites, DoubleFreeError } from "@pseudo/malloc";
 * import assert from "node:assert/strict";
 *
 * const sites: BlockSites = { allocatedAt: "at main (file:///app.ts:3:20)" };
 * const error = new DoubleFreeError("Cannot free 0x10: already freed", 16, sites);
 * assert.equal(error.allocatedAt, sites.allocatedAt);
 * assert.equal(error.freedAt, undefined);
 * ```
 */
export interface BlockSites {
  /** The allocating call's stack, nearest frame first. */
  allocatedAt?: string | undefined;
  /** The first freeing call's stack. */
  freedAt?: string | undefined;
}

/**
 * Debug mode found memory changed that no live block owns: a redzone around a live block, or a
 * freed block waiting in the quarantine. The base of {@linkcode HeapOverflowError} and
 * {@linkcode UseAfterFreeError}: `catch (e) { if (e instanceof HeapCorruptionError) ... }` takes
 * both. The damage was done earlier, by whatever wrote there (C or a JavaScript view); the fields
 * say where to look.
 *
 * @example Catching either kind
 * ```ts
 * import { HeapCorruptionError, PseudoMalloc } from "@pseudo/malloc";
 * import assert from "node:assert/strict";
 *
 * using heap = new PseudoMalloc({ debug: true });
 * const address = heap.malloc(10);
 * const memory = Deno.UnsafePointerView.getArrayBuffer(heap.pointer(address)!, 12);
 * new Uint8Array(memory)[11] = 1; // a byte past the end
 * assert.throws(() => heap.check(), (error: HeapCorruptionError) => {
 *   assert.ok(error instanceof HeapCorruptionError);
 *   assert.equal(error.address, address);
 *   assert.equal(error.offset, 11);
 *   return true;
 * });
 * heap.free(address);
 * ```
 */
export class HeapCorruptionError extends Error {
  /** The block's address. */
  readonly address: number;
  /** Bytes requested for the block. */
  readonly size: number;
  /**
   * The first changed byte, from the block's address: `size` or more past its end, negative
   * before its start, from 0 to `size - 1` inside a freed block.
   */
  readonly offset: number;
  /** Where the block was allocated (a stack trace), when sites are recorded. */
  readonly allocatedAt: string | undefined;
  /** Where it was freed, for a freed block. */
  readonly freedAt: string | undefined;

  /**
   * Creates the error.
   *
   * @param message What was found, naming the block, the offset and the sites.
   * @param block The block's address and requested size.
   * @param offset The first changed byte, from the block's address.
   * @param sites Where the block was allocated (and freed).
   */
  constructor(
    message: string,
    block: { address: number; size: number },
    offset: number,
    sites: BlockSites = {},
  ) {
    super(message);
    this.name = new.target.name;
    this.address = block.address;
    this.size = block.size;
    this.offset = offset;
    this.allocatedAt = sites.allocatedAt;
    this.freedAt = sites.freedAt;
  }
}

/**
 * Debug mode found a redzone changed: bytes after a block's end (an overflow: `offset >= size`)
 * or before its start (an underflow: `offset < 0`) were written. Found on `free`, `realloc` and
 * `check()`.
 *
 * @example One byte past the end
 * ```ts
 * import { HeapOverflowError, PseudoMalloc } from "@pseudo/malloc";
 * import assert from "node:assert/strict";
 *
 * using heap = new PseudoMalloc({ debug: true });
 * const address = heap.malloc(10);
 * heap.bytesAt(address, 10).fill(7);
 * new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(heap.pointer(address)!, 11))[10] = 7;
 * assert.throws(() => heap.check(), (error: HeapOverflowError) => error.offset === 10);
 * ```
 */
export class HeapOverflowError extends HeapCorruptionError {}

/**
 * Debug mode found a freed block changed while it waited in the quarantine: something wrote
 * through a pointer or view it kept after `free`. Found when the block leaves the quarantine and
 * by `check()`.
 *
 * @example A view kept after free
 * ```ts
 * import { PseudoMalloc, UseAfterFreeError } from "@pseudo/malloc";
 * import assert from "node:assert/strict";
 *
 * using heap = new PseudoMalloc({ debug: true });
 * const address = heap.malloc(16);
 * const stale = heap.bytes(address);
 * heap.free(address);
 * stale[3] = 1;
 * assert.throws(() => heap.check(), (error: UseAfterFreeError) => error.offset === 3);
 * ```
 */
export class UseAfterFreeError extends HeapCorruptionError {}

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
