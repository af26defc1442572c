/**
 * The system clock behind the {@link Clock} port.
 *
 * @module
 */
import type { Clock } from "./ports.ts";

/** Wall-clock time and real timers. */
export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const onAbort = () => {
        clearTimeout(timer);
        reject(signal!.reason);
      };
      const timer = setTimeout(() => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      }, Math.max(0, ms));
      signal?.addEventListener("abort", onAbort, { once: true });
    }),
  deadline: (ms) => {
    const ctl = new AbortController();
    const timer = setTimeout(
      () => ctl.abort(new DOMException(`timed out after ${ms} ms`, "TimeoutError")),
      Math.max(0, ms),
    );
    return { signal: ctl.signal, cancel: () => clearTimeout(timer) };
  },
};
