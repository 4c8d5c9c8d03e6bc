// Debug mode as a catalogue of real memory bugs, several made by C through FFI (libc's memset,
// strcpy, snprintf), each caught with the right error, offset and sites; then the options, the
// counters and the lookups of a debug heap. The guard page's SIGSEGV runs in a child process
// (tests/fixtures/guard_page_child.ts).
import assert from "node:assert/strict";
import {
  C_ALLOCATOR_DEFINITIONS,
  cAllocator,
  DEBUG_FILL,
  DoubleFreeError,
  HeapClosedError,
  HeapCorruptionError,
  HeapOverflowError,
  InvalidAddressError,
  InvalidFreeError,
  PseudoMalloc,
  UseAfterFreeError,
} from "../mod.ts";
import { GUARDED_LIMIT } from "../src/heap/_debug.ts";

const libc = Deno.dlopen(Deno.build.os === "darwin" ? "libSystem.B.dylib" : "libc.so.6", {
  memset: { parameters: ["pointer", "i32", "usize"], result: "pointer" },
  strcpy: { parameters: ["pointer", "buffer"], result: "pointer" },
  snprintf: { parameters: ["pointer", "usize", "buffer", "buffer"], result: "i32" },
});
addEventListener("unload", () => libc.close());

const encoder = new TextEncoder();
const cText = (text: string) => encoder.encode(text + "\0");
/** A pointer to any address (C's pointer arithmetic: `p - 1`). */
const at = (address: number) => Deno.UnsafePointer.create(BigInt(address));
/** This file's name, as the sites show it. */
const HERE = /debug_heap_test\.ts:\d+:\d+/;

/** Asserts `fn` throws `Type` with `offset` and the block's address, allocated in this file. */
function assertCaught(
  fn: () => unknown,
  Type: typeof HeapOverflowError | typeof UseAfterFreeError,
  block: number,
  offset: number,
): HeapCorruptionError {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof Type, `expected ${Type.name}, got ${caught}`);
  assert.ok(caught instanceof HeapCorruptionError);
  assert.equal(caught.address, block);
  assert.equal(caught.offset, offset, caught.message);
  assert.match(caught.allocatedAt!, HERE);
  assert.match(caught.message, new RegExp(`0x${block.toString(16)}`));
  assert.match(caught.message, /allocated at .*debug_heap_test\.ts/);
  return caught;
}

// --- the catalogue ----------------------------------------------------------------------------

Deno.test("bug 1: libc memset one byte past the end of a small block is a HeapOverflowError on free", () => {
  using heap = new PseudoMalloc({ debug: true });
  const address = heap.malloc(40);
  libc.symbols.memset(heap.pointer(address), 0x41, 41n);
  const error = assertCaught(() => heap.free(address), HeapOverflowError, address, 40);
  assert.equal(error.size, 40);
  assert.equal(error.freedAt, undefined);
  assert.match(error.message, /it was written past its end at offset 40\n/);
  // free always frees (C never retries one): the block is in the quarantine, its redzone repaired.
  assert.equal(heap.stats().liveAllocations, 0);
  heap.check();
  heap.validate();
  assert.throws(() => heap.free(address), DoubleFreeError);
});

Deno.test("bug 2: libc memset one byte past the end of a large block (no guard page) is caught on free", () => {
  using heap = new PseudoMalloc({ debug: { guardPages: false } });
  const address = heap.malloc(10_000);
  libc.symbols.memset(heap.pointer(address), 0, 10_001n);
  assertCaught(() => heap.free(address), HeapOverflowError, address, 10_000);
});

Deno.test("bug 2b: past the end of a guard-paged block, within its alignment slack, is caught on free", () => {
  using heap = new PseudoMalloc({ debug: true });
  const address = heap.malloc(5_000); // 5,000 = 16 * 312 + 8: 8 bytes of slack before the guard
  assert.equal((address + 5_000 + 8) % heap.pageSize, 0, "the slack ends at the guard page");
  libc.symbols.memset(heap.pointer(address), 0, 5_003n);
  assertCaught(() => heap.free(address), HeapOverflowError, address, 5_000);
});

