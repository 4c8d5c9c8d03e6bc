// Per-OS values of the C constants the OS layer passes to libc. They are ABI facts, read from the
// system headers (<sys/mman.h>, <unistd.h>, <errno.h>) of each platform.

/** The C library and constants of one operating system. */
export interface OsConstants {
  /** Path or soname given to `Deno.dlopen`. */
  library: string;
  /** The function returning the address of the thread's `errno`. */
  errnoSymbol: string;
  SC_PAGESIZE: number;
  PROT_READ: number;
  PROT_WRITE: number;
  MAP_PRIVATE: number;
  /** `MAP_ANONYMOUS` on Linux, `MAP_ANON` on macOS. */
  MAP_ANONYMOUS: number;
  /** `MAP_NORESERVE`: no swap is set aside; a page costs memory only once written. */
  MAP_NORESERVE: number;
  MADV_DONTNEED: number;
  /** Linux only; unused where there is no `mremap`. */
  MREMAP_MAYMOVE: number;
  /** Names of the errno values a mapping call reports. */
  errnoNames: Record<number, string>;
}

const COMMON_ERRNO: Record<number, string> = {
  1: "EPERM",
  9: "EBADF",
  12: "ENOMEM: not enough memory",
  13: "EACCES",
  22: "EINVAL: invalid argument",
};

const LINUX: OsConstants = {
  library: "libc.so.6",
  errnoSymbol: "__errno_location",
  SC_PAGESIZE: 30,
  PROT_READ: 0x1,
  PROT_WRITE: 0x2,
  MAP_PRIVATE: 0x02,
  MAP_ANONYMOUS: 0x20,
  MAP_NORESERVE: 0x4000,
  MADV_DONTNEED: 4,
  MREMAP_MAYMOVE: 1,
  errnoNames: { ...COMMON_ERRNO, 11: "EAGAIN: resource temporarily unavailable" },
};

const DARWIN: OsConstants = {
  library: "/usr/lib/libSystem.B.dylib",
  errnoSymbol: "__error",
  SC_PAGESIZE: 29,
  PROT_READ: 0x1,
  PROT_WRITE: 0x2,
  MAP_PRIVATE: 0x0002,
  MAP_ANONYMOUS: 0x1000,
  MAP_NORESERVE: 0x40,
  MADV_DONTNEED: 4,
  MREMAP_MAYMOVE: 0,
  errnoNames: { ...COMMON_ERRNO, 35: "EAGAIN: resource temporarily unavailable" },
};

/** The constants for `Deno.build.os`; throws for systems without `mmap`. */
export function constantsFor(os: string): OsConstants {
  if (os === "linux") return LINUX;
  if (os === "darwin") return DARWIN;
  throw new Error(`@pseudo/malloc supports Linux and macOS, not ${os}: it needs mmap from libc`);
}
