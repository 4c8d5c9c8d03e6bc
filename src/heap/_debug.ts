// PseudoMalloc's debug mode: redzones, poisoning and a quarantine, guard pages, allocation sites,
// and the leak report on close. A layer over the heap: each block the program asks for lives inside
// an inner block of the ordinary heap (or a mapping of its own, `_debug_guarded.ts`), with room
// around it for the redzones (`_debug_zones.ts` draws the layout).
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
// How it is installed: `installDebugHooks` gives the heap own properties `malloc`, `calloc`,
// `realloc`, `free`, `usableSize` and `bytes` that shadow the prototype's methods, so a heap
// without debug pays nothing on its fast paths; the prototype's other methods (`blockOf`, `stats`,
// `validate`, `check`, `liveAllocations`, `close`) ask the heap's `DebugHeap` when it has one.
//
// Errors: a corruption is reported once. The call that finds it repairs the bytes it reports (a
// redzone is filled again; a block leaving the quarantine is freed) and throws before doing its
// own work, so retrying the call succeeds; every other error is thrown before anything changes.

import type { Allocator } from "../allocator.ts";
import { checkOpen, isFreeing, notAnAddress } from "../_checks.ts";
import { Counters } from "../_counters.ts";
import {
  DoubleFreeError,
  type HeapCorruptionError,
  HeapOverflowError,
  hex,
  InvalidAddressError,
  InvalidFreeError,
  UseAfterFreeError,
} from "../errors.ts";
import { callocSize, checkSize, viewLength } from "../_size.ts";
import type { HeapCore } from "./_core.ts";
import { mapGuarded } from "./_debug_guarded.ts";
import { DEBUG_FILL, firstChanged } from "./_debug_zones.ts";
import type { DebugConfig } from "./_options.ts";
import type { BlockInfo, DebugStats, HeapStats, LiveAllocation } from "./types.ts";

/** One block the program asked for, live or in the quarantine. */
interface DebugBlock {
  /** The program's address. */
  address: number;
  /** Bytes requested. */
  size: number;
  /** The inner block of the heap, or the start of the block's own mapping. */
  inner: number;
  /** 0 for an inner block; the length of the own mapping (with its guard page) otherwise. */
  mapped: number;
  /** The inner block's usable bytes, or the mapping's data pages: redzones and the block. */
  memory: Uint8Array;
  /** Where the block starts in `memory`. */
  front: number;
  /** Where it was allocated and freed: stacks captured, formatted when read (`siteOf`). */
  allocated: Trace | undefined;
  freed: Trace | undefined;
}

/** The heap methods the layer allocates its inner blocks with: the prototype's, not its own. */
type Inner = Pick<Allocator, "malloc" | "free" | "usableSize">;

/** Blocks remembered after they left the quarantine, for naming a late double free. */
const GRAVEYARD = 65536;

/** A stack captured by `captureSite`: its `stack` is formatted when first read. */
type Trace = { stack?: string };

/**
 * The caller's stack, captured now and formatted only when asked for (`siteOf`): V8 records the
 * frames at once and turns them into text on the first read of `stack`, the costly part (source
 * maps applied). Measured (Deno 2.9): formatting at once made a debug malloc + free 134 µs, lazily
 * 15 µs; `Error.captureStackTrace` on a plain object costs about half of a `new Error()`.
 */
function captureSite(): Trace {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 12;
  const trace: Trace = {};
  Error.captureStackTrace(trace, captureSite);
  Error.stackTraceLimit = limit;
  return trace;
}

/** The first frames of a captured stack, this package's own frames left out. */
function siteOf(trace: Trace | undefined): string | undefined {
  if (trace === undefined) return undefined;
  const frames = (trace.stack ?? "").split("\n").slice(1) // the first line is "Error"
    .map((line) => line.trim().replace(/^at /, ""))
    .filter((line) => !line.includes(PACKAGE_SRC) && !line.includes(PACKAGE_FFI));
  return frames.slice(0, 4).join(" <- ") || "(no frame outside @pseudo/malloc)";
}
const PACKAGE_SRC = new URL("../", import.meta.url).href;
const PACKAGE_FFI = new URL("../../ffi/", import.meta.url).href;

/** A block's sites as text, for an error. */
function sitesOf(
  block: DebugBlock,
): { allocatedAt: string | undefined; freedAt: string | undefined } {
  return { allocatedAt: siteOf(block.allocated), freedAt: siteOf(block.freed) };
}

