/**
 * Struct layouts: `struct({ field: type, ... })` describes a C struct, so FFI code reads and writes
 * native structs by field name instead of by hand-computed offsets.
 *
 * Field types are named as in `Deno.dlopen` (`"i8"` ... `"u64"`, `"f32"`, `"f64"`, `"pointer"`,
 * `"usize"`, `"isize"`, and `"bool"`, one byte), plus fixed arrays written `[type, length]`
 * (`char sysname[65]` is `["u8", 65]`) and nested structs (a layout as a field type). Fields are
 * placed as the platform ABI does (x86_64 and arm64 SysV, and Windows x64: every scalar aligned to
 * its size, a struct aligned to its largest field and its size rounded up to that alignment):
 *
 * ```
 *   struct({ id: "i32", x: "f64", y: "f64" })      size 24, alignment 8
 *   offset  0    4        8                16      24
 *           │ id │ (pad)  │       x        │   y   │ next element of an array ...
 * ```
 *
 * Values read are plain objects: numbers for integers up to 32 bits and floats, bigints for 64-bit
 * integers (`"i64"`, `"u64"`, `"usize"`, `"isize"`), booleans for `"bool"`, addresses (numbers, as
 * everywhere in this package) for `"pointer"`, arrays for arrays and objects for nested structs.
 *
 * Choices, for the record:
 * - arrays are `[type, length]` tuples, read as plain arrays (a `char[65]` as 65 numbers);
 * - pointers read as addresses (numbers); `write` also takes bigints and `Deno.PointerValue`s;
 * - `write` takes any subset of the fields, and shorter arrays; the rest keep their bytes;
 * - element `i` of an array of structs is `read(memory, address, i)` / `write(..., values, i)`;
 * - `address` may be any address inside a block on allocators with `bytesAt` (`PseudoMalloc`), a
 *   block's start on the others;
 * - `decode`/`encode` do the same on plain bytes, for structs passed by value through FFI.
 *
 * The private half (describing, placement, reading and checked writing) is
 * `src/_struct_codec.ts`.
 *
 * @module
 */

import {
  checkStruct,
  describeStruct,
  ffiOf,
  readValue,
  type StructShape,
  writeValue,
} from "./_struct_codec.ts";
import { hex } from "./errors.ts";

/**
 * The scalar field types, named as in `Deno.dlopen`, and `"bool"` (one byte, 0 or 1). Sizes:
 * 1 (`i8`, `u8`, `bool`), 2 (`i16`, `u16`), 4 (`i32`, `u32`, `f32`), 8 (the others); each is
 * aligned to its size.
 *
 * @example A scalar field
 * ```ts
 * import { type ScalarType, struct } from "@pseudo/malloc";
 *
 * const type: ScalarType = "u16";
 * console.log(struct({ value: type }).size); // 2
 * ```
 */
export type ScalarType =
  | "i8"
  | "u8"
  | "i16"
  | "u16"
  | "i32"
  | "u32"
  | "i64"
  | "u64"
  | "f32"
  | "f64"
  | "pointer"
  | "usize"
  | "isize"
  | "bool";

/**
 * The type of a struct field: a scalar named as in `Deno.dlopen`, a fixed array `[type, length]`
 * (arrays of arrays and of structs too), or another struct's layout.
 *
 * @example Every kind of field
 * ```ts
 * import { type FieldType, struct } from "@pseudo/malloc";
 *
 * const point = struct({ x: "f64", y: "f64" });
 * const types: FieldType[] = ["i32", ["u8", 16], point, [point, 4]];
 * console.log(types.length); // 4
 * ```
 */
export type FieldType = ScalarType | readonly [FieldType, number] | StructLayout<StructFields>;

/**
 * The fields of a struct in C order: names to types. (A name that is an array index, like `"0"`,
 * is refused: JavaScript objects would list it first.)
 *
 * @example The fields of `struct timespec`
 * ```ts
 * import type { StructFields } from "@pseudo/malloc";
 *
 * const timespec: StructFields = { tv_sec: "i64", tv_nsec: "i64" };
 * console.log(Object.keys(timespec)); // ["tv_sec", "tv_nsec"]
 * ```
 */
