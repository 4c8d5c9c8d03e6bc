// Blocks that own a whole mapping each: the large blocks of PseudoMalloc and SegregatedAllocator,
// and every block of MmapAllocator. One record per block; the OS does the rest.

import { DoubleFreeError, hex, InvalidAddressError, InvalidFreeError } from "./errors.ts";
import { roundUp } from "./_size.ts";
import { mapMemory, memoryView, remapMemory, unmapMemory } from "../ffi/libc.ts";

interface Mapping {
  /** Bytes mapped: the request rounded up to whole pages. */
  length: number;
  /** Bytes requested. */
  requested: number;
  /** One view over the whole mapping, made on first use. */
  bytes: Uint8Array | undefined;
}

/** How many unmapped addresses are remembered to tell a double free from a foreign address. */
const RECENT_UNMAPS = 1024;

/** True for the verbs whose misuse is an InvalidFreeError rather than an InvalidAddressError. */
export function isFreeing(verb: string): boolean {
  return verb === "free" || verb === "reallocate";
}

/** The `TypeError` for an address that is not a number. */
export function notAnAddress(address: unknown, verb: string): TypeError {
  return new TypeError(
    `Cannot ${verb} ${String(address)}: an address must be a number, got ${typeof address}`,
  );
}

/** A set of page-rounded mappings, one per block, keyed by address. */
export class Mappings {
  #pageSize: number;
  #label: string;
  #blocks = new Map<number, Mapping>();
  #recentUnmaps = new Set<number>();
  #mappedBytes = 0;
  #requestedBytes = 0;

  /**
   * @param pageSize The OS page size; every mapping is a whole number of pages.
   * @param label What error messages call a block, e.g. "large block".
   */
  constructor(pageSize: number, label = "block") {
    this.#pageSize = pageSize;
    this.#label = label;
  }

  /** Live mappings. */
  get count(): number {
    return this.#blocks.size;
  }

  /** Bytes mapped by the live blocks. */
  get mappedBytes(): number {
    return this.#mappedBytes;
  }

  /** Bytes requested by the live blocks. */
  get requestedBytes(): number {
    return this.#requestedBytes;
  }

  /** The mapped length of the live block at `address`, or -1 when there is none. */
  lengthOf(address: number): number {
    return this.#blocks.get(address)?.length ?? -1;
  }

  /** Maps a fresh zeroed block of `size` bytes (at least one page) and returns its address. */
  map(size: number): number {
    const length = roundUp(Math.max(size, 1), this.#pageSize);
    const address = mapMemory(length);
    this.#recentUnmaps.delete(address);
    this.#blocks.set(address, { length, requested: size, bytes: undefined });
    this.#mappedBytes += length;
    this.#requestedBytes += size;
    return address;
  }

  /**
   * Unmaps the live block at `address` and returns its requested size; throws (changing nothing)
   * when there is no live block there.
   */
  unmap(address: number): number {
    const block = this.#blocks.get(address);
    if (block === undefined) throw this.rejection(address, "free");
    unmapMemory(address, block.length);
    this.#forget(address, block);
    return block.requested;
  }

  /**
   * Resizes the live block at `address` to `size` bytes and returns its address, which moves when
   * the page count changes and the OS moves it (`mremap`), or where there is no `mremap` (map, copy,
   * unmap). Throws, changing nothing, when the block is not live or the OS refuses.
   */
  resize(address: number, size: number): number {
    const block = this.#blocks.get(address);
    if (block === undefined) throw this.rejection(address, "reallocate");
    const length = roundUp(Math.max(size, 1), this.#pageSize);
    let moved = address;
    if (length !== block.length) {
      const remapped = remapMemory(address, block.length, length);
      if (remapped === undefined) {
        moved = mapMemory(length);
        const kept = Math.min(block.length, length);
        new Uint8Array(memoryView(moved, kept)).set(this.view(address, kept));
        unmapMemory(address, block.length);
      } else {
        moved = remapped;
      }
    }
    this.#forget(address, block);
    this.#recentUnmaps.delete(moved);
    this.#blocks.set(moved, { length, requested: size, bytes: undefined });
    this.#mappedBytes += length;
    this.#requestedBytes += size;
    return moved;
  }

  /** A view of the first `length` bytes of the live block at `address` (checked by the caller). */
  view(address: number, length: number): Uint8Array {
    const block = this.#blocks.get(address)!;
    block.bytes ??= new Uint8Array(memoryView(address, block.length));
    return block.bytes.subarray(0, length);
  }

  /** The live blocks as `[address, mapped length, requested bytes]`. */
  *entries(): IterableIterator<[number, number, number]> {
    for (const [address, block] of this.#blocks) yield [address, block.length, block.requested];
  }

  /**
   * The error for an address that is not a live block here: a double free when it was unmapped
   * recently, an interior address when it falls inside a block, otherwise a foreign address.
   */
  rejection(address: number, verb: string): Error {
    if (typeof address !== "number") return notAnAddress(address, verb);
    const where = `Cannot ${verb} ${hex(address)}`;
    const Invalid = isFreeing(verb) ? InvalidFreeError : InvalidAddressError;
    if (this.#recentUnmaps.has(address)) {
      const message = `${where}: this ${this.#label} was already freed`;
      return isFreeing(verb)
        ? new DoubleFreeError(message, address)
        : new InvalidAddressError(message, address);
    }
    for (const [start, block] of this.#blocks) {
      if (address > start && address < start + block.length) {
        return new Invalid(
          `${where}: it is inside the ${this.#label} at ${hex(start)}, not at its start`,
          address,
        );
      }
    }
    return new Invalid(`${where}: it is not an address of this heap`, address);
  }

  /** Unmaps every block. */
  close(): void {
    for (const [address, block] of this.#blocks) unmapMemory(address, block.length);
    this.#blocks.clear();
    this.#recentUnmaps.clear();
    this.#mappedBytes = 0;
    this.#requestedBytes = 0;
  }

  #forget(address: number, block: Mapping): void {
    this.#blocks.delete(address);
    this.#mappedBytes -= block.length;
    this.#requestedBytes -= block.requested;
    this.#recentUnmaps.add(address);
    if (this.#recentUnmaps.size > RECENT_UNMAPS) {
      this.#recentUnmaps.delete(this.#recentUnmaps.values().next().value!);
    }
  }
}
