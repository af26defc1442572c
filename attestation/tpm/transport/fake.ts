/**
 * A recorded-bytes transport for unit tests: answers each command with the next recorded
 * response, optionally checking the command bytes, and keeps every command it was sent.
 *
 * @module
 */
import { bytesEqual, toHex } from "../../../lib/bytes.ts";
import { type TpmTransport, TpmTransportError } from "./transport.ts";

/** One recorded exchange; `command`, when given, must match what the client sends. */
export interface RecordedExchange {
  /** Expected command bytes (checked when present). */
  command?: Uint8Array;
  /** Response bytes to return. */
  response: Uint8Array;
}

/** A {@link TpmTransport} replaying recorded responses. */
export class FakeTransport implements TpmTransport {
  readonly #script: RecordedExchange[];
  /** Every command sent, in order. */
  readonly sent: Uint8Array[] = [];
  #closed = false;

  constructor(script: RecordedExchange[]) {
    this.#script = [...script];
  }

  /** Returns the next recorded response; fails when the script is exhausted or differs. */
  send(command: Uint8Array): Promise<Uint8Array> {
    if (this.#closed) return Promise.reject(new TpmTransportError("fake transport is closed"));
    this.sent.push(command.slice());
    const next = this.#script.shift();
    if (!next) return Promise.reject(new TpmTransportError("fake transport: no more responses"));
    if (next.command && !bytesEqual(next.command, command)) {
      return Promise.reject(
        new TpmTransportError(
          `fake transport: unexpected command ${toHex(command)}, expected ${toHex(next.command)}`,
        ),
      );
    }
    return Promise.resolve(next.response.slice());
  }

  /** Exchanges not yet consumed. */
  get pending(): number {
    return this.#script.length;
  }

  /** Marks the transport closed. */
  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }
}