export type StructFields = { readonly [name: string]: FieldType };

/**
 * The value read for a field of type `T`: `number` (up to 32-bit integers, floats, and pointers as
 * addresses), `bigint` (64-bit integers), `boolean`, an array, or a nested struct's value.
 *
 * @example A field's value type
 * ```ts
 * import type { FieldValue } from "@pseudo/malloc";
 *
 * const size: FieldValue<"u64"> = 144n;
 * const name: FieldValue<["u8", 4]> = [76, 105, 110, 0];
 * console.log(size, name.length); // 144n 4
 * ```
 */
export type FieldValue<T> = T extends "bool" ? boolean
  : T extends "i64" | "u64" | "usize" | "isize" ? bigint
  : T extends ScalarType ? number
  : T extends readonly [infer E, number] ? FieldValue<E>[]
  : T extends StructLayout<infer F> ? StructValue<F>
  : never;

/**
 * A struct's value as `read` returns it: every field.
 *
 * @example The value of a point
 * ```ts
 * import { struct, type StructValue } from "@pseudo/malloc";
 *
 * const point = struct({ x: "f64", y: "f64" });
 * const origin: StructValue<typeof point.fields> = { x: 0, y: 0 };
 * console.log(origin.x); // 0
 * ```
 */
export type StructValue<F extends StructFields> = { -readonly [K in keyof F]: FieldValue<F[K]> };

/**
 * What `write` accepts for a field of type `T`: as {@linkcode FieldValue}, but 64-bit integers
 * may be safe-integer numbers, pointers may be addresses, bigints or `Deno.PointerValue`s, arrays
 * may be shorter than the field (or typed arrays) and structs partial.
 *
 * @example Inputs for a pointer field
 * ```ts
 * import type { FieldInput } from "@pseudo/malloc";
 *
 * const inputs: FieldInput<"pointer">[] = [0x1000, 0x1000n, null];
 * console.log(inputs.length); // 3
 * ```
 */
export type FieldInput<T> = T extends "bool" ? boolean
  : T extends "pointer" ? number | bigint | Deno.PointerValue
  : T extends "i64" | "u64" | "usize" | "isize" ? bigint | number
  : T extends ScalarType ? number
  : T extends readonly [infer E, number] ? ArrayLike<FieldInput<E>>
  : T extends StructLayout<infer F> ? StructInput<F>
  : never;

/**
 * What `write` accepts for a struct: any subset of its fields (the others keep their bytes).
 *
 * @example A partial write's value
 * ```ts
 * import { struct, type StructInput } from "@pseudo/malloc";
 *
 * const point = struct({ x: "f64", y: "f64" });
 * const moveRight: StructInput<typeof point.fields> = { x: 10 };
 * console.log(moveRight); // { x: 10 }
 * ```
 */
export type StructInput<F extends StructFields> = { [K in keyof F]?: FieldInput<F[K]> | undefined };

/**
 * Where structs live: any allocator (the {@linkcode Allocator} interface's `bytes`), and, when it
 * has one, `bytesAt` for addresses inside a block (see {@linkcode StructLayout.prototype.read}).
 *
 * @example A heap is a struct memory
 * ```ts
 * import { PseudoMalloc, type StructMemory } from "@pseudo/malloc";
 *
 * using heap = new PseudoMalloc();
 * const memory: StructMemory = heap;
 * console.log(typeof memory.bytes); // "function"
 * ```
 */
export interface StructMemory {
  /** A `Uint8Array` over the live block that starts at `address`. */
  bytes(address: number, length?: number): Uint8Array;
  /** `length` bytes from an address inside a live block, bounded by its end (optional). */
  bytesAt?(address: number, length?: number): Uint8Array;
}

/**
 * A field as placed in its struct: its name, offset in bytes, size and type.
 *
 * @example The fields of a layout
 * ```ts
 * import { struct } from "@pseudo/malloc";
 *
 * const point = struct({ id: "i32", x: "f64" });
 * console.log(point.members.map((m) => `${m.name}@${m.offset}`)); // ["id@0", "x@8"]
 * ```
 */
