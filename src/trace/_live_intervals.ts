/**
 * The live payloads of the checking replay (`replay` in `replay.ts`), as a set of disjoint
 * intervals: a new block that overlaps a live one is found when it is inserted.
 *
 * @module
 */

/**
 * The live payloads as disjoint intervals [start, end), sorted by start in typed arrays; lookups
 * are binary searches, updates move the tail with `copyWithin`.
 */
export class IntervalSet {
  starts = new Float64Array(1024);
  ends = new Float64Array(1024);
  owners = new Int32Array(1024);
  count = 0;

  /** Index of the first interval whose start is greater than `start`. */
  upperBound(start: number): number {
    let low = 0;
    let high = this.count;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (this.starts[mid]! <= start) low = mid + 1;
      else high = mid;
    }
    return low;
  }

  /** Inserts [start, end) for `owner`; returns the index of an interval it overlaps, or -1. */
  insert(start: number, end: number, owner: number): number {
    const at = this.upperBound(start);
    if (at > 0 && this.ends[at - 1]! > start) return at - 1;
    if (at < this.count && this.starts[at]! < end) return at;
    if (this.count === this.starts.length) this.#grow();
    this.starts.copyWithin(at + 1, at, this.count);
    this.ends.copyWithin(at + 1, at, this.count);
    this.owners.copyWithin(at + 1, at, this.count);
    this.starts[at] = start;
    this.ends[at] = end;
    this.owners[at] = owner;
    this.count++;
    return -1;
  }

  /** Removes the interval starting at `start` (it must exist). */
  remove(start: number): void {
    const at = this.upperBound(start) - 1;
    if (at < 0 || this.starts[at] !== start) {
      throw new Error(`internal error: no live interval starts at ${start}`);
    }
    this.starts.copyWithin(at, at + 1, this.count);
    this.ends.copyWithin(at, at + 1, this.count);
    this.owners.copyWithin(at, at + 1, this.count);
    this.count--;
  }

  #grow(): void {
    const capacity = this.starts.length * 2;
    const starts = new Float64Array(capacity);
    const ends = new Float64Array(capacity);
    const owners = new Int32Array(capacity);
    starts.set(this.starts);
    ends.set(this.ends);
    owners.set(this.owners);
    this.starts = starts;
    this.ends = ends;
    this.owners = owners;
  }
}
