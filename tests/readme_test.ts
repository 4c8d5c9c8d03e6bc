// The README's code blocks run as doc tests (`deno test --doc README.md`, in a child process: the
// test task's own `--doc` covers the modules' JSDoc, not Markdown files), so the usage it shows
// stays true. A block marked `ignore` would be checked by nothing: the README has none.

import assert from "node:assert/strict";

Deno.test("README.md: every runnable code block passes as a doc test", async () => {
  const readme = new URL("../README.md", import.meta.url);
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["test", "--doc", "--allow-ffi", readme.pathname],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
  assert.equal(code, 0, text);
  assert.match(text, /[1-9]\d* passed/, "at least one block ran");
});
