// PseudoMalloc's debug mode: redzones, poisoning and a quarantine, guard pages, allocation sites,
// and the leak report on close. A layer over the heap: each block the program asks for lives inside
// an inner block of the ordinary heap (or a mapping of its own, `_debug_guarded.ts`), with room
// around it for the redzones (`_debug_block.ts` draws the layout and checks one block; the
// quarantine's records are `_debug_quarantine.ts`).
//
// `malloc(100)` with the defaults (16-byte redzones) takes an inner block of 100 + 16 + 16 = 132
// bytes, a 256-byte buddy block at, say, 0x1000; the program gets 0x1010. Bytes 0x1000-0x100f and
// 0x1074-0x10ff (the back redzone and the block's slack) hold 0xfd; the 100 bytes hold 0xcd.
// `free(0x1010)` checks the 0xfd bytes (a changed one is a `HeapOverflowError`, offset 100 for the
// first byte past the end, -1 for the byte before the start), fills the 100 bytes with 0xdd and
// parks the inner block in the quarantine, a FIFO of at most `quarantine` bytes. When later frees
// push it out, its bytes are checked again (a changed one is a `UseAfterFreeError`) and the inner
// block is freed for real. Addresses that left the quarantine are remembered (the last 65,536) with
// their sites, so that freeing one again is still a `DoubleFreeError` naming both sites, until
// the address is handed out again.
//
// A block whose inner request (with its redzones) reaches the heap's `mmapThreshold` would get
// whole pages of its own anyway: with guard pages on, it gets them from `mapGuarded` instead, its
// end at a guard page. At most `GUARDED_LIMIT` blocks are guarded at once; past it blocks get
// redzones only, so that the kernel's cap on mappings is never reached (V8 needs mappings too: at
// the cap it aborts the process).
//
// How it is installed: `installDebugHooks` gives the heap own properties `malloc`, `calloc`,
// `realloc`, `free`, `usableSize` and `bytes` that shadow the prototype's methods, so a heap
// without debug pays nothing on its fast paths; the prototype's other methods (`blockOf`, `stats`,
// `validate`, `check`, `liveAllocations`, `trim`, `close`) ask the heap's `DebugHeap`.
//
// Errors: a corruption is reported once: its bytes are repaired when its error is sure to be
// thrown (an `munmap` that fails first leaves the damage to be found again). `free` always frees: a
// corruption it finds, in its block or in one it lets out of the quarantine, is thrown once the
// block is freed, so that C code, which never retries a free, leaks nothing; a second one found by
// the same call waits in `#pending` for the next `free`, `check()` or `trim()`. `realloc` throws
// before it moves anything when its own block is damaged (a C caller sees NULL and keeps its
// block); damage it finds in blocks leaving the quarantine waits in `#pending` too. Every other
// error, an `OsError` included, is thrown before anything changes.

import type { Allocator } from "../allocator.ts";
import { BlockStarts } from "../_block_starts.ts";
import { checkOpen, isFreeing, notAnAddress } from "../_checks.ts";
import { Counters } from "../_counters.ts";
import {
  DoubleFreeError,
  type HeapCorruptionError,
  hex,
  InvalidAddressError,
  InvalidFreeError,
} from "../errors.ts";
import { callocSize, checkSize, viewLength } from "../_size.ts";
import type { HeapCore } from "./_core.ts";
import {
  bodyOf,
  captureSite,
  DEBUG_FILL,
  type DebugBlock,
  freedDamage,
  prepare,
  repairFreed,
  repairZones,
  siteOf,
  sitesOf,
  sitesText,
  zoneDamage,
} from "./_debug_block.ts";
import { mapGuarded } from "./_debug_guarded.ts";
import { Quarantine } from "./_debug_quarantine.ts";
import type { DebugConfig } from "./_options.ts";
import type { BlockInfo, DebugStats, HeapStats, LiveAllocation } from "./types.ts";

/**
 * Guarded blocks (live and quarantined) at most at once: 32,768 kernel mappings, half of Linux's
 * default `vm.max_map_count` (65,530). Measured: at about 32,600 guarded blocks `mprotect` fails,
 * and V8 then aborts the process for want of a mapping of its own.
 */
export const GUARDED_LIMIT = 16384;

/** The heap methods the layer allocates its inner blocks with: the prototype's, not its own. */
type Inner = Pick<Allocator, "malloc" | "free" | "usableSize">;

