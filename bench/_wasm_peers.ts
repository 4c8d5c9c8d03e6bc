// The two WebAssembly allocators of issue 11 as benchmark peers, both from npm packages alone:
// Emscripten's dlmalloc as sql.js ships it, and AssemblyScript's TLSF, compiled from a five-line
// module by the AssemblyScript compiler at benchmark start. Addresses are offsets into the
// module's own `WebAssembly.Memory`, numbers; sizes are numbers.
//
// - sql.js (`npm:sql.js@1`): its Emscripten module exports `_malloc` and `_free` (dlmalloc), but no
//   `_realloc` and no view of its memory. The build used is `dist/sql-wasm-inline.js`, whose wasm
//   is inlined in the script: the default build reads `sql-wasm.wasm` from the npm cache with
//   `fs`, which would need `--allow-read`. The memory is taken from the instance while the module
//   starts: `WebAssembly.instantiate` is wrapped for that one call (and put back in `finally`),
//   and the instance's exported `WebAssembly.Memory` kept. One module per process (sql.js starts
//   it once and hands every caller the same one), so every workload of a process shares it.
// - AssemblyScript (`npm:assemblyscript@0.28`): `asc.main` compiles `TLSF_SOURCE` with the
//   `minimal` runtime, whose `heap.alloc`, `heap.realloc` and `heap.free` are the TLSF allocator
//   of the standard library (`~lib/rt/tlsf`), `-O3 --noAssert`. It runs in memory (the compiler's
//   file callbacks), in about 0.3-1.5 s; it reads the environment variable `CI` when it loads
//   (for its terminal colours), so the benchmark needs `--allow-env=...,CI`. Each `tlsf()` is a
//   new instance of the one compiled module, with a memory of its own.
//
// Neither allocator ever gives memory back to the OS: a wasm memory only grows.

// An inline specifier keeps these benchmark-only dependencies out of deno.json's import map.
// deno-lint-ignore no-import-prefix
import asc from "npm:assemblyscript@0.28/asc";
// deno-lint-ignore no-import-prefix
import initSqlJs from "npm:sql.js@1/dist/sql-wasm-inline.js";

/** The AssemblyScript module whose exports are TLSF's alloc, realloc and free. */
export const TLSF_SOURCE = `
export function alloc(size: usize): usize { return heap.alloc(size); }
export function realloc(ptr: usize, size: usize): usize { return heap.realloc(ptr, size); }
export function free(ptr: usize): void { heap.free(ptr); }
`;

/** What a WebAssembly allocator peer offers: C's malloc and free on numbers, and its memory. */
export interface WasmAllocator {
  malloc(size: number): number;
  free(address: number): void;
  /** The module's memory: addresses are offsets into its buffer. */
  readonly memory: WebAssembly.Memory;
}

// --- dlmalloc (sql.js) ---------------------------------------------------------------------------

interface SqlJsModule {
  _malloc(size: number): number;
  _free(address: number): void;
}

/** Emscripten's dlmalloc in sql.js: `_malloc` and `_free`, forwarded. No realloc is exported. */
export class DlmallocPeer implements WasmAllocator {
  #malloc: (size: number) => number;
  #free: (address: number) => void;
  readonly memory: WebAssembly.Memory;

  constructor(module: SqlJsModule, memory: WebAssembly.Memory) {
    this.#malloc = module._malloc;
    this.#free = module._free;
    this.memory = memory;
  }

  malloc(size: number): number {
    return this.#malloc(size);
  }

  free(address: number): void {
    this.#free(address);
  }
}

let sqlJs: Promise<DlmallocPeer> | undefined;

/** The exported memory of an instance. */
function memoryOf(instance: WebAssembly.Instance): WebAssembly.Memory {
  const memory = Object.values(instance.exports).find((e) => e instanceof WebAssembly.Memory);
  if (memory === undefined) throw new Error("Cannot find the memory: the module exports none");
  return memory as WebAssembly.Memory;
}

async function startSqlJs(): Promise<DlmallocPeer> {
  const original = WebAssembly.instantiate;
  let instance: WebAssembly.Instance | undefined;
  const capture = async (...args: Parameters<typeof WebAssembly.instantiate>) => {
    // deno-lint-ignore no-explicit-any
    const result = await (original as any)(...args);
    instance = result instanceof WebAssembly.Instance ? result : result.instance;
    return result;
  };
  WebAssembly.instantiate = capture as typeof WebAssembly.instantiate;
  let module: SqlJsModule;
  try {
    module = await (initSqlJs as () => Promise<SqlJsModule>)();
  } finally {
    WebAssembly.instantiate = original;
  }
  if (instance === undefined) throw new Error("Cannot start sql.js: no instance was seen");
  return new DlmallocPeer(module, memoryOf(instance));
}

/** The dlmalloc of sql.js; the same peer for every caller in the process. */
export function dlmalloc(): Promise<DlmallocPeer> {
  return sqlJs ??= startSqlJs();
}

// --- TLSF (AssemblyScript) -----------------------------------------------------------------------

interface TlsfExports {
  alloc(size: number): number;
  realloc(address: number, size: number): number;
  free(address: number): void;
  memory: WebAssembly.Memory;
}

const TLSF_IMPORTS = {
  env: {
    abort(): never {
      throw new Error("Cannot go on: AssemblyScript's TLSF aborted");
    },
  },
};

/** AssemblyScript's TLSF: `heap.alloc`, `heap.realloc` and `heap.free`, forwarded. */
export class TlsfPeer implements WasmAllocator {
  #alloc: (size: number) => number;
  #realloc: (address: number, size: number) => number;
  #free: (address: number) => void;
  readonly memory: WebAssembly.Memory;

  constructor(module: WebAssembly.Module) {
    const exports = new WebAssembly.Instance(module, TLSF_IMPORTS)
      .exports as unknown as TlsfExports;
    this.#alloc = exports.alloc;
    this.#realloc = exports.realloc;
    this.#free = exports.free;
    this.memory = exports.memory;
  }

  malloc(size: number): number {
    return this.#alloc(size);
  }

  realloc(address: number, size: number): number {
    return this.#realloc(address, size);
  }

  free(address: number): void {
    this.#free(address);
  }
}

let tlsfCompiled: Promise<WebAssembly.Module> | undefined;

async function compileTlsf(): Promise<WebAssembly.Module> {
  const outputs = new Map<string, Uint8Array | string>();
  const { error, stderr } = await asc.main([
    "tlsf.ts",
    "--runtime",
    "minimal",
    "-O3",
    "--noAssert",
    "--outFile",
    "tlsf.wasm",
  ], {
    readFile: (name: string) => name === "tlsf.ts" ? TLSF_SOURCE : null,
    writeFile: (name: string, contents: Uint8Array | string) => void outputs.set(name, contents),
    listFiles: () => [],
  });
  const binary = outputs.get("tlsf.wasm");
  if (error !== null || !(binary instanceof Uint8Array)) {
    throw new Error(`Cannot compile the TLSF module: ${error ?? "no output"}\n${stderr}`);
  }
  return new WebAssembly.Module(binary as Uint8Array<ArrayBuffer>);
}

/** The compiled TLSF module, compiled once per process. */
export function compiledTlsf(): Promise<WebAssembly.Module> {
  return tlsfCompiled ??= compileTlsf();
}

/** A new TLSF allocator: a new instance of the compiled module, with a memory of its own. */
export async function tlsf(): Promise<TlsfPeer> {
  return new TlsfPeer(await compiledTlsf());
}
