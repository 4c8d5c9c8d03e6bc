/**
 * The public types of {@linkcode PseudoMalloc}: its options, its stats and its list of live
 * blocks.
 *
 * @module
 */

import type { Os } from "../../ffi/os.ts";
import type { AllocatorStats } from "../allocator.ts";

/**
 * Options of {@linkcode PseudoMalloc}. Every field has a default.
 *
 * @example The original design: one fixed 1 MiB arena
 * ```ts
 * import { PseudoMalloc, type PseudoMallocOptions } from "@pseudo/malloc";
 *
 * const options: PseudoMallocOptions = { maxArenas: 1 };
 * using heap = new PseudoMalloc(options);
 * ```
 */
export interface PseudoMallocOptions {
  /** Bytes per buddy arena: a power of two, at least a page, at most 1 GiB. @default {1048576} */
  arenaSize?: number;
  /** Smallest block and alignment of small blocks: a power of two >= 8. @default {16} */
  minBlockSize?: number;
  /**
   * Requests of this many bytes or more get their own mapping; smaller ones go to an arena.
   * At most `arenaSize`. @default {pageSize / 4}
   */
  mmapThreshold?: number;
  /**
   * Most arenas mapped at once; when all are full a small request throws
   * {@linkcode OutOfMemoryError}. `1` is the original design: one fixed arena. @default {Infinity}
   */
  maxArenas?: number;
  /**
   * Map arenas below 2^31 where the OS allows, so that every small block's address is an integer
   * V8 keeps unboxed (see docs/design.md): no heap number per call, and 32-bit
   * arithmetic. Arenas that find no room there are mapped anywhere. Turn off to leave the low 2 GiB
   * of the address space to other code that needs it (e.g. a JIT mapping with `MAP_32BIT`).
   * @default {true}
   */
  lowAddresses?: boolean;
  /**
   * Debug mode: remember where each live block was allocated (a stack trace, costly) for
   * {@linkcode PseudoMalloc.prototype.liveAllocations}, and report leaks on `close()`.
   * @default {false}
   */
  debug?: boolean;
  /**
   * The operating system the heap maps its memory from: every system call goes through it. A
   * test passes one that fails on demand; see `ffi/os.ts` for the contract.
   * @default {libcOs, the C library through FFI}
   */
  os?: Os;
  /**
   * Called by `close()` in debug mode with the blocks still live, if any.
   * @default {a report on the console, one line per leak with its allocation site}
   */
  onLeaks?: (leaks: LiveAllocation[]) => void;
}

/**
 * A live block, as listed by {@linkcode PseudoMalloc.prototype.liveAllocations}.
 *
 * @example Listing live blocks
 * ```ts
 * import { type LiveAllocation, PseudoMalloc } from "@pseudo/malloc";
 * import assert from "node:assert/strict";
 *
 * using heap = new PseudoMalloc();
 * const address = heap.malloc(100);
 * const [block]: LiveAllocation[] = [...heap.liveAllocations()];
 * assert.deepEqual(block, { address, size: 100 });
 * ```
 */
export interface LiveAllocation {
  /** The block's address. */
  address: number;
  /** Bytes requested. */
  size: number;
  /** In debug mode: the stack trace of the call that allocated the block. */
  site?: string;
}

/**
 * Fragmentation of one arena, part of {@linkcode HeapStats}.
 *
 * @example Reading it
 * ```ts
 * import { type ArenaStats, PseudoMalloc } from "@pseudo/malloc";
 *
 * using heap = new PseudoMalloc();
 * heap.malloc(16);
 * const arena: ArenaStats = heap.stats().arenaDetails[0]!;
 * console.log(arena.externalFragmentation); // 0.5: the largest free block is half the free bytes
 * ```
 */
export interface ArenaStats {
  /** The arena's address. */
  address: number;
  /** Bytes in the buddy's free blocks (cached blocks count as allocated until merged). */
  freeBytes: number;
  /** The largest free block. */
  largestFreeBlock: number;
  /** `1 - largestFreeBlock / freeBytes`: 0 when the free memory is one block; 0 when full. */
  externalFragmentation: number;
  /** Free blocks per order: `freeBlocks[k]` blocks of `minBlockSize << k` bytes. */
  freeBlocks: number[];
}

/**
 * A snapshot of a heap's counters, from {@linkcode PseudoMalloc.prototype.stats}.
 *
 * @example Internal fragmentation of the live blocks
 * ```ts
 * import { type HeapStats, PseudoMalloc } from "@pseudo/malloc";
 *
 * using heap = new PseudoMalloc();
 * heap.malloc(100);
 * const stats: HeapStats = heap.stats();
 * console.log(1 - stats.liveBytes / stats.allocatedBytes); // 0.21875: 28 of 128 bytes unused
 * ```
 */
export interface HeapStats extends AllocatorStats {
  /** Buddy arenas mapped now. */
  arenas: number;
  /** Live blocks served by an arena. */
  smallAllocations: number;
  /** Live blocks with their own mapping. */
  largeAllocations: number;
  /** Freed small blocks parked in the block cache, in bytes (free to use; merged on demand). */
  smallCachedBytes: number;
  /** Released large mappings kept for reuse, in bytes (still mapped; `trim()` unmaps them). */
  largeCachedBytes: number;
  /** `1 - liveBytes / allocatedBytes`: the share of allocated bytes that was not requested. */
  internalFragmentation: number;
  /** Per arena: free bytes, largest free block, external fragmentation, free blocks per order. */
  arenaDetails: ArenaStats[];
}

/**
 * The live block that holds an address: its start and its usable size (what `blockOf` gives).
 *
 * @example An interior pointer's block
 * ```ts
 * import { type BlockInfo, PseudoMalloc } from "@pseudo/malloc";
 *
 * using heap = new PseudoMalloc();
 * const address = heap.malloc(100);
 * const block: BlockInfo = heap.blockOf(address + 40);
 * console.log(block.address === address, block.size); // true 128
 * ```
 */
export interface BlockInfo {
  /** Where the block starts. */
  address: number;
  /** Its usable size in bytes (what `usableSize` gives). */
  size: number;
}

/**
 * A block freed at the end of a `using` scope (`heap.scoped(size)`): a temporary buffer for one
 * call without `try`/`finally`.
 *
 * @example A buffer for one call
 * ```ts
 * import { PseudoMalloc, type ScopedBlock } from "@pseudo/malloc";
 *
 * using heap = new PseudoMalloc();
 * {
 *   using block: ScopedBlock = heap.scoped(64);
 *   block.bytes().fill(1);
 * } // freed here
 * console.log(heap.stats().liveAllocations); // 0
 * ```
 */
export interface ScopedBlock extends Disposable {
  /** The block's address. */
  readonly address: number;
  /** The bytes requested. */
  readonly size: number;
  /** The block as a pointer, for FFI. */
  readonly pointer: Deno.PointerValue;
  /** A view of the block (its requested size). */
  bytes(): Uint8Array;
}