Deno.test("bug 3: libc strcpy of a string longer than its buffer is a HeapOverflowError", () => {
  using heap = new PseudoMalloc({ debug: true });
  const name = heap.malloc(8);
  libc.symbols.strcpy(heap.pointer(name), cText("a name of 20 letters"));
  const error = assertCaught(() => heap.check(), HeapOverflowError, name, 8);
  // 20 letters and the NUL in 8 bytes: 13 bytes too many.
  assert.match(error.message, /written past its end at offsets 8 to 20\n/);
  heap.check(); // repaired: reported once
  heap.free(name);
});

Deno.test("bug 4: libc snprintf told a size larger than its block is a HeapOverflowError", () => {
  using heap = new PseudoMalloc({ debug: true });
  const buffer = heap.malloc(16);
  libc.symbols.snprintf(heap.pointer(buffer), 64n, cText("%s"), cText("id=12345, name=ok"));
  assertCaught(() => heap.free(buffer), HeapOverflowError, buffer, 16);
});

Deno.test("bug 5: a write one byte before the block (underflow) is a HeapOverflowError at offset -1", () => {
  using heap = new PseudoMalloc({ debug: true });
  const small = heap.malloc(32);
  libc.symbols.memset(at(small - 1), 0, 1n);
  const error = assertCaught(() => heap.realloc(small, 64), HeapOverflowError, small, -1);
  assert.match(error.message, /written before its start at offset -1\n/);
  assert.deepEqual(heap.blockOf(small), { address: small, size: 32 }, "realloc moved nothing");
  // Before a guard-paged block too.
  const large = heap.malloc(20_000);
  libc.symbols.memset(at(large - 4), 0, 2n); // bytes -4 and -3
  const before = assertCaught(() => heap.free(large), HeapOverflowError, large, -4);
  assert.match(before.message, /written before its start at offsets -4 to -3\n/);
  heap.free(small);
  // Both sides at once: one error, the lowest offset, both extents.
  const both = heap.malloc(24);
  libc.symbols.memset(at(both - 1), 0, 26n);
  const twice = assertCaught(() => heap.check(), HeapOverflowError, both, -1);
  assert.match(twice.message, /before its start at offset -1 and past its end at offset 24\n/);
  heap.check();
  heap.free(both);
});

Deno.test("bug 6: a JS view of a freed block written to: UseAfterFreeError from check(), with both sites", () => {
  using heap = new PseudoMalloc({ debug: true });
  const address = heap.malloc(64);
  const view = heap.bytes(address);
  heap.free(address);
  assert.ok(view.every((byte) => byte === DEBUG_FILL.freed), "freed memory is poisoned");
  view[10] = 1; // the bug
  const error = assertCaught(() => heap.check(), UseAfterFreeError, address, 10);
  assert.match(error.freedAt!, HERE);
  assert.notEqual(error.freedAt, error.allocatedAt);
  assert.match(error.message, /freed at .*debug_heap_test\.ts/);
  heap.check(); // the poison was put back: reported once
});

Deno.test("bug 7: the same write, found when the block leaves the quarantine", () => {
  using heap = new PseudoMalloc({ debug: { quarantine: 4096 } });
  const victim = heap.malloc(64); // an inner block of 128 bytes
  const stale = heap.bytes(victim);
  heap.free(victim);
  stale[63] = 7;
  const others = Array.from({ length: 40 }, () => heap.malloc(64));
  // 32 inner blocks of 128 bytes fill 4 KiB: the 32nd free pushes the victim out.
  for (let i = 0; i < 31; i++) heap.free(others[i]!);
  assertCaught(() => heap.free(others[31]!), UseAfterFreeError, victim, 63);
  assert.equal(
    heap.stats().liveAllocations,
    8,
    "the free that found it freed its block all the same",
  );
  for (const address of others.slice(32)) heap.free(address);
  heap.check();
  heap.validate();
});

