/**
 * Transport to a Linux TPM character device (`/dev/tpmrm0` with the kernel resource manager,
 * or `/dev/tpm0`): write one command, read one response.
 *
 * @module
 */
import { concat } from "../../../lib/bytes.ts";
import {
  announcedSize,
  deadline,
  DEFAULT_TIMEOUT_MS,
  MAX_RESPONSE_SIZE,
  Serializer,
  type TpmTransport,
  TpmTransportError,
} from "./transport.ts";

/** A {@link TpmTransport} over a TPM character device. */
export class DeviceTransport implements TpmTransport {
  readonly #path: string;
  readonly #timeoutMs: number;
  readonly #serial = new Serializer();
  #file: Deno.FsFile | undefined;
  #closed = false;

  constructor(path: string, opts: { timeoutMs?: number } = {}) {
    this.#path = path;
    this.#timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  async #open(): Promise<Deno.FsFile> {
    if (this.#file) return this.#file;
    try {
      this.#file = await Deno.open(this.#path, { read: true, write: true });
      return this.#file;
    } catch (e) {
      const hint = e instanceof Deno.errors.PermissionDenied
        ? " (run as root or add the user to the tss group)"
        : e instanceof Deno.errors.NotFound
        ? " (no TPM device: is the TPM enabled and the driver loaded?)"
        : "";
      throw new TpmTransportError(`cannot open ${this.#path}${hint}`, {
        cause: e,
        code: "tpm.device",
      });
    }
  }

  /** Writes the command and reads the response. */
  send(command: Uint8Array): Promise<Uint8Array> {
    return this.#serial.run(async () => {
      if (this.#closed) throw new TpmTransportError(`${this.#path} transport is closed`);
      const f = await this.#open();
      const dl = deadline(this.#timeoutMs, this.#path, () => {
        try {
          f.close();
        } catch { /* already closed */ }
        this.#file = undefined;
      });
      try {
        return await Promise.race([this.#exchange(f, command), dl.promise]);
      } catch (e) {
        if (e instanceof TpmTransportError) throw e;
        try {
          f.close();
        } catch { /* already closed */ }
        this.#file = undefined;
        throw new TpmTransportError(`${this.#path}: ${(e as Error).message}`, { cause: e });
      } finally {
        dl.clear();
      }
    });
  }

  async #exchange(f: Deno.FsFile, command: Uint8Array): Promise<Uint8Array> {
    let off = 0;
    while (off < command.length) off += await f.write(command.subarray(off));
    const parts: Uint8Array[] = [];
    let have = 0;
    let want: number | undefined;
    const buf = new Uint8Array(MAX_RESPONSE_SIZE);
    while (want === undefined || have < want) {
      const n = await f.read(buf);
      if (n === null || n === 0) {
        throw new TpmTransportError(`${this.#path}: short response (${have} bytes)`);
      }
      parts.push(buf.slice(0, n));
      have += n;
      if (want === undefined && have >= 10) want = announcedSize(concat(...parts).subarray(0, 10));
      if (want !== undefined && have > want) {
        throw new TpmTransportError(`${this.#path}: ${have - want} bytes beyond the response`);
      }
    }
    return concat(...parts);
  }

  /** Closes the device. */
  close(): Promise<void> {
    return this.#serial.run(() => {
      this.#closed = true;
      try {
        this.#file?.close();
      } catch { /* already closed */ }
      this.#file = undefined;
      return Promise.resolve();
    });
  }
}
