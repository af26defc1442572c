/**
 * Transport to an swtpm TCP server data port (`swtpm socket --server type=tcp,port=P`), which
 * exchanges raw TPM command and response bytes (as the tpm2-tss "swtpm" TCTI does). Each command
 * uses its own connection, so other clients (tpm2-tools) can share the simulator between commands.
 *
 * @module
 */
import { concat } from "../../../lib/bytes.ts";
import {
  announcedSize,
  deadline,
  DEFAULT_TIMEOUT_MS,
  Serializer,
  type TpmTransport,
  TpmTransportError,
} from "./transport.ts";

/** Options of {@link SwtpmTransport}. */
export interface SwtpmOptions {
  /** Time allowed per command, in ms. */
  timeoutMs?: number;
}

/** A {@link TpmTransport} over swtpm's TCP data port. */
export class SwtpmTransport implements TpmTransport {
  readonly #host: string;
  readonly #port: number;
  readonly #timeoutMs: number;
  readonly #serial = new Serializer();
  #closed = false;

  constructor(host: string, port: number, opts: SwtpmOptions = {}) {
    this.#host = host;
    this.#port = port;
    this.#timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /** Sends one command over a fresh connection and reads exactly one response. */
  send(command: Uint8Array): Promise<Uint8Array> {
    return this.#serial.run(async () => {
      if (this.#closed) throw new TpmTransportError("swtpm transport is closed");
      let conn: Deno.TcpConn | undefined;
      const what = `swtpm ${this.#host}:${this.#port}`;
      const dl = deadline(this.#timeoutMs, what, () => {
        try {
          conn?.close();
        } catch { /* already closed */ }
        conn = undefined;
      });
      try {
        return await Promise.race([this.#exchange(command, (c) => (conn = c)), dl.promise]);
      } catch (e) {
        if (e instanceof TpmTransportError) throw e;
        throw new TpmTransportError(`${what}: ${(e as Error).message}`, { cause: e });
      } finally {
        dl.clear();
        try {
          conn?.close();
        } catch { /* already closed */ }
      }
    });
  }

  async #exchange(command: Uint8Array, keep: (c: Deno.TcpConn) => void): Promise<Uint8Array> {
    const conn = await Deno.connect({ hostname: this.#host, port: this.#port });
    keep(conn);
    let off = 0;
    while (off < command.length) off += await conn.write(command.subarray(off));
    const parts: Uint8Array[] = [];
    let have = 0;
    let want: number | undefined;
    const buf = new Uint8Array(16 * 1024);
    while (want === undefined || have < want) {
      const n = await conn.read(buf);
      if (n === null) {
        throw new TpmTransportError(
          `swtpm closed the connection after ${have} response bytes${want ? ` of ${want}` : ""}`,
        );
      }
      parts.push(buf.slice(0, n));
      have += n;
      if (want === undefined && have >= 10) want = announcedSize(concat(...parts).subarray(0, 10));
      if (want !== undefined && have > want) {
        throw new TpmTransportError(`swtpm sent ${have - want} bytes beyond the response`);
      }
    }
    return concat(...parts);
  }

  /** Marks the transport closed (connections are per command). */
  close(): Promise<void> {
    this.#closed = true;
    return this.#serial.run(() => Promise.resolve());
  }
}