Deno.test("bug 8: a double free after 10,000 other allocations is a DoubleFreeError with both sites", () => {
  using heap = new PseudoMalloc({ debug: true });
  const address = heap.malloc(48);
  heap.free(address);
  const others = Array.from({ length: 10_000 }, (_, i) => heap.malloc(16 + (i % 200)));
  let caught: unknown;
  try {
    heap.free(address);
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof DoubleFreeError);
  assert.match(caught.allocatedAt!, HERE);
  assert.match(caught.freedAt!, HERE);
  assert.match(caught.message, /already freed\n {2}allocated at .*\n {2}freed at /);
  for (const other of others) heap.free(other);
  heap.validate();
});

Deno.test("bug 8b: a double free long after the block left the quarantine still names both sites", () => {
  using heap = new PseudoMalloc({ debug: { quarantine: 1024 } });
  const address = heap.malloc(100);
  heap.free(address);
  // 10,000 allocations and frees of other sizes: the block leaves the quarantine, its memory is
  // reused by other inner blocks, but no block is handed out at its address.
  const sizes = [300, 500, 700];
  for (let i = 0; i < 10_000; i++) heap.free(heap.malloc(sizes[i % 3]!));
  assert.equal(heap.stats().debug!.quarantinedBytes <= 1024, true);
  assert.throws(() => heap.free(address), (error: DoubleFreeError) => {
    assert.ok(error instanceof DoubleFreeError);
    assert.match(error.allocatedAt!, HERE);
    assert.match(error.freedAt!, HERE);
    return true;
  });
});

Deno.test("bug 9: a realloc of a freed block is a DoubleFreeError with both sites", () => {
  using heap = new PseudoMalloc({ debug: true });
  const address = heap.malloc(24);
  heap.free(address);
  assert.throws(
    () => heap.realloc(address, 100),
    (error: DoubleFreeError) =>
      error instanceof DoubleFreeError && HERE.test(error.freedAt!) &&
      /Cannot reallocate/.test(error.message),
  );
  assert.equal(heap.stats().liveAllocations, 0);
});

Deno.test("bug 10: an interior free is an InvalidFreeError naming the block that holds it", () => {
  using heap = new PseudoMalloc({ debug: true });
  const array = heap.malloc(10 * 8);
  assert.throws(() => heap.free(array + 24), (error: InvalidFreeError) => {
    assert.ok(error instanceof InvalidFreeError && !(error instanceof DoubleFreeError));
    assert.equal(error.address, array + 24);
    assert.match(error.message, new RegExp(`24 bytes into the block at 0x${array.toString(16)}`));
    assert.match(error.message, /allocated at .*debug_heap_test\.ts/);
    return true;
  });
  const large = heap.malloc(50_000);
  assert.throws(() => heap.free(large + 4096), /4096 bytes into the block/);
  assert.throws(() => heap.free(large - 8), /in the redzone 8 bytes before the block at/);
  assert.throws(() => heap.free(array + 80), /in the redzone 0 bytes after the block at/);
  heap.free(large);
  heap.free(array);
});

Deno.test("bug 11: uninitialised memory is recognisable after malloc and realloc, zero after calloc", () => {
  using heap = new PseudoMalloc({ debug: true });
  for (const size of [1, 100, 1000, 70_000]) {
    const address = heap.malloc(size);
    assert.ok(heap.bytes(address).every((b) => b === DEBUG_FILL.uninitialized), `malloc ${size}`);
    const view = new DataView(heap.bytes(address).buffer, heap.bytes(address).byteOffset);
    if (size >= 8) assert.equal(view.getBigUint64(0), 0xcdcdcdcdcdcdcdcdn); // a pointer C reads
    heap.bytes(address).fill(1); // what dirties the memory later reused
    heap.free(address);
    const zeroed = heap.calloc(size, 1);
    assert.ok(heap.bytes(zeroed).every((b) => b === 0), `calloc ${size}`);
    heap.bytes(zeroed).fill(2);
    const grown = heap.realloc(zeroed, size + 50);
    const bytes = heap.bytes(grown);
    assert.ok(bytes.subarray(0, size).every((b) => b === 2), "realloc keeps the contents");
    assert.ok(bytes.subarray(size).every((b) => b === DEBUG_FILL.uninitialized), "and adds 0xcd");
    heap.free(grown);
  }
  heap.check();
});

