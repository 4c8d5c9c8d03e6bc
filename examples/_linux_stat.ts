// C struct layouts of glibc on x86_64 Linux that the example and the tests fill with real C calls.
// `struct stat` differs per architecture (arm64 glibc puts st_mode before st_nlink and has a
// 32-bit st_blksize), so use `Stat` only where `Deno.build` says linux and x86_64.

import { struct } from "../mod.ts";

/** `struct timespec`: seconds and nanoseconds. */
export const Timespec = struct({ tv_sec: "i64", tv_nsec: "i64" });

/** `struct stat` of glibc on x86_64 (<bits/struct_stat.h>): 144 bytes, st_size at 48. */
export const Stat = struct({
  st_dev: "u64",
  st_ino: "u64",
  st_nlink: "u64",
  st_mode: "u32",
  st_uid: "u32",
  st_gid: "u32",
  __pad0: "i32",
  st_rdev: "u64",
  st_size: "i64",
  st_blksize: "i64",
  st_blocks: "i64",
  st_atim: Timespec,
  st_mtim: Timespec,
  st_ctim: Timespec,
  __glibc_reserved: ["i64", 3],
});