/** The checks of debug mode over one heap; see the file comment. */
export class DebugHeap {
  readonly #config: DebugConfig;
  readonly #core: HeapCore;
  readonly #inner: Inner;
  readonly #live = new Map<number, DebugBlock>();
  /** The quarantine, oldest first from `#head`. */
  #queue: DebugBlock[] = [];
  #head = 0;
  #queuedBytes = 0;
  readonly #quarantined = new Map<number, DebugBlock>();
  readonly #graveyard = new Map<number, DebugBlock>();
  /** Guard-paged blocks (live or quarantined) by the page their mapping starts at. */
  readonly #guarded = new Map<number, DebugBlock>();
  #guardedBytes = 0;
  /** The most pages a guarded mapping has had: how far back `#guardedAt` looks. */
  #guardedPages = 0;
  readonly #counters = new Counters();
  #allocatedBytes = 0;

  /**
   * @param config Debug mode's checks.
   * @param core The heap (its OS, page size, `startOf`, `view`).
   * @param inner The heap's own `malloc`, `free` and `usableSize`.
   */
  constructor(config: DebugConfig, core: HeapCore, inner: Inner) {
    this.#config = config;
    this.#core = core;
    this.#inner = inner;
  }

  // --- the program's calls ----------------------------------------------------------------------

  malloc(size: number): number {
    this.#open("malloc");
    checkSize(size, "allocate");
    return this.#peaks(this.#allocate(size, false));
  }

  calloc(count: number, size: number): number {
    this.#open("calloc");
    return this.#peaks(this.#allocate(callocSize(count, size), true));
  }

  realloc(address: number, size: number): number {
    this.#open("realloc");
    if (address === 0) return this.malloc(size);
    checkSize(size, "reallocate");
    if (size === 0) {
      this.free(address);
      return 0;
    }
    const block = this.#liveBlock(address, "reallocate");
    this.#checkZones(block);
    this.#makeRoom(block.memory.byteLength);
    // Always moves, as Electric Fence does: a pointer kept to the old block is then stale at once,
    // and the old block waits in the quarantine where a write through it is found.
    const moved = this.#allocate(size, false);
    const kept = Math.min(size, block.size);
    this.#body(this.#live.get(moved)!).set(this.#body(block).subarray(0, kept));
    this.#retire(block);
    return this.#peaks(moved);
  }

  free(address: number): void {
    this.#open("free");
    if (address === 0) return;
    const block = this.#liveBlock(address, "free");
    this.#checkZones(block);
    this.#makeRoom(block.memory.byteLength);
    this.#retire(block);
  }

  usableSize(address: number): number {
    this.#open("usableSize");
    return this.#liveBlock(address, "find the size of").size;
  }

  bytes(address: number, length?: number): Uint8Array {
    this.#open("bytes");
    const block = this.#liveBlock(address, "view");
    return this.#body(block).subarray(0, viewLength(address, length, block.size));
  }

  /** The live block holding `address`, or `undefined`. */
  blockOf(address: number): BlockInfo | undefined {
    const block = this.#live.get(address) ?? this.#holding(address);
    return block === undefined || this.#live.get(block.address) !== block
      ? undefined
      : { address: block.address, size: block.size };
  }

  // --- checks -----------------------------------------------------------------------------------

