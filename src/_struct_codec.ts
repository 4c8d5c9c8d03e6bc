// The private half of `struct()` (src/struct.ts): the shapes a layout is made of (described from
// the user's field types, with TypeError/RangeError for bad ones), and how a value of each shape is
// read from, checked against and written to native memory through a `DataView`.
//
// A shape is one of three kinds, each knowing its size and alignment (x86_64 and arm64 SysV, and
// Windows x64 too, for these types: every scalar is aligned to its own size):
// - a scalar (`"i32"`: 4 bytes, aligned to 4; `"pointer"`: 8 and 8; `"bool"`: 1 and 1);
// - an array of `length` elements of one shape, with no padding between elements (the element's
//   size is already a multiple of its alignment), aligned as its element;
// - a struct: members placed in order, each at the next multiple of its alignment, the struct
//   aligned to its largest member and its size rounded up to that alignment, as C does. Worked
//   example, `{ id: "i32", x: "f64", y: "f64" }`: id at 0 (4 bytes), 4 bytes of padding, x at 8,
//   y at 16, size 24, alignment 8; an array of them puts element i at 24 * i.
//
// Writing is two passes over the same value: `checkValue` throws (TypeError for a value of the
// wrong kind, RangeError for one out of range) before `writeValue` changes a byte, so a bad field
// anywhere leaves the memory as it was.

import { MAX_SIZE } from "./_size.ts";
import type { ScalarType } from "./struct.ts";

/** Size in bytes (and alignment) of each scalar on every 64-bit target Deno runs on. */
export const SCALAR_SIZES: Readonly<Record<ScalarType, number>> = {
  i8: 1,
  u8: 1,
  bool: 1,
  i16: 2,
  u16: 2,
  i32: 4,
  u32: 4,
  f32: 4,
  i64: 8,
  u64: 8,
  f64: 8,
  pointer: 8,
  usize: 8,
  isize: 8,
};

/** The `Deno.dlopen` struct member type of a scalar. */
export type FfiMember = Deno.NativeType | { readonly struct: readonly FfiMember[] };

export interface ScalarShape {
  readonly kind: "scalar";
  readonly type: ScalarType;
  readonly size: number;
  readonly alignment: number;
}

export interface ArrayShape {
  readonly kind: "array";
  readonly element: Shape;
  readonly length: number;
  readonly size: number;
  readonly alignment: number;
}

export interface Member {
  readonly name: string;
  readonly offset: number;
  readonly shape: Shape;
}

export interface StructShape {
  readonly kind: "struct";
  readonly members: readonly Member[];
  readonly byName: ReadonlyMap<string, Member>;
  readonly size: number;
  readonly alignment: number;
}

export type Shape = ScalarShape | ArrayShape | StructShape;

/** Every target Deno runs on is little-endian; this keeps the code honest if one is not. */
const LITTLE = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

const INT_RANGES: Readonly<Record<string, readonly [number, number]>> = {
  i8: [-0x80, 0x7f],
  u8: [0, 0xff],
  i16: [-0x8000, 0x7fff],
  u16: [0, 0xffff],
  i32: [-0x8000_0000, 0x7fff_ffff],
  u32: [0, 0xffff_ffff],
};

const BIG_RANGES: Readonly<Record<string, readonly [bigint, bigint]>> = {
  i64: [-(2n ** 63n), 2n ** 63n - 1n],
  isize: [-(2n ** 63n), 2n ** 63n - 1n],
  u64: [0n, 2n ** 64n - 1n],
  usize: [0n, 2n ** 64n - 1n],
  pointer: [0n, 2n ** 64n - 1n],
};

