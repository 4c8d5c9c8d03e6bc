// Blocks that own a whole mapping each: the large blocks of PseudoMalloc and SegregatedAllocator,
// and every block of MmapAllocator. One record per block; the OS does the rest.
//
// Optionally, released mappings are kept in a bounded cache and handed out again for a request of
// the same page count, so a program that allocates and frees the same large sizes makes no system
// call at all. The cap is the larger of `cacheFloor` (8 MiB by default) and 1/8 of the bytes mapped
// for live blocks; a release beyond it unmaps the oldest cached mapping. A cached mapping keeps
// its old contents, so `mapZeroed` (calloc) never takes one: a fresh mapping is already zero and
// costs no memset.
//
// Every system call goes through the `Os` given to the constructor and is made before the records
// change: when `munmap` fails (an `OsError`; Linux refuses to split a mapping past
// `vm.max_map_count`), the block it was for is still recorded as it was, so a failed `free` leaves
// the block live and can be retried, and `trim` or `close` stop with every record true.

import { DoubleFreeError, hex, InvalidAddressError, InvalidFreeError } from "./errors.ts";
import { roundUp } from "./_size.ts";
import { isFreeing, notAnAddress } from "./_checks.ts";
import type { Os } from "../ffi/os.ts";

interface Mapping {
  /** Where it is mapped. */
  address: number;
  /** Bytes mapped: the request rounded up to whole pages. */
  length: number;
  /** Bytes requested. */
  requested: number;
  /** One view over the whole mapping, made on first use. */
  bytes: Uint8Array | undefined;
}

/** How many unmapped addresses are remembered to tell a double free from a foreign address. */
const RECENT_UNMAPS = 1024;

/** Options of {@linkcode Mappings}. */
export interface MappingsOptions {
  /** What error messages call a block. @default {"block"} */
  label?: string;
  /** Keep released mappings for reuse (see the file comment). @default {false} */
  cache?: boolean;
  /** The cache may always hold this many bytes. @default {8 MiB} */
  cacheFloor?: number;
}

/** A set of page-rounded mappings, one per block, keyed by address. */
export class Mappings {
  #pageSize: number;
  #label: string;
  #blocks = new Map<number, Mapping>();
  #recentUnmaps = new Set<number>();
  #mappedBytes = 0;
  #requestedBytes = 0;
  #caching: boolean;
  #cacheFloor: number;
  #cached = new Map<number, Mapping[]>(); // page-rounded length -> released mappings (a stack)
  #cachedRecords = new Map<number, Mapping>(); // address -> its record, oldest first
  #cachedBytes = 0;

  #os: Os;

  /**
   * @param os The system calls; every mapping is a whole number of its pages.
   * @param options Error label and the release cache; see {@linkcode MappingsOptions}.
   */
  constructor(os: Os, options: MappingsOptions = {}) {
    this.#os = os;
    this.#pageSize = os.pageSize();
    this.#label = options.label ?? "block";
    this.#caching = options.cache ?? false;
    this.#cacheFloor = options.cacheFloor ?? 8 << 20;
  }