Deno.test("bug 12: C writes into a block it freed through the C allocator: found by check()", () => {
  using heap = new PseudoMalloc({ debug: true });
  const seen: Error[] = [];
  using c = cAllocator(heap, { onError: (error) => seen.push(error) });
  const malloc = new Deno.UnsafeFnPointer(c.malloc, C_ALLOCATOR_DEFINITIONS.malloc);
  const free = new Deno.UnsafeFnPointer(c.free, C_ALLOCATOR_DEFINITIONS.free);
  const pointer = malloc.call(200n);
  free.call(pointer);
  const address = Number(pointer);
  libc.symbols.memset(at(address), 0, 8n); // C keeps its pointer and clears a field
  const error = assertCaught(() => heap.check(), UseAfterFreeError, address, 0);
  // The sites are the JavaScript frames under the C call: this file's calls.
  assert.match(error.freedAt!, HERE);
  assert.equal(seen.length, 0);
});

Deno.test("bug 13: corruption found inside a C callback reaches onError and never throws into C", () => {
  using heap = new PseudoMalloc({ debug: true });
  const seen: Error[] = [];
  using c = cAllocator(heap, { onError: (error) => seen.push(error) });
  const malloc = new Deno.UnsafeFnPointer(c.malloc, C_ALLOCATOR_DEFINITIONS.malloc);
  const free = new Deno.UnsafeFnPointer(c.free, C_ALLOCATOR_DEFINITIONS.free);
  const pointer = malloc.call(30n);
  libc.symbols.memset(at(Number(pointer)), 0, 31n);
  free.call(pointer); // returns to C normally, the block freed: C never retries a free
  assert.equal(heap.stats().liveAllocations, 0, "nothing leaks");
  free.call(pointer); // a real double free
  assert.equal(seen.length, 2);
  assert.ok(seen[0] instanceof HeapOverflowError);
  assert.equal((seen[0] as HeapOverflowError).offset, 30);
  assert.ok(seen[1] instanceof DoubleFreeError);
  assert.equal(heap.stats().liveAllocations, 0);
  heap.validate();
});

Deno.test("bug 14: libc memset past a guard-paged block dies with SIGSEGV at once; without debug it does not", async () => {
  const child = new URL("./fixtures/guard_page_child.ts", import.meta.url);
  const run = async (mode: string) => {
    const { code, signal, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-ffi", child.pathname, mode],
      stdout: "piped",
      stderr: "piped",
    }).output();
    return {
      code,
      signal,
      out: new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr),
    };
  };
  const debug = await run("debug");
  assert.equal(debug.signal, "SIGSEGV", debug.out);
  assert.match(debug.out, /before the write/);
  assert.doesNotMatch(debug.out, /after the write/);
  const plain = await run("plain");
  assert.equal(plain.code, 0, plain.out);
  assert.equal(plain.signal, null);
  assert.match(plain.out, /after the write/);
});

// --- check(), options, counters --------------------------------------------------------------

Deno.test("check() returns nothing on an intact heap, debug or not, and throws once closed", () => {
  for (const debug of [false, true]) {
    const heap = new PseudoMalloc({ debug });
    const blocks = [10, 1000, 5000, 100_000].map((size) => heap.malloc(size));
    heap.free(blocks.pop()!);
    assert.equal(heap.check(), undefined);
    for (const address of blocks) heap.free(address);
    heap.check();
    heap.close();
    assert.throws(() => heap.check(), HeapClosedError);
  }
});

