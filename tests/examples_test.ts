// The examples a newcomer runs (`deno task example:*`) run here too, in child processes, and must
// end cleanly with nothing left live.

import assert from "node:assert/strict";

Deno.test("examples/structs.ts: qsort with a JS comparator, a C string, stat(), nothing left live", async () => {
  const example = new URL("../examples/structs.ts", import.meta.url).pathname;
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-ffi", example],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const out = new TextDecoder().decode(stdout);
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  assert.match(out, /1\. qsort with a JS comparator, ids by distance: (\d, ){7}\d/);
  assert.match(out, /strlen of its copy says 14 bytes of UTF-8/);
  assert.match(out, /live blocks at the end: 0/);
});