/** The checks of debug mode over one heap; see the file comment. */
export class DebugHeap {
  readonly #config: DebugConfig;
  readonly #core: HeapCore;
  readonly #inner: Inner;
  readonly #live = new Map<number, DebugBlock>();
  readonly #quarantine: Quarantine;
  /** Guarded blocks (live or quarantined) by the start of their mapping. */
  readonly #guarded = new Map<number, DebugBlock>();
  #guardedBytes = 0;
  /** Counts guarded mappings made and unmapped: when the sorted starts are stale. */
  #guardedChanges = 0;
  readonly #guardedStarts: BlockStarts;
  readonly #counters = new Counters();
  #allocatedBytes = 0;
  /** Corruptions found and not reported yet, oldest first (see `#throwPending`). */
  readonly #pending: HeapCorruptionError[] = [];
  /** Live guarded blocks a `close` that failed half-way unmapped: still leaks to report. */
  readonly #leakedInClose: LiveAllocation[] = [];

  /**
   * @param config Debug mode's checks.
   * @param core The heap (its OS, page size, `startOf`, `view`).
   * @param inner The heap's own `malloc`, `free` and `usableSize`.
   */
  constructor(config: DebugConfig, core: HeapCore, inner: Inner) {
    this.#config = config;
    this.#core = core;
    this.#inner = inner;
    this.#quarantine = new Quarantine(config.quarantine);
    this.#guardedStarts = new BlockStarts(core.config.pageSize);
  }

  // --- the program's calls ----------------------------------------------------------------------

