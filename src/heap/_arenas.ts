// The heap's buddy arenas: mapping and unmapping them, and finding the arena of an address.
//
// Arenas are mapped at multiples of `arenaSize` (below 2^31 through the low window where it can,
// else anywhere, aligned by the OS layer), so `Math.floor(address / arenaSize)` is the key of the
// only arena that may own an address, and one `Map` lookup finds it, however many arenas there
// are: with 1 MiB arenas, 0x1012_3450 has key 0x101, the arena at 0x1010_0000. The arena found
// last is remembered, so a run of calls on one arena makes no lookup at all.
//
// Every system call is made before the list changes: an arena is listed once it is mapped, and
// unlisted only once it is unmapped, so a failed `munmap` (an `OsError`) leaves it listed, intact.
//
// Spares (`_spares.ts`): a new arena is a spare one when the heap's `Os` keeps spares and one of
// the same geometry is there (no system call), unless the low window has a free slot below it: an
// arena goes at the lowest address it can have, as the window's own rule keeps arenas packed at the
// bottom. `close` leaves each empty arena as a spare (one free block, every tag 0: clean) while
// the budget has room, and unmaps the rest, those with live blocks among them. `trim` unmaps: it
// gives memory back to the OS.

import type { Os } from "../../ffi/os.ts";
import { BuddyAllocator } from "../buddy/buddy.ts";
import type { TagTable } from "./_tag_table.ts";
import { lowMemory } from "./_low_memory.ts";
import type { SpareArena, Spares } from "./_spares.ts";

/** One buddy arena: its mapping, its allocator, one view over all of it, and its tags. */
export interface Arena {
  base: number;
  /** Mapped in the low window (below 2^31), its tags in the shadow table. */
  low: boolean;
  /** `base / arenaSize`: the arena's key in the lookup table. */
  key: number;
  /** Position in the heap's list of arenas (block cache entries name arenas by it). */
  index: number;
  buddy: BuddyAllocator;
  bytes: Uint8Array;
  /** Per minimum-block slot: requested size + 1 of the live block starting there, or 0. */
  tags: Uint16Array | Uint32Array;
}

/** The shape of every arena of one heap. */
export interface ArenaGeometry {
  arenaSize: number;
  minBlockSize: number;
  /** `log2(minBlockSize)`. */
  minShift: number;
  /** Requests below it are small: tags hold up to `threshold` (16 bits while it is below 64 Ki). */
  threshold: number;
}

/** The arenas of one heap; see the file comment. */
export class Arenas {
  /** The arenas in mapping order; `arena.index` is the position here. */
  list: Arena[] = [];
  /** Where new blocks are split off first. */
  current: Arena | undefined;
  /** Map arenas in the low window (turned off when the tag table cannot be reserved). */
  low: boolean;
  #geometry: ArenaGeometry;
  #os: Os;
  #tags: TagTable;
  #spares: Spares | undefined;
  #byKey = new Map<number, Arena>();
  #lastFound: Arena | undefined;
  #scale: number; // 1 / arenaSize, exact for a power of two

  /**
   * @param geometry Arena size, minimum block and threshold.
   * @param os The system calls.
   * @param tags The heap's shadow table, for low arenas.
   * @param low Whether to map arenas below 2^31.
   * @param spares Where new arenas are taken from first and closed ones left; `undefined`: none.
   */
  constructor(
    geometry: ArenaGeometry,
    os: Os,
    tags: TagTable,
    low: boolean,
    spares: Spares | undefined,
  ) {
    this.#geometry = geometry;
    this.#os = os;
    this.#tags = tags;
    this.#spares = spares;
    this.low = low;
    this.#scale = 1 / geometry.arenaSize;
  }

  /** Bytes mapped for arenas. */
  get mappedBytes(): number {
    return this.list.length * this.#geometry.arenaSize;
  }

  /** The arena whose range holds `address`, if any: one multiplication and (usually) no lookup. */
  arenaOf(address: number): Arena | undefined {
    const key = Math.floor(address * this.#scale);
    const last = this.#lastFound;
    return last !== undefined && last.key === key ? last : this.#find(key);
  }

  /** The table lookup behind {@linkcode Arenas.prototype.arenaOf}, kept out of line. */
  #find(key: number): Arena | undefined {
    const arena = this.#byKey.get(key);
    if (arena !== undefined) this.#lastFound = arena;
    return arena;
  }

  /** True when `arena` is the one listed under its key (for `validate`). */
  isIndexed(arena: Arena): boolean {
    return this.#byKey.get(arena.key) === arena;
  }

  /**
   * The tag of the slot at `offset` (requested size + 1 of the live block starting there), or 0
   * when none does or `offset` is not a whole multiple of the minimum block. Integer operations
   * only: `%` on doubles is a slow fmod call.
   */
  tagOf(arena: Arena, offset: number): number {
    // `offset` is in [0, arenaSize): its slot, shifted back, equals it only for a whole multiple.
    const shift = this.#geometry.minShift;
    const slot = offset >>> shift;
    return slot << shift === offset ? arena.tags[slot]! : 0;
  }

  /** The first arena whose buddy has a free block of `blockSize` bytes, if any. */
  withRoom(blockSize: number): Arena | undefined {
    return this.list.find((arena) => arena.buddy.largestFreeBlock >= blockSize);
  }