Deno.test("check() reports live blocks before quarantined ones, one corruption per call", () => {
  using heap = new PseudoMalloc({ debug: true });
  const a = heap.malloc(16);
  const b = heap.malloc(16);
  const staleB = heap.bytes(b);
  heap.free(b);
  staleB[0] = 0;
  libc.symbols.memset(heap.pointer(a), 0, 17n);
  assertCaught(() => heap.check(), HeapOverflowError, a, 16);
  assertCaught(() => heap.check(), UseAfterFreeError, b, 0);
  heap.check();
  heap.free(a);
});

Deno.test("debug options: bad values are TypeError or RangeError naming the option", () => {
  const cases: [unknown, typeof TypeError | typeof RangeError, RegExp][] = [
    [{ redzone: 8 }, RangeError, /debug\.redzone 8/],
    [{ redzone: 5000 }, RangeError, /debug\.redzone/],
    [{ redzone: "16" }, TypeError, /debug\.redzone/],
    [{ quarantine: -1 }, RangeError, /debug\.quarantine/],
    [{ quarantine: 1.5 }, RangeError, /debug\.quarantine/],
    [{ alignment: 3 }, RangeError, /debug\.alignment 3/],
    [{ alignment: 8192 }, RangeError, /debug\.alignment/],
    [{ guardPages: "yes" }, TypeError, /debug\.guardPages "yes"/],
    [{ fill: 1 }, TypeError, /debug\.fill/],
    [{ sites: "no" }, TypeError, /debug\.sites/],
    ["yes", TypeError, /debug/],
    [null, TypeError, /debug/],
  ];
  for (const [debug, Type, message] of cases) {
    assert.throws(() => new PseudoMalloc({ debug: debug as never }), Type, String(debug));
    assert.throws(() => new PseudoMalloc({ debug: debug as never }), message);
  }
});

Deno.test("debug options: a larger redzone catches a write 40 bytes past the end", () => {
  using heap = new PseudoMalloc({ debug: { redzone: 64 } });
  const address = heap.malloc(16);
  assert.equal(address % 16, 0);
  libc.symbols.memset(at(address + 56), 0, 1n);
  assertCaught(() => heap.free(address), HeapOverflowError, address, 56);
  // No redzone: nothing is checked (the write lands in the inner block's slack).
  using plain = new PseudoMalloc({ debug: { redzone: 0 } });
  const unguarded = plain.malloc(16);
  libc.symbols.memset(plain.pointer(unguarded), 0, 17n);
  plain.free(unguarded); // no redzone, nothing checked
});

Deno.test("debug options: alignment 1 puts a guard-paged block's end at the guard page", () => {
  using heap = new PseudoMalloc({ debug: { alignment: 1, guardPages: "all" } });
  for (const size of [1, 7, 100, 4097, 10_001]) {
    const address = heap.malloc(size);
    assert.equal((address + size) % heap.pageSize, 0, `size ${size}`);
    heap.bytes(address).fill(1);
    heap.free(address);
  }
  assert.equal(heap.stats().systemCalls.mprotect, 5);
});

Deno.test("debug options: guardPages 'all' gives small blocks a mapping and guard page each", () => {
  using heap = new PseudoMalloc({ debug: { guardPages: "all", quarantine: 0 } });
  const before = heap.stats().systemCalls;
  const address = heap.malloc(24);
  assert.equal((address + 24 + 8) % heap.pageSize, 0); // 24 rounded to 16 ends at the guard
  const stats = heap.stats();
  assert.equal(stats.systemCalls.mmap - before.mmap, 1);
  assert.equal(stats.systemCalls.mprotect - before.mprotect, 1);
  assert.equal(stats.debug!.guardedBlocks, 1);
  assert.equal(stats.debug!.guardedBytes, 2 * heap.pageSize);
  assert.equal(stats.mappedBytes, 2 * heap.pageSize); // no arena was needed
  heap.free(address); // no quarantine: unmapped at once
  assert.equal(heap.stats().systemCalls.munmap - before.munmap, 1);
  assert.equal(heap.stats().debug!.guardedBlocks, 0);
});