  malloc(size: number): number {
    checkOpen(this.#core.closed, "malloc");
    checkSize(size, "allocate");
    return this.#peaks(this.#allocate(size, false));
  }

  calloc(count: number, size: number): number {
    checkOpen(this.#core.closed, "calloc");
    return this.#peaks(this.#allocate(callocSize(count, size), true));
  }

  realloc(address: number, size: number): number {
    checkOpen(this.#core.closed, "realloc");
    if (address === 0) return this.malloc(size);
    checkSize(size, "reallocate");
    if (size === 0) {
      this.free(address);
      return 0;
    }
    const block = this.#liveBlock(address, "reallocate");
    const damage = zoneDamage(block);
    if (damage !== undefined) {
      repairZones(block);
      throw damage;
    }
    // Room first; what leaves damaged is reported by the next free or check (C sees the realloc
    // succeed: it did nothing wrong here).
    this.#makeRoom(block);
    // Always moves, as Electric Fence does: a pointer kept to the old block is then stale at once,
    // and the old block waits in the quarantine where a write through it is found.
    const moved = this.#allocate(size, false);
    const fresh = this.#live.get(moved)!;
    bodyOf(fresh).set(bodyOf(block).subarray(0, Math.min(size, block.size)));
    try {
      this.#retire(block);
    } catch (error) {
      this.#undo(fresh); // munmap refused: the old block stays, the new one goes
      throw error;
    }
    return this.#peaks(moved);
  }

  free(address: number): void {
    checkOpen(this.#core.closed, "free");
    if (address === 0) return;
    const block = this.#liveBlock(address, "free");
    const damage = zoneDamage(block);
    this.#makeRoom(block);
    this.#retire(block); // may throw OsError: then nothing changed, the damage not reported yet
    if (damage !== undefined) {
      if (this.#quarantine.get(address) === block) repairZones(block);
      this.#pending.unshift(damage); // its own block's first, then what it let out of quarantine
    }
    this.#throwPending();
  }

  usableSize(address: number): number {
    checkOpen(this.#core.closed, "usableSize");
    return this.#liveBlock(address, "find the size of").size;
  }

  bytes(address: number, length?: number): Uint8Array {
    checkOpen(this.#core.closed, "bytes");
    const block = this.#liveBlock(address, "view");
    return bodyOf(block).subarray(0, viewLength(address, length, block.size));
  }

  /** The live block holding `address` (an integer), or `undefined`. */
  blockOf(address: number): BlockInfo | undefined {
    const block = this.#live.get(address) ?? this.#holding(address);
    return block === undefined || this.#live.get(block.address) !== block
      ? undefined
      : { address: block.address, size: block.size };
  }

  // --- checks -----------------------------------------------------------------------------------

  /** Every live block's redzones, then every quarantined block's bytes; throws the first damage. */
  check(): void {
    this.#throwPending();
    for (const block of this.#live.values()) {
      const damage = zoneDamage(block);
      if (damage !== undefined) {
        repairZones(block);
        throw damage;
      }
    }
    for (const block of this.#quarantine.blocks()) {
      const damage = freedDamage(block, "is in the quarantine");
      if (damage !== undefined) {
        repairFreed(block);
        throw damage;
      }
    }
  }

  /** The layer's own invariants: records, the quarantine and the heap's inner blocks agree. */
  validate(): void {
    const fail = (what: string): never => {
      throw new Error(`PseudoMalloc debug invariant broken: ${what}`);
    };
    this.#quarantine.validate(fail);
    let bytes = 0;
    let allocated = 0;
    for (const block of this.#live.values()) {
      bytes += block.size;
      allocated += block.memory.byteLength;
      if (this.#quarantine.get(block.address) !== undefined) {
        fail(`block ${hex(block.address)} is live and freed`);
      }
    }
    if (bytes !== this.#counters.liveBytes || this.#live.size !== this.#counters.liveAllocations) {
      fail(`${this.#live.size} live blocks of ${bytes} bytes, counted otherwise`);
    }
    if (allocated !== this.#allocatedBytes) fail(`allocated bytes counted wrong`);
    let guarded = 0;
    for (const block of [...this.#live.values(), ...this.#quarantine.blocks()]) {
      if (block.mapped !== 0) {
        guarded++;
        if (this.#guarded.get(block.inner) !== block) {
          fail(`guarded block ${hex(block.address)} is not indexed`);
        }
      } else if (this.#inner.usableSize(block.inner) !== block.memory.byteLength) {
        fail(`block ${hex(block.address)}'s inner block changed size`);
      }
    }
    if (guarded !== this.#guarded.size) fail(`${this.#guarded.size} guarded blocks indexed`);
    // Every inner block of the heap is a live or quarantined block's.
    const inner = this.#live.size + this.#quarantine.size - this.#guarded.size;
    if (this.#core.counters.liveAllocations !== inner) {
      fail(`the heap holds ${this.#core.counters.liveAllocations} inner blocks, expected ${inner}`);
    }
  }

  // --- what the heap reports --------------------------------------------------------------------

  /** `stats()` as the program sees it: its own blocks, and debug mode's counters. */
  adjust(stats: HeapStats): HeapStats {
    const counters = this.#counters;
    const mapped = stats.mappedBytes + this.#guardedBytes;
    counters.notePeaks(mapped);
    const debug: DebugStats = {
      quarantinedBlocks: this.#quarantine.size,
      quarantinedBytes: this.#quarantine.bytes,
      guardedBlocks: this.#guarded.size,
      guardedBytes: this.#guardedBytes,
    };
    let small = 0;
    for (const block of this.#live.values()) if (!this.#isLarge(block)) small++;
    return {
      ...stats,
      ...counters.snapshot(mapped, this.#allocatedBytes, stats.systemCalls),
      smallAllocations: small,
      largeAllocations: this.#live.size - small,
      internalFragmentation: this.#allocatedBytes === 0
        ? 0
        : 1 - counters.liveBytes / this.#allocatedBytes,
      debug,
    };
  }

  /** The live blocks with their sites, in address order. */
  liveAllocations(): LiveAllocation[] {
    return [...this.#live.values()].sort((a, b) => a.address - b.address)
      .map((block) => this.#allocationOf(block));
  }

  /** What `close` reports as leaks: the live blocks, and those a failed close already unmapped. */
  leaks(): LiveAllocation[] {
    return [...this.#leakedInClose, ...this.liveAllocations()]
      .sort((a, b) => a.address - b.address);
  }

  /**
   * Lets every quarantined block go (for `trim()`), checking each as it leaves: throws the first
   * corruption found once all are out.
   *
   * @returns The bytes of guard-paged mappings unmapped.
   */
  drain(): number {
    const before = this.#guardedBytes;
    while (this.#quarantine.size > 0) this.#letOldestGo();
    const released = before - this.#guardedBytes;
    this.#throwPending();
    return released;
  }

  /** Unmaps the guard-paged blocks (the heap's close unmaps the rest); throws `OsError` midway. */
  close(): void {
    for (const [base, block] of this.#guarded) {
      this.#core.os.unmap(base, block.mapped);
      this.#guarded.delete(base);
      this.#guardedBytes -= block.mapped;
      this.#guardedChanges++;
      if (this.#live.get(block.address) === block) {
        this.#leakedInClose.push(this.#allocationOf(block));
      }
      this.#forget(block);
    }
  }

  /**
   * After a `close` the OS refused half-way: forgets the blocks whose inner block it unmapped
   * (`inner`: the heap's live inner blocks), so that no record points at unmapped memory.
   */
  forgetUnmapped(inner: Set<number>): void {
    for (const block of [...this.#live.values(), ...this.#quarantine.blocks()]) {
      if (block.mapped === 0 && !inner.has(block.inner)) this.#forget(block);
    }
  }

  // --- blocks -----------------------------------------------------------------------------------

  #allocate(size: number, zeroed: boolean): number {
    const { front, back, guard, alignment, fill, sites } = this.#config;
    const large = front + size + back >= this.#core.config.threshold;
    const guarded = (guard === "all" || (guard === "large" && large)) &&
      this.#guarded.size < GUARDED_LIMIT;
    let block: DebugBlock;
    if (guarded) {
      const mapping = mapGuarded(this.#core.os, size, front, alignment);
      block = {
        address: mapping.address,
        size,
        inner: mapping.base,
        mapped: mapping.length,
        memory: mapping.memory,
        front: mapping.address - mapping.base,
        allocated: undefined,
        freed: undefined,
      };
      this.#guarded.set(mapping.base, block);
      this.#guardedBytes += mapping.length;
      this.#guardedChanges++;
    } else {
      const inner = this.#inner.malloc(front + size + back);
      block = {
        address: inner + front,
        size,
        inner,
        mapped: 0,
        memory: this.#core.view(inner, this.#inner.usableSize(inner)),
        front,
        allocated: undefined,
        freed: undefined,
      };
    }
    prepare(block, zeroed, fill);
    if (sites) block.allocated = captureSite();
    this.#live.set(block.address, block);
    this.#quarantine.reused(block.address);
    this.#counters.allocated(size);
    this.#allocatedBytes += block.memory.byteLength;
    return block.address;
  }

  /** Notes the peaks at the end of a call that allocated (as the heap does); gives `address`. */
  #peaks(address: number): number {
    this.#counters.notePeaks(this.#core.mapped + this.#guardedBytes);
    return address;
  }

  /**
   * Frees a checked live block: into the quarantine (room made first), or, without one or when it
   * is larger than the whole budget, for real at once (its memory first: a refused `munmap` leaves
   * the block live).
   */
  #retire(block: DebugBlock): void {
    const held = block.memory.byteLength <= this.#quarantine.budget;
    if (!held) this.#release(block);
    this.#dropLive(block);
    if (this.#config.sites) block.freed = captureSite();
    if (!held) {
      this.#quarantine.remember(block);
      return;
    }
    bodyOf(block).fill(DEBUG_FILL.freed);
    this.#quarantine.push(block);
  }

  /**
   * Lets the oldest quarantined blocks go until `block` fits the budget beside the rest (not for a
   * block larger than the whole budget: it skips the quarantine), each checked as it leaves.
   */
  #makeRoom(block: DebugBlock): void {
    const bytes = block.memory.byteLength;
    if (bytes > this.#quarantine.budget) return;
    while (this.#quarantine.full(bytes)) this.#letOldestGo();
  }

  /**
   * The oldest quarantined block leaves: checked, then freed; a corruption found is queued in
   * `#pending` once the block is gone (an `OsError` leaves the block first in the quarantine, its
   * damage still there to be found).
   */
  #letOldestGo(): void {
    const block = this.#quarantine.oldest()!;
    const damage = freedDamage(block, "left the quarantine");
    this.#release(block);
    this.#quarantine.shift();
    if (damage !== undefined) this.#pending.push(damage);
  }

  /**
   * Throws the first corruption found and not yet reported (the others wait for the next `free`,
   * `check()` or `trim()`): a call that finds two reports both, one after the other.
   */
  #throwPending(): void {
    const damage = this.#pending.shift();
    if (damage !== undefined) throw damage;
  }

  /** Takes back a block `realloc` had just made, when the move could not finish. */
  #undo(block: DebugBlock): void {
    this.#release(block);
    this.#live.delete(block.address);
    this.#counters.totalAllocations--;
    this.#counters.liveBytes -= block.size;
    this.#allocatedBytes -= block.memory.byteLength;
  }

  /** Gives a block's memory back to the heap or the OS. */
  #release(block: DebugBlock): void {
    if (block.mapped === 0) this.#inner.free(block.inner);
    else {
      this.#core.os.unmap(block.inner, block.mapped);
      this.#guarded.delete(block.inner);
      this.#guardedBytes -= block.mapped;
      this.#guardedChanges++;
    }
  }

  /** Drops the record of a block whose memory is gone (live or quarantined). */
  #forget(block: DebugBlock): void {
    if (this.#live.get(block.address) === block) this.#dropLive(block);
    else this.#quarantine.forget(block);
  }

  /** A live block is live no more: out of the records and the counters. */
  #dropLive(block: DebugBlock): void {
    this.#live.delete(block.address);
    this.#counters.freed(block.size);
    this.#allocatedBytes -= block.memory.byteLength;
  }

  /** True for a block with whole pages of its own (guarded, or a large inner block). */
  #isLarge(block: DebugBlock): boolean {
    const { front, back } = this.#config;
    return block.mapped !== 0 || front + block.size + back >= this.#core.config.threshold;
  }

  /** A live block as `liveAllocations()` lists it, with its allocation site when recorded. */
  #allocationOf(block: DebugBlock): LiveAllocation {
    const site = siteOf(block.allocated);
    return site === undefined
      ? { address: block.address, size: block.size }
      : { address: block.address, size: block.size, site };
  }

  // --- finding blocks ---------------------------------------------------------------------------

  /** The live block at `address`, else the error `verb` deserves. */
  #liveBlock(address: number, verb: string): DebugBlock {
    const block = this.#live.get(address);
    if (block !== undefined) return block;
    if (typeof address !== "number") throw notAnAddress(address, verb);
    const freed = this.#quarantine.freedAt(address);
    if (freed !== undefined) {
      const message = `Cannot ${verb} ${hex(address)}: this block was already freed` +
        sitesText(freed);
      throw isFreeing(verb)
        ? new DoubleFreeError(message, address, sitesOf(freed))
        : new InvalidAddressError(message, address);
    }
    const message = `Cannot ${verb} ${hex(address)}: ${this.#whereIs(address)}`;
    throw isFreeing(verb)
      ? new InvalidFreeError(message, address)
      : new InvalidAddressError(message, address);
  }

  /** Where `address` lies, said for an error: in which block, or in which block's redzone. */
  #whereIs(address: number): string {
    const owner = this.#enclosing(address);
    if (owner === undefined) return "it is not a block of this heap";
    const state = this.#live.get(owner.address) === owner ? "" : "freed ";
    const offset = address - owner.address;
    const where = offset < 0
      ? `in the redzone ${-offset} bytes before the ${state}block at ${hex(owner.address)}`
      : offset >= owner.size
      ? `in the redzone ${offset - owner.size} bytes after the ${state}block at ` +
        hex(owner.address)
      : `${offset} bytes into the ${state}block at ${hex(owner.address)}`;
    return `it is ${where} (${owner.size} bytes)${sitesText(owner)}`;
  }

  /** The live or quarantined block whose own bytes hold `address`, or `undefined`. */
  #holding(address: number): DebugBlock | undefined {
    const block = this.#enclosing(address);
    return block !== undefined && address >= block.address && address < block.address + block.size
      ? block
      : undefined;
  }

  /** The live or quarantined block whose memory (redzones too) holds `address`, or `undefined`. */
  #enclosing(address: number): DebugBlock | undefined {
    if (!Number.isInteger(address)) return undefined;
    if (this.#guarded.size > 0) {
      const base = this.#guardedStarts.find(address, this.#guardedSource, this.#guardedChanges);
      if (base >= 0) return this.#guarded.get(base);
    }
    const start = this.#core.startOf(address);
    if (start < 0) return undefined;
    const front = this.#config.front;
    const block = this.#live.get(start + front) ?? this.#quarantine.get(start + front);
    return block !== undefined && block.mapped === 0 ? block : undefined;
  }

  /** The guarded mappings as `_block_starts.ts` reads them (the guard page counts). */
  readonly #guardedSource = {
    lengthOf: (base: number): number => this.#guarded.get(base)?.mapped ?? -1,
    entries: (): [number, number][] =>
      [...this.#guarded.values()].map((block): [number, number] => [block.inner, block.mapped])
        .sort((a, b) => a[0] - b[0]),
  };
}

/**
 * Installs `debug` on `heap`: own properties for the methods the layer serves (see the file
 * comment) that shadow the prototype's.
 */
export function installDebugHooks(heap: object, debug: DebugHeap): void {
  const methods = ["malloc", "calloc", "realloc", "free", "usableSize", "bytes"] as const;
  const properties: PropertyDescriptorMap = {};
  for (const name of methods) {
    // deno-lint-ignore no-explicit-any
    const method = (debug[name] as (...args: any[]) => any).bind(debug);
    properties[name] = { value: method };
  }
  Object.defineProperties(heap, properties);
}

/** The default leak report of debug mode: one line per block still live, with its site. */
export function reportLeaks(leaks: LiveAllocation[]): void {
  const bytes = leaks.reduce((sum, leak) => sum + leak.size, 0);
  const lines = leaks.map((leak) =>
    `  ${hex(leak.address)}: ${leak.size} bytes, allocated ${leak.site ?? "(site unknown)"}`
  );
  const blocks = `${leaks.length} block${leaks.length === 1 ? "" : "s"}`;
  console.warn(`PseudoMalloc: ${blocks} (${bytes} bytes) leaked\n${lines.join("\n")}`);
}
