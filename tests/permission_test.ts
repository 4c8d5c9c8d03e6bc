// Without --allow-ffi the user gets one error that names the flag (needs --allow-run).
import assert from "node:assert/strict";

Deno.test("PseudoMalloc without --allow-ffi fails with an error naming the flag", async () => {
  const fixture = new URL("./fixtures/no_ffi.ts", import.meta.url);
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", fixture.pathname],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const text = new TextDecoder().decode(stderr);
  assert.notEqual(code, 0);
  assert.match(text, /NotCapable: @pseudo\/malloc maps native memory through FFI/);
  assert.match(text, /run Deno with the plain --allow-ffi flag/);
});
