/**
 * A minimal async mutex (FIFO). Private to the cryptsetup folder.
 *
 * @module
 */

/** FIFO async mutex: `run(fn)` executes `fn` when every earlier holder has finished. */
export class AsyncLock {
  #tail: Promise<void> = Promise.resolve();

  /** Run `fn` with the lock held; the lock is released on every path. */
  run<T>(fn: () => Promise<T> | T): Promise<T> {
    const prev = this.#tail;
    let release!: () => void;
    this.#tail = new Promise<void>((r) => (release = r));
    return prev.then(async () => {
      try {
        return await fn();
      } finally {
        release();
      }
    });
  }
}
