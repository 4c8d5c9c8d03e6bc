// Debug mode's quarantine: freed blocks held back, oldest first, before their memory is reused, and
// the graveyard: the blocks that left it, remembered by address so that a late second free still
// names both sites. Records only: `_debug.ts` checks a block as it leaves and frees its memory.
//
// The FIFO is an array and a head index (shift is O(n) on an array), compacted when the dead front
// passes half of it; a `Map` by address finds a quarantined block for `free`, `blockOf` and the
// errors. With a budget of 4 KiB and blocks of 128 bytes: 32 fit; the 33rd free lets the oldest go.

import type { DebugBlock } from "./_debug_block.ts";

/** Blocks remembered after they left the quarantine, for naming a late double free. */
const GRAVEYARD = 65536;

/** See the file comment. */
export class Quarantine {
  readonly budget: number;
  #queue: DebugBlock[] = [];
  #head = 0;
  #bytes = 0;
  readonly #index = new Map<number, DebugBlock>();
  readonly #graveyard = new Map<number, DebugBlock>();

  /** @param budget Bytes of blocks (their whole `memory`) held at most. */
  constructor(budget: number) {
    this.budget = budget;
  }

  /** Bytes held. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Blocks held. */
  get size(): number {
    return this.#index.size;
  }

  /** The quarantined block at `address`, or the one that left from there, or `undefined`. */
  freedAt(address: number): DebugBlock | undefined {
    return this.#index.get(address) ?? this.#graveyard.get(address);
  }

  /** The quarantined block at `address`. */
  get(address: number): DebugBlock | undefined {
    return this.#index.get(address);
  }

  /** True when `incoming` more bytes need blocks to leave first. */
  full(incoming: number): boolean {
    return this.#index.size > 0 && this.#bytes + incoming > this.budget;
  }

  /** The oldest block, which leaves next (forgotten ones are passed over). */
  oldest(): DebugBlock | undefined {
    while (this.#head < this.#queue.length) {
      const block = this.#queue[this.#head]!;
      if (this.#index.get(block.address) === block) return block;
      this.#queue[this.#head++] = undefined!;
    }
    return undefined;
  }

  push(block: DebugBlock): void {
    this.#queue.push(block);
    this.#index.set(block.address, block);
    this.#bytes += block.memory.byteLength;
  }

  /** The oldest block leaves (its memory freed by the caller) and is remembered. */
  shift(): void {
    const block = this.oldest()!;
    this.#queue[this.#head++] = undefined!;
    this.#index.delete(block.address);
    this.#bytes -= block.memory.byteLength;
    if (this.#head > 1024 && this.#head * 2 > this.#queue.length) this.#compact();
    this.remember(block);
  }

  /** Remembers a block whose memory went back (from the quarantine or, without one, at once). */
  remember(block: DebugBlock): void {
    this.#graveyard.set(block.address, block);
    if (this.#graveyard.size > GRAVEYARD) {
      this.#graveyard.delete(this.#graveyard.keys().next().value!);
    }
  }

  /** A new block took `address`: a free of it is that block's now. */
  reused(address: number): void {
    this.#graveyard.delete(address);
  }

  /** Drops a quarantined block whose memory is gone (a close half done); its slot stays dead. */
  forget(block: DebugBlock): void {
    if (this.#index.get(block.address) !== block) return;
    this.#index.delete(block.address);
    this.#bytes -= block.memory.byteLength;
  }

  /** The quarantined blocks, oldest first. */
  *blocks(): IterableIterator<DebugBlock> {
    for (let i = this.#head; i < this.#queue.length; i++) {
      const block = this.#queue[i]!;
      if (this.#index.get(block.address) === block) yield block;
    }
  }

  /** Checks the records; `fail` throws naming the first broken one. */
  validate(fail: (what: string) => never): void {
    let bytes = 0;
    let count = 0;
    for (const block of this.blocks()) {
      bytes += block.memory.byteLength;
      count++;
    }
    if (bytes !== this.#bytes || count !== this.#index.size) {
      fail(`the quarantine holds ${count} blocks of ${bytes} bytes, counted otherwise`);
    }
  }

  /** Drops the dead front and the forgotten blocks' slots. */
  #compact(): void {
    this.#queue = this.#queue.slice(this.#head).filter((block) =>
      this.#index.get(block.address) === block
    );
    this.#head = 0;
  }
}