/** Places `entries` as C does and returns the struct's shape (see the worked example above). */
export function structShape(entries: readonly (readonly [string, Shape])[]): StructShape {
  const members: Member[] = [];
  let offset = 0;
  let alignment = 1;
  for (const [name, shape] of entries) {
    offset = Math.ceil(offset / shape.alignment) * shape.alignment;
    members.push({ name, offset, shape });
    offset += shape.size;
    alignment = Math.max(alignment, shape.alignment);
  }
  const size = Math.ceil(offset / alignment) * alignment;
  return {
    kind: "struct",
    members,
    byName: new Map(members.map((member) => [member.name, member])),
    size,
    alignment,
  };
}

/** The shape of a struct layout used as a field type; `undefined` for anything else. */
export type NestedShape = (type: unknown) => StructShape | undefined;

const SCALARS = Object.keys(SCALAR_SIZES).join(", ");

/** The shape of a struct's fields, or the TypeError/RangeError that says why they are none. */
export function describeStruct(fields: unknown, nested: NestedShape): StructShape {
  if (typeof fields !== "object" || fields === null || Array.isArray(fields)) {
    throw new TypeError(`Cannot describe a struct: fields must be an object of names to types`);
  }
  const names = Object.keys(fields);
  if (names.length === 0) throw new TypeError("Cannot describe a struct without fields");
  const entries = names.map((name) => {
    if (String(Number(name) >>> 0) === name && name !== "4294967295") {
      throw new TypeError(
        `Cannot describe struct field ${name}: a name that is an array index would be reordered ` +
          `by JavaScript objects`,
      );
    }
    return [name, shapeOf((fields as Record<string, unknown>)[name], name, nested)] as const;
  });
  const shape = structShape(entries);
  if (shape.size > MAX_SIZE) {
    throw new RangeError(`Cannot describe a struct of ${shape.size} bytes: it exceeds 2^47 bytes`);
  }
  return shape;
}

/** The shape of a field type, or the TypeError/RangeError that says why it is none. */
function shapeOf(type: unknown, name: string, nested: NestedShape): Shape {
  if (typeof type === "string" && Object.hasOwn(SCALAR_SIZES, type)) {
    const size = SCALAR_SIZES[type as ScalarType];
    return { kind: "scalar", type: type as ScalarType, size, alignment: size };
  }
  const struct = nested(type);
  if (struct) return struct;
  if (Array.isArray(type)) {
    if (type.length !== 2) {
      throw new TypeError(
        `Cannot describe struct field ${name}: an array is [type, length], got ${type.length} items`,
      );
    }
    const [elementType, length] = type as [unknown, unknown];
    const element = shapeOf(elementType, `${name}[]`, nested);
    if (typeof length !== "number") {
      throw new TypeError(
        `Cannot describe struct field ${name}: the array length must be a number, got ` +
          `${typeof length}`,
      );
    }
    if (!Number.isSafeInteger(length) || length < 1) {
      throw new RangeError(
        `Cannot describe struct field ${name}: the array length must be a positive integer, got ` +
          `${length}`,
      );
    }
    if (length * element.size > MAX_SIZE) {
      throw new RangeError(
        `Cannot describe struct field ${name}: ${length} elements of ${element.size} bytes ` +
          `exceed 2^47 bytes`,
      );
    }
    return {
      kind: "array",
      element,
      length,
      size: length * element.size,
      alignment: element.alignment,
    };
  }
  const shown = typeof type === "string" ? JSON.stringify(type) : String(type);
  throw new TypeError(
    `Cannot describe struct field ${name}: unknown type ${shown} (expected one of ${SCALARS}, ` +
      `an array [type, length] or a struct)`,
  );
}

/** The `Deno.dlopen` type of a shape; arrays flattened into repeated members (libffi has none). */
export function ffiOf(shape: Shape): FfiMember {
  if (shape.kind === "scalar") return shape.type;
  if (shape.kind === "array") {
    throw new Error("Cannot make an FFI type of an array: arrays are flattened into their struct");
  }
  const fields: FfiMember[] = [];
  for (const { shape: member } of shape.members) flatten(member, fields);
  return { struct: fields };
}