  /**
   * Maps a new arena and lists it: in the low window when it has room (its tags then in the shadow
   * table), else anywhere. Throws `OutOfMemoryError` when the OS refuses, listing nothing.
   */
  map(): Arena {
    const { arenaSize, minBlockSize, threshold } = this.#geometry;
    if (this.low && !this.#tags.open()) this.low = false;
    const slots = arenaSize / minBlockSize;
    const wide = threshold >= 0x10000;
    // Low only when the heap maps low: a high arena would cost a low heap its fast paths.
    const spare = this.#spares?.takeArena(
      arenaSize,
      minBlockSize,
      this.low,
      wide,
      this.low ? lowMemory.lowestFreeSlot(arenaSize) : Infinity,
    );
    if (spare !== undefined) {
      const tags = spare.low ? this.#tags.slice(spare.base, slots) : spare.tags!;
      return this.#list(spare.base, spare.low, spare.buddy, spare.bytes, tags);
    }
    const lowBase = this.low ? lowMemory.map(this.#os, arenaSize) : 0;
    const base = lowBase !== 0 ? lowBase : this.#os.map(arenaSize, arenaSize);
    const buffer = this.#os.view(base, arenaSize);
    return this.#list(
      base,
      lowBase !== 0,
      new BuddyAllocator({ size: arenaSize, minBlockSize, memory: buffer }),
      new Uint8Array(buffer),
      // Tags hold requested + 1 <= threshold; a low arena's are its part of the shadow table.
      lowBase !== 0
        ? this.#tags.slice(lowBase, slots)
        : wide
        ? new Uint32Array(slots)
        : new Uint16Array(slots),
    );
  }

  #list(
    base: number,
    low: boolean,
    buddy: BuddyAllocator,
    bytes: Uint8Array,
    tags: Uint16Array | Uint32Array,
  ): Arena {
    const key = base / this.#geometry.arenaSize;
    const arena: Arena = { base, low, key, index: this.list.length, buddy, bytes, tags };
    this.list.push(arena);
    this.#byKey.set(arena.key, arena);
    return arena;
  }

  /**
   * Unmaps every arena with no allocated block (the caller flushed the block cache), one at a time,
   * unlisting each once it is unmapped. Returns the bytes unmapped. When `munmap` fails it throws
   * `OsError`: the arenas unmapped so far are gone, the others still listed and intact.
   */
  unmapEmpty(): number {
    const arenaSize = this.#geometry.arenaSize;
    let released = 0;
    try {
      for (const arena of this.list.filter((arena) => arena.buddy.freeBytes === arenaSize)) {
        this.#unmap(arena);
        this.#unlist(arena);
        if (arena.low) this.#tags.release(arena.base, arena.tags.length);
        released += arenaSize;
      }
    } finally {
      this.#reindex();
    }
    return released;
  }

  /**
   * Lets every arena go, then the shadow table (the caller flushed the block cache): each empty
   * arena a spare while the budget has room, the rest unmapped (those with live blocks always).
   * When `munmap` fails it throws `OsError`: the arenas let go so far are gone (their tags
   * cleared, so that a later arena at the same address starts clean), the others still listed and
   * intact, so `close` can be called again.
   */
  close(): void {
    const { arenaSize } = this.#geometry;
    const spares = this.#spares;
    const unreleased: Arena[] = []; // unmapped low arenas whose tag pages were not given back
    try {
      for (const arena of [...this.list]) {
        // After the flush an arena with no live block is one free block, its tags all 0 already.
        const live = arena.buddy.freeBytes !== arenaSize;
        if (!live && spares?.hasRoom(arenaSize)) {
          this.#unlist(arena);
          spares.keepArena(this.#spare(arena));
          continue;
        }
        this.#unmap(arena);
        this.#unlist(arena);
        if (!arena.low) continue;
        if (live) arena.tags.fill(0);
        // A table that may become a spare keeps no pages for an arena that is gone.
        if (spares !== undefined) this.#tags.release(arena.base, arena.tags.length);
        else unreleased.push(arena);
      }
      this.#tags.close();
    } catch (error) {
      for (const arena of unreleased) this.#tags.release(arena.base, arena.tags.length);
      this.#reindex();
      throw error;
    }
  }

  /** `arena` as a spare, remembering the table its tags are in (a low arena's). */
  #spare(arena: Arena): SpareArena {
    const { arenaSize: size, minBlockSize } = this.#geometry;
    const { base, low, buddy, bytes } = arena;
    const tags = low ? undefined : arena.tags;
    const table = low ? this.#tags.reserved : undefined;
    return { base, size, minBlockSize, low, buddy, bytes, tags, table };
  }

  /** After arenas were unlisted: positions anew (the block cache is empty), the first current. */
  #reindex(): void {
    this.list.forEach((arena, index) => arena.index = index);
    this.current = this.list[0];
    this.#lastFound = undefined;
  }

  #unmap(arena: Arena): void {
    if (arena.low) lowMemory.unmap(this.#os, arena.base, this.#geometry.arenaSize);
    else this.#os.unmap(arena.base, this.#geometry.arenaSize);
  }

  #unlist(arena: Arena): void {
    this.list.splice(this.list.indexOf(arena), 1);
    this.#byKey.delete(arena.key);
    if (this.current === arena) this.current = undefined;
    if (this.#lastFound === arena) this.#lastFound = undefined;
  }
}
