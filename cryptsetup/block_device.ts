/**
 * The narrow edge to a disk: read at an offset, size, and write (for wipes and tests).
 * A file- or block-device-backed implementation and an in-memory one.
 *
 * @module
 */
import { ConfidantError } from "../lib/errors.ts";

/** Largest single read accepted (callers read headers and samples, never whole disks). */
export const MAX_READ = 64 * 1024 * 1024;

/** A disk or disk image. */
export interface BlockDevice {
  /** Path for tools and libcryptsetup; null for an in-memory disk. */
  readonly path: string | null;
  /** Size in bytes. */
  size(): Promise<number>;
  /** Exactly `length` bytes at `offset`; reading past the end is an error. */
  read(offset: number, length: number): Promise<Uint8Array>;
  /** Write `data` at `offset` (within the device). */
  write(offset: number, data: Uint8Array): Promise<void>;
  /** Release the device. */
  close(): void;
}

function checkRange(offset: number, length: number, size: number, path: string): void {
  if (
    !Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 ||
    offset + length > size
  ) {
    throw new ConfidantError(
      "disk.range",
      `access [${offset}, +${length}) is outside ${path} (${size} bytes)`,
    );
  }
}

/** A regular file or a block device node. */
export class FileBlockDevice implements BlockDevice {
  #file: Deno.FsFile;
  #size: number | undefined;
  private constructor(readonly path: string, file: Deno.FsFile) {
    this.#file = file;
  }

  /** Open `path` read-only, or read-write with `write: true`. */
  static async open(path: string, opts: { write?: boolean } = {}): Promise<FileBlockDevice> {
    try {
      const f = await Deno.open(path, { read: true, write: opts.write ?? false });
      return new FileBlockDevice(path, f);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        throw new ConfidantError("disk.not_found", `${path} does not exist`, { cause: e });
      }
      if (e instanceof Deno.errors.PermissionDenied || e instanceof Deno.errors.NotCapable) {
        throw new ConfidantError("disk.permission", `cannot open ${path}: permission denied`, {
          cause: e,
        });
      }
      throw new ConfidantError("disk.open", `cannot open ${path}: ${e}`, { cause: e });
    }
  }

  async size(): Promise<number> {
    // stat() of a block device reports 0; seeking to the end works for both kinds
    if (this.#size === undefined) this.#size = await this.#file.seek(0, Deno.SeekMode.End);
    return this.#size;
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    checkRange(offset, length, await this.size(), this.path);
    if (length > MAX_READ) {
      throw new ConfidantError("disk.range", `read of ${length} bytes too large`);
    }
    const out = new Uint8Array(length);
    await this.#file.seek(offset, Deno.SeekMode.Start);
    let got = 0;
    while (got < length) {
      const n = await this.#file.read(out.subarray(got));
      if (n === null) throw new ConfidantError("disk.short_read", `${this.path} ended early`);
      got += n;
    }
    return out;
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    checkRange(offset, data.length, await this.size(), this.path);
    await this.#file.seek(offset, Deno.SeekMode.Start);
    let done = 0;
    while (done < data.length) done += await this.#file.write(data.subarray(done));
  }

  /** fsync the device. */
  async sync(): Promise<void> {
    await this.#file.sync();
  }

  close(): void {
    try {
      this.#file.close();
    } catch { /* already closed */ }
  }
}

/** A disk held in memory (tests, and the in-memory state-disk backend). */
export class MemoryBlockDevice implements BlockDevice {
  readonly path = null;
  /** The disk's bytes (tests inspect and modify them directly). */
  readonly bytes: Uint8Array;
  constructor(sizeOrBytes: number | Uint8Array) {
    this.bytes = typeof sizeOrBytes === "number" ? new Uint8Array(sizeOrBytes) : sizeOrBytes;
  }
  size(): Promise<number> {
    return Promise.resolve(this.bytes.length);
  }
  read(offset: number, length: number): Promise<Uint8Array> {
    checkRange(offset, length, this.bytes.length, "memory disk");
    return Promise.resolve(this.bytes.slice(offset, offset + length));
  }
  write(offset: number, data: Uint8Array): Promise<void> {
    checkRange(offset, data.length, this.bytes.length, "memory disk");
    this.bytes.set(data, offset);
    return Promise.resolve();
  }
  close(): void {}
}
