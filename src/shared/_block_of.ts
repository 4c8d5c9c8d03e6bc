// The live block of a shared heap that holds an interior address, for `blockOf` (and `bytesAt`,
// `view`, `dataView` over it), as PseudoMalloc finds it (src/heap/_core.ts `startOf`).
//
// A small block is found by its tag: the nearest tagged slot at or below the address, within the
// address's arena, is the only block that can hold it (blocks never overlap), so the scan goes back
// at most one largest small block. With 16-byte slots and a 1024-byte threshold: an address 40
// bytes into a 64-byte block at slot 8 looks at slots 10, 9, 8 and stops. A large block: the
// record table is probed at the address's page and the 15 below (a pointer C hands back usually
// lies near its block's start), then every record is read, under the heap's lock (the caller's).

import { LARGE_RECORD, type Views } from "./_layout.ts";
import { findLarge } from "./_central.ts";

/** Pages below an address probed before the whole table is read. */
const PROBES = 16;

/** The start of the small block holding `offset` (from the region's base), or -1. */
export function smallStart(v: Views, offset: number): number {
  const g = v.geometry;
  const slot = offset >>> g.minShift;
  const arenaSlot = (offset >>> g.arenaShift) << (g.arenaShift - g.minShift);
  const largestOrder = g.threshold <= g.minBlockSize
    ? 0
    : 32 - Math.clz32(g.threshold - 2) - g.minShift;
  const lowest = Math.max(arenaSlot, slot - (1 << largestOrder));
  for (let s = slot; s >= lowest; s--) {
    const tag = v.tags[s]!;
    if (tag === 0) continue;
    const size = tag - 1;
    const order = size <= g.minBlockSize ? 0 : 32 - Math.clz32(size - 1) - g.minShift;
    const start = s << g.minShift;
    return offset < start + (g.minBlockSize << order) ? start : -1;
  }
  return -1;
}

/** The start of the large block holding `address`, or -1. Call it under the heap's lock. */
export function largeStart(v: Views, address: number): number {
  const pageSize = v.geometry.pageSize;
  const page = address - (address % pageSize);
  for (let start = page, n = 0; start > 0 && n < PROBES; start -= pageSize, n++) {
    const record = findLarge(v, start);
    if (record >= 0) {
      return address < start + v.large[record * LARGE_RECORD + 1]! ? start : -1;
    }
  }
  const records = v.geometry.largeCapacity;
  for (let i = 0; i < records; i++) {
    const start = v.large[i * LARGE_RECORD]!;
    if (start !== 0 && address >= start && address < start + v.large[i * LARGE_RECORD + 1]!) {
      return start;
    }
  }
  return -1;
}
