/**
 * The libcryptsetup edge: a small {@link CryptDevice} interface and the one class that
 * implements it through Deno FFI. Keys and passphrases go to the library as buffers
 * (never argv, never a file). Every handle is freed on every path by
 * {@link withCryptDevice}, and every library call in the process is serialised by one
 * lock held for the whole life of a handle (libcryptsetup is not thread-safe).
 *
 * @module
 */
import { ffiBytes, ffiCopy } from "../lib/ffi_memory.ts";
import { ConfidantError } from "../lib/errors.ts";
import { AsyncLock } from "./_lock.ts";
import {
  CRYPT_ANY,
  CRYPT_PBKDF_NO_BENCHMARK,
  CRYPT_WIPE_NO_DIRECT_IO,
  CRYPT_WIPE_ZERO,
  cryptLib,
  cString,
  encodeLuks2Params,
  encodePbkdf,
  type PbkdfParams,
  readCString,
  readOutPointer,
} from "./ffi.ts";

/** Cipher of the data segment and keyslots. */
export const CIPHER = "aes";
/** Cipher mode with IV. */
export const CIPHER_MODE = "xts-plain64";
/** Volume key bytes for aes-xts with two 256-bit halves (512 bits). */
export const XTS_KEY_BYTES = 64;
/** Extra volume key bytes for the hmac(sha256) integrity key. */
export const HMAC_SHA256_KEY_BYTES = 32;
/** Encryption sector size. */
export const SECTOR_SIZE = 4096;
/** Integrity algorithm used when integrity is requested. */
export const INTEGRITY_ALG = "hmac(sha256)";
/** PBKDF2 iterations: libcryptsetup's minimum; the passphrase is a 256-bit random key. */
export const PBKDF2_MIN_ITERATIONS = 1000;

/** The keyslot PBKDF confidant uses: PBKDF2-SHA256 at the minimum iteration count. */
export const MIN_PBKDF2: PbkdfParams = {
  type: "pbkdf2",
  hash: "sha256",
  timeMs: 0,
  iterations: PBKDF2_MIN_ITERATIONS,
  maxMemoryKb: 0,
  parallelThreads: 0,
  flags: CRYPT_PBKDF_NO_BENCHMARK,
};

/** Options of {@link CryptDevice.formatLuks2}. */
export interface FormatOptions {
  /** Add dm-integrity with hmac(sha256). */
  integrity: boolean;
  /**
   * PBKDF of keyslots created on this handle (default {@link MIN_PBKDF2}); `"library-default"`
   * leaves libcryptsetup's benchmarked default (argon2id), used only by the benchmark.
   */
  pbkdf?: PbkdfParams | "library-default";
  /** UUID of the new header (canonical form); default: libcryptsetup draws a random one. */
  uuid?: string;
}

/** One open libcryptsetup context on one device (`struct crypt_device *`). */
export interface CryptDevice {
  /** The device path given to crypt_init. */
  readonly path: string;
  /** crypt_load(LUKS2): read and check the on-disk header. */
  load(): Promise<void>;
  /** crypt_format(LUKS2, aes-xts-plain64, 4096-byte sectors) with a random volume key. */
  formatLuks2(opts: FormatOptions): Promise<void>;
  /** crypt_set_pbkdf_type for keyslots created next. */
  setPbkdf(p: PbkdfParams): void;
  /** crypt_keyslot_add_by_volume_key with the volume key of the preceding format. */
  addKeyslotAfterFormat(passphrase: Uint8Array): Promise<number>;
  /** crypt_keyslot_change_by_passphrase (any old slot to any new slot); returns the new slot. */
  changeKeyslot(oldPassphrase: Uint8Array, newPassphrase: Uint8Array): Promise<number>;
  /** crypt_activate_by_passphrase; `name` null only checks the passphrase. Returns the slot. */
  activate(name: string | null, passphrase: Uint8Array): Promise<number>;
  /** crypt_deactivate. */
  deactivate(name: string): Promise<void>;
  /** crypt_get_uuid. */
  uuid(): string | null;
  /** crypt_token_json_get; null when the token slot is empty. */
  tokenGet(token: number): string | null;
  /** crypt_token_json_set (CRYPT_ANY_TOKEN = -1 picks a free slot); returns the token id. */
  tokenSet(token: number, json: string): number;
  /** crypt_wipe with zeros over [offset, offset+length) of `devPath` (null: this device). */
  wipeZero(
    devPath: string | null,
    offset: number,
    length: number,
    blockSize: number,
  ): Promise<void>;
}

