// PseudoMalloc against libc malloc, a plain Uint8Array, and raw mmap. Run with `deno task bench`.

import { PseudoMalloc } from "../mod.ts";

const darwin = Deno.build.os === "darwin";
const libc = Deno.dlopen(darwin ? "/usr/lib/libSystem.B.dylib" : "libc.so.6", {
  malloc: { parameters: ["usize"], result: "usize" },
  free: { parameters: ["usize"], result: "void" },
  mmap: { parameters: ["usize", "usize", "i32", "i32", "i32", "i64"], result: "usize" },
  munmap: { parameters: ["usize", "usize"], result: "i32" },
});

const heap = new PseudoMalloc();
const PROT_READ_WRITE = 0x1 | 0x2;
const MAP_PRIVATE_ANONYMOUS = darwin ? 0x0002 | 0x1000 : 0x02 | 0x20;
const LARGE = 64 * 1024;
let sink: Uint8Array | undefined;

Deno.bench("PseudoMalloc malloc(64) + free", { group: "64 B" }, () => {
  heap.free(heap.malloc(64));
});

Deno.bench("libc malloc(64) + free", { group: "64 B", baseline: true }, () => {
  libc.symbols.free(libc.symbols.malloc(64n));
});

Deno.bench("new Uint8Array(64)", { group: "64 B" }, () => {
  sink = new Uint8Array(64);
});

Deno.bench("PseudoMalloc malloc(64 KiB) + free", { group: "64 KiB" }, () => {
  heap.free(heap.malloc(LARGE));
});

Deno.bench("libc mmap(64 KiB) + munmap", { group: "64 KiB", baseline: true }, () => {
  const address = libc.symbols.mmap(
    0n,
    BigInt(LARGE),
    PROT_READ_WRITE,
    MAP_PRIVATE_ANONYMOUS,
    -1,
    0n,
  );
  libc.symbols.munmap(address, BigInt(LARGE));
});

addEventListener("unload", () => {
  if (sink?.length !== 64) throw new Error("unreachable: keeps the Uint8Array bench honest");
  heap.close();
  libc.close();
});