export interface StructMember {
  /** The field's name. */
  readonly name: string;
  /** Bytes from the start of the struct. */
  readonly offset: number;
  /** Bytes the field covers (padding after it excluded). */
  readonly size: number;
  /** The type it was declared with. */
  readonly type: FieldType;
}

/**
 * The layout of a C struct, made by {@linkcode struct}: its size, alignment and field offsets, and
 * `read`/`write` of struct values in native memory (one struct, or element `i` of an array of
 * them at `address + i * size`).
 *
 * @example Reading back what was written
 * ```ts
 * import { PseudoMalloc, struct } from "@pseudo/malloc";
 * import assert from "node:assert/strict";
 *
 * const Point = struct({ id: "i32", x: "f64", y: "f64" });
 * using heap = new PseudoMalloc();
 * const points = heap.calloc(3, Point.size);
 * Point.write(heap, points, { id: 7, x: 1.5, y: -2 }, 2);
 * assert.deepEqual(Point.read(heap, points, 2), { id: 7, x: 1.5, y: -2 });
 * ```
 */
export class StructLayout<const F extends StructFields> {
  /** The fields as declared. */
  readonly fields: F;
  /** Bytes of one struct, padding included: the distance between elements of an array. */
  readonly size: number;
  /** The struct's alignment: that of its most aligned field. */
  readonly alignment: number;
  /** The fields as placed, in order. */
  readonly members: readonly StructMember[];
  #shape: StructShape;
  #ffiType: { readonly struct: readonly Deno.NativeType[] } | undefined;

  /**
   * Describes a C struct; the same as {@linkcode struct}`(fields)`, whose documentation says more.
   *
   * @param fields Field names to types, in the order C declares them.
   *
   * @example A struct of two floats
   * ```ts
   * import { StructLayout } from "@pseudo/malloc";
   *
   * console.log(new StructLayout({ x: "f32", y: "f32" }).size); // 8
   * ```
   */
  constructor(fields: F) {
    const shape = describeStruct(
      fields,
      (type: unknown) => type instanceof StructLayout ? type.#shape : undefined,
    );
    this.fields = Object.freeze({ ...fields });
    this.#shape = shape;
    this.size = shape.size;
    this.alignment = shape.alignment;
    this.members = Object.freeze(
      shape.members.map(({ name, offset, shape }) =>
        Object.freeze({ name, offset, size: shape.size, type: fields[name]! })
      ),
    );
    Object.freeze(this);
  }

  /**
   * The `Deno.dlopen` type for passing this struct by value (`{ struct: [...] }`), arrays flattened
   * into repeated members as libffi needs. Pass `bytes` of the struct (e.g. from
   * {@linkcode StructLayout.prototype.encode}) as the argument; a struct result arrives as a
   * `Uint8Array`, which {@linkcode StructLayout.prototype.decode} reads.
   *
   * @returns The FFI type, made once.
   *
   * @example `div()`, which returns `div_t` by value
   * ```ts
   * import { struct } from "@pseudo/malloc";
   *
   * const DivT = struct({ quot: "i32", rem: "i32" });
   * console.log(DivT.ffiType); // { struct: ["i32", "i32"] }
   * ```
   */
  get ffiType(): { readonly struct: readonly Deno.NativeType[] } {
    return this.#ffiType ??= ffiOf(this.#shape) as { struct: Deno.NativeType[] };
  }

  /**
   * The offset of a field in bytes.
   *
   * @param name A field of this struct.
   * @returns Its offset from the start of the struct.
   * @throws {TypeError} When the struct has no such field.
   *
   * @example Where `x` is
   * ```ts
   * import { struct } from "@pseudo/malloc";
   *
   * console.log(struct({ id: "i32", x: "f64" }).offsetOf("x")); // 8
   * ```
   */
  offsetOf(name: keyof F & string): number {
    const member = this.#shape.byName.get(name);
    if (!member) throw new TypeError(`Cannot find struct field ${String(name)}: no such field`);
    return member.offset;
  }