const lock = new AsyncLock();

const ERRNO: Record<number, string> = {
  1: "EPERM",
  2: "ENOENT",
  5: "EIO",
  12: "ENOMEM",
  13: "EACCES",
  16: "EBUSY",
  17: "EEXIST",
  22: "EINVAL",
  28: "ENOSPC",
  95: "EOPNOTSUPP",
};

/** Turn a negative errno from libcryptsetup into a typed error naming the call. */
export function cryptError(call: string, rc: number, path: string): ConfidantError {
  const errno = -rc;
  const name = ERRNO[errno] ?? `errno ${errno}`;
  if (call === "activate" || call === "keyslot_change") {
    if (errno === 1 || errno === 2) {
      return new ConfidantError("luks.wrong_key", `no keyslot of ${path} opens with this key`);
    }
  }
  if (call === "activate" && errno === 95) {
    return new ConfidantError(
      "luks.no_device_mapper",
      `cannot activate ${path}: device-mapper is not available (load dm_crypt)`,
    );
  }
  if (errno === 13) {
    return new ConfidantError("luks.permission", `${call} on ${path}: permission denied (${name})`);
  }
  if (errno === 16) return new ConfidantError("luks.busy", `${call} on ${path}: device busy`);
  return new ConfidantError(`luks.${call}`, `${call} on ${path} failed: ${name}`);
}

class LibCryptDevice implements CryptDevice {
  #cd: Deno.PointerValue;
  #freed = false;
  constructor(readonly path: string, cd: Deno.PointerObject) {
    this.#cd = cd;
  }

  #handle(): Deno.PointerValue {
    if (this.#freed) throw new ConfidantError("luks.freed", "crypt device handle used after free");
    return this.#cd;
  }

