// A small binding of the system zlib, with its z_stream laid out in heap memory, shared by
// examples/zlib.ts, the tests and the benchmarks. Not part of the published package.
//
// z_stream on LP64 (64-bit Linux and macOS), 112 bytes:
//
//   offset  field       C type              offset  field       C type
//        0  next_in     const Bytef *           56  state       struct internal_state *
//        8  avail_in    uInt                    64  zalloc      alloc_func
//       16  total_in    uLong                   72  zfree       free_func
//       24  next_out    Bytef *                 80  opaque      voidpf
//       32  avail_out   uInt                    88  data_type   int
//       40  total_out   uLong                   96  adler       uLong
//       48  msg         const char *           104  reserved    uLong

import type { Allocator, ZlibAllocator } from "../mod.ts";

/** `sizeof(z_stream)` on 64-bit Linux and macOS. */
export const Z_STREAM_SIZE = 112;

const NEXT_IN = 0;
const AVAIL_IN = 8;
const NEXT_OUT = 24;
const AVAIL_OUT = 32;
const MSG = 48;
const ZALLOC = 64;
const ZFREE = 72;
const OPAQUE = 80;

const Z_OK = 0;
const Z_STREAM_END = 1;
const Z_NEED_DICT = 2;
const Z_BUF_ERROR = -5;
const Z_NO_FLUSH = 0;
const Z_FINISH = 4;

/** Output is produced in pieces of this many bytes, in a block of the heap. */
const CHUNK = 256 * 1024;

const SYMBOLS = {
  zlibVersion: { parameters: [], result: "pointer" },
  deflateInit_: { parameters: ["usize", "i32", "pointer", "i32"], result: "i32" },
  deflate: { parameters: ["usize", "i32"], result: "i32" },
  deflateEnd: { parameters: ["usize"], result: "i32" },
  inflateInit_: { parameters: ["usize", "pointer", "i32"], result: "i32" },
  inflate: { parameters: ["usize", "i32"], result: "i32" },
  inflateEnd: { parameters: ["usize"], result: "i32" },
} as const;

/** Where the system zlib lives, by OS. */
export const ZLIB_PATHS: readonly string[] = Deno.build.os === "darwin"
  ? ["libz.dylib", "/usr/lib/libz.1.dylib"]
  : ["libz.so.1", "libz.so"];