  /** Every live block's redzones, then every quarantined block's bytes; throws the first damage. */
  check(): void {
    for (const block of this.#live.values()) this.#checkZones(block);
    for (let i = this.#head; i < this.#queue.length; i++) {
      const block = this.#queue[i]!;
      const offset = this.#changedWhileFreed(block);
      if (offset !== -1) {
        this.#repairFreed(block);
        throw this.#useAfterFree(block, offset, "is in the quarantine");
      }
    }
  }

  /** The layer's own invariants: records, the quarantine and the heap's inner blocks agree. */
  validate(): void {
    const fail = (what: string): never => {
      throw new Error(`PseudoMalloc debug invariant broken: ${what}`);
    };
    let queued = 0;
    for (let i = this.#head; i < this.#queue.length; i++) {
      const block = this.#queue[i]!;
      queued += block.memory.byteLength;
      if (this.#quarantined.get(block.address) !== block) {
        fail(`quarantined block ${hex(block.address)} is not indexed`);
      }
      if (this.#live.has(block.address)) fail(`block ${hex(block.address)} is live and freed`);
    }
    if (
      queued !== this.#queuedBytes || this.#quarantined.size !== this.#queue.length - this.#head
    ) {
      fail(`the quarantine holds ${queued} bytes, counted ${this.#queuedBytes}`);
    }
    let bytes = 0;
    let allocated = 0;
    for (const block of this.#live.values()) {
      bytes += block.size;
      allocated += block.memory.byteLength;
    }
    if (bytes !== this.#counters.liveBytes || this.#live.size !== this.#counters.liveAllocations) {
      fail(`${this.#live.size} live blocks of ${bytes} bytes, counted otherwise`);
    }
    if (allocated !== this.#allocatedBytes) fail(`allocated bytes counted wrong`);
    for (const block of [...this.#live.values(), ...this.#quarantined.values()]) {
      if (block.mapped !== 0) {
        if (this.#guarded.get(this.#pageOf(block.inner)) !== block) {
          fail(`guarded block ${hex(block.address)} is not indexed`);
        }
      } else if (this.#inner.usableSize(block.inner) !== block.memory.byteLength) {
        fail(`block ${hex(block.address)}'s inner block changed size`);
      }
    }
    // Every inner block of the heap is a live or quarantined block's.
    const inner = this.#live.size + this.#quarantined.size - this.#guarded.size;
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
      quarantinedBlocks: this.#quarantined.size,
      quarantinedBytes: this.#queuedBytes,
      guardedBlocks: this.#guarded.size,
      guardedBytes: this.#guardedBytes,
    };
    return {
      ...stats,
      ...counters.snapshot(mapped, this.#allocatedBytes, stats.systemCalls),
      smallAllocations: [...this.#live.values()].filter((block) => block.mapped === 0).length,
      largeAllocations: [...this.#live.values()].filter((block) => block.mapped !== 0).length,
      internalFragmentation: this.#allocatedBytes === 0
        ? 0
        : 1 - counters.liveBytes / this.#allocatedBytes,
      debug,
    };
  }

  /** The live blocks with their sites, in address order. */
  liveAllocations(): LiveAllocation[] {
    return [...this.#live.values()].sort((a, b) => a.address - b.address).map((block) => {
      const site = siteOf(block.allocated);
      return site === undefined
        ? { address: block.address, size: block.size }
        : { address: block.address, size: block.size, site };
    });
  }

  /**
   * Lets every quarantined block go (for `trim()`), checking each as it leaves.
   *
   * @returns The bytes of guard-paged mappings unmapped.
   */
  drain(): number {
    const before = this.#guardedBytes;
    this.#makeRoom(Infinity);
    return before - this.#guardedBytes;
  }

  /** Unmaps the guard-paged blocks (the heap's close unmaps the rest); throws `OsError` midway. */
  close(): void {
    try {
      for (const [page, block] of this.#guarded) {
        this.#core.os.unmap(block.inner, block.mapped);
        this.#guarded.delete(page);
        this.#guardedBytes -= block.mapped;
        this.#forget(block);
      }
    } finally {
      this.#compactQueue();
    }
  }

  /** Drops the record of a block whose memory is gone (live or quarantined). */
  #forget(block: DebugBlock): void {
    if (this.#live.get(block.address) === block) {
      this.#live.delete(block.address);
      this.#counters.freed(block.size);
      this.#allocatedBytes -= block.memory.byteLength;
    } else if (this.#quarantined.get(block.address) === block) {
      this.#quarantined.delete(block.address);
      this.#queuedBytes -= block.memory.byteLength;
    }
  }

  /** Rebuilds the queue from the blocks still quarantined, in their order. */
  #compactQueue(): void {
    this.#queue = this.#queue.slice(this.#head).filter((block) =>
      this.#quarantined.get(block.address) === block
    );
    this.#head = 0;
  }

  /**
   * After a `close` the OS refused half-way: forgets the blocks whose inner block it unmapped
   * (`inner`: the heap's live inner blocks), so that no record points at unmapped memory.
   */
  forgetUnmapped(inner: Set<number>): void {
    for (const block of [...this.#live.values(), ...this.#quarantined.values()]) {
      if (block.mapped === 0 && !inner.has(block.inner)) this.#forget(block);
    }
    this.#compactQueue();
  }

  // --- blocks -----------------------------------------------------------------------------------

  #allocate(size: number, zeroed: boolean): number {
    const { front, back, guard, alignment, fill, sites } = this.#config;
    let block: DebugBlock;
    if (guard === "all" || (guard === "large" && size >= this.#core.config.threshold)) {
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
      this.#guarded.set(this.#pageOf(mapping.base), block);
      this.#guardedBytes += mapping.length;
      this.#guardedPages = Math.max(
        this.#guardedPages,
        mapping.length / this.#core.config.pageSize,
      );
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
    const { memory } = block;
    memory.fill(DEBUG_FILL.redzone, 0, block.front);
    memory.fill(DEBUG_FILL.redzone, block.front + size);
    if (zeroed) memory.fill(0, block.front, block.front + size);
    else if (fill) memory.fill(DEBUG_FILL.uninitialized, block.front, block.front + size);
    if (sites) block.allocated = captureSite();
    this.#live.set(block.address, block);
    this.#graveyard.delete(block.address);
    this.#counters.allocated(size);
    this.#allocatedBytes += memory.byteLength;
    return block.address;
  }

  /** Notes the peaks at the end of a call that allocated (as the heap does); gives `address`. */
  #peaks(address: number): number {
    this.#counters.notePeaks(this.#core.mapped + this.#guardedBytes);
    return address;
  }

  /** Frees a checked live block into the quarantine (room made), or for real without one. */
  #retire(block: DebugBlock): void {
    this.#live.delete(block.address);
    this.#counters.freed(block.size);
    this.#allocatedBytes -= block.memory.byteLength;
    if (this.#config.sites) block.freed = captureSite();
    if (this.#config.quarantine === 0) {
      this.#release(block);
      return;
    }
    this.#body(block).fill(DEBUG_FILL.freed);
    this.#queue.push(block);
    this.#quarantined.set(block.address, block);
    this.#queuedBytes += block.memory.byteLength;
  }

  /**
   * Lets the oldest quarantined blocks go until `incoming` more bytes fit the budget, checking
   * each: a changed one is freed all the same, and its `UseAfterFreeError` thrown.
   */
  #makeRoom(incoming: number): void {
    const budget = this.#config.quarantine;
    while (this.#head < this.#queue.length && this.#queuedBytes + incoming > budget) {
      const block = this.#queue[this.#head]!;
      const offset = this.#changedWhileFreed(block);
      this.#release(block); // may throw OsError: then the block stays first in the queue
      this.#queue[this.#head++] = undefined!;
      this.#quarantined.delete(block.address);
      this.#queuedBytes -= block.memory.byteLength;
      if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
        this.#queue = this.#queue.slice(this.#head);
        this.#head = 0;
      }
      if (offset !== -1) throw this.#useAfterFree(block, offset, "left the quarantine");
    }
  }

