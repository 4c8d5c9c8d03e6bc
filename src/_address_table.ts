// A hash table from page-aligned addresses to records: the live blocks of `Mappings`.
//
// A `Map<number, T>` was the first choice and the measured bottleneck: addresses of mappings lie
// above 2^31, so they are heap numbers, not small integers, and `get`, `set` and `delete` on them
// took a third of a large `malloc` + `free` pair (a CPU profile of the 1 KiB-64 KiB churn). This
// table keeps the keys in a `Float64Array` and probes linearly from a multiplicative hash of the
// page number: `0x7f12_3456_7000` is page `0x7_f123_4567`; its low 32 bits `0xf123_4567` times
// the golden-ratio constant, top bits, give the slot. A lookup usually reads one slot.
//
// Deletion shifts the following entries back instead of leaving a tombstone (Knuth's algorithm
// R), so the table never fills with dead slots under churn. The table doubles at 1/2 full.
//
// Nothing here calls the OS.

/** Keys of empty slots: no block is at address 0. */
const EMPTY = 0;

/** The keys of every empty table: one empty slot, never written (the first `set` grows). */
const NO_KEYS = new Float64Array(1);

/** Page-aligned addresses to records of type `T`. */
export class AddressTable<T> {
  #keys: Float64Array;
  #values: (T | undefined)[];
  #mask: number;
  #shift: number;
  #size = 0;
  #pageScale: number;

  /** @param pageSize Every key is a multiple of it (a power of two). */
  constructor(pageSize: number) {
    this.#pageScale = 1 / pageSize;
    // Nothing allocated until the first `set`: a typed array costs most of a microsecond, and a
    // new heap makes several tables.
    this.#keys = NO_KEYS;
    this.#values = [undefined];
    this.#mask = 0;
    this.#shift = 31;
  }

  /** Entries in the table. */
  get size(): number {
    return this.#size;
  }

  /** The record at `address`, or `undefined`. */
  get(address: number): T | undefined {
    const keys = this.#keys;
    for (let slot = this.#home(address);; slot = (slot + 1) & this.#mask) {
      const key = keys[slot]!;
      if (key === address) return this.#values[slot];
      if (key === EMPTY) return undefined;
    }
  }

  /** True when a record is at `address`. */
  has(address: number): boolean {
    return this.get(address) !== undefined;
  }

  /** Records `value` at `address` (replacing a record there). */
  set(address: number, value: T): void {
    if (2 * (this.#size + 1) > this.#keys.length) this.#grow();
    const keys = this.#keys;
    let slot = this.#home(address);
    while (keys[slot] !== EMPTY && keys[slot] !== address) slot = (slot + 1) & this.#mask;
    if (keys[slot] === EMPTY) this.#size++;
    keys[slot] = address;
    this.#values[slot] = value;
  }

  /** Removes the record at `address` and returns it; `undefined` when there was none. */
  delete(address: number): T | undefined {
    if (address === EMPTY) return undefined; // it would match an empty slot
    const keys = this.#keys;
    const mask = this.#mask;
    let hole = this.#home(address);
    while (keys[hole] !== address) {
      if (keys[hole] === EMPTY) return undefined;
      hole = (hole + 1) & mask;
    }
    const found = this.#values[hole];
    this.#size--;
    // Shift back every later entry of the run that may sit in the hole: an entry at `slot` with
    // home `home` may move to `hole` when `home` is not cyclically in (hole, slot].
    for (let slot = (hole + 1) & mask; keys[slot] !== EMPTY; slot = (slot + 1) & mask) {
      const home = this.#home(keys[slot]!);
      const stays = hole <= slot ? hole < home && home <= slot : hole < home || home <= slot;
      if (stays) continue;
      keys[hole] = keys[slot]!;
      this.#values[hole] = this.#values[slot];
      hole = slot;
    }
    keys[hole] = EMPTY;
    this.#values[hole] = undefined;
    return found;
  }

  /** Every `[address, record]`, in no particular order. Do not change the table meanwhile. */
  *entries(): IterableIterator<[number, T]> {
    const keys = this.#keys;
    for (let slot = 0; slot < keys.length; slot++) {
      if (keys[slot] !== EMPTY) yield [keys[slot]!, this.#values[slot]!];
    }
  }

  /** The first slot to probe for `address`. */
  #home(address: number): number {
    // The page number's low 32 bits (`| 0` truncates modulo 2^32), hashed by multiplication.
    return (Math.imul((address * this.#pageScale) | 0, 0x9e37_79b1) >>> this.#shift) & this.#mask;
  }

  #grow(): void {
    const keys = this.#keys;
    const values = this.#values;
    const length = Math.max(16, keys.length * 2);
    this.#keys = new Float64Array(length);
    this.#values = new Array<T | undefined>(length).fill(undefined);
    this.#mask = length - 1;
    this.#shift = 32 - Math.log2(length);
    this.#size = 0;
    for (let slot = 0; slot < keys.length; slot++) {
      if (keys[slot] !== EMPTY) this.set(keys[slot]!, values[slot]!);
    }
  }
}
