// ffi/libc_malloc.ts: the C library's malloc family and the other C functions the benchmarks and
// the trace replayer call, bound once (needs --allow-ffi).
import assert from "node:assert/strict";
import { anonymousMapping, closeLibcMalloc, libcMalloc, mallinfo2 } from "../ffi/libc_malloc.ts";

/** A view of `length` bytes of native memory at `address`. */
function view(address: bigint, length: number): Uint8Array {
  const pointer = Deno.UnsafePointer.create(address)!;
  return new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(pointer, length));
}

Deno.test("libcMalloc opens the library once and hands out Deno's symbols object", () => {
  const libc = libcMalloc();
  assert.equal(libcMalloc(), libc);
  for (const name of ["malloc", "calloc", "realloc", "free", "usableSize", "memcpyIn", "qsort"]) {
    assert.equal(typeof (libc as unknown as Record<string, unknown>)[name], "function", name);
  }
  if (Deno.build.os === "linux") assert.equal(typeof libc.mallinfo2, "function");
});

Deno.test("malloc, calloc, realloc and free take and give bigints", () => {
  const libc = libcMalloc();
  const block = libc.malloc(100n);
  assert.equal(typeof block, "bigint");
  assert.notEqual(block, 0n);
  assert.ok(libc.usableSize(block) >= 100n);
  view(block, 100).fill(7);
  const moved = libc.realloc(block, 5000n);
  assert.notEqual(moved, 0n);
  assert.ok(view(moved, 100).every((byte) => byte === 7), "realloc keeps the contents");
  libc.free(moved);

  const zeroed = libc.calloc(100n, 10n);
  assert.ok(view(zeroed, 1000).every((byte) => byte === 0));
  libc.free(zeroed);
  libc.free(0n);
});

Deno.test("memcpy copies in and out of native memory", () => {
  const libc = libcMalloc();
  const block = libc.malloc(16n);
  const source = Uint8Array.from({ length: 16 }, (_, i) => i + 1);
  const target = new Uint8Array(16);
  libc.memcpyIn(block, source, 16n);
  libc.memcpyOut(target, block, 16n);
  libc.free(block);
  assert.deepEqual(target, source);
});

Deno.test("qsort sorts through a JavaScript comparator", () => {
  const libc = libcMalloc();
  const values = Uint32Array.from([5, 3, 9, 1, 7]);
  const base = Deno.UnsafePointer.value(Deno.UnsafePointer.of(values));
  const compare = new Deno.UnsafeCallback(
    { parameters: ["usize", "usize"], result: "i32" } as const,
    (a, b) => values[Number(a - base) / 4]! - values[Number(b - base) / 4]!,
  );
  try {
    libc.qsort(values, BigInt(values.length), 4n, compare.pointer);
  } finally {
    compare.close();
  }
  assert.deepEqual([...values], [1, 3, 5, 7, 9]);
});

Deno.test("the raw mmap of anonymousMapping gives writable, zeroed, page-aligned memory", () => {
  const libc = libcMalloc();
  const { protection, flags } = anonymousMapping();
  const address = libc.mmap(0n, 65536n, protection, flags, -1, 0n);
  assert.notEqual(address, 0xffff_ffff_ffff_ffffn, "MAP_FAILED");
  assert.equal(address % 4096n, 0n);
  const bytes = view(address, 65536);
  assert.ok(bytes.every((byte) => byte === 0));
  bytes.fill(1);
  assert.equal(libc.munmap(address, 65536n), 0);
});

Deno.test("mallinfo2 counts a large block among the mapped chunks (glibc)", () => {
  if (libcMalloc().mallinfo2 === null) {
    assert.equal(mallinfo2(), undefined);
    return;
  }
  const libc = libcMalloc();
  const before = mallinfo2()!;
  const size = 64 << 20; // far above glibc's mmap threshold: a chunk of its own
  const block = libc.malloc(BigInt(size));
  const during = mallinfo2()!;
  libc.free(block);
  assert.ok(during.hblkhd - before.hblkhd >= size, `${during.hblkhd} - ${before.hblkhd}`);
  assert.ok(during.hblks > before.hblks);
  assert.equal(Object.keys(during).length, 10);
});

Deno.test("closeLibcMalloc closes; the next libcMalloc opens the library again", () => {
  const first = libcMalloc();
  closeLibcMalloc();
  closeLibcMalloc();
  const second = libcMalloc();
  assert.notEqual(second, first);
  second.free(second.malloc(16n));
});