function flatten(shape: Shape, into: FfiMember[]): void {
  if (shape.kind !== "array") {
    into.push(ffiOf(shape));
    return;
  }
  const first = into.length;
  flatten(shape.element, into);
  const per = into.length - first;
  for (let i = 1; i < shape.length; i++) {
    for (let j = 0; j < per; j++) into.push(into[first + j]!);
  }
}

/** The value of `shape` at `offset`: numbers, bigints, booleans, arrays and plain objects. */
export function readValue(view: DataView, offset: number, shape: Shape): unknown {
  switch (shape.kind) {
    case "scalar":
      return readScalar(view, offset, shape.type);
    case "array": {
      const { element, length } = shape;
      const values = new Array<unknown>(length);
      for (let i = 0; i < length; i++) {
        values[i] = readValue(view, offset + i * element.size, element);
      }
      return values;
    }
    case "struct": {
      const value: Record<string, unknown> = {};
      for (const member of shape.members) {
        value[member.name] = readValue(view, offset + member.offset, member.shape);
      }
      return value;
    }
  }
}

function readScalar(view: DataView, offset: number, type: ScalarType): unknown {
  switch (type) {
    case "i8":
      return view.getInt8(offset);
    case "u8":
      return view.getUint8(offset);
    case "bool":
      return view.getUint8(offset) !== 0;
    case "i16":
      return view.getInt16(offset, LITTLE);
    case "u16":
      return view.getUint16(offset, LITTLE);
    case "i32":
      return view.getInt32(offset, LITTLE);
    case "u32":
      return view.getUint32(offset, LITTLE);
    case "f32":
      return view.getFloat32(offset, LITTLE);
    case "f64":
      return view.getFloat64(offset, LITTLE);
    case "i64":
    case "isize":
      return view.getBigInt64(offset, LITTLE);
    case "u64":
    case "usize":
      return view.getBigUint64(offset, LITTLE);
    case "pointer":
      return Number(view.getBigUint64(offset, LITTLE));
  }
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "string") return `the string ${JSON.stringify(value)}`;
  if (typeof value === "object") return "an object";
  if (typeof value === "bigint") return `${value}n`;
  return String(value);
}

function fail(path: string, problem: string, range = false): never {
  const message = `Cannot write struct field ${path}: ${problem}`;
  throw range ? new RangeError(message) : new TypeError(message);
}

/**
 * Throws when `value` cannot be written as `shape`: a TypeError for a value of the wrong kind
 * (a string for an `"i32"`, an unknown member), a RangeError for one out of range (300 for a
 * `"u8"`, 1.5 for an integer, an array longer than the field). `path` names the field in messages.
 */
export function checkValue(shape: Shape, value: unknown, path: string): void {
  switch (shape.kind) {
    case "scalar":
      return checkScalar(shape.type, value, path);
    case "array": {
      if (!isArrayLike(value)) {
        fail(path, `expected an array of at most ${shape.length} elements, got ${describe(value)}`);
      }
      if (value.length > shape.length) {
        fail(path, `${value.length} elements do not fit in an array of ${shape.length}`, true);
      }
      for (let i = 0; i < value.length; i++) checkValue(shape.element, value[i], `${path}[${i}]`);
      return;
    }
    case "struct":
      return checkStruct(shape, value, path);
  }
}

/** Checks a struct's (partial) value; `path` is "" at the top. */
export function checkStruct(shape: StructShape, value: unknown, path: string): void {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    fail(path || "(the struct)", `expected an object of field values, got ${describe(value)}`);
  }
  for (const name of Object.keys(value)) {
    const member = shape.byName.get(name);
    const at = path ? `${path}.${name}` : name;
    if (!member) fail(at, "the struct has no such field");
    const field = (value as Record<string, unknown>)[name];
    if (field !== undefined) checkValue(member.shape, field, at);
  }
}

