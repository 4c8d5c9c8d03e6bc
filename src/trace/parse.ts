/**
 * The parser of the CMU malloc-lab trace format.
 *
 * @module
 */

import { type Trace, TraceBuilder, TraceSemanticsError } from "./trace.ts";

/**
 * A trace file that cannot be replayed: malformed text, or an operation the trace semantics
 * forbid (allocating a live id, freeing or reallocating one that is not live). The message starts
 * with `file:line:`.
 *
 * @example Reporting the position
 * ```ts
 * import { parseTrace, TraceSyntaxError } from "@pseudo/malloc/trace";
 * import assert from "node:assert/strict";
 *
 * try {
 *   parseTrace("0 1 1 1\nx 0 8\n", "bad.rep");
 * } catch (error) {
 *   assert.ok(error instanceof TraceSyntaxError);
 *   assert.equal(error.file, "bad.rep");
 *   assert.equal(error.line, 2);
 * }
 * ```
 */
export class TraceSyntaxError extends Error {
  /** The file name given to the parser. */
  readonly file: string;
  /** The 1-based line of the problem. */
  readonly line: number;
  /** What is wrong, without the position. */
  readonly reason: string;

  /**
   * Creates the error; the message is `file:line: reason`.
   *
   * @param file The file name.
   * @param line The 1-based line.
   * @param reason What is wrong.
   */
  constructor(file: string, line: number, reason: string) {
    super(`${file}:${line}: ${reason}`);
    this.name = "TraceSyntaxError";
    this.file = file;
    this.line = line;
    this.reason = reason;
  }
}

const HEADER_FIELDS = [
  "suggested heap size",
  "number of ids",
  "number of operations",
  "weight",
] as const;
const INTEGER = /^\d+$/;
const SIGNED_INTEGER = /^-?\d+$/;
const DECIMAL = /^\d+(\.\d+)?$/;

/**
 * Parses a trace in the CMU malloc-lab format.
 *
 * The format: a header of four numbers (suggested heap size, number of ids, number of operations,
 * weight), on one line or spread over several (real files put each on its own line); then one
 * operation per line: `a <id> <bytes>` (malloc), `r <id> <bytes>` (realloc), `f <id>` (free),
 * where `f -1` is `free(NULL)`. Line ends may be LF or CRLF; blank lines, surrounding whitespace
 * and lines starting with `#` are ignored.
 *
 * Checked, each reported as a {@linkcode TraceSyntaxError} naming the file and line: the header
 * (four non-negative numbers; the counts integers), the operation letter and argument count, ids
 * (integers below the declared number of ids), sizes (non-negative integers below 2^53), the
 * number of operations against the header, and the semantics of {@linkcode Trace}: `a` of a live
 * id, `r` or `f` of an id that is not live (never allocated, or already freed) are errors. An id
 * may be allocated again after it is freed; `r <id> 0` frees.
 *
 * @param text The trace's text.
 * @param file The name used in errors and as the trace's name.
 * @returns The trace.
 * @throws {TraceSyntaxError} On the first problem found.
 *
 * @example A trace with its header over four lines and CRLF line ends
 * ```ts
 * import { parseTrace } from "@pseudo/malloc/trace";
 * import assert from "node:assert/strict";
 *
 * const trace = parseTrace("4096\r\n2\r\n4\r\n1\r\na 0 100\r\na 1 20\r\nr 0 200\r\nf 1\r\n", "t.rep");
 * assert.equal(trace.length, 4);
 * assert.equal(trace.peakLiveBytes, 220);
 * assert.deepEqual([...trace.lines], [5, 6, 7, 8]);
 * ```
 */
export function parseTrace(text: string, file: string): Trace {
  const lines = text.split("\n");
  const header: number[] = [];
  let headerLine = 0;
  const builder = new TraceBuilder();
  let declaredOps = 0;
  let declaredIds = 0;
  let lastLine = 0;

  for (let index = 0; index < lines.length; index++) {
    const lineNumber = index + 1;
    const raw = lines[index]!;
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    lastLine = lineNumber;
    const fail = (reason: string): never => {
      throw new TraceSyntaxError(file, lineNumber, reason);
    };
    const tokens = line.split(/\s+/);

    if (header.length < 4) {
      if (headerLine === 0) headerLine = lineNumber;
      for (const token of tokens) {
        const field = HEADER_FIELDS[header.length];
        if (field === undefined) {
          fail(`the header has more than four numbers: unexpected "${token}"`);
        }
        const integer = field !== "weight" && field !== "suggested heap size";
        if (!(integer ? INTEGER : DECIMAL).test(token)) {
          fail(
            `expected the header's ${field} (number ${
              header.length + 1
            } of 4: suggested heap size, number of ids, number of operations, weight), found "${token}"`,
          );
        }
        header.push(Number(token));
      }
      if (header.length === 4) {
        declaredIds = header[1]!;
        declaredOps = header[2]!;
        if (!Number.isSafeInteger(declaredIds) || !Number.isSafeInteger(declaredOps)) {
          fail("the header's counts are too large");
        }
      }
      continue;
    }

    const op = tokens[0]!;
    const arity = op === "f" ? 2 : op === "a" || op === "r" ? 3 : 0;
    if (arity === 0) {
      fail(`unknown operation "${op}": expected "a <id> <bytes>", "r <id> <bytes>" or "f <id>"`);
    }
    const usage = op === "f" ? "f <id>" : `${op} <id> <bytes>`;
    if (tokens.length !== arity) {
      fail(
        `${
          tokens.length < arity ? "missing argument" : `unexpected "${tokens[arity]}"`
        }: expected "${usage}"`,
      );
    }
    if (builder.length === declaredOps) {
      fail(`more operations than the ${declaredOps} the header declares`);
    }
    const idToken = tokens[1]!;
    if (!SIGNED_INTEGER.test(idToken)) fail(`the id "${idToken}" is not an integer`);
    const id = Number(idToken);
    if (id === -1 && op !== "f") fail(`id -1 (NULL) can only be freed: "f -1"`);
    if (id < -1) fail(`the id ${id} is negative`);
    if (id >= declaredIds) {
      fail(
        `the id ${id} is out of range: the header declares ${declaredIds} ids (0 to ${
          declaredIds - 1
        })`,
      );
    }
    let size = 0;
    if (op !== "f") {
      const sizeToken = tokens[2]!;
      if (!INTEGER.test(sizeToken)) {
        fail(`the size "${sizeToken}" is not a non-negative integer`);
      }
      size = Number(sizeToken);
      if (!Number.isSafeInteger(size)) fail(`the size ${sizeToken} is too large`);
    }
    try {
      if (op === "a") builder.alloc(id, size, lineNumber);
      else if (op === "r") builder.realloc(id, size, lineNumber);
      else builder.free(id, lineNumber);
    } catch (error) {
      if (error instanceof TraceSemanticsError) fail(error.message);
      throw error;
    }
  }

  if (header.length < 4) {
    throw new TraceSyntaxError(
      file,
      Math.max(1, lastLine),
      header.length === 0
        ? "empty trace: expected a header of four numbers (suggested heap size, number of ids, number of operations, weight)"
        : `the header ends after ${header.length} of its four numbers`,
    );
  }
  if (builder.length !== declaredOps) {
    throw new TraceSyntaxError(
      file,
      lastLine,
      `the header (line ${headerLine}) declares ${declaredOps} operations, the file has ${builder.length}`,
    );
  }
  return builder.build(file, {
    suggestedHeapSize: header[0]!,
    idCount: declaredIds,
    weight: header[3]!,
  });
}