  #check(call: string, rc: number): number {
    if (rc < 0) throw cryptError(call, rc, this.path);
    return rc;
  }

  async load(): Promise<void> {
    this.#check("load", await cryptLib().crypt_load(this.#handle(), cString("LUKS2"), null));
  }

  async formatLuks2(opts: FormatOptions): Promise<void> {
    const pbkdf = opts.pbkdf === "library-default" ? null : encodePbkdf(opts.pbkdf ?? MIN_PBKDF2);
    const params = encodeLuks2Params({
      pbkdf: pbkdf?.struct ?? null,
      integrity: opts.integrity ? INTEGRITY_ALG : null,
      sectorSize: SECTOR_SIZE,
    });
    const keyBytes = XTS_KEY_BYTES + (opts.integrity ? HMAC_SHA256_KEY_BYTES : 0);
    const rc = await cryptLib().crypt_format(
      this.#handle(),
      cString("LUKS2"),
      cString(CIPHER),
      cString(CIPHER_MODE),
      opts.uuid !== undefined ? cString(opts.uuid) : null,
      null, // the library draws the volume key from its RNG; it never enters JS memory
      BigInt(keyBytes),
      params.struct,
    );
    // keep the struct's pointees reachable until the call has returned
    void [pbkdf?.keep, params.keep];
    this.#check("format", rc);
  }

  setPbkdf(p: PbkdfParams): void {
    const enc = encodePbkdf(p);
    const rc = cryptLib().crypt_set_pbkdf_type(this.#handle(), enc.struct);
    void enc.keep;
    this.#check("set_pbkdf_type", rc);
  }

  async addKeyslotAfterFormat(passphrase: Uint8Array): Promise<number> {
    const pass = copyBuffer(passphrase);
    try {
      return this.#check(
        "keyslot_add",
        await cryptLib().crypt_keyslot_add_by_volume_key(
          this.#handle(),
          CRYPT_ANY,
          null,
          0n,
          pass,
          BigInt(pass.length),
        ),
      );
    } finally {
      pass.fill(0);
    }
  }

  async changeKeyslot(oldPassphrase: Uint8Array, newPassphrase: Uint8Array): Promise<number> {
    const a = copyBuffer(oldPassphrase);
    const b = copyBuffer(newPassphrase);
    try {
      return this.#check(
        "keyslot_change",
        await cryptLib().crypt_keyslot_change_by_passphrase(
          this.#handle(),
          CRYPT_ANY,
          CRYPT_ANY,
          a,
          BigInt(a.length),
          b,
          BigInt(b.length),
        ),
      );
    } finally {
      a.fill(0);
      b.fill(0);
    }
  }

  async activate(name: string | null, passphrase: Uint8Array): Promise<number> {
    const pass = copyBuffer(passphrase);
    try {
      return this.#check(
        "activate",
        await cryptLib().crypt_activate_by_passphrase(
          this.#handle(),
          name === null ? null : cString(name),
          CRYPT_ANY,
          pass,
          BigInt(pass.length),
          0,
        ),
      );
    } finally {
      pass.fill(0);
    }
  }

  async deactivate(name: string): Promise<void> {
    this.#check("deactivate", await cryptLib().crypt_deactivate(this.#handle(), cString(name)));
  }

  uuid(): string | null {
    return readCString(cryptLib().crypt_get_uuid(this.#handle()));
  }

  tokenGet(token: number): string | null {
    const out = ffiBytes(8);
    const rc = cryptLib().crypt_token_json_get(this.#handle(), token, out);
    if (rc === -2 || rc === -22) return null; // ENOENT: empty slot; EINVAL: slot out of range
    this.#check("token_get", rc);
    return readCString(readOutPointer(out));
  }

  tokenSet(token: number, json: string): number {
    return this.#check(
      "token_set",
      cryptLib().crypt_token_json_set(this.#handle(), token, cString(json)),
    );
  }

  async wipeZero(
    devPath: string | null,
    offset: number,
    length: number,
    blockSize: number,
  ): Promise<void> {
    this.#check(
      "wipe",
      await cryptLib().crypt_wipe(
        this.#handle(),
        devPath === null ? null : cString(devPath),
        CRYPT_WIPE_ZERO,
        BigInt(offset),
        BigInt(length),
        BigInt(blockSize),
        CRYPT_WIPE_NO_DIRECT_IO,
        null,
        null,
      ),
    );
  }

  free(): void {
    if (this.#freed) return;
    this.#freed = true;
    cryptLib().crypt_free(this.#cd);
    this.#cd = null;
  }
}

function copyBuffer(b: Uint8Array): Uint8Array<ArrayBuffer> {
  if (b.length === 0) throw new ConfidantError("luks.empty_key", "an empty key is not accepted");
  return ffiCopy(b);
}

/**
 * Open a libcryptsetup context on `path`, run `fn` with it while holding the
 * process-wide libcryptsetup lock, and free the context on every path.
 * Do not nest calls (the lock is not re-entrant).
 */
export function withCryptDevice<T>(path: string, fn: (dev: CryptDevice) => Promise<T>): Promise<T> {
  return lock.run(async () => {
    const lib = cryptLib();
    const out = ffiBytes(8);
    const rc = lib.crypt_init(out, cString(path));
    if (rc < 0) {
      if (rc === -2) throw new ConfidantError("luks.no_device", `${path} does not exist`);
      throw cryptError("init", rc, path);
    }
    const cd = readOutPointer(out);
    if (cd === null) throw new ConfidantError("luks.init", `crypt_init(${path}) returned NULL`);
    const dev = new LibCryptDevice(path, cd);
    try {
      return await fn(dev);
    } finally {
      dev.free();
    }
  });
}
