/**
 * Issuing TDX quotes through the kernel's configfs-tsm interface
 * (`/sys/kernel/config/tsm/report/<entry>/`): create an entry, check that
 * `provider` is `tdx_guest`, write the 64-byte report data to `inblob`, read
 * the quote from `outblob`, and check that `generation` advanced by exactly
 * one write in between (otherwise another process wrote `inblob` concurrently
 * and the quote may carry someone else's report data).
 *
 * @module
 */
import { bytesEqual, toHex } from "../../lib/bytes.ts";
import { ConfidantError } from "../../lib/errors.ts";
import { parseTdxQuote } from "./quote.ts";

/** Default mount point of configfs-tsm reports. */
export const TSM_REPORT_ROOT = "/sys/kernel/config/tsm/report";

/** Something that turns 64 bytes of report data into a TDX quote. */
export interface TdxQuoteProvider {
  getQuote(reportData: Uint8Array): Promise<Uint8Array>;
}

/** The file operations configfs-tsm needs; {@link denoTsmFs} is the real one. */
export interface TsmFs {
  mkdir(path: string): Promise<void>;
  readFile(path: string): Promise<Uint8Array>;
  writeFile(path: string, data: Uint8Array): Promise<void>;
  /** Remove an entry directory (configfs: `rmdir`). */
  rmdir(path: string): Promise<void>;
}

/** {@link TsmFs} over the real file system. */
export const denoTsmFs: TsmFs = {
  mkdir: (p) => Deno.mkdir(p),
  readFile: (p) => Deno.readFile(p),
  writeFile: (p, d) => Deno.writeFile(p, d),
  rmdir: (p) => Deno.remove(p),
};

/** Options of {@link ConfigfsTsm}. */
export interface ConfigfsTsmOptions {
  /** Report directory; default {@link TSM_REPORT_ROOT}. */
  root?: string;
  /** Provider name the entry must report; default `tdx_guest`. */
  provider?: string;
  fs?: TsmFs;
}

function tsmError(code: string, message: string, cause?: unknown): ConfidantError {
  return new ConfidantError(`tsm.${code}`, message, cause === undefined ? undefined : { cause });
}

/** TDX quotes from configfs-tsm. One entry directory per request, removed afterwards. */
export class ConfigfsTsm implements TdxQuoteProvider {
  readonly root: string;
  readonly provider: string;
  readonly #fs: TsmFs;

  constructor(opts: ConfigfsTsmOptions = {}) {
    this.root = opts.root ?? TSM_REPORT_ROOT;
    this.provider = opts.provider ?? "tdx_guest";
    this.#fs = opts.fs ?? denoTsmFs;
  }

  async #text(path: string): Promise<string> {
    return new TextDecoder().decode(await this.#fs.readFile(path)).trim();
  }

  async #generation(dir: string): Promise<number> {
    const t = await this.#text(`${dir}/generation`);
    if (!/^\d{1,15}$/.test(t)) throw tsmError("generation", `${dir}/generation is not a number`);
    return Number(t);
  }

  /** Ask the TDX module (through the kernel) for a quote over `reportData` (64 bytes). */
  async getQuote(reportData: Uint8Array): Promise<Uint8Array> {
    if (reportData.length !== 64) {
      throw tsmError("report_data", `TDX report data must be 64 bytes, got ${reportData.length}`);
    }
    const dir = `${this.root}/confidant-${toHex(crypto.getRandomValues(new Uint8Array(8)))}`;
    try {
      await this.#fs.mkdir(dir);
    } catch (e) {
      throw tsmError(
        "unavailable",
        `cannot create a configfs-tsm report entry in ${this.root} (is configfs mounted and this a TDX guest?)`,
        e,
      );
    }
    try {
      const provider = await this.#text(`${dir}/provider`);
      if (provider !== this.provider) {
        throw tsmError(
          "provider",
          `configfs-tsm provider is "${provider}", not "${this.provider}"`,
        );
      }
      const before = await this.#generation(dir);
      await this.#fs.writeFile(`${dir}/inblob`, reportData);
      const quote = await this.#fs.readFile(`${dir}/outblob`);
      const after = await this.#generation(dir);
      if (after !== before + 1) {
        throw tsmError(
          "race",
          `configfs-tsm generation went from ${before} to ${after}: another writer used the entry`,
        );
      }
      if (quote.length === 0) throw tsmError("empty", "configfs-tsm returned an empty quote");
      const q = parseTdxQuote(quote);
      if (!bytesEqual(q.body.reportData, reportData)) {
        throw tsmError("report_data", "the quote does not carry the report data that was written");
      }
      return quote.slice(0, q.length);
    } finally {
      await this.#fs.rmdir(dir).catch(() => {});
    }
  }
}