  /** Bytes of released mappings kept for reuse (still mapped). */
  get cachedBytes(): number {
    return this.#cachedBytes;
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

  /**
   * Maps a block of `size` bytes (at least one page) and returns its address: a cached mapping of
   * the same page count when there is one (old contents), else a fresh zeroed one.
   */
  map(size: number): number {
    const length = roundUp(Math.max(size, 1), this.#pageSize);
    const block = this.#cached.get(length)?.pop();
    if (block === undefined) return this.mapZeroed(size);
    // A cached mapping: its record (and its view) serve again.
    const address = block.address;
    this.#cachedRecords.delete(address);
    this.#cachedBytes -= length;
    block.requested = size;
    this.#blocks.set(address, block);
    this.#mappedBytes += length;
    this.#requestedBytes += size;
    return address;
  }

  /** Like {@linkcode Mappings.prototype.map}, but always a fresh mapping: zeroed by the OS. */
  mapZeroed(size: number): number {
    const length = roundUp(Math.max(size, 1), this.#pageSize);
    const address = this.#os.map(length);
    this.#track(address, length, size);
    return address;
  }

  /** Records a live block at a fresh (or moved) mapping. */
  #track(address: number, length: number, size: number): void {
    this.#recentUnmaps.delete(address);
    this.#blocks.set(address, { address, length, requested: size, bytes: undefined });
    this.#mappedBytes += length;
    this.#requestedBytes += size;
  }

  /**
   * Unmaps (or caches) the live block at `address` and returns its requested size; throws
   * (changing nothing) when there is no live block there, or when `munmap` fails (`OsError`; the
   * block then stays live, and cached mappings evicted before the failure stay unmapped).
   */
  unmap(address: number): number {
    const block = this.#blocks.get(address);
    if (block === undefined) throw this.rejection(address, "free");
    if (this.#caching) this.#makeRoom(block.length);
    const kept = this.#caching && block.length <= this.#cap(-block.length);
    if (!kept) this.#os.unmap(address, block.length); // the only call that can fail: first
    this.#blocks.delete(address);
    this.#mappedBytes -= block.length;
    this.#requestedBytes -= block.requested;
    if (kept) this.#cache(address, block);
    else this.#remember(address);
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
      const remapped = this.#os.remap(address, block.length, length);
      if (remapped === undefined) {
        moved = this.#os.map(length);
        const kept = Math.min(block.length, length);
        new Uint8Array(this.#os.view(moved, kept)).set(this.view(address, kept));
        try {
          this.#os.unmap(address, block.length);
        } catch (error) {
          // The new mapping goes again (a whole mapping of its own: unmapping it splits nothing);
          // if even that fails, the first error is the one to report.
          try {
            this.#os.unmap(moved, length);
          } catch { /* the copy stays mapped: nothing else can be done */ }
          throw error;
        }
      } else {
        moved = remapped;
      }
    }
    this.#forget(address, block);
    this.#track(moved, length, size);
    return moved;
  }

  /** A view of the first `length` bytes of the live block at `address` (checked by the caller). */
  view(address: number, length: number): Uint8Array {
    const block = this.#blocks.get(address)!;
    block.bytes ??= new Uint8Array(this.#os.view(address, block.length));
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
    if (this.#recentUnmaps.has(address) || this.#cachedRecords.has(address)) {
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

  /**
   * Unmaps every cached mapping, oldest first; returns the bytes unmapped. When `munmap` fails it
   * throws `OsError`, and the mappings not unmapped yet stay cached.
   */
  trim(): number {
    const bytes = this.#cachedBytes;
    while (this.#cachedRecords.size > 0) this.#evictOldest();
    return bytes;
  }

  /**
   * Unmaps every block, cached ones too. When `munmap` fails it throws `OsError`; the blocks not
   * unmapped yet stay recorded (live or cached), so `close` can be called again.
   */
  close(): void {
    this.trim();
    for (const [address, block] of this.#blocks) {
      this.#os.unmap(address, block.length);
      this.#blocks.delete(address);
      this.#mappedBytes -= block.length;
      this.#requestedBytes -= block.requested;
    }
    this.#recentUnmaps.clear();
  }

  /** The cache's cap when `change` bytes more are mapped for live blocks. */
  #cap(change = 0): number {
    return Math.max(this.#cacheFloor, (this.#mappedBytes + change) / 8);
  }

  /**
   * Unmaps the oldest cached mappings until `length` more bytes fit under the cap that holds once a
   * live block of `length` bytes is released (or until the cache is empty).
   */
  #makeRoom(length: number): void {
    const cap = this.#cap(-length);
    while (this.#cachedRecords.size > 0 && this.#cachedBytes + length > cap) this.#evictOldest();
  }

  /** Unmaps the oldest cached mapping, then forgets it; a failed `munmap` changes nothing. */
  #evictOldest(): void {
    const [oldest, record] = this.#cachedRecords.entries().next().value!;
    this.#os.unmap(oldest, record.length);
    this.#cachedRecords.delete(oldest);
    const same = this.#cached.get(record.length)!;
    same.splice(same.indexOf(record), 1);
    this.#cachedBytes -= record.length;
    this.#remember(oldest);
  }

  /** Keeps a released mapping for reuse (the caller made room for it). */
  #cache(address: number, block: Mapping): void {
    const list = this.#cached.get(block.length);
    if (list === undefined) this.#cached.set(block.length, [block]);
    else list.push(block);
    this.#cachedRecords.set(address, block);
    this.#cachedBytes += block.length;
  }

  /** Remembers an address that no longer holds a block, to call a later free of it a double free. */
  #remember(address: number): void {
    this.#recentUnmaps.add(address);
    if (this.#recentUnmaps.size > RECENT_UNMAPS) {
      this.#recentUnmaps.delete(this.#recentUnmaps.values().next().value!);
    }
  }

  #forget(address: number, block: Mapping): void {
    this.#blocks.delete(address);
    this.#mappedBytes -= block.length;
    this.#requestedBytes -= block.requested;
    this.#remember(address);
  }
}
