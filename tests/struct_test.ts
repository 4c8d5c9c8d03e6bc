// struct(): layouts checked against worked examples and against structs that real C fills through
// Deno.dlopen of libc (clock_gettime, localtime_r, uname, stat, div, inet_ntoa); every bad input.
// Needs --allow-ffi and --allow-run (a child process gives the file's stat and another time zone).
import assert from "node:assert/strict";
import { type FieldType, struct, StructLayout, type StructMemory } from "../src/struct.ts";
import { PseudoMalloc } from "../src/heap/pseudo_malloc.ts";
import { BumpAllocator } from "../src/family/bump_allocator.ts";
import { InvalidAddressError } from "../src/errors.ts";
import { Stat, Timespec } from "../examples/_linux_stat.ts";

const LIBC = Deno.build.os === "darwin" ? "/usr/lib/libSystem.B.dylib" : "libc.so.6";
const linux = Deno.build.os === "linux";

const Point = struct({ id: "i32", x: "f64", y: "f64" });

/** Runs `code` in a child Deno (all permissions, as `deno eval`) and returns what it printed. */
async function child(code: string, env: Record<string, string> = {}): Promise<string> {
  const { code: status, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=ts", code],
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  assert.equal(status, 0, decoder.decode(stderr));
  return decoder.decode(stdout);
}

/** The text of a NUL-terminated char array read by `read`. */
function text(chars: number[]): string {
  const end = chars.indexOf(0);
  return new TextDecoder().decode(Uint8Array.from(end < 0 ? chars : chars.slice(0, end)));
}

// --- Layouts ---------------------------------------------------------------------------------

Deno.test("the worked example: { id: i32, x: f64, y: f64 } is 24 bytes, x at 8", () => {
  assert.equal(Point.size, 24);
  assert.equal(Point.alignment, 8);
  assert.deepEqual([Point.offsetOf("id"), Point.offsetOf("x"), Point.offsetOf("y")], [0, 8, 16]);
  assert.deepEqual(
    Point.members.map(({ name, offset, size, type }) => [name, offset, size, type]),
    [["id", 0, 4, "i32"], ["x", 8, 8, "f64"], ["y", 16, 8, "f64"]],
  );
  assert.deepEqual(Point.ffiType, { struct: ["i32", "f64", "f64"] });
  assert.ok(Point instanceof StructLayout);
  assert.equal(new StructLayout({ id: "i32", x: "f64", y: "f64" }).size, 24);
});

Deno.test("every scalar has its size and alignment; padding follows C", () => {
  // deno-fmt-ignore
  const sizes: [FieldType, number][] = [
    ["i8", 1], ["u8", 1], ["bool", 1], ["i16", 2], ["u16", 2], ["i32", 4], ["u32", 4],
    ["f32", 4], ["i64", 8], ["u64", 8], ["f64", 8], ["pointer", 8], ["usize", 8], ["isize", 8],
  ];
  for (const [type, size] of sizes) {
    const layout = struct({ c: "u8", value: type });
    assert.equal(layout.offsetOf("value"), size, `${type} is aligned to ${size}`);
    assert.equal(layout.size, 2 * size, `${type}: the size rounds up to the alignment`);
    assert.equal(layout.alignment, size);
  }
  const small = struct({ a: "u8", b: "u16", c: "u8" });
  assert.deepEqual([small.offsetOf("b"), small.offsetOf("c"), small.size, small.alignment], [
    2,
    4,
    6,
    2,
  ]);
  assert.equal(struct({ a: "u8" }).size, 1);
  const tail = struct({ a: "i64", b: "u8" });
  assert.deepEqual([tail.offsetOf("b"), tail.size], [8, 16]);
});

Deno.test("nested structs are aligned as their most aligned field", () => {
  const Outer = struct({ c: "u8", time: Timespec, d: "u16" });
  assert.deepEqual([Outer.offsetOf("time"), Outer.offsetOf("d"), Outer.size], [8, 24, 32]);
  const Bytes = struct({ a: "u8", b: "u8" });
  const Loose = struct({ c: "u8", inner: Bytes });
  assert.deepEqual([Loose.offsetOf("inner"), Loose.size, Loose.alignment], [1, 3, 1]);
  assert.deepEqual(Outer.ffiType, {
    struct: ["u8", { struct: ["i64", "i64"] }, "u16"],
  });
});

Deno.test("arrays: no padding between elements, aligned as the element, flattened for FFI", () => {
  const Tagged = struct({ tag: "u8", data: ["u32", 3] });
  assert.deepEqual([Tagged.offsetOf("data"), Tagged.size, Tagged.alignment], [4, 16, 4]);
  assert.deepEqual(Tagged.ffiType, { struct: ["u8", "u32", "u32", "u32"] });
  const Grid = struct({ cells: [["u8", 3], 2], last: "u8" });
  assert.deepEqual([Grid.offsetOf("last"), Grid.size], [6, 7]);
  assert.equal(Grid.ffiType.struct.length, 7);
  const Points = struct({ count: "u32", points: [Point, 2] });
  assert.deepEqual([Points.offsetOf("points"), Points.size], [8, 56]);
  assert.deepEqual(Points.ffiType.struct.slice(1), [Point.ffiType, Point.ffiType]);
  assert.equal(Points.ffiType, Points.ffiType, "made once");
});

// --- Reading and writing ---------------------------------------------------------------------

const Every = struct({
  i8: "i8",
  u8: "u8",
  i16: "i16",
  u16: "u16",
  i32: "i32",
  u32: "u32",
  i64: "i64",
  u64: "u64",
  f32: "f32",
  f64: "f64",
  pointer: "pointer",
  usize: "usize",
  isize: "isize",
  bool: "bool",
  chars: ["u8", 4],
  time: Timespec,
});

const EXTREMES = {
  i8: -128,
  u8: 255,
  i16: -32768,
  u16: 65535,
  i32: -(2 ** 31),
  u32: 2 ** 32 - 1,
  i64: -(2n ** 63n),
  u64: 2n ** 64n - 1n,
  f32: 1.5,
  f64: Math.PI,
  pointer: 0x7fff_1234_5678,
  usize: 2n ** 64n - 1n,
  isize: -1n,
  bool: true,
  chars: [76, 105, 110, 0],
  time: { tv_sec: 1_700_000_000n, tv_nsec: 999_999_999n },
};

Deno.test("write then read gives every scalar back at its extremes, in native byte order", () => {
  using heap = new PseudoMalloc();
  const address = heap.calloc(1, Every.size);
  Every.write(heap, address, EXTREMES);
  assert.deepEqual(Every.read(heap, address), EXTREMES);
  const bytes = heap.bytes(address, Every.size);
  const view = new DataView(bytes.buffer, bytes.byteOffset, Every.size);
  assert.equal(view.getInt32(Every.offsetOf("i32"), true), -(2 ** 31), "little-endian i32");
  assert.equal(view.getFloat32(Every.offsetOf("f32"), true), 1.5);
  assert.equal(view.getBigUint64(Every.offsetOf("pointer"), true), 0x7fff_1234_5678n);
  assert.equal(bytes[Every.offsetOf("bool")], 1);
  Every.write(heap, address, { bool: false });
  assert.equal(bytes[Every.offsetOf("bool")], 0);
  bytes[Every.offsetOf("bool")] = 2;
  assert.equal(Every.read(heap, address).bool, true, "any nonzero byte is true");
});

Deno.test("write takes numbers for 64-bit fields and bigints or pointers for pointer fields", () => {
  using heap = new PseudoMalloc();
  const address = heap.calloc(1, Every.size);
  const target = heap.malloc(8);
  Every.write(heap, address, {
    i64: -5,
    u64: 7,
    usize: 2 ** 53 - 1,
    pointer: heap.pointer(target),
  });
  assert.deepEqual(Every.read(heap, address).i64, -5n);
  assert.deepEqual(Every.read(heap, address).u64, 7n);
  assert.deepEqual(Every.read(heap, address).usize, 2n ** 53n - 1n);
  assert.equal(Every.read(heap, address).pointer, target, "a pointer reads back as its address");
  Every.write(heap, address, { pointer: 0x1000n });
  assert.equal(Every.read(heap, address).pointer, 0x1000);
  Every.write(heap, address, { pointer: null });
  assert.equal(Every.read(heap, address).pointer, 0);
  Every.write(heap, address, { chars: new Uint8Array([1, 2]) });
  assert.deepEqual(Every.read(heap, address).chars, [1, 2, 0, 0], "typed arrays are accepted");
});

Deno.test("a partial write changes only the fields given and never the padding", () => {
  using heap = new PseudoMalloc();
  const address = heap.malloc(Point.size);
  const bytes = heap.bytes(address, Point.size);
  bytes.fill(0xaa);
  Point.write(heap, address, { id: 1, x: 2, y: 3 });
  assert.deepEqual([...bytes.subarray(4, 8)], [0xaa, 0xaa, 0xaa, 0xaa], "padding untouched");
  Point.write(heap, address, { x: 5, y: undefined });
  assert.deepEqual(Point.read(heap, address), { id: 1, x: 5, y: 3 });
  const Nested = struct({ a: "u8", time: Timespec, list: ["u16", 3] });
  const other = heap.calloc(1, Nested.size);
  Nested.write(heap, other, { a: 1, time: { tv_sec: 9n, tv_nsec: 8n }, list: [1, 2, 3] });
  Nested.write(heap, other, { time: { tv_nsec: 1n }, list: [7] });
  assert.deepEqual(Nested.read(heap, other), {
    a: 1,
    time: { tv_sec: 9n, tv_nsec: 1n },
    list: [7, 2, 3],
  });
});

Deno.test("element i of an array of structs is at address + i * size", () => {
  using heap = new PseudoMalloc();
  const count = 5;
  const points = heap.calloc(count, Point.size);
  for (let i = 0; i < count; i++) Point.write(heap, points, { id: i, x: i / 2, y: -i }, i);
  for (let i = 0; i < count; i++) {
    const expected = { id: i, x: i / 2, y: -i };
    assert.deepEqual(Point.read(heap, points, i), expected);
    assert.deepEqual(Point.read(heap, points + i * Point.size), expected, "interior (bytesAt)");
    const view = new DataView(heap.bytes(points).buffer, heap.bytes(points).byteOffset);
    assert.equal(view.getInt32(i * 24, true), i);
  }
  Point.write(heap, points + 3 * Point.size, { id: 30 });
  assert.equal(Point.read(heap, points, 3).id, 30);
  assert.equal(Point.read(heap, points + Point.size, 2).id, 30, "interior address plus index");
});

Deno.test("an allocator without bytesAt works from a block's start, with the index", () => {
  using heap = new PseudoMalloc();
  const memory: StructMemory = { bytes: (address, length) => heap.bytes(address, length) };
  const points = heap.calloc(3, Point.size);
  Point.write(memory, points, { id: 2, x: 1 }, 2);
  assert.deepEqual(Point.read(memory, points, 2), { id: 2, x: 1, y: 0 });
  assert.throws(() => Point.read(memory, points + Point.size), InvalidAddressError);
  const usable = heap.usableSize(points);
  assert.throws(() => Point.read(memory, points, Math.floor(usable / Point.size)), RangeError);
  using bump = new BumpAllocator();
  const address = bump.calloc(2, Timespec.size);
  Timespec.write(bump, address, { tv_sec: 4n }, 1);
  assert.deepEqual(Timespec.read(bump, address, 1), { tv_sec: 4n, tv_nsec: 0n });
});

Deno.test("decode and encode work on plain bytes", () => {
  const bytes = Point.encode({ id: 3, x: 0.5 });
  assert.equal(bytes.length, 24);
  assert.deepEqual(Point.decode(bytes), { id: 3, x: 0.5, y: 0 });
  const two = new Uint8Array(48);
  Point.encode({ id: 9 }, two, 1);
  assert.deepEqual(Point.decode(two, 1), { id: 9, x: 0, y: 0 });
  assert.deepEqual(two.subarray(0, 24), new Uint8Array(24));
  assert.throws(() => Point.decode(two, 2), RangeError);
  assert.throws(() => Point.decode(new Uint8Array(23)), RangeError);
  assert.throws(() => Point.encode({ id: 1 }, new Uint8Array(8)), RangeError);
  assert.throws(() => Point.decode([1, 2] as unknown as Uint8Array), TypeError);
});

// --- Bad input -------------------------------------------------------------------------------

Deno.test("struct() rejects unknown field types with a TypeError naming the field", () => {
  const bad: [unknown, string][] = [
    ["i128", "x"],
    ["I32", "x"],
    [undefined, "x"],
    [4, "x"],
    [{ struct: ["i32"] }, "x"],
    [["i128", 2], "x[]"],
    [[], "x"],
    [["u8", 2, 3], "x"],
    [["u8", "65"], "x"],
    ["toString", "x"],
  ];
  for (const [type, name] of bad) {
    assert.throws(
      () => struct({ x: type as FieldType }),
      (error: Error) =>
        error instanceof TypeError &&
        error.message.startsWith(`Cannot describe struct field ${name}:`),
      String(type),
    );
  }
  for (const fields of [null, undefined, "i32", ["i32"], 3]) {
    assert.throws(() => struct(fields as never), TypeError, String(fields));
  }
  assert.throws(() => struct({}), /Cannot describe a struct without fields/);
  assert.throws(() => struct({ "0": "u8" }), /Cannot describe struct field 0: a name that is an/);
});

Deno.test("struct() rejects bad array lengths with a RangeError", () => {
  for (const length of [0, -1, 1.5, NaN, Infinity, 2 ** 53]) {
    assert.throws(
      () => struct({ x: ["u8", length] }),
      (error: Error) =>
        error instanceof RangeError && error.message.startsWith("Cannot describe struct field x:"),
      String(length),
    );
  }
  assert.throws(() => struct({ x: ["u64", 2 ** 45] }), /exceed 2\^47 bytes/);
  assert.throws(() => struct({ x: ["u8", 2 ** 46], y: ["u8", 2 ** 46], z: "u8" }), RangeError);
});

Deno.test("offsetOf an unknown field is a TypeError", () => {
  assert.throws(() => Point.offsetOf("z" as never), /Cannot find struct field z/);
});

Deno.test("read and write reject bad addresses and indexes", () => {
  using heap = new PseudoMalloc();
  const address = heap.malloc(Point.size);
  assert.throws(() => Point.read(heap, "1" as never), TypeError);
  assert.throws(() => Point.read(heap, address, "1" as never), TypeError);
  for (const index of [-1, 0.5, NaN]) {
    assert.throws(() => Point.read(heap, address, index), RangeError, String(index));
  }
  const usable = heap.usableSize(address);
  assert.throws(() => Point.read(heap, address, Math.floor(usable / Point.size)), RangeError);
  assert.throws(() => Point.read(heap, address + usable - 8), RangeError, "passes the end");
  assert.throws(() => Point.read(heap, address + 4), /not aligned to 8 bytes/);
  assert.throws(() => Point.write(heap, address + 4, { id: 1 }), RangeError);
  const freed = heap.malloc(Point.size);
  heap.free(freed);
  assert.throws(() => Point.read(heap, freed), InvalidAddressError, "a freed block");
  assert.throws(() => Point.write(heap, freed, { id: 1 }), InvalidAddressError);
  assert.throws(() => Point.read(heap, 0x1000), InvalidAddressError, "a foreign address");
  assert.throws(() => Point.read(heap, 0), InvalidAddressError);
});

Deno.test("write rejects bad values before changing any byte", () => {
  using heap = new PseudoMalloc();
  const address = heap.calloc(1, Every.size);
  Every.write(heap, address, EXTREMES);
  const before = heap.bytes(address).slice();
  const type: Record<string, unknown>[] = [
    { nope: 1 },
    { i32: "1" },
    { f64: 1n },
    { bool: 1 },
    { i64: "5" },
    { pointer: "0x10" },
    { pointer: {} },
    { chars: "abc" },
    { chars: 3 },
    { time: 5 },
    { time: [1, 2] },
    { time: { tv_usec: 1n } },
  ];
  const range: Record<string, unknown>[] = [
    { u8: 256 },
    { u8: -1 },
    { i8: 128 },
    { i16: -32769 },
    { u32: 2 ** 32 },
    { i32: 1.5 },
    { i32: NaN },
    { u64: -1n },
    { u64: 2n ** 64n },
    { i64: 2n ** 63n },
    { i64: 1.5 },
    { i64: 2 ** 53 },
    { pointer: -1 },
    { chars: [1, 2, 3, 4, 5] },
    { chars: [1, 256] },
    { time: { tv_nsec: 2n ** 63n } },
  ];
  for (const values of type) {
    assert.throws(
      () => Every.write(heap, address, { u8: 1, ...values } as never),
      (error: Error) =>
        error instanceof TypeError && error.message.startsWith("Cannot write struct field"),
      JSON.stringify(values, (_, v) => typeof v === "bigint" ? `${v}n` : v),
    );
  }
  for (const values of range) {
    assert.throws(
      () => Every.write(heap, address, { u8: 1, ...values } as never),
      (error: Error) =>
        error instanceof RangeError && error.message.startsWith("Cannot write struct field"),
      JSON.stringify(values, (_, v) => typeof v === "bigint" ? `${v}n` : v),
    );
  }
  for (const values of [null, 5, [1], "x"]) {
    assert.throws(() => Every.write(heap, address, values as never), TypeError);
  }
  assert.throws(() => Every.write(heap, address, { chars: [1, "2"] } as never), /chars\[1\]/);
  assert.throws(
    () => Every.write(heap, address, { time: { tv_sec: "1" } } as never),
    /time\.tv_sec/,
  );
  assert.deepEqual(heap.bytes(address), before, "nothing was written");
  assert.throws(() => Point.encode({ id: 1.5 }), RangeError);
});

// --- Structs that C fills ----------------------------------------------------------------------

Deno.test("clock_gettime fills a struct timespec near Date.now()", () => {
  const libc = Deno.dlopen(LIBC, {
    clock_gettime: { parameters: ["i32", "pointer"], result: "i32" },
  });
  try {
    using heap = new PseudoMalloc();
    const now = heap.malloc(Timespec.size);
    const before = Date.now();
    assert.equal(libc.symbols.clock_gettime(0, heap.pointer(now)), 0); // CLOCK_REALTIME
    const { tv_sec, tv_nsec } = Timespec.read(heap, now);
    assert.equal(typeof tv_sec, "bigint");
    assert.ok(tv_nsec >= 0n && tv_nsec < 1_000_000_000n);
    const ms = Number(tv_sec) * 1000 + Number(tv_nsec) / 1e6;
    assert.ok(Math.abs(ms - before) < 5000, `${ms} is within seconds of ${before}`);
  } finally {
    libc.close();
  }
});

/** `struct tm` of glibc and macOS, with the BSD fields `tm_gmtoff` and `tm_zone`. */
const Tm = struct({
  tm_sec: "i32",
  tm_min: "i32",
  tm_hour: "i32",
  tm_mday: "i32",
  tm_mon: "i32",
  tm_year: "i32",
  tm_wday: "i32",
  tm_yday: "i32",
  tm_isdst: "i32",
  tm_gmtoff: "i64",
  tm_zone: "pointer",
});

interface LocaltimeReport {
  returned: boolean;
  actual: Record<string, unknown>;
  expected: Record<string, unknown>;
}

/**
 * `localtime_r` of a fixed time, and what `Date` says of it. Self-contained (no `using`, nothing
 * from outside but its arguments), so a child in another time zone runs its source too.
 */
function localtimeReport(
  libcPath: string,
  Heap: typeof PseudoMalloc,
  layout: typeof Tm,
): LocaltimeReport {
  const libc = Deno.dlopen(libcPath, {
    localtime_r: { parameters: ["pointer", "pointer"], result: "pointer" },
  });
  const heap = new Heap();
  try {
    const time = heap.malloc(8);
    const seconds = 1_700_000_000; // 2023-11-14T22:13:20Z
    const bytes = heap.bytes(time);
    new DataView(bytes.buffer, bytes.byteOffset, 8).setBigInt64(0, BigInt(seconds), true);
    const tm = heap.malloc(layout.size);
    const result = libc.symbols.localtime_r(heap.pointer(time), heap.pointer(tm));
    const value = layout.read(heap, tm);
    const date = new Date(seconds * 1000);
    const day = new Date(date.getFullYear(), date.getMonth(), date.getDate()).getTime();
    const zone = value.tm_zone === 0
      ? ""
      : Deno.UnsafePointerView.getCString(Deno.UnsafePointer.create(BigInt(value.tm_zone))!);
    return {
      returned: heap.addressOf(result) === tm,
      actual: { ...value, tm_gmtoff: Number(value.tm_gmtoff), tm_zone: zone },
      expected: {
        tm_sec: date.getSeconds(),
        tm_min: date.getMinutes(),
        tm_hour: date.getHours(),
        tm_mday: date.getDate(),
        tm_mon: date.getMonth(),
        tm_year: date.getFullYear() - 1900,
        tm_wday: date.getDay(),
        tm_yday: Math.round((day - new Date(date.getFullYear(), 0, 1).getTime()) / 86_400_000),
        tm_gmtoff: date.getTimezoneOffset() * -60 || 0, // not -0 in UTC
      },
    };
  } finally {
    heap.close();
    libc.close();
  }
}

function checkLocaltime(report: LocaltimeReport): void {
  assert.ok(report.returned, "localtime_r returns its tm argument");
  const { tm_isdst, tm_zone, ...fields } = report.actual;
  assert.deepEqual(fields, report.expected);
  assert.ok(tm_isdst === 0 || tm_isdst === 1, `tm_isdst ${tm_isdst}`);
  assert.match(tm_zone as string, /^[A-Za-z0-9+-]{1,16}$/, "tm_zone points at a C string");
}

Deno.test("localtime_r fills a struct tm that matches Date's local time", () => {
  checkLocaltime(localtimeReport(LIBC, PseudoMalloc, Tm));
});

Deno.test({
  name: "localtime_r in another time zone (a child with TZ=America/New_York)",
  ignore: !linux || !existsZone("America/New_York"),
  fn: async () => {
    const imports = `
      import { struct } from "${new URL("../src/struct.ts", import.meta.url).href}";
      import { PseudoMalloc } from "${
      new URL("../src/heap/pseudo_malloc.ts", import.meta.url).href
    }";
      const Tm = struct(${JSON.stringify(Tm.fields)});
      const localtimeReport = ${localtimeReport.toString()};
    `;
    const code =
      `${imports}console.log(JSON.stringify(localtimeReport("libc.so.6", PseudoMalloc, Tm)));`;
    const output = await child(code, { TZ: "America/New_York" });
    const report = JSON.parse(output);
    checkLocaltime(report);
    assert.equal(report.actual.tm_gmtoff, -5 * 3600, "EST in November");
    assert.equal(report.actual.tm_hour, 17);
    assert.equal(report.actual.tm_zone, "EST");
  },
});

function existsZone(name: string): boolean {
  // No --allow-read: ask libc whether the file exists (access(path, F_OK)).
  const libc = Deno.dlopen(LIBC, { access: { parameters: ["buffer", "i32"], result: "i32" } });
  try {
    const path = new TextEncoder().encode(`/usr/share/zoneinfo/${name}\0`);
    return libc.symbols.access(path, 0) === 0;
  } finally {
    libc.close();
  }
}

/** `struct utsname` of Linux: six arrays of 65 chars. */
const Utsname = struct({
  sysname: ["u8", 65],
  nodename: ["u8", 65],
  release: ["u8", 65],
  version: ["u8", 65],
  machine: ["u8", 65],
  domainname: ["u8", 65],
});

Deno.test({
  name: "uname fills a struct utsname (Linux: 6 arrays of 65 chars)",
  ignore: !linux,
  fn: () => {
    assert.deepEqual([Utsname.size, Utsname.alignment, Utsname.offsetOf("machine")], [390, 1, 260]);
    const libc = Deno.dlopen(LIBC, { uname: { parameters: ["pointer"], result: "i32" } });
    try {
      using heap = new PseudoMalloc();
      const address = heap.malloc(Utsname.size);
      heap.bytes(address).fill(0xff);
      assert.equal(libc.symbols.uname(heap.pointer(address)), 0);
      const name = Utsname.read(heap, address);
      assert.equal(text(name.sysname), "Linux");
      assert.equal(text(name.machine), Deno.build.arch);
      assert.match(text(name.release), /^\d+\.\d+/);
      assert.ok(name.nodename.includes(0), "NUL-terminated inside its 65 chars");
    } finally {
      libc.close();
    }
  },
});

Deno.test({
  // The layout of struct stat differs per architecture (arm64 glibc puts st_mode before st_nlink
  // and has 32-bit st_blksize), so this test runs on x86_64 Linux only.
  name: "stat fills a struct stat (x86_64 Linux): st_size is the file's size",
  ignore: !(linux && Deno.build.arch === "x86_64"),
  fn: async () => {
    assert.deepEqual([Stat.size, Stat.offsetOf("st_size"), Stat.offsetOf("st_mtim")], [
      144,
      48,
      88,
    ]);
    const path = new URL(import.meta.url).pathname;
    const libc = Deno.dlopen(LIBC, {
      stat: { parameters: ["buffer", "pointer"], result: "i32" },
    });
    try {
      using heap = new PseudoMalloc();
      const address = heap.malloc(Stat.size);
      const status = libc.symbols.stat(
        new TextEncoder().encode(`${path}\0`),
        heap.pointer(address),
      );
      assert.equal(status, 0);
      const stat = Stat.read(heap, address);
      // The file's stat as Deno sees it, from a child (this test runs without --allow-read).
      const real = JSON.parse(
        await child(
          `const s = Deno.statSync(${JSON.stringify(path)}); console.log(JSON.stringify({ ...s, ` +
            `mtime: s.mtime?.getTime() }));`,
        ),
      );
      assert.ok(real.size > 1000);
      assert.equal(Number(stat.st_size), real.size);
      assert.equal(Number(stat.st_ino), real.ino);
      assert.equal(stat.st_mode, real.mode);
      assert.equal(stat.st_mode & 0o170000, 0o100000, "a regular file");
      assert.equal(Number(stat.st_nlink), real.nlink);
      assert.equal(Number(stat.st_blocks), real.blocks);
      const mtime = Number(stat.st_mtim.tv_sec) * 1000 +
        Math.floor(Number(stat.st_mtim.tv_nsec) / 1e6);
      assert.equal(mtime, real.mtime);
    } finally {
      libc.close();
    }
  },
});

Deno.test({
  name: "by value: div() returns a div_t, inet_ntoa() takes a struct in_addr",
  ignore: !linux,
  fn: () => {
    const DivT = struct({ quot: "i32", rem: "i32" });
    const LdivT = struct({ quot: "i64", rem: "i64" });
    const InAddr = struct({ s_addr: "u32" });
    const libc = Deno.dlopen(LIBC, {
      div: { parameters: ["i32", "i32"], result: DivT.ffiType },
      ldiv: { parameters: ["i64", "i64"], result: LdivT.ffiType },
      inet_ntoa: { parameters: [InAddr.ffiType], result: "pointer" },
    });
    try {
      assert.deepEqual(DivT.decode(libc.symbols.div(-7, 2)), { quot: -3, rem: -1 });
      assert.deepEqual(LdivT.decode(libc.symbols.ldiv(10n ** 15n + 3n, 10n)), {
        quot: 10n ** 14n,
        rem: 3n,
      });
      const address = libc.symbols.inet_ntoa(InAddr.encode({ s_addr: 0x0100007f })); // 127.0.0.1
      assert.equal(Deno.UnsafePointerView.getCString(address!), "127.0.0.1");
      using heap = new PseudoMalloc();
      const block = heap.malloc(InAddr.size);
      InAddr.write(heap, block, { s_addr: 0x04030201 });
      const text = libc.symbols.inet_ntoa(heap.bytes(block, InAddr.size));
      assert.equal(Deno.UnsafePointerView.getCString(text!), "1.2.3.4", "heap bytes by value");
    } finally {
      libc.close();
    }
  },
});