  /**
   * Reads the struct at `address` (element `index` of an array of them: at
   * `address + index * size`) into a plain object.
   *
   * `address` may be a block's start on every allocator. Inside a block (an interior pointer C
   * handed back) it works on allocators with `bytesAt` (`PseudoMalloc`); on the others pass the
   * block's start and `index`. The struct must lie in the block, aligned to `alignment`.
   *
   * @param memory The allocator the struct lives in.
   * @param address The struct's address, or the array's.
   * @param index The element of the array (0 by default).
   * @returns Every field's value.
   * @throws {InvalidAddressError} When the allocator has no live block there.
   * @throws {RangeError} When the struct passes the block's end, the address is not aligned or
   * `index` is not a non-negative integer.
   *
   * @example A struct written by hand, read by name
   * ```ts
   * import { PseudoMalloc, struct } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * const Pair = struct({ a: "u16", b: "i64" });
   * using heap = new PseudoMalloc();
   * const address = heap.calloc(1, Pair.size);
   * heap.bytes(address)[0] = 5;
   * heap.bytes(address)[8] = 1;
   * assert.deepEqual(Pair.read(heap, address), { a: 5, b: 1n });
   * ```
   */
  read(memory: StructMemory, address: number, index = 0): StructValue<F> {
    return readValue(this.#view(memory, address, index, "read"), 0, this.#shape) as StructValue<F>;
  }

  /**
   * Writes fields of the struct at `address` (element `index` of an array of them). Fields left
   * out (or `undefined`) keep their bytes, and so do array elements past a shorter array given;
   * a bad value anywhere throws before any byte changes. Padding is never written.
   *
   * @param memory The allocator the struct lives in.
   * @param address The struct's address, or the array's (as for `read`).
   * @param values Any subset of the fields.
   * @param index The element of the array (0 by default).
   * @throws {TypeError} For an unknown field or a value of the wrong type (a number for a
   * `"bool"`, a string for an `"i32"`).
   * @throws {RangeError} For a value out of range (256 in a `"u8"`, 1.5 in an integer field, an
   * array longer than its field), and as `read` does for the address.
   * @throws {InvalidAddressError} When the allocator has no live block there.
   *
   * @example Filling one field of the second element
   * ```ts
   * import { PseudoMalloc, struct } from "@pseudo/malloc";
   * import assert from "node:assert/strict";
   *
   * const Point = struct({ x: "f64", y: "f64" });
   * using heap = new PseudoMalloc();
   * const points = heap.calloc(2, Point.size);
   * Point.write(heap, points, { y: 4 }, 1);
   * assert.deepEqual(Point.read(heap, points, 1), { x: 0, y: 4 });
   * ```
   */
  write(memory: StructMemory, address: number, values: StructInput<F>, index = 0): void {
    checkStruct(this.#shape, values, "");
    writeValue(this.#view(memory, address, index, "write"), 0, this.#shape, values);
  }

  /**
   * Reads the struct from bytes outside any heap: a by-value FFI result, or a copy.
   *
   * @param bytes At least `(index + 1) * size` bytes.
   * @param index The element of an array of structs in `bytes` (0 by default).
   * @returns Every field's value.
   * @throws {RangeError} When `bytes` is too short.
   *
   * @example Decoding bytes
   * ```ts
   * import { struct } from "@pseudo/malloc";
   *
   * const DivT = struct({ quot: "i32", rem: "i32" });
   * console.log(DivT.decode(new Uint8Array([3, 0, 0, 0, 1, 0, 0, 0]))); // { quot: 3, rem: 1 }
   * ```
   */
  decode(bytes: Uint8Array, index = 0): StructValue<F> {
    return readValue(this.#slice(bytes, index, "decode"), 0, this.#shape) as StructValue<F>;
  }

  /**
   * Writes fields into bytes outside any heap, such as the argument of a by-value FFI call, with
   * the checks of `write`.
   *
   * @param values Any subset of the fields.
   * @param bytes Where to write (default: fresh zeroed bytes of one struct).
   * @param index The element of an array of structs in `bytes` (0 by default).
   * @returns `bytes`.
   * @throws {TypeError} As `write`.
   * @throws {RangeError} As `write`, and when `bytes` is too short.
   *
   * @example Encoding an argument
   * ```ts
   * import { struct } from "@pseudo/malloc";
   *
   * const InAddr = struct({ s_addr: "u32" });
   * console.log(InAddr.encode({ s_addr: 0x0100007f })); // Uint8Array(4) [ 127, 0, 0, 1 ]
   * ```
   */
  encode(
    values: StructInput<F>,
    bytes: Uint8Array = new Uint8Array(this.size),
    index = 0,
  ): Uint8Array {
    checkStruct(this.#shape, values, "");
    writeValue(this.#slice(bytes, index, "encode"), 0, this.#shape, values);
    return bytes;
  }

  #slice(bytes: Uint8Array, index: number, verb: string): DataView {
    if (!(bytes instanceof Uint8Array)) {
      throw new TypeError(`Cannot ${verb} a struct: bytes must be a Uint8Array`);
    }
    checkIndex(index, verb);
    const start = index * this.size;
    if (start + this.size > bytes.length) {
      throw new RangeError(
        `Cannot ${verb} struct ${index} of ${this.size} bytes: only ${bytes.length} bytes given`,
      );
    }
    return new DataView(bytes.buffer, bytes.byteOffset + start, this.size);
  }

  #view(memory: StructMemory, address: number, index: number, verb: string): DataView {
    if (typeof address !== "number") {
      throw new TypeError(`Cannot ${verb} a struct at ${String(address)}: not an address`);
    }
    checkIndex(index, verb);
    const { size } = this;
    const start = address + index * size;
    let bytes: Uint8Array;
    if (typeof memory.bytesAt === "function") {
      bytes = memory.bytesAt(start, size);
    } else {
      const block = memory.bytes(address);
      if (index * size + size > block.length) {
        throw new RangeError(
          `Cannot ${verb} struct ${index} of ${size} bytes at ${hex(address)}: its block holds ` +
            `${block.length} bytes`,
        );
      }
      bytes = block.subarray(index * size, index * size + size);
    }
    if (start % this.alignment !== 0) {
      throw new RangeError(
        `Cannot ${verb} a struct at ${hex(start)}: it is not aligned to ${this.alignment} bytes`,
      );
    }
    return new DataView(bytes.buffer, bytes.byteOffset, size);
  }
}

function checkIndex(index: unknown, verb: string): void {
  if (typeof index !== "number") {
    throw new TypeError(`Cannot ${verb} struct ${String(index)}: index must be a number`);
  }
  if (!Number.isSafeInteger(index) || index < 0) {
    throw new RangeError(`Cannot ${verb} struct ${index}: index must be a non-negative integer`);
  }
}

/**
 * Describes a C struct: its fields in C order, each a type named as in `Deno.dlopen`, a fixed
 * array `[type, length]` or a nested struct's layout. Fields are placed with the platform ABI's
 * sizes and alignment (see the module documentation).
 *
 * @param fields Field names to types, in the order C declares them.
 * @returns The layout: `size`, `alignment`, `offsetOf`, `read`, `write`, `ffiType`.
 * @throws {TypeError} For an unknown field type ("Cannot describe struct field x: ..."), no
 * fields, or a field named like an array index.
 * @throws {RangeError} For an array length that is not a positive integer, or a struct above
 * 2^47 bytes.
 *
 * @example `struct timespec`, filled by `clock_gettime`
 * ```ts
 * import { PseudoMalloc, struct } from "@pseudo/malloc";
 * import assert from "node:assert/strict";
 *
 * const Timespec = struct({ tv_sec: "i64", tv_nsec: "i64" });
 * const libc = Deno.dlopen(Deno.build.os === "darwin" ? "/usr/lib/libSystem.B.dylib" : "libc.so.6", {
 *   clock_gettime: { parameters: ["i32", "pointer"], result: "i32" },
 * });
 * using heap = new PseudoMalloc();
 * const now = heap.malloc(Timespec.size);
 * libc.symbols.clock_gettime(0, heap.pointer(now)); // CLOCK_REALTIME
 * const { tv_sec } = Timespec.read(heap, now);
 * assert.ok(Math.abs(Number(tv_sec) - Date.now() / 1000) < 60);
 * libc.close();
 * ```
 */
export function struct<const F extends StructFields>(fields: F): StructLayout<F> {
  return new StructLayout(fields);
}