Deno.test("debug options: quarantine 0 reuses memory at once; fill false leaves it as it was", () => {
  using heap = new PseudoMalloc({ debug: { quarantine: 0, fill: false } });
  const a = heap.malloc(50);
  heap.bytes(a).fill(9);
  heap.free(a);
  const b = heap.malloc(50);
  assert.equal(b, a, "the same inner block, at once");
  assert.ok(heap.bytes(b).every((byte) => byte === 9), "neither poisoned nor filled with 0xcd");
  heap.free(b);
  // Freed again, after it left (there is no quarantine): still a double free with both sites.
  assert.throws(() => heap.free(b), DoubleFreeError);
});

Deno.test("debug options: sites false records no stack; the errors still name the block", () => {
  using heap = new PseudoMalloc({ debug: { sites: false } });
  const address = heap.malloc(10);
  heap.free(address);
  assert.throws(() => heap.free(address), (error: DoubleFreeError) => {
    assert.equal(error.allocatedAt, undefined);
    assert.match(error.message, /sites off/);
    return true;
  });
  assert.deepEqual(heap.liveAllocations(), []);
});

Deno.test("debug stats count the program's blocks; the quarantine and guard pages apart", () => {
  using heap = new PseudoMalloc({ debug: true });
  const small = heap.malloc(100);
  const large = heap.malloc(10_000);
  if (heap.pageSize === 4096) assert.equal(large % 4096, 2288); // _debug_guarded.ts's example
  let stats = heap.stats();
  assert.equal(stats.liveAllocations, 2);
  assert.equal(stats.liveBytes, 10_100);
  assert.equal(stats.smallAllocations, 1);
  assert.equal(stats.largeAllocations, 1);
  assert.ok(stats.allocatedBytes > 10_100 + 32, "redzones and guard data count as allocated");
  assert.deepEqual(stats.debug, {
    quarantinedBlocks: 0,
    quarantinedBytes: 0,
    guardedBlocks: 1,
    guardedBytes: 4 * heap.pageSize, // 10,000 + 16 + 15 bytes need 3 pages, and the guard
  });
  heap.free(small);
  heap.free(large);
  stats = heap.stats();
  assert.equal(stats.liveAllocations, 0);
  assert.equal(stats.liveBytes, 0);
  assert.equal(stats.allocatedBytes, 0);
  assert.equal(stats.peakLiveBytes, 10_100);
  assert.equal(stats.totalAllocations, 2);
  assert.equal(stats.totalFrees, 2);
  assert.equal(stats.debug!.quarantinedBlocks, 2);
  assert.equal(stats.debug!.quarantinedBytes, 256 + 3 * heap.pageSize);
  // trim() empties the quarantine (each block checked) and gives everything back.
  assert.equal(heap.trim(), stats.mappedBytes);
  assert.equal(heap.stats().mappedBytes, 0);
  assert.equal(heap.stats().debug!.quarantinedBlocks, 0);
  heap.validate();
});

Deno.test("debug: trim() finds a use after free as the quarantine empties, then finishes on retry", () => {
  using heap = new PseudoMalloc({ debug: true });
  const a = heap.malloc(30);
  const view = heap.bytes(a);
  heap.free(a);
  view[29] = 0;
  assertCaught(() => heap.trim(), UseAfterFreeError, a, 29);
  assert.equal(heap.stats().debug!.quarantinedBlocks, 0);
  assert.ok(heap.trim() > 0);
  assert.equal(heap.stats().mappedBytes, 0);
});

