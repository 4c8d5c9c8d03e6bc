// A fault-injecting OS for tests: the real one (`libcOs`), except that a chosen call fails the way
// the real one fails (mapping calls with OutOfMemoryError, unmap with OsError, advice and
// protection by returning false), without reaching the OS. It also counts every call.
//
// Typical use, failing each call of a kind in turn until the scenario no longer reaches it:
//
//   for (let n = 0; ; n++) {
//     const os = new FaultyOs();
//     using heap = new PseudoMalloc({ os });
//     os.fail("unmap", n);                 // the n-th unmap from now fails
//     try { scenario(heap); } catch (e) { assert.ok(e instanceof OsError); }
//     heap.validate();
//     if (!os.failed) break;                // the scenario made fewer than n + 1 unmaps
//   }

import type { Os, OsCall } from "../ffi/os.ts";
import { libcOs } from "../ffi/libc.ts";
import { OsError, OutOfMemoryError } from "../src/errors.ts";

const ENOMEM = 12;

/** The OS of `ffi/libc.ts`, with faults on demand and a count of every call. */
export class FaultyOs implements Os {
  /** Calls made so far, failed ones included, by kind. */
  readonly calls: Record<OsCall, number> = {
    map: 0,
    mapAt: 0,
    reserve: 0,
    unmap: 0,
    remap: 0,
    adviseDontNeed: 0,
    protect: 0,
  };
  /** True once an injected fault has fired. */
  failed = false;
  /** Bytes mapped through this OS and not unmapped: 0 after a heap closed means nothing leaked. */
  mappedBytes = 0;
  #failing: OsCall | undefined;
  #canRemap: boolean;
  #countdown = 0;
  #errno = ENOMEM;
  #sticky = false;

  /**
   * @param options `remap: false` plays an OS without `mremap` (macOS): `remap` returns
   *   `undefined`, and callers map, copy and unmap instead.
   */
  constructor(options: { remap?: boolean } = {}) {
    this.#canRemap = options.remap ?? true;
  }

  /**
   * Makes the `after`-th next call of `call` fail (0: the next one), with `errno`; `sticky`: and
   * every one after it too, until {@linkcode FaultyOs.prototype.heal}.
   */
  fail(call: OsCall, after = 0, options: { errno?: number; sticky?: boolean } = {}): this {
    this.#failing = call;
    this.#countdown = after;
    this.#errno = options.errno ?? ENOMEM;
    this.#sticky = options.sticky ?? false;
    this.failed = false;
    return this;
  }

  /** Stops injecting faults. */
  heal(): this {
    this.#failing = undefined;
    return this;
  }

  /** True when this call of `call` is to fail; counts it. */
  #faults(call: OsCall): boolean {
    this.calls[call]++;
    if (this.#failing !== call) return false;
    if (this.#countdown > 0) {
      this.#countdown--;
      return false;
    }
    if (!this.#sticky) this.#failing = undefined;
    this.failed = true;
    return true;
  }

  #outOfMemory(what: string): OutOfMemoryError {
    return new OutOfMemoryError(`${what}: injected fault (errno ${this.#errno})`, this.#errno);
  }

  pageSize(): number {
    return libcOs.pageSize();
  }

  map(length: number, alignment?: number): number {
    if (this.#faults("map")) throw this.#outOfMemory(`Cannot map ${length} bytes`);
    const address = libcOs.map(length, alignment);
    this.mappedBytes += length;
    return address;
  }

  mapAt(address: number, length: number): number {
    if (this.#faults("mapAt")) throw this.#outOfMemory(`Cannot map ${length} bytes`);
    const mapped = libcOs.mapAt(address, length);
    if (mapped !== 0) this.mappedBytes += length;
    return mapped;
  }

  reserve(length: number): number {
    if (this.#faults("reserve")) throw this.#outOfMemory(`Cannot reserve ${length} bytes`);
    const address = libcOs.reserve(length);
    this.mappedBytes += length;
    return address;
  }

  unmap(address: number, length: number): void {
    if (this.#faults("unmap")) {
      throw new OsError(
        "munmap",
        this.#errno,
        `Cannot unmap ${length} bytes at 0x${address.toString(16)}: injected fault`,
      );
    }
    libcOs.unmap(address, length);
    this.mappedBytes -= length;
  }

  remap(address: number, oldLength: number, newLength: number): number | undefined {
    if (this.#faults("remap")) {
      throw this.#outOfMemory(`Cannot remap ${oldLength} to ${newLength} bytes`);
    }
    if (!this.#canRemap) return undefined;
    const moved = libcOs.remap(address, oldLength, newLength);
    if (moved !== undefined) this.mappedBytes += newLength - oldLength;
    return moved;
  }

  adviseDontNeed(address: number, length: number): boolean {
    if (this.#faults("adviseDontNeed")) return false;
    return libcOs.adviseDontNeed(address, length);
  }

  protect(address: number, length: number, access: "none" | "read" | "read-write"): boolean {
    if (this.#faults("protect")) return false;
    return libcOs.protect(address, length, access);
  }

  view(address: number, length: number): ArrayBuffer {
    return libcOs.view(address, length);
  }
}
