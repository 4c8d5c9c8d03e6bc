// PseudoMalloc's debug mode: where each live block was allocated, and a leak report on close.
//
// The hooks wrap one heap's malloc, calloc, realloc and free with own properties that shadow the
// prototype's methods, so heaps without debug pay nothing on their hot paths.

import { hex } from "../errors.ts";
import type { Allocator } from "../allocator.ts";
import type { LiveAllocation } from "./types.ts";

/** The methods the hooks wrap, as the prototype has them. */
type Wrapped = Pick<Allocator, "malloc" | "calloc" | "realloc" | "free">;

/**
 * Records the allocation site of every block of `heap`: wraps its methods (`methods`, the
 * prototype's) and returns the map of live address to site that the wrappers keep.
 */
export function installDebugHooks(heap: Wrapped, methods: Wrapped): Map<number, string> {
  const sites = new Map<number, string>();
  // Frames: 0 "Error", 1 this arrow, 2 the wrapper, 3.. the caller's stack.
  const site = (): string =>
    (new Error().stack ?? "").split("\n").slice(3, 6).map((line) => line.trim()).join(" <- ");
  const { malloc, calloc, realloc, free } = methods;
  Object.defineProperties(heap, {
    malloc: {
      value: (size: number): number => {
        const address = malloc.call(heap, size);
        sites.set(address, site());
        return address;
      },
    },
    calloc: {
      value: (count: number, size: number): number => {
        const address = calloc.call(heap, count, size);
        sites.set(address, site());
        return address;
      },
    },
    realloc: {
      value: (address: number, size: number): number => {
        const moved = realloc.call(heap, address, size);
        if (moved !== address) {
          sites.delete(address);
          if (moved !== 0) sites.set(moved, site());
        }
        return moved;
      },
    },
    free: {
      value: (address: number): void => {
        free.call(heap, address);
        sites.delete(address);
      },
    },
  });
  return sites;
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
