// The Allocator contract on SharedPseudoMalloc: on the creator, and on an attachment of a heap
// (whose close() detaches it), so that every path runs through a slot other than the creator's.
import assert from "node:assert/strict";
import { contractSuite } from "./_contract.ts";
import { SharedPseudoMalloc } from "../src/shared/shared_pseudo_malloc.ts";
import { HeapClosedError } from "../mod.ts";

const caps = { detectsDoubleFree: true, detectsInvalidFree: true, reusesMemory: true };
contractSuite("SharedPseudoMalloc", () => new SharedPseudoMalloc(), caps);

Deno.test("SharedPseudoMalloc: a closed creator makes its attachments throw HeapClosedError", () => {
  const heap = new SharedPseudoMalloc();
  const other = SharedPseudoMalloc.attach(heap.handle);
  const address = other.malloc(100);
  heap.close();
  assert.throws(() => other.malloc(8), HeapClosedError);
  assert.throws(() => other.free(address), HeapClosedError);
  assert.throws(() => SharedPseudoMalloc.attach(heap.handle), HeapClosedError);
  other.detach();
});
