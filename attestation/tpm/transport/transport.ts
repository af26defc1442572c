/**
 * The TPM transport interface (one method to exchange a command for a response) and the framing
 * helpers shared by the implementations: response size limits and one command in flight.
 *
 * @module
 */
import { ConfidantError } from "../../../lib/errors.ts";

/** Largest response any transport accepts. */
export const MAX_RESPONSE_SIZE = 64 * 1024;
/** Default time allowed for one command (RSA key generation on real TPMs can take tens of seconds). */
export const DEFAULT_TIMEOUT_MS = 120_000;

/** Moves TPM command bytes to a TPM and its response bytes back. */
export interface TpmTransport {
  /** Sends one complete command and resolves with the complete response. */
  send(command: Uint8Array): Promise<Uint8Array>;
  /** Releases the device or connection; later sends fail. */
  close(): Promise<void>;
}

/** A transport-level failure (device or socket error, timeout, oversized or short response). */
export class TpmTransportError extends ConfidantError {
  constructor(message: string, options?: { cause?: unknown; code?: string }) {
    super(options?.code ?? "tpm.transport", message, { cause: options?.cause });
    this.name = "TpmTransportError";
  }
}

/**
 * Total size announced by a response header (bytes 2..6), or undefined while fewer than 10 bytes
 * are known; a size below 10 or above {@link MAX_RESPONSE_SIZE} is refused.
 */
export function announcedSize(head: Uint8Array): number | undefined {
  if (head.length < 10) return undefined;
  const size = new DataView(head.buffer, head.byteOffset, 10).getUint32(2);
  if (size < 10) throw new TpmTransportError(`TPM response size field ${size} is below 10`);
  if (size > MAX_RESPONSE_SIZE) {
    throw new TpmTransportError(`TPM response of ${size} bytes exceeds ${MAX_RESPONSE_SIZE}`);
  }
  return size;
}

/** Runs async operations one at a time, in call order. */
export class Serializer {
  #tail: Promise<unknown> = Promise.resolve();
  /** Runs `f` after every previously queued operation has settled. */
  run<T>(f: () => Promise<T>): Promise<T> {
    const p = this.#tail.then(f, f);
    this.#tail = p.catch(() => {});
    return p;
  }
}

/** Rejects with a `tpm.timeout` error after `ms`, calling `onTimeout` first; `clear` cancels. */
export function deadline(ms: number, what: string, onTimeout: () => void): {
  promise: Promise<never>;
  clear: () => void;
} {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const promise = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onTimeout();
      reject(
        new TpmTransportError(`${what}: no response within ${ms} ms`, { code: "tpm.timeout" }),
      );
    }, ms);
  });
  return { promise, clear: () => clearTimeout(timer) };
}
