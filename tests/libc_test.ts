// The OS layer's mapping calls that the allocators' tests do not reach directly (needs --allow-ffi).
import assert from "node:assert/strict";
import {
  mapMemory,
  mapMemoryAt,
  memoryView,
  pageSize,
  reserveMemory,
  unmapMemory,
} from "../ffi/libc.ts";

Deno.test("mapMemoryAt maps exactly at a free address", () => {
  const length = 4 * pageSize();
  const free = mapMemory(length);
  unmapMemory(free, length); // now known to be free
  assert.equal(mapMemoryAt(free, length), free);
  const bytes = new Uint8Array(memoryView(free, length));
  assert.ok(bytes.every((byte) => byte === 0), "fresh memory is zero");
  bytes[length - 1] = 7;
  unmapMemory(free, length);
});

Deno.test("mapMemoryAt returns 0 and replaces nothing where memory is mapped", () => {
  const length = 2 * pageSize();
  const taken = mapMemory(length);
  const bytes = new Uint8Array(memoryView(taken, length));
  bytes.fill(42);
  assert.equal(mapMemoryAt(taken, length), 0);
  assert.ok(bytes.every((byte) => byte === 42), "the mapping already there is untouched");
  unmapMemory(taken, length);
});

Deno.test("reserveMemory gives zeroed, writable memory at a page boundary", () => {
  const length = 64 * 1024 * 1024; // address space; only the pages written become memory
  const address = reserveMemory(length);
  assert.equal(address % pageSize(), 0);
  const words = new Uint16Array(memoryView(address, length));
  assert.equal(words[12345], 0);
  words[words.length - 1] = 0xffff;
  assert.equal(words[words.length - 1], 0xffff);
  unmapMemory(address, length);
});
