// Debug mode's guard pages: a block with a mapping of its own whose end abuts a `PROT_NONE` page,
// as Electric Fence places every block, so that the first byte written past the block faults at the
// instruction that writes it.
//
// For a 10,000-byte block on 4 KiB pages, with a 16-byte redzone and 16-byte alignment:
//
//   base                                   address               address + 10000   guard page
//   ├── front redzone (2,288 bytes, 0xfd) ──┼── the block ─────────┤ (0 bytes slack) ├─ PROT_NONE ─┤
//   0                                       2288                                    12288        16384
//
// The data pages are `ceil((size + front + alignment - 1) / page)` pages; the block starts at the
// highest `alignment`-aligned address that leaves it `size` bytes before the guard page. So when
// `size` is a multiple of the alignment the block ends exactly at the guard page; otherwise up to
// `alignment - 1` bytes of slack lie between, filled as redzone and checked on `free`. Two kernel
// mappings each (the data and the guard), which counts against Linux's `vm.max_map_count`.

import type { Os } from "../../ffi/os.ts";
import { OutOfMemoryError } from "../errors.ts";

/** A guard-paged mapping: where it starts, how long it is with its guard page, and the block. */
export interface GuardedMapping {
  base: number;
  /** Bytes mapped, the guard page included. */
  length: number;
  /** The block's address inside it. */
  address: number;
  /** The data pages (all of the mapping but the guard page). */
  memory: Uint8Array;
}

/**
 * Maps a block of `size` bytes that ends (up to `alignment - 1` bytes before) at a guard page, with
 * at least `front` bytes before it.
 *
 * @throws {OutOfMemoryError} When `mmap` refuses, or `mprotect` does (the mapping is then unmapped).
 */
export function mapGuarded(
  os: Os,
  size: number,
  front: number,
  alignment: number,
): GuardedMapping {
  const page = os.pageSize();
  const data = Math.max(page, Math.ceil((size + front + alignment - 1) / page) * page);
  const base = os.map(data + page);
  if (!os.protect(base + data, page, "none")) {
    os.unmap(base, data + page);
    throw new OutOfMemoryError(
      `Cannot allocate ${size} bytes with a guard page: mprotect refused (the kernel's ` +
        `vm.max_map_count may be reached: each guarded block takes two mappings)`,
    );
  }
  const address = Math.floor((base + data - size) / alignment) * alignment;
  return { base, length: data + page, address, memory: new Uint8Array(os.view(base, data)) };
}
