/**
 * The in-memory form of a malloc trace, shared by the parser, the generators and the replayer.
 *
 * @module
 */

/** Operation code of `a <id> <bytes>`: `malloc(bytes)`, remembered under `id`. */
export const OP_ALLOC = 0;
/** Operation code of `r <id> <bytes>`: `realloc(block of id, bytes)`. */
export const OP_REALLOC = 1;
/** Operation code of `f <id>`: `free(block of id)`; `f -1` is `free(NULL)`. */
export const OP_FREE = 2;

/** The largest id a trace may use (ids index typed arrays during replay). */
export const MAX_ID = 2 ** 31 - 2;

/**
 * A malloc trace in the CMU malloc-lab model, stored as parallel typed arrays (one entry per
 * operation) so that replay loops read numbers, not objects.
 *
 * Semantics, checked when a trace is built (by {@linkcode parseTrace} or {@linkcode TraceBuilder}):
 * `a` needs an id that is not live; `r` and `f` need a live id; `r <id> 0` frees the block (C's
 * `realloc(p, 0)`), after which the id is no longer live; an id may be allocated again once freed;
 * `f -1` is `free(NULL)` and does nothing.
 *
 * @example Walking the operations
 * ```ts
 * import { OP_ALLOC, parseTrace } from "@pseudo/malloc/trace";
 *
 * const trace = parseTrace("0 1 2 1\na 0 100\nf 0\n", "tiny.rep");
 * for (let i = 0; i < trace.length; i++) {
 *   const what = trace.kinds[i] === OP_ALLOC ? "malloc" : "free";
 *   console.log(what, trace.ids[i], trace.sizes[i], "line", trace.lines[i]);
 * }
 * ```
 */
export interface Trace {
  /** The file name, or the built-in trace's name. */
  readonly name: string;
  /** Header field 1: the heap size the trace's author suggested (unused by the replayer). */
  readonly suggestedHeapSize: number;
  /** Header field 2: how many ids the trace declares; every id is below it. */
  readonly idCount: number;
  /** Header field 4: the trace's weight in malloc-lab's score (unused by the replayer). */
  readonly weight: number;
  /** Number of operations. */
  readonly length: number;
  /** Per operation: {@linkcode OP_ALLOC}, {@linkcode OP_REALLOC} or {@linkcode OP_FREE}. */
  readonly kinds: Uint8Array;
  /** Per operation: the id; -1 only for `f -1`. */
  readonly ids: Int32Array;
  /** Per operation: the requested size in bytes (0 for frees). */
  readonly sizes: Float64Array;
  /** Per operation: its line in the file (1-based), or in {@linkcode formatTrace}'s output. */
  readonly lines: Uint32Array;
  /** One more than the largest id used (0 for a trace without ids). */
  readonly idLimit: number;
  /** The largest size requested by any `a` or `r` (0 when there is none). */
  readonly maxRequest: number;
  /** The most bytes requested by live blocks at once (after any operation). */
  readonly peakLiveBytes: number;
  /** Index of the first operation after which `peakLiveBytes` is live (-1 for none). */
  readonly peakOp: number;
  /** Sum of the sizes of every `a` and `r`. */
  readonly requestedBytes: number;
}

/** Raised by {@linkcode TraceBuilder} for an operation the trace semantics forbid. */
export class TraceSemanticsError extends Error {
  /**
   * Creates the error.
   *
   * @param message What is wrong, without the position.
   */
  constructor(message: string) {
    super(message);
    this.name = "TraceSemanticsError";
  }
}

const NEVER = 0;
const LIVE = 1;
const FREED = 2;

/**
 * Builds a {@linkcode Trace} operation by operation, enforcing the trace semantics and computing
 * the summary fields. The parser and the generators both use it.
 *
 * @example A trace written in code
 * ```ts
 * import { TraceBuilder } from "@pseudo/malloc/trace";
 *
 * const builder = new TraceBuilder();
 * builder.alloc(0, 100);
 * builder.realloc(0, 300);
 * builder.free(0);
 * const trace = builder.build("grow");
 * console.log(trace.length, trace.peakLiveBytes); // 3 300
 * ```
 */