  /** Gives a block's memory back to the heap or the OS, and remembers its address. */
  #release(block: DebugBlock): void {
    if (block.mapped === 0) this.#inner.free(block.inner);
    else {
      this.#core.os.unmap(block.inner, block.mapped);
      this.#guarded.delete(this.#pageOf(block.inner));
      this.#guardedBytes -= block.mapped;
    }
    this.#graveyard.set(block.address, block);
    if (this.#graveyard.size > GRAVEYARD) {
      this.#graveyard.delete(this.#graveyard.keys().next().value!);
    }
  }

  /** The block's own bytes in its memory. */
  #body(block: DebugBlock): Uint8Array {
    return block.memory.subarray(block.front, block.front + block.size);
  }

  /**
   * Throws a `HeapOverflowError` when a redzone of `block` changed (filled again first, so that it
   * is reported once). Its offset is the lowest changed byte's: negative before the block.
   */
  #checkZones(block: DebugBlock): void {
    const { memory, front, size } = block;
    const red = DEBUG_FILL.redzone;
    let first = firstChanged(memory, 0, front, red);
    let end = front; // the end of the zone that changed
    if (first === -1) {
      first = firstChanged(memory, front + size, memory.byteLength, red);
      if (first === -1) return;
      end = memory.byteLength;
    }
    let last = end - 1;
    while (memory[last] === red) last--;
    memory.fill(red, 0, front);
    memory.fill(red, front + size);
    const [from, to] = [first - front, last - front];
    const count = to - from + 1;
    const bytes = `${count} byte${count === 1 ? "" : "s"}`;
    const where = from < 0 ? `${bytes} before its start` : `${bytes} past its end`;
    const offsets = count === 1 ? `offset ${from}` : `offsets ${from} to ${to}`;
    throw new HeapOverflowError(
      `Cannot trust block ${hex(block.address)} (${size} bytes): ${where} were written ` +
        `(${offsets})` + this.#sites(block),
      block,
      from,
      sitesOf(block),
    );
  }

  /** The offset (from the block's address) of the first byte changed since `free`, or -1. */
  #changedWhileFreed(block: DebugBlock): number {
    const { memory, front, size } = block;
    let at = firstChanged(memory, 0, front, DEBUG_FILL.redzone);
    if (at === -1) at = firstChanged(memory, front, front + size, DEBUG_FILL.freed);
    if (at === -1) at = firstChanged(memory, front + size, memory.byteLength, DEBUG_FILL.redzone);
    return at === -1 ? -1 : at - front;
  }

  #repairFreed(block: DebugBlock): void {
    block.memory.fill(DEBUG_FILL.redzone);
    this.#body(block).fill(DEBUG_FILL.freed);
  }

  #useAfterFree(block: DebugBlock, offset: number, state: string): HeapCorruptionError {
    return new UseAfterFreeError(
      `Cannot trust freed block ${hex(block.address)} (${block.size} bytes): it was written ` +
        `after free at offset ${offset}; it ${state}` + this.#sites(block),
      block,
      offset,
      sitesOf(block),
    );
  }

  #sites(block: DebugBlock): string {
    const { allocatedAt, freedAt } = sitesOf(block);
    const allocated = `\n  allocated at ${allocatedAt ?? "(sites off)"}`;
    return freedAt === undefined ? allocated : `${allocated}\n  freed at ${freedAt}`;
  }

  // --- finding blocks ---------------------------------------------------------------------------

  /** The live block at `address`, else the error `verb` deserves. */
  #liveBlock(address: number, verb: string): DebugBlock {
    const block = this.#live.get(address);
    if (block !== undefined) return block;
    if (typeof address !== "number") throw notAnAddress(address, verb);
    const freed = this.#quarantined.get(address) ?? this.#graveyard.get(address);
    if (freed !== undefined) {
      const message = `Cannot ${verb} ${hex(address)}: this block was already freed` +
        this.#sites(freed);
      throw isFreeing(verb)
        ? new DoubleFreeError(message, address, sitesOf(freed))
        : new InvalidAddressError(message, address);
    }
    const holder = this.#holding(address);
    const inside = holder === undefined
      ? "it is not a block of this heap"
      : `it is ${address - holder.address} bytes into the ${
        this.#live.get(holder.address) === holder ? "" : "freed "
      }block at ${hex(holder.address)} (${holder.size} bytes)${this.#sites(holder)}`;
    const message = `Cannot ${verb} ${hex(address)}: ${inside}`;
    throw isFreeing(verb)
      ? new InvalidFreeError(message, address)
      : new InvalidAddressError(message, address);
  }

  /** The live or quarantined block whose bytes hold `address`, or `undefined`. */
  #holding(address: number): DebugBlock | undefined {
    if (!Number.isInteger(address)) return undefined;
    const guarded = this.#guardedAt(address);
    const start = guarded === undefined ? this.#core.startOf(address) : -1;
    const block = guarded ??
      (start < 0 ? undefined : (this.#live.get(start + this.#config.front) ??
        this.#quarantined.get(start + this.#config.front)));
    return block !== undefined && address >= block.address && address < block.address + block.size
      ? block
      : undefined;
  }

  /** The guard-paged block whose mapping holds `address`. */
  #guardedAt(address: number): DebugBlock | undefined {
    if (this.#guarded.size === 0) return undefined;
    const page = this.#pageOf(address);
    for (let p = page; p > page - this.#guardedPages; p--) {
      const block = this.#guarded.get(p);
      if (block !== undefined) return address < block.inner + block.mapped ? block : undefined;
    }
    return undefined;
  }

  #pageOf(address: number): number {
    return Math.floor(address / this.#core.config.pageSize);
  }

  #open(operation: string): void {
    checkOpen(this.#core.closed, operation);
  }
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
