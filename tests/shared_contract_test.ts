// The Allocator contract on SharedPseudoMalloc: on the creator, and on an attachment of a heap
// (whose close() detaches it), so that every path runs through a slot other than the creator's.
import assert from "node:assert/strict";
import { contractSuite } from "./_contract.ts";
import { HeapClosedError, SharedPseudoMalloc } from "../mod.ts";

const caps = { detectsDoubleFree: true, detectsInvalidFree: true, reusesMemory: true };
contractSuite("SharedPseudoMalloc", () => new SharedPseudoMalloc(), caps);

/** An attachment whose close() detaches it and closes its creator (methods bound to it). */
function attachment(): SharedPseudoMalloc {
  const creator = new SharedPseudoMalloc();
  const attached = SharedPseudoMalloc.attach(creator.handle);
  const close = () => {
    attached.close();
    creator.close();
  };
  return new Proxy(attached, {
    get(target, key) {
      if (key === "close" || key === Symbol.dispose) return close;
      const value = Reflect.get(target, key, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}
contractSuite("SharedPseudoMalloc attachment", attachment, caps);

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
