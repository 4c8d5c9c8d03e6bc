// A newcomer's FFI program, all on the heap and with `using` throughout: an array of C structs
// sorted by libc's `qsort` with a JavaScript comparator, a C string round trip through `strlen`
// and `strdup`, and `stat()` of this file read through a struct layout.
//
//   deno task example:structs

import { PseudoMalloc, struct } from "../mod.ts";
import { Stat } from "./_linux_stat.ts"; // glibc's struct stat on x86_64

const libc = Deno.dlopen(Deno.build.os === "darwin" ? "libSystem.B.dylib" : "libc.so.6", {
  qsort: { parameters: ["pointer", "usize", "usize", "function"], result: "void" },
  strlen: { parameters: ["pointer"], result: "usize" },
  strdup: { parameters: ["pointer"], result: "pointer" },
  free: { parameters: ["pointer"], result: "void" },
  stat: { parameters: ["pointer", "pointer"], result: "i32" },
});

using heap = new PseudoMalloc();

// 1. struct { int32_t id; double x, y; } points[8], sorted by distance from the origin.
const Point = struct({ id: "i32", x: "f64", y: "f64" });
const count = 8;
const points = heap.malloc(count * Point.size);
for (let i = 0; i < count; i++) {
  Point.write(heap, points, { id: i, x: Math.cos(i * 2.4) * (8 - i), y: Math.sin(i * 2.4) }, i);
}
// qsort hands the comparator element pointers (interior addresses): `read` takes them as they are.
const distance = (pointer: Deno.PointerValue) => {
  const { x, y } = Point.read(heap, heap.addressOf(pointer)) as { x: number; y: number };
  return Math.hypot(x, y);
};
const compare = new Deno.UnsafeCallback(
  { parameters: ["pointer", "pointer"], result: "i32" },
  (a, b) => Math.sign(distance(a) - distance(b)),
);
try {
  libc.symbols.qsort(heap.pointer(points), BigInt(count), BigInt(Point.size), compare.pointer);
} finally {
  compare.close(); // Deno's callbacks are not Disposable (yet): closed by hand
}
const sorted = Array.from({ length: count }, (_, i) => Point.read(heap, points, i).id);
const distances = Array.from(
  { length: count },
  (_, i) => distance(heap.pointer(points + i * Point.size)),
);
if (distances.some((d, i) => i > 0 && d < distances[i - 1]!)) {
  throw new Error("qsort left them unsorted");
}
console.log(`1. qsort with a JS comparator, ids by distance: ${sorted.join(", ")}`);
heap.free(points);

// 2. A C string: made on the heap, measured and copied by C, read back.
const greeting = heap.cstring("grüß dich, C");
const copy = libc.symbols.strdup(heap.pointer(greeting)); // libc's memory: libc frees it
const length = libc.symbols.strlen(copy);
libc.symbols.free(copy);
console.log(`2. "${heap.readCString(greeting)}": strlen of its copy says ${length} bytes of UTF-8`);
heap.free(greeting);

// 3. stat(): a path and a struct stat, both on the heap, freed at the end of their scope.
if (Deno.build.os === "linux" && Deno.build.arch === "x86_64") {
  const path = new URL(import.meta.url).pathname;
  const encoded = new TextEncoder().encode(`${path}\0`);
  using name = heap.scoped(encoded.length);
  name.bytes().set(encoded);
  using buffer = heap.scoped(Stat.size);
  if (libc.symbols.stat(name.pointer, buffer.pointer) !== 0) throw new Error("stat failed");
  const { st_size, st_mode } = Stat.read(heap, buffer.address) as {
    st_size: bigint;
    st_mode: number;
  };
  console.log(`3. stat("${path.split("/").pop()}"): ${st_size} bytes, mode ${st_mode.toString(8)}`);
} else {
  console.log("3. stat(): skipped (the struct stat layout here is glibc's on x86_64 Linux)");
}

console.log(`   live blocks at the end: ${heap.stats().liveAllocations}`);
libc.close();
