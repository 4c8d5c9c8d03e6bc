// What the shared heap does with whole slots and with rejected addresses, under its lock: a slot's
// cached blocks back to the buddies (on detach, close, reclaim, and before an OutOfMemoryError),
// a slot's counters folded into the retired ones when it is freed, and the diagnosis of an address
// `free`, `realloc` or `usableSize` did not accept (DoubleFreeError, InvalidFreeError or
// InvalidAddressError, with the block that holds it).
//
// Example: with 16-byte minimum blocks, `free(base + 0x50)` where a 64-byte block was freed and
// merged into the free 128-byte block at `base + 0x00` is a DoubleFreeError "the block is already
// free (it is inside the free 128-byte block at ...)"; `free(base + 0x50)` inside the live 128-byte
// block there is an InvalidFreeError "it is inside the live 128-byte block at ...".

import { DoubleFreeError, hex, InvalidAddressError, InvalidFreeError } from "../errors.ts";
import { freeBlock, isRecent, leafAt, lock, unlock } from "./_central.ts";
import {
  CACHE_ORDER_BYTES,
  F_RETIRED_ALLOCS,
  F_RETIRED_CALLS,
  F_RETIRED_FREES,
  F_RETIRED_LIVE,
  S_COUNT,
  S_STATE,
  SF_ALLOCS,
  SF_CALLS,
  SF_FREES,
  SF_LIVE,
  type SlotViews,
  type Views,
  W_ARENAS,
} from "./_layout.ts";

/**
 * The error for a small address whose tag is 0, found under the lock taken for attachment `me`:
 * inside a free or cached block, a double free; inside a live one, an interior address.
 */
export function rejectSmall(
  v: Views,
  me: number,
  address: number,
  verb: string,
): InvalidAddressError {
  const g = v.geometry;
  const offset = address - v.regionBase;
  const freeing = verb === "free" || verb === "reallocate";
  lock(v.words, me, verb);
  let message: string;
  let double = false;
  try {
    const aligned = offset % g.minBlockSize === 0;
    if (!aligned || offset >= Atomics.load(v.words, W_ARENAS) * g.arenaSize) {
      message = aligned ? "no arena of this heap holds it" : "it is not a block's start";
    } else {
      const leaf = leafAt(v, offset);
      const tag = v.tags[leaf.start >>> g.minShift];
      // Inside a free or a cached block: freed already (perhaps merged since).
      double = !leaf.used || tag === 0;
      const size = g.minBlockSize << leaf.order;
      const at = hex(v.regionBase + leaf.start);
      message = double
        ? leaf.start === offset
          ? "the block is already free"
          : `the block is already free (it is inside the free ${size}-byte block at ${at})`
        : `it is inside the live ${size}-byte block at ${at}`;
    }
  } finally {
    unlock(v.words);
  }
  const text = `Cannot ${verb} ${hex(address)}: ${message}`;
  if (!freeing) return new InvalidAddressError(text, address);
  return double ? new DoubleFreeError(text, address) : new InvalidFreeError(text, address);
}

/** The error for an address outside the region that is no live large block. */
export function rejectLarge(
  v: Views,
  me: number,
  address: number,
  verb: string,
): InvalidAddressError {
  const freeing = verb === "free" || verb === "reallocate";
  lock(v.words, me, verb);
  const recent = isRecent(v, address);
  unlock(v.words);
  if (recent && freeing) {
    return new DoubleFreeError(
      `Cannot ${verb} ${hex(address)}: the block is already free`,
      address,
    );
  }
  const text = `Cannot ${verb} ${hex(address)}: it is not a block of this heap`;
  return freeing ? new InvalidFreeError(text, address) : new InvalidAddressError(text, address);
}

/** Under the lock: every cached block of a slot back to the buddies; returns their bytes. */
export function flushSlot(v: Views, sv: SlotViews): number {
  const g = v.geometry;
  let bytes = 0;
  for (let order = 0; order <= g.maxOrder; order++) {
    const limit = CACHE_ORDER_BYTES >> (g.minShift + order);
    if (limit === 0) break;
    const base = ((CACHE_ORDER_BYTES >> g.minShift) - limit) << 1;
    const count = Math.min(sv.words[S_COUNT + order]!, limit);
    for (let i = 0; i < count; i++) {
      const offset = sv.stacks[base + i]!;
      const leaf = leafAt(v, offset);
      // A block a dying worker was moving may be named twice or be live again: skip those.
      if (
        leaf.used && leaf.start === offset && leaf.order === order &&
        v.tags[offset >>> g.minShift] === 0
      ) {
        freeBlock(v, offset, order);
        bytes += g.minBlockSize << order;
      }
    }
    sv.words[S_COUNT + order] = 0;
  }
  return bytes;
}

/** Under the lock: a slot's counters folded into the retired ones, the slot freed. */
export function retireSlot(v: Views, sv: SlotViews): void {
  const f = v.floats;
  f[F_RETIRED_ALLOCS]! += sv.counters[SF_ALLOCS]!;
  f[F_RETIRED_FREES]! += sv.counters[SF_FREES]!;
  f[F_RETIRED_LIVE]! += sv.counters[SF_LIVE]!;
  for (let i = 0; i < 5; i++) f[F_RETIRED_CALLS + i]! += sv.counters[SF_CALLS + i]!;
  sv.counters.fill(0);
  sv.words.fill(0, S_COUNT);
  Atomics.store(sv.words, S_STATE, 0);
}
