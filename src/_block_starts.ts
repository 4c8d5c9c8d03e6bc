// The start of the page-owning block (a `Mappings` record: every block of MmapAllocator, the large
// blocks of SegregatedAllocator) that holds an interior address, for `blockOf`, without touching
// `malloc` or `free`.
//
// The records are a hash table keyed by block start, which answers "is a block at this page?" in
// O(1) but not "which block holds this byte?". Two steps:
// 1. The page of the address and up to 15 pages below it (64 KiB of 4 KiB pages): a pointer that C
//    hands back usually lies near its block's start. The first block start met decides: it holds
//    the address or nothing does (blocks never overlap). 16 lookups at most.
// 2. Deeper inside a large block: a sorted array of the block starts, made from the records when
//    it is needed and kept until a lookup finds it stale, searched by bisection, O(log blocks).
//    A start it gives is checked against the live records (`lengthOf`), so an old array can give
//    a wrong "no" but never a wrong "yes"; a "no" from an array older than the allocator's last
//    change (its `version`, a count of changes) remakes it once, O(blocks log blocks).
//
// A program that reads many interior addresses between two allocations (a `qsort` over a 1 MiB
// array of structs) pays the sort once; one that alternates a new block and a deep lookup of it pays
// it every time: a log factor more than a scan of every record would cost.
//
// Example: blocks at 0x10000 (1 MiB) and 0x200000 (8 KiB), 4 KiB pages. `find(0x10abc)`: page
// 0x10000 is a start, 0x10abc < 0x10000 + 1 MiB: 0x10000. `find(0x80000)`: pages 0x80000 down to
// 0x71000 are no start; the array [0x10000, 0x200000] gives 0x10000, which holds it.

/** What the lookup reads of the records. */
export interface StartSource {
  /** The length of the live block at `address`, -1 when none starts there. */
  lengthOf(address: number): number;
  /** The live blocks as `[address, length, ...]`, in address order. */
  entries(): Iterable<readonly [number, number, ...number[]]>;
}

/** Pages probed below an address before the sorted starts are used. */
const PROBES = 16;

/** See the file comment. */
export class BlockStarts {
  #pageSize: number;
  #starts = new Float64Array(0);
  /** The version the starts were made at; -1 before the first. */
  #version = -1;

  /** @param pageSize Every block start is a multiple of it. */
  constructor(pageSize: number) {
    this.#pageSize = pageSize;
  }

  /**
   * The start of the live block of `source` that holds `address` (an integer), or -1. `version`
   * must change whenever a block starts or stops (a count of allocations plus frees does).
   */
  find(address: number, source: StartSource, version: number): number {
    const pageSize = this.#pageSize;
    let page = address - (address % pageSize);
    for (let n = 0; n < PROBES && page > 0; n++, page -= pageSize) {
      const length = source.lengthOf(page);
      if (length >= 0) return address < page + length ? page : -1;
    }
    let start = this.#holder(address, source);
    if (start < 0 && version !== this.#version) {
      const starts: number[] = [];
      for (const [block] of source.entries()) starts.push(block);
      this.#starts = Float64Array.from(starts);
      this.#version = version;
      start = this.#holder(address, source);
    }
    return start;
  }

  /** The start in the array nearest below `address`, if it is live and holds it; else -1. */
  #holder(address: number, source: StartSource): number {
    const starts = this.#starts;
    let low = 0;
    let high = starts.length; // the answer is starts[low - 1]: the last start <= address
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (starts[middle]! <= address) low = middle + 1;
      else high = middle;
    }
    if (low === 0) return -1;
    const start = starts[low - 1]!;
    const length = source.lengthOf(start);
    return length >= 0 && address < start + length ? start : -1;
  }
}