Deno.test("debug: lookups see the program's blocks, not the redzones or freed blocks", () => {
  using heap = new PseudoMalloc({ debug: true });
  for (const size of [24, 20_000]) {
    const address = heap.malloc(size);
    assert.equal(heap.usableSize(address), size, "usable size is the request: no slack to use");
    assert.deepEqual(heap.blockOf(address + size - 1), { address, size });
    assert.equal(heap.bytesAt(address + 8).byteLength, size - 8);
    assert.equal(heap.view(address, Float64Array).length, Math.floor(size / 8));
    assert.throws(() => heap.blockOf(address + size), InvalidAddressError); // the back redzone
    assert.throws(() => heap.blockOf(address - 1), InvalidAddressError); // the front one
    assert.throws(() => heap.bytes(address, size + 1), RangeError);
    heap.free(address);
    assert.throws(() => heap.blockOf(address), InvalidAddressError);
    assert.throws(() => heap.bytes(address), /already freed/);
    assert.throws(() => heap.usableSize(address), InvalidAddressError);
  }
  const text = heap.cstring("héllo");
  assert.equal(heap.readCString(text), "héllo");
  heap.free(text);
  {
    using scoped = heap.scoped(12);
    scoped.bytes().fill(3);
  }
  assert.throws(() => heap.free(12345), InvalidFreeError);
  assert.throws(() => heap.free("x" as never), TypeError);
  assert.throws(() => heap.malloc(-1), RangeError);
  assert.throws(() => heap.calloc(2 ** 30, 2 ** 30), RangeError);
  heap.free(heap.realloc(0, 10));
  heap.check();
});

Deno.test("debug: leaks are reported on close with their sites, quarantined blocks are not leaks", () => {
  let leaks: { address: number; size: number; site?: string }[] = [];
  const heap = new PseudoMalloc({ debug: true, onLeaks: (found) => leaks = found });
  heap.free(heap.malloc(10));
  const kept = heap.malloc(77);
  const guarded = heap.malloc(9_000);
  heap.close();
  assert.deepEqual(leaks.map((leak) => [leak.address, leak.size]), [[kept, 77], [guarded, 9_000]]);
  assert.match(leaks[0]!.site!, HERE);
  assert.throws(() => heap.malloc(1), HeapClosedError);
  assert.throws(() => heap.free(kept), HeapClosedError);
});

// --- the review's cases ------------------------------------------------------------------------

Deno.test("debug: check() on a closed heap names check", () => {
  const heap = new PseudoMalloc({ debug: true });
  heap.close();
  assert.throws(() => heap.check(), /Cannot call check: the heap is closed/);
});

Deno.test("debug: blocks whose redzones reach mmapThreshold are large: guarded, or counted large", () => {
  using guarded = new PseudoMalloc({ debug: true });
  const near = guarded.malloc(guarded.mmapThreshold - 20); // 1004 + 32 bytes reach 1024
  assert.equal(guarded.stats().debug!.guardedBlocks, 1);
  assert.equal(guarded.stats().largeAllocations, 1);
  guarded.free(near);
  using plain = new PseudoMalloc({ debug: { guardPages: false } });
  const large = plain.malloc(100_000);
  const small = plain.malloc(100);
  assert.equal(plain.stats().largeAllocations, 1);
  assert.equal(plain.stats().smallAllocations, 1);
  assert.equal(plain.stats().debug!.guardedBlocks, 0);
  plain.free(large);
  plain.free(small);
});

Deno.test("debug: a block larger than the whole quarantine is freed at once, still known as freed", () => {
  using heap = new PseudoMalloc({ debug: { quarantine: 4096 } });
  const before = heap.stats().systemCalls.munmap;
  const big = heap.malloc(1 << 20);
  heap.free(big);
  assert.equal(heap.stats().debug!.quarantinedBytes, 0);
  assert.equal(heap.stats().systemCalls.munmap, before + 1, "its guarded mapping went back");
  assert.throws(() => heap.free(big), DoubleFreeError);
  const small = heap.malloc(10);
  heap.free(small);
  assert.ok(heap.stats().debug!.quarantinedBytes <= 4096);
});

