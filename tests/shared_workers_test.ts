// SharedPseudoMalloc across real workers: runs tests/fixtures/shared_workers_suite.ts in a child
// `deno test`, one test per child, since workers need --allow-read to load their modules (the
// suite's own file says what each test checks).
import assert from "node:assert/strict";

const SUITE = new URL("./fixtures/shared_workers_suite.ts", import.meta.url).pathname;
const ROOT = new URL("../", import.meta.url).pathname;

for (
  const [name, filter] of [
    ["4 workers x 10^6 random operations, a quarter of the frees remote", "random operations"],
    ["a worker terminated between calls: its cache reclaimed", "terminated"],
    ["a double free raced by two workers: a DoubleFreeError in one", "double free"],
    ["a lock held by a dead attachment: taken over by reclaim", "lock held"],
  ]
) {
  Deno.test(`SharedPseudoMalloc across workers: ${name}`, async () => {
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["test", "--allow-ffi", `--allow-read=${ROOT}`, "--filter", filter, SUITE],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const output = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
    assert.equal(code, 0, output);
    assert.match(output, /1 passed/);
  });
}