export class TraceBuilder {
  #kinds = new Uint8Array(1024);
  #ids = new Int32Array(1024);
  #sizes = new Float64Array(1024);
  #lines = new Uint32Array(1024);
  #length = 0;
  #state = new Uint8Array(1024);
  #liveSize = new Float64Array(1024);
  #freedAt = new Uint32Array(1024);
  #idLimit = 0;
  #live = 0;
  #peak = 0;
  #peakOp = -1;
  #maxRequest = 0;
  #requested = 0;

  /** Operations added so far. */
  get length(): number {
    return this.#length;
  }

  /** Bytes requested by the blocks live now. */
  get liveBytes(): number {
    return this.#live;
  }

  /**
   * Whether `id` is live now.
   *
   * @param id An id.
   * @returns True after `a` (or a growing `r`) and before `f`.
   */
  isLive(id: number): boolean {
    return id >= 0 && id < this.#idLimit && this.#state[id] === LIVE;
  }

  /**
   * Adds `a <id> <size>`.
   *
   * @param id A non-negative integer id that is not live.
   * @param size Bytes, a non-negative safe integer.
   * @param line The source line; by default the line {@linkcode formatTrace} would give it.
   * @throws {TraceSemanticsError} When the id is live or the arguments are out of range.
   */
  alloc(id: number, size: number, line?: number): void {
    this.#checkId(id);
    this.#checkSize(size);
    this.#grow(id);
    if (this.#state[id] === LIVE) {
      throw new TraceSemanticsError(`id ${id} is allocated while it is live`);
    }
    this.#state[id] = LIVE;
    this.#liveSize[id] = size;
    this.#push(OP_ALLOC, id, size, line);
    this.#changeLive(size);
  }

  /**
   * Adds `r <id> <size>`; a size of 0 frees the block.
   *
   * @param id A live id.
   * @param size Bytes, a non-negative safe integer.
   * @param line The source line; by default the line {@linkcode formatTrace} would give it.
   * @throws {TraceSemanticsError} When the id is not live or the arguments are out of range.
   */
  realloc(id: number, size: number, line?: number): void {
    this.#checkId(id);
    this.#checkSize(size);
    this.#requireLive(id, "reallocated");
    const old = this.#liveSize[id]!;
    this.#push(OP_REALLOC, id, size, line);
    if (size === 0) {
      this.#state[id] = FREED;
      this.#freedAt[id] = this.#lines[this.#length - 1]!;
      this.#liveSize[id] = 0;
    } else {
      this.#liveSize[id] = size;
    }
    this.#changeLive(size - old);
  }

  /**
   * Adds `f <id>`; `free(-1)` is `free(NULL)`.
   *
   * @param id A live id, or -1.
   * @param line The source line; by default the line {@linkcode formatTrace} would give it.
   * @throws {TraceSemanticsError} When the id is not live.
   */
  free(id: number, line?: number): void {
    if (id === -1) {
      this.#push(OP_FREE, -1, 0, line);
      return;
    }
    this.#checkId(id);
    this.#requireLive(id, "freed");
    const old = this.#liveSize[id]!;
    this.#push(OP_FREE, id, 0, line);
    this.#state[id] = FREED;
    this.#freedAt[id] = this.#lines[this.#length - 1]!;
    this.#liveSize[id] = 0;
    this.#changeLive(-old);
  }

  /**
   * Finishes the trace.
   *
   * @param name The trace's name.
   * @param header The header fields; by default the suggested heap size is the peak live bytes,
   *   the id count the id limit and the weight 1.
   * @returns The trace; the builder must not be used afterwards.
   */
  build(
    name: string,
    header: { suggestedHeapSize?: number; idCount?: number; weight?: number } = {},
  ): Trace {
    const n = this.#length;
    return {
      name,
      suggestedHeapSize: header.suggestedHeapSize ?? this.#peak,
      idCount: header.idCount ?? this.#idLimit,
      weight: header.weight ?? 1,
      length: n,
      kinds: this.#kinds.slice(0, n),
      ids: this.#ids.slice(0, n),
      sizes: this.#sizes.slice(0, n),
      lines: this.#lines.slice(0, n),
      idLimit: this.#idLimit,
      maxRequest: this.#maxRequest,
      peakLiveBytes: this.#peak,
      peakOp: this.#peakOp,
      requestedBytes: this.#requested,
    };
  }