Deno.test("debug: blocks deep inside a big guarded block are found among many guarded blocks", () => {
  using heap = new PseudoMalloc({ debug: { guardPages: "all", quarantine: 0 } });
  const small = Array.from({ length: 200 }, () => heap.malloc(40));
  const big = heap.malloc(8 << 20);
  heap.free(heap.malloc(64 << 20)); // a bigger one came and went
  assert.deepEqual(heap.blockOf(big + (5 << 20) + 3), { address: big, size: 8 << 20 });
  assert.deepEqual(heap.blockOf(small[77]! + 39), { address: small[77], size: 40 });
  assert.throws(() => heap.blockOf(small[77]! + 40), InvalidAddressError);
  for (const address of small) heap.free(address);
  heap.free(big);
  heap.validate();
});

Deno.test("debug: past GUARDED_LIMIT guarded blocks, blocks get redzones only (the mapping cap stays far)", () => {
  using heap = new PseudoMalloc({ debug: { guardPages: "all", quarantine: 0, sites: false } });
  const limit = GUARDED_LIMIT;
  const blocks = Array.from({ length: limit + 100 }, () => heap.malloc(8));
  const stats = heap.stats();
  assert.equal(stats.debug!.guardedBlocks, limit);
  assert.equal(stats.liveAllocations, limit + 100);
  // The last ones are ordinary debug blocks: their redzones still work.
  const last = blocks.at(-1)!;
  libc.symbols.memset(heap.pointer(last), 0, 9n);
  assertCaughtNoSites(() => heap.free(last), last, 8);
  for (const address of blocks.slice(0, -1)) heap.free(address);
  heap.validate();
  assert.equal(heap.stats().debug!.guardedBlocks, 0);
});

/** As `assertCaught`, for a heap that records no sites. */
function assertCaughtNoSites(fn: () => unknown, block: number, offset: number): void {
  assert.throws(fn, (error: HeapOverflowError) => {
    assert.ok(error instanceof HeapOverflowError);
    assert.equal(error.address, block);
    assert.equal(error.offset, offset);
    return true;
  });
}

// --- the second review's cases -----------------------------------------------------------------

Deno.test("debug: a block too big for the quarantine skips it without emptying it", () => {
  using heap = new PseudoMalloc({ debug: { quarantine: 4096, guardPages: false } });
  for (let i = 0; i < 10; i++) heap.free(heap.malloc(16));
  assert.equal(heap.stats().debug!.quarantinedBlocks, 10);
  heap.free(heap.malloc(8000));
  assert.equal(heap.stats().debug!.quarantinedBlocks, 10, "the small blocks are still watched");
});

Deno.test("debug: a free that finds two corruptions reports both, the second at the next check", () => {
  using heap = new PseudoMalloc({ debug: { quarantine: 64, guardPages: false } });
  const a = heap.malloc(16); // an inner block of 64 bytes: the whole quarantine
  const stale = heap.bytes(a);
  heap.free(a);
  stale[2] = 0;
  const b = heap.malloc(16);
  libc.symbols.memset(heap.pointer(b), 0, 17n);
  // free(b) finds b's overflow and, making room, a's use after free: b's first, a's next.
  assertCaught(() => heap.free(b), HeapOverflowError, b, 16);
  assertCaught(() => heap.check(), UseAfterFreeError, a, 2);
  heap.check();
  heap.validate();
});

Deno.test("debug: a use after free found by realloc's room-making waits for the next free; realloc succeeds", () => {
  using heap = new PseudoMalloc({ debug: { quarantine: 64, guardPages: false } });
  const a = heap.malloc(16);
  const stale = heap.bytes(a);
  heap.free(a);
  stale[0] = 1;
  const b = heap.malloc(16);
  const moved = heap.realloc(b, 20); // lets a go: its damage is noted, the move goes on
  assert.notEqual(moved, 0);
  assert.equal(heap.usableSize(moved), 20);
  assertCaught(() => heap.free(moved), UseAfterFreeError, a, 0);
  assert.equal(heap.stats().liveAllocations, 0, "the free that reported it freed its block");
});
