// The seeded PRNG of the tests: the package's own.
export { mulberry32 } from "../src/_random.ts";