  #checkId(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id > MAX_ID) {
      throw new TraceSemanticsError(`id ${id} is not an integer from 0 to ${MAX_ID}`);
    }
  }

  #checkSize(size: number): void {
    if (!Number.isSafeInteger(size) || size < 0) {
      throw new TraceSemanticsError(`size ${size} is not a non-negative integer below 2^53`);
    }
  }

  #requireLive(id: number, verb: string): void {
    const state = id < this.#idLimit ? this.#state[id]! : NEVER;
    if (state === LIVE) return;
    throw new TraceSemanticsError(
      state === FREED
        ? `id ${id} is ${verb} after it was freed on line ${this.#freedAt[id]}`
        : `id ${id} is ${verb} but was never allocated${
          verb === "freed" ? " (free(NULL) is written `f -1`)" : ""
        }`,
    );
  }

  #grow(id: number): void {
    if (id < this.#idLimit) return;
    this.#idLimit = id + 1;
    if (id < this.#state.length) return;
    let capacity = this.#state.length;
    while (capacity <= id) capacity *= 2;
    this.#state = grown(this.#state, capacity);
    this.#liveSize = grown(this.#liveSize, capacity);
    this.#freedAt = grown(this.#freedAt, capacity);
  }

  #push(kind: number, id: number, size: number, line: number | undefined): void {
    const i = this.#length;
    if (i === this.#kinds.length) {
      const capacity = i * 2;
      this.#kinds = grown(this.#kinds, capacity);
      this.#ids = grown(this.#ids, capacity);
      this.#sizes = grown(this.#sizes, capacity);
      this.#lines = grown(this.#lines, capacity);
    }
    this.#kinds[i] = kind;
    this.#ids[i] = id;
    this.#sizes[i] = size;
    // formatTrace writes the header on line 1 and operation i on line i + 2.
    this.#lines[i] = line ?? i + 2;
    this.#length = i + 1;
    if (size > this.#maxRequest) this.#maxRequest = size;
    this.#requested += size;
  }

  #changeLive(delta: number): void {
    this.#live += delta;
    if (this.#live > this.#peak) {
      this.#peak = this.#live;
      this.#peakOp = this.#length - 1;
    }
  }
}

function grown<T extends Uint8Array | Uint32Array | Int32Array | Float64Array>(
  array: T,
  capacity: number,
): T {
  const bigger = new (array.constructor as new (length: number) => T)(capacity);
  bigger.set(array);
  return bigger;
}

/**
 * Writes a trace in the malloc-lab text format: the four header numbers on one line, then one
 * operation per line. Parsing the output gives the same operations, each on the line recorded in
 * `trace.lines` for a generated trace.
 *
 * @param trace The trace.
 * @returns The text, ending with a newline.
 *
 * @example Saving a built-in trace
 * ```ts
 * import { builtinTraces, formatTrace } from "@pseudo/malloc/trace";
 *
 * const [churn] = builtinTraces({ scale: 0.01 });
 * console.log(formatTrace(churn!).split("\n").slice(0, 3));
 * ```
 */
export function formatTrace(trace: Trace): string {
  const out: string[] = [
    `${trace.suggestedHeapSize} ${trace.idCount} ${trace.length} ${trace.weight}`,
  ];
  for (let i = 0; i < trace.length; i++) {
    const kind = trace.kinds[i];
    out.push(
      kind === OP_ALLOC
        ? `a ${trace.ids[i]} ${trace.sizes[i]}`
        : kind === OP_REALLOC
        ? `r ${trace.ids[i]} ${trace.sizes[i]}`
        : `f ${trace.ids[i]}`,
    );
  }
  return out.join("\n") + "\n";
}
