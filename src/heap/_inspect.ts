// Looking inside a heap: `stats`, `validate`, `heapMap` and `liveAllocations` of `PseudoMalloc`,
// over its state (`HeapCore`). None of it is on a hot path: each walks arenas and blocks.

import { hex } from "../errors.ts";
import { type ArenaPicture, renderSvg, renderText } from "./_heap_map.ts";
import type { HeapCore } from "./_core.ts";
import type { HeapStats, LiveAllocation } from "./types.ts";

/** The heap's counters as a fresh snapshot; see `PseudoMalloc.stats`. */
export function heapStats(core: HeapCore): HeapStats {
  const { arenas, cache, counters, large } = core;
  const allocated = core.allocatedBytes();
  return {
    arenas: arenas.list.length,
    ...counters.snapshot(core.mapped, allocated, core.os.counts),
    smallAllocations: counters.liveAllocations - large.count,
    largeAllocations: large.count,
    smallCachedBytes: cache.bytes(),
    largeCachedBytes: large.cachedBytes,
    internalFragmentation: allocated === 0 ? 0 : 1 - counters.liveBytes / allocated,
    arenaDetails: arenas.list.map((arena) => {
      const freeBytes = arena.buddy.freeBytes;
      const largestFreeBlock = arena.buddy.largestFreeBlock;
      return {
        address: arena.base,
        freeBytes,
        largestFreeBlock,
        externalFragmentation: freeBytes === 0 ? 0 : 1 - largestFreeBlock / freeBytes,
        freeBlocks: arena.buddy.freeBlockCounts(),
      };
    }),
  };
}

/** Checks every invariant, throwing an `Error` naming the first broken one; see `validate`. */
export function validateHeap(core: HeapCore): void {
  const { arenas, cache, counters, large, config } = core;
  const fail = (what: string): never => {
    throw new Error(`PseudoMalloc invariant broken: ${what}`);
  };
  // The cache: distinct blocks, each allocated in its buddy at the cache's order, with no tag.
  const cached = cache.validate(arenas, fail);
  // The arenas: every allocated block is live (tagged with a request of its order) or cached,
  // and no tag marks a slot where no block starts.
  let small = 0;
  let requested = 0;
  let allocated = 0;
  let mapped = 0;
  arenas.list.forEach((arena, index) => {
    arena.buddy.validate();
    if (!arenas.isIndexed(arena) || arena.index !== index) {
      fail(`arena ${hex(arena.base)} is not indexed`);
    }
    let tagged = 0;
    for (const block of arena.buddy.blocks()) {
      if (!block.allocated) continue;
      const tag = arena.tags[block.offset >>> config.minShift]!;
      if (tag === 0) {
        if (!cached.has(arena.base + block.offset)) {
          fail(`block ${hex(arena.base + block.offset)} is neither live nor cached`);
        }
        continue;
      }
      const size = tag - 1;
      if (core.orderOf(size) !== block.order || size >= config.threshold) {
        fail(
          `block ${hex(arena.base + block.offset)} of order ${block.order} records ${size} bytes`,
        );
      }
      tagged++;
      requested += size;
      allocated += block.size;
    }
    // Every tag belongs to a block start: as many tags as tagged blocks.
    let tags = 0;
    for (let slot = 0; slot < arena.tags.length; slot++) if (arena.tags[slot] !== 0) tags++;
    if (tags !== tagged) fail(`arena ${hex(arena.base)} has ${tags - tagged} stray tags`);
    small += tagged;
    mapped += config.arenaSize;
  });
  for (const [, length, size] of large.entries()) {
    requested += size;
    allocated += length;
    mapped += length;
  }
  const expect = (what: string, actual: number, expected: number): void => {
    if (actual !== expected) fail(`${what} is ${actual}, blocks say ${expected}`);
  };
  expect("smallAllocations", counters.liveAllocations - large.count, small);
  expect("liveAllocations", counters.liveAllocations, small + large.count);
  expect("liveBytes", counters.liveBytes, requested);
  expect("allocatedBytes", core.allocatedBytes(), allocated);
  expect("mappedBytes", core.mapped, mapped + large.cachedBytes);
  large.validate();
}

/** The heap as a picture; see `PseudoMalloc.heapMap`. */
export function heapPicture(core: HeapCore, format: "text" | "svg" | undefined): string {
  const { arenas, config, large } = core;
  const pictures = arenas.list.map((arena): ArenaPicture => ({
    base: arena.base,
    size: config.arenaSize,
    blocks: arena.buddy.blocks().map((block) => ({
      offset: block.offset,
      size: block.size,
      order: block.order,
      state: !block.allocated
        ? "free"
        : arena.tags[block.offset >>> config.minShift] === 0
        ? "cached"
        : "live",
    })),
  }));
  const mappings = [...large.entries()].map(([address, length, requested]) => ({
    address,
    length,
    requested,
  }));
  return format === "svg" ? renderSvg(pictures, mappings) : renderText(pictures, mappings);
}

/** The live blocks, small ones arena by arena in address order, then the large ones. */
export function liveBlocks(
  core: HeapCore,
  sites: Map<number, string> | undefined,
): LiveAllocation[] {
  const live: LiveAllocation[] = [];
  const add = (address: number, size: number): void => {
    const site = sites?.get(address);
    live.push(site === undefined ? { address, size } : { address, size, site });
  };
  for (const arena of core.arenas.list) {
    for (const block of arena.buddy.blocks()) {
      const tag = block.allocated ? arena.tags[block.offset >>> core.config.minShift]! : 0;
      if (tag !== 0) add(arena.base + block.offset, tag - 1);
    }
  }
  for (const [address, , requested] of core.large.entries()) add(address, requested);
  return live;
}
