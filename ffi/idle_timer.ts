/**
 * The idle timer: how a cache of released memory gives it back when the program stops calling.
 * A timer that does not keep the process alive (`Deno.unrefTimer`), so an idle heap never delays
 * the end of a program. `src/_mappings.ts` takes one as an option, so tests pass their own.
 *
 * @module
 */

/** Starts and stops a one-shot timer; `start` must not keep the process alive. */
export interface IdleTimer {
  /** Calls `callback` once, after `milliseconds`; returns a handle for `stop`. */
  start(callback: () => void, milliseconds: number): unknown;
  /** Cancels a timer that has not fired. */
  stop(handle: unknown): void;
}

/** The real timer: `setTimeout`, unreferenced. */
export const idleTimer: IdleTimer = {
  start(callback, milliseconds) {
    const id = setTimeout(callback, milliseconds);
    Deno.unrefTimer(id);
    return id;
  },
  stop(handle) {
    clearTimeout(handle as number);
  },
};