/** The system zlib, opened with `Deno.dlopen`. */
export class Zlib {
  readonly symbols: Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];
  /** `zlibVersion()`, e.g. "1.2.13". */
  readonly version: string;
  /** `zlibVersion()` as a pointer, for the `version` argument of `deflateInit_`/`inflateInit_`. */
  readonly versionPointer: Deno.PointerObject;
  readonly #library: Deno.DynamicLibrary<typeof SYMBOLS>;

  constructor(library: Deno.DynamicLibrary<typeof SYMBOLS>) {
    this.#library = library;
    this.symbols = library.symbols;
    this.versionPointer = this.symbols.zlibVersion()!;
    this.version = Deno.UnsafePointerView.getCString(this.versionPointer);
  }

  /**
   * Compresses `input` (zlib format) with every zlib allocation served by `hooks`, or by zlib's own
   * default (libc malloc) when `hooks` is undefined. The z_stream, the input and the output buffer
   * live in `heap`.
   */
  deflate(heap: Allocator, hooks: ZlibAllocator | undefined, input: Uint8Array, level = 6) {
    return this.#run(heap, hooks, input, "deflate", level);
  }

  /** Decompresses zlib-format `input`; allocations as in {@linkcode Zlib.prototype.deflate}. */
  inflate(heap: Allocator, hooks: ZlibAllocator | undefined, input: Uint8Array) {
    return this.#run(heap, hooks, input, "inflate", 0);
  }

  close(): void {
    this.#library.close();
  }

  /**
   * A zeroed z_stream in `heap` whose `zalloc`/`zfree` are `hooks` (zlib's own default, libc
   * malloc, when undefined). Free it with `heap.free` after `deflateEnd`/`inflateEnd`.
   */
  stream(heap: Allocator, hooks: ZlibAllocator | undefined): number {
    const stream = heap.calloc(1, Z_STREAM_SIZE);
    if (hooks !== undefined) {
      const bytes = heap.bytes(stream, Z_STREAM_SIZE);
      const fields = new DataView(bytes.buffer, bytes.byteOffset, Z_STREAM_SIZE);
      fields.setBigUint64(ZALLOC, Deno.UnsafePointer.value(hooks.zalloc) as bigint, true);
      fields.setBigUint64(ZFREE, Deno.UnsafePointer.value(hooks.zfree) as bigint, true);
      fields.setBigUint64(OPAQUE, 0n, true);
    }
    return stream;
  }

  #run(
    heap: Allocator,
    hooks: ZlibAllocator | undefined,
    input: Uint8Array,
    mode: "deflate" | "inflate",
    level: number,
  ): Uint8Array {
    if (input.length > 0xffff_ffff) throw new RangeError("input must be below 4 GiB (avail_in)");
    const z = this.symbols;
    const stream = this.stream(heap, hooks);
    const inputAddress = heap.malloc(input.length);
    const output = heap.malloc(CHUNK);
    const streamBytes = heap.bytes(stream, Z_STREAM_SIZE);
    const fields = new DataView(streamBytes.buffer, streamBytes.byteOffset, Z_STREAM_SIZE);
    const pieces: Uint8Array[] = [];
    let initialized = false;
    try {
      heap.bytes(inputAddress, input.length).set(input);
      const address = BigInt(stream);
      const init = mode === "deflate"
        ? z.deflateInit_(address, level, this.versionPointer, Z_STREAM_SIZE)
        : z.inflateInit_(address, this.versionPointer, Z_STREAM_SIZE);
      if (init !== Z_OK) throw this.#error(`${mode}Init_`, init, fields);
      initialized = true;
      fields.setBigUint64(NEXT_IN, BigInt(inputAddress), true);
      fields.setUint32(AVAIL_IN, input.length, true);
      const view = heap.bytes(output, CHUNK);
      for (;;) {
        fields.setBigUint64(NEXT_OUT, BigInt(output), true);
        fields.setUint32(AVAIL_OUT, CHUNK, true);
        const result = mode === "deflate"
          ? z.deflate(address, Z_FINISH)
          : z.inflate(address, Z_NO_FLUSH);
        const produced = CHUNK - fields.getUint32(AVAIL_OUT, true);
        if (produced > 0) pieces.push(view.slice(0, produced));
        if (result === Z_STREAM_END) break;
        if (result === Z_NEED_DICT || (result < 0 && result !== Z_BUF_ERROR)) {
          throw this.#error(mode, result, fields);
        }
        if (result === Z_BUF_ERROR && fields.getUint32(AVAIL_IN, true) === 0 && produced === 0) {
          throw new Error(`${mode}: the input is truncated`);
        }
      }
    } finally {
      if (initialized) {
        const end = mode === "deflate"
          ? z.deflateEnd(BigInt(stream))
          : z.inflateEnd(BigInt(stream));
        if (end !== Z_OK && end !== -3 /* Z_DATA_ERROR: ended early */) {
          console.warn(`${mode}End returned ${end}`);
        }
      }
      heap.free(output);
      heap.free(inputAddress);
      heap.free(stream);
    }
    return concat(pieces);
  }

  #error(what: string, code: number, fields: DataView): Error {
    const msg = fields.getBigUint64(MSG, true);
    const text = msg === 0n
      ? ""
      : `: ${Deno.UnsafePointerView.getCString(Deno.UnsafePointer.create(msg)!)}`;
    return new Error(`zlib ${what} failed with ${code}${text}`);
  }
}

/** Opens the system zlib, or returns undefined (and the paths tried) where there is none. */
export function openZlib(): Zlib | undefined {
  for (const path of ZLIB_PATHS) {
    try {
      return new Zlib(Deno.dlopen(path, SYMBOLS));
    } catch (error) {
      if (error instanceof Deno.errors.NotCapable) throw error;
    }
  }
  return undefined;
}

/** A few MiB of text-like data: compressible, but not trivially (about 4:1 with zlib -6). */
export function sampleData(length: number, seed = 42): Uint8Array {
  const words = [
    "malloc",
    "free",
    "arena",
    "buddy",
    "block",
    "page",
    "mmap",
    "deflate",
    "inflate",
    "window",
    "hash",
    "chain",
    "zlib",
    "heap",
  ];
  let state = seed >>> 0;
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const encoder = new TextEncoder();
  const data = new Uint8Array(length);
  let filled = 0;
  for (let line = 0; filled < length; line++) {
    let text = `${line}:`;
    for (let i = 0; i < 8; i++) text += ` ${words[Math.floor(next() * words.length)]}`;
    text += ` ${Math.floor(next() * 1e6)}\n`;
    const bytes = encoder.encode(text);
    data.set(bytes.subarray(0, length - filled), filled);
    filled += bytes.length;
  }
  return data;
}

/** Joins byte arrays. */
function concat(pieces: Uint8Array[]): Uint8Array {
  const total = pieces.reduce((sum, piece) => sum + piece.length, 0);
  const joined = new Uint8Array(total);
  let offset = 0;
  for (const piece of pieces) {
    joined.set(piece, offset);
    offset += piece.length;
  }
  return joined;
}
