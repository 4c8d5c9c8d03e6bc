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
   * Debug mode: the checks C programmers get from glibc's `MALLOC_CHECK_`, Electric Fence and
   * AddressSanitizer, for this heap's blocks. `true` turns on every check with its default; an
   * object sets each (what it leaves out keeps its default, so `{ quarantine: 0 }` turns off only
   * the quarantine). See {@linkcode DebugOptions} and the README's "Finding memory bugs". Slow:
   * each call records a stack trace. @default {false}
   */
  debug?: boolean | DebugOptions;
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
 * The checks of debug mode, each with its default (the `debug` option of
 * {@linkcode PseudoMallocOptions}). The patterns written are {@linkcode DEBUG_FILL}'s.
 *
 * - Redzones: `redzone` bytes before and after every block (after it, the inner block's slack
 *   too), filled with `0xfd`, checked by `free`, `realloc` and `check()`: a changed byte is a
 *   {@linkcode HeapOverflowError}.
 * - Poisoning and quarantine: a freed block is filled with `0xdd` and waits in a FIFO of at most
 *   `quarantine` bytes before its memory is reused; a changed byte when it leaves, or at `check()`,
 *   is a {@linkcode UseAfterFreeError}; a second `free` of it a {@linkcode DoubleFreeError} with both
 *   sites.
 * - `fill`: `malloc` and the bytes `realloc` adds are `0xcd`, so a read of memory never written is
 *   recognisable (`calloc` still zeroes).
 * - Guard pages: a block with a mapping of its own ends at a `PROT_NONE` page, so the first byte
 *   written past it faults at the writing instruction (the process dies with SIGSEGV there).
 *
 * @example Every check but the quarantine, and every block guarded
 * ```ts
 * import { type DebugOptions, PseudoMalloc } from "@pseudo/malloc";
 *
 * const debug: DebugOptions = { quarantine: 0, guardPages: "all" };
 * using heap = new PseudoMalloc({ debug });
 * heap.free(heap.malloc(24)); // a mapping of its own and a guard page: slow, for one bug
 * ```
 */
export interface DebugOptions {
  /**
   * Bytes of redzone before and after each block: 0 (none), or 16 to 4096. The one before is
   * rounded up to 16, so that blocks stay 16-byte aligned. @default {16}
   */
  redzone?: number;
  /**
   * Bytes of freed blocks (their whole inner blocks) held back before reuse; 0 reuses memory at
   * once, as without debug. A block larger than this is freed at once (and still known as freed).
   * @default {16777216}
   */
  quarantine?: number;
  /** Fill what `malloc` hands out with `0xcd`. @default {true} */
  fill?: boolean;
  /**
   * `true`: each block that reaches `mmapThreshold` with its redzones gets a mapping of its own
   * that ends at a guard page (`mprotect(PROT_NONE)`); `"all"`: every block, small ones too (a
   * page and two kernel mappings each: slow); `false`: large blocks are served as without debug,
   * with redzones. At most 16,384 blocks are guarded at once (half of Linux's default
   * `vm.max_map_count`: at the cap V8 itself aborts); past that, blocks get redzones only.
   * @default {true}
   */
  guardPages?: boolean | "all";
  /**
   * Alignment of a guard-paged block: its end is at most `alignment - 1` bytes before the guard
   * page (those bytes are redzone, checked on `free`). 1 puts every block's end at the guard
   * page, at the cost of C's alignment guarantee. A power of two up to 4096. @default {16}
   */
  alignment?: number;
  /**
   * Record where each block was allocated and freed (a stack trace: most of debug mode's cost),
   * for the errors, {@linkcode PseudoMalloc.prototype.liveAllocations} and the leak report.
   * @default {true}
   */
  sites?: boolean;
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
  /**
   * In debug mode: the quarantine and the guard-paged blocks. (The other counters then count the
   * blocks the program asked for: `liveBytes` without redzones, `allocatedBytes` with them.)
   */
  debug?: DebugStats;
}

/**
 * Debug mode's own counters, part of {@linkcode HeapStats}.
 *
 * @example The quarantine after a free
 * ```ts
 * import { PseudoMalloc } from "@pseudo/malloc";
 * import assert from "node:assert/strict";
 *
 * using heap = new PseudoMalloc({ debug: true });
 * heap.free(heap.malloc(100));
 * assert.equal(heap.stats().debug!.quarantinedBlocks, 1);
 * ```
 */
export interface DebugStats {
  /** Freed blocks waiting in the quarantine. */
  quarantinedBlocks: number;
  /** Their bytes (whole inner blocks or mappings). */
  quarantinedBytes: number;
  /** Live and quarantined blocks with a mapping and a guard page of their own. */
  guardedBlocks: number;
  /** Bytes mapped for those blocks, guard pages included (part of `mappedBytes`). */
  guardedBytes: number;
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
