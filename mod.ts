/**
 * A malloc for Deno programs that hand native memory to C through FFI.
 *
 * Small requests (below a quarter page) are served in TypeScript by a buddy allocator over 1 MiB
 * `mmap`'d arenas, with no FFI call; large ones get their own `mmap`. Addresses are plain numbers;
 * `bytes()` gives a `Uint8Array` over a block, `pointer()` a pointer for FFI calls. Misuse (bad
 * sizes, invalid and double frees) throws typed errors and leaves the heap intact.
 *
 * Run with the plain `--allow-ffi` flag.
 *
 * ```ts
 * import { PseudoMalloc } from "@pseudo/malloc";
 *
 * using heap = new PseudoMalloc();
 * const text = new TextEncoder().encode("hello, C\0");
 * const address = heap.malloc(text.length);
 * heap.bytes(address, text.length).set(text);
 *
 * const libc = Deno.dlopen(Deno.build.os === "darwin" ? "/usr/lib/libSystem.B.dylib" : "libc.so.6", {
 *   strlen: { parameters: ["pointer"], result: "usize" },
 * });
 * console.log(libc.symbols.strlen(heap.pointer(address))); // 8n
 * libc.close();
 *
 * heap.free(address);
 * console.log(heap.stats().liveAllocations); // 0
 * ```
 *
 * @module
 */

export {
  CACHE_DEPTH,
  CACHE_ORDER_BYTES,
  DEBUG_FILL,
  PseudoMalloc,
} from "./src/heap/pseudo_malloc.ts";
export type {
  ArenaStats,
  BlockInfo,
  DebugOptions,
  DebugStats,
  HeapStats,
  LiveAllocation,
  PseudoMallocOptions,
  ScopedBlock,
  TypedArrayConstructor,
} from "./src/heap/pseudo_malloc.ts";
export { SharedPseudoMalloc } from "./src/shared/shared_pseudo_malloc.ts";
export type {
  AttachmentStats,
  SharedHeapHandle,
  SharedHeapStats,
  SharedPseudoMallocOptions,
} from "./src/shared/shared_pseudo_malloc.ts";
export type { Allocator, AllocatorStats } from "./src/allocator.ts";
export type { Os, OsCall } from "./ffi/os.ts";
export { CountingOs, type SystemCalls } from "./ffi/counting_os.ts";
export { libcOs } from "./ffi/libc.ts";
export {
  BuddyAllocator,
  DEFAULT_ARENA_SIZE,
  DEFAULT_MIN_BLOCK_SIZE,
  MAX_ARENA_SIZE,
} from "./src/buddy/buddy.ts";
export type { BuddyBlock, BuddyOptions } from "./src/buddy/buddy.ts";
export {
  type BlockSites,
  DoubleFreeError,
  HeapClosedError,
  HeapCorruptionError,
  HeapOverflowError,
  InvalidAddressError,
  InvalidFreeError,
  OsError,
  OutOfMemoryError,
  UseAfterFreeError,
} from "./src/errors.ts";
export { MAX_SIZE } from "./src/_size.ts";
export {
  addressOf,
  bytes,
  calloc,
  cstring,
  defaultHeap,
  free,
  malloc,
  pointer,
  readCString,
  realloc,
  usableSize,
  view,
} from "./src/default_heap.ts";
export { MmapAllocator } from "./src/family/mmap_allocator.ts";
export type { MmapAllocatorOptions } from "./src/family/mmap_allocator.ts";
export { BumpAllocator } from "./src/family/bump_allocator.ts";
export type { BumpAllocatorOptions, BumpStats } from "./src/family/bump_allocator.ts";
export { FirstFitAllocator } from "./src/family/first_fit_allocator.ts";
export type {
  FirstFitBlock,
  FirstFitOptions,
  FirstFitStats,
} from "./src/family/first_fit_allocator.ts";
export { CellAllocator } from "./src/family/cell_allocator.ts";
export type { CellAllocatorOptions, CellStats } from "./src/family/cell_allocator.ts";
export {
  DEFAULT_SPAN_CACHE_BYTES,
  LARGEST_SIZE_CLASS,
  SegregatedAllocator,
  SIZE_CLASSES,
} from "./src/family/segregated_allocator.ts";
export type {
  SegregatedOptions,
  SegregatedSpan,
  SegregatedStats,
} from "./src/family/segregated_allocator.ts";
export { C_ALLOCATOR_DEFINITIONS, CAllocator, cAllocator } from "./src/c/c_allocator.ts";
export type {
  CAllocatorCallbacks,
  CAllocatorFunction,
  CAllocatorOptions,
  CAllocatorStats,
} from "./src/c/c_allocator.ts";
export { ZlibAllocator, zlibAllocator } from "./src/c/zlib_allocator.ts";
export type { ZlibAllocatorCallbacks } from "./src/c/zlib_allocator.ts";
export { LuaAllocator, luaAllocator } from "./src/c/lua_allocator.ts";
export * from "./src/c/sqlite_allocator.ts";
export {
  type FieldInput,
  type FieldType,
  type FieldValue,
  type ScalarType,
  struct,
  type StructFields,
  type StructInput,
  StructLayout,
  type StructMember,
  type StructMemory,
  type StructValue,
} from "./src/struct.ts";