function isArrayLike(value: unknown): value is ArrayLike<unknown> {
  return Array.isArray(value) || (ArrayBuffer.isView(value) && !(value instanceof DataView));
}

function checkScalar(type: ScalarType, value: unknown, path: string): void {
  if (type === "bool") {
    if (typeof value !== "boolean") fail(path, `expected a boolean, got ${describe(value)}`);
    return;
  }
  if (type === "f32" || type === "f64") {
    if (typeof value !== "number") fail(path, `expected a number, got ${describe(value)}`);
    return;
  }
  const small = INT_RANGES[type];
  if (small) {
    if (typeof value !== "number") fail(path, `expected a number, got ${describe(value)}`);
    if (!Number.isInteger(value) || value < small[0] || value > small[1]) {
      fail(path, `${value} is not an integer from ${small[0]} to ${small[1]} (${type})`, true);
    }
    return;
  }
  const [low, high] = BIG_RANGES[type]!;
  let big: bigint;
  if (typeof value === "bigint") {
    big = value;
  } else if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) {
      fail(path, `${value} is not a safe integer (pass a bigint for ${type})`, true);
    }
    big = BigInt(value);
  } else if (type === "pointer" && (value === null || typeof value === "object")) {
    if (value === null || isPointer(value)) return; // a Deno.PointerValue
    fail(path, `expected an address or a pointer, got ${describe(value)}`);
  } else {
    const expected = type === "pointer"
      ? "an address, a bigint or a pointer"
      : "a bigint or number";
    fail(path, `expected ${expected}, got ${describe(value)}`);
  }
  if (big < low || big > high) fail(path, `${value} is out of range for ${type}`, true);
}

function isPointer(value: object): boolean {
  try {
    Deno.UnsafePointer.value(value as Deno.PointerObject);
    return true;
  } catch {
    return false;
  }
}

/** Writes a value `checkValue` accepted; members and elements not given keep their bytes. */
export function writeValue(view: DataView, offset: number, shape: Shape, value: unknown): void {
  switch (shape.kind) {
    case "scalar":
      return writeScalar(view, offset, shape.type, value);
    case "array": {
      const values = value as ArrayLike<unknown>;
      const step = shape.element.size;
      for (let i = 0; i < values.length; i++) {
        writeValue(view, offset + i * step, shape.element, values[i]);
      }
      return;
    }
    case "struct": {
      const values = value as Record<string, unknown>;
      for (const name of Object.keys(values)) {
        const member = shape.byName.get(name)!;
        const field = values[name];
        if (field !== undefined) writeValue(view, offset + member.offset, member.shape, field);
      }
    }
  }
}

function writeScalar(view: DataView, offset: number, type: ScalarType, value: unknown): void {
  switch (type) {
    case "i8":
      return view.setInt8(offset, value as number);
    case "u8":
      return view.setUint8(offset, value as number);
    case "bool":
      return view.setUint8(offset, value ? 1 : 0);
    case "i16":
      return view.setInt16(offset, value as number, LITTLE);
    case "u16":
      return view.setUint16(offset, value as number, LITTLE);
    case "i32":
      return view.setInt32(offset, value as number, LITTLE);
    case "u32":
      return view.setUint32(offset, value as number, LITTLE);
    case "f32":
      return view.setFloat32(offset, value as number, LITTLE);
    case "f64":
      return view.setFloat64(offset, value as number, LITTLE);
    case "i64":
    case "isize":
      return view.setBigInt64(offset, BigInt(value as number | bigint), LITTLE);
    case "u64":
    case "usize":
      return view.setBigUint64(offset, BigInt(value as number | bigint), LITTLE);
    case "pointer": {
      const address = value === null || typeof value === "object"
        ? Deno.UnsafePointer.value(value as Deno.PointerValue)
        : BigInt(value as number | bigint);
      return view.setBigUint64(offset, BigInt(address), LITTLE);
    }
  }
}
