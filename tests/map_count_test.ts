// The kernel's limit on mappings (vm.max_map_count), reached for real: each fixture runs in a child
// process that takes every mapping slot with filler pages (tests/fixtures/map_count_fillers.ts),
// makes an allocator unmap from the middle of a kernel mapping (a split, refused with ENOMEM), and
// checks that nothing was lost: every live block keeps its contents, validate() passes, the stats
// agree, and the call succeeds once a slot is back. Linux only.
import assert from "node:assert/strict";

/** The child's time limit: a fixture maps about 65,000 pages a few times, in about a second. */
const TIME_LIMIT = 120_000;

const FIXTURES = [
  ["PseudoMalloc.trim unmapping a middle arena", "map_count_trim.ts", "trim with no slot left"],
  [
    "PseudoMalloc.free evicting from the large-block cache",
    "map_count_cache.ts",
    "free that evicts, with no slot left",
  ],
  [
    "MmapAllocator.free of a block between two others",
    "map_count_mmap.ts",
    "free with no slot left",
  ],
  ["PseudoMalloc.close", "map_count_close.ts", "close with no slot left"],
] as const;

for (const [subject, fixture, step] of FIXTURES) {
  Deno.test({
    name: `${subject} at vm.max_map_count loses nothing`,
    ignore: Deno.build.os !== "linux",
    async fn() {
      const { code, signal, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--allow-ffi",
          // gc() before the slots are taken, and a young generation that never grows meanwhile.
          "--v8-flags=--expose-gc,--min-semi-space-size=16,--max-semi-space-size=16",
          new URL(`./fixtures/${fixture}`, import.meta.url).pathname,
        ],
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(TIME_LIMIT),
      }).output();
      const output = new TextDecoder().decode(stdout);
      const errors = new TextDecoder().decode(stderr);
      assert.equal(
        code,
        0,
        `${fixture} exited with ${signal ?? code}; its stderr:\n${errors}\nits stdout:\n${output}`,
      );
      const { steps } = JSON.parse(output) as { steps: Record<string, string> };
      assert.ok(step in steps, `${fixture} reached the limit: ${output}`);
    },
  });
}
