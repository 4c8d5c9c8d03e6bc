// Address ranges an allocator gave back to the OS recently (a first-fit chunk, a size-class span),
// so that a late free of an address in one is reported as a double free, not a foreign address.

/** How many released ranges are remembered; the oldest is forgotten first. */
const REMEMBERED = 64;

/** A first-in first-out memory of `[start, end)` ranges, each with a number of context. */
export class ReleasedRanges {
  #starts: number[] = [];
  #ends: number[] = [];
  #notes: number[] = [];

  /** Remembers `[start, end)`, with `note` (e.g. a block size) for the error message. */
  add(start: number, end: number, note = 0): void {
    this.#starts.push(start);
    this.#ends.push(end);
    this.#notes.push(note);
    if (this.#starts.length > REMEMBERED) {
      this.#starts.shift();
      this.#ends.shift();
      this.#notes.shift();
    }
  }

  /** The index of the remembered range holding `address`, or -1. */
  find(address: number): number {
    for (let i = this.#starts.length - 1; i >= 0; i--) {
      if (address >= this.#starts[i]! && address < this.#ends[i]!) return i;
    }
    return -1;
  }

  /** Start of the range at `index` (from `find`). */
  start(index: number): number {
    return this.#starts[index]!;
  }

  /** End of the range at `index` (from `find`). */
  end(index: number): number {
    return this.#ends[index]!;
  }

  /** The note of the range at `index` (from `find`). */
  note(index: number): number {
    return this.#notes[index]!;
  }

  /** Forgets every range overlapping `[start, end)`: that memory is ours again. */
  forget(start: number, end: number): void {
    for (let i = this.#starts.length - 1; i >= 0; i--) {
      if (this.#starts[i]! < end && start < this.#ends[i]!) {
        this.#starts.splice(i, 1);
        this.#ends.splice(i, 1);
        this.#notes.splice(i, 1);
      }
    }
  }

  /** Forgets everything. */
  clear(): void {
    this.#starts = [];
    this.#ends = [];
    this.#notes = [];
  }
}
