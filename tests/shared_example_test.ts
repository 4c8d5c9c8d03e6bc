// examples/workers_zlib.ts (deno task example:workers-zlib) runs here in a child process: 4 workers
// compress 8 MiB in chunks into blocks of one SharedPseudoMalloc, every block freed by another
// thread than its allocator's, every chunk inflated back, nothing left live.
import assert from "node:assert/strict";

Deno.test("examples/workers_zlib.ts: a worker pool compresses into a shared heap, nothing left live", async () => {
  const example = new URL("../examples/workers_zlib.ts", import.meta.url).pathname;
  const root = new URL("../", import.meta.url).pathname;
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-ffi", `--allow-read=${root}`, example],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const output = new TextDecoder().decode(stdout);
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  assert.match(output, /32 chunks of 256 KiB: 8\.00 MiB -> .* every chunk inflated back/);
  assert.equal(output.match(/worker attachment \d+: (\d+) blocks allocated, \1 freed/g)?.length, 4);
  assert.match(output, /heap: 0 blocks live/);
});
