/**
 * The libcryptsetup FFI symbol table and the C struct encoders, in one place.
 *
 * Signatures follow `libcryptsetup.h` of cryptsetup 2.6 (Debian's libcryptsetup12,
 * soname `libcryptsetup.so.12`). Struct layouts are for x86_64 (LP64): pointers and
 * `size_t` are 8 bytes, `uint32_t` 4, natural alignment.
 *
 * Blocking choice: calls that run a KDF, write the header or talk to device-mapper
 * (`crypt_load`, `crypt_format`, keyslot add/change, activate, deactivate, wipe) are
 * declared `nonblocking: true`: they run on Deno's blocking thread pool and return a
 * promise, so the agent's event loop (health endpoint, logs, timers) keeps running
 * while a format or a wipe takes seconds. libcryptsetup is not thread-safe, so every
 * call on every handle goes through one process-wide lock (see `crypt_device.ts`);
 * at most one library call is ever in flight. Cheap accessors that only read the
 * handle (`crypt_get_uuid`, token get/set, pbkdf setup, `crypt_free`) are synchronous.
 *
 * @module
 */
import { ffiBytes } from "../lib/ffi_memory.ts";
import { findSharedLibrary } from "../lib/shared_library.ts";
import { ConfidantError } from "../lib/errors.ts";

/** Shared-object name of libcryptsetup (Debian package `libcryptsetup12`). */
export const LIBCRYPTSETUP = "libcryptsetup.so.12";

/** `CRYPT_ANY_SLOT` / `CRYPT_ANY_TOKEN`. */
export const CRYPT_ANY = -1;
/** `CRYPT_PBKDF_NO_BENCHMARK`: use the given iteration count, never benchmark. */
export const CRYPT_PBKDF_NO_BENCHMARK = 1 << 1;
/** `CRYPT_WIPE_ZERO` (enum crypt_wipe_pattern). */
export const CRYPT_WIPE_ZERO = 0;
/** `CRYPT_WIPE_NO_DIRECT_IO`: do not open the device with O_DIRECT. */
export const CRYPT_WIPE_NO_DIRECT_IO = 1 << 0;

/** The symbols confidant uses; signatures as in libcryptsetup.h. */
export const SYMBOLS = {
  // int crypt_init(struct crypt_device **cd, const char *device);
  crypt_init: { parameters: ["buffer", "buffer"], result: "i32" },
  // int crypt_load(struct crypt_device *cd, const char *requested_type, void *params);
  crypt_load: { parameters: ["pointer", "buffer", "pointer"], result: "i32", nonblocking: true },
  // int crypt_format(cd, const char *type, const char *cipher, const char *cipher_mode,
  //                  const char *uuid, const char *volume_key, size_t volume_key_size, void *params);
  crypt_format: {
    parameters: ["pointer", "buffer", "buffer", "buffer", "buffer", "buffer", "usize", "buffer"],
    result: "i32",
    nonblocking: true,
  },
  // int crypt_keyslot_add_by_volume_key(cd, int keyslot, const char *volume_key,
  //                  size_t volume_key_size, const char *passphrase, size_t passphrase_size);
  crypt_keyslot_add_by_volume_key: {
    parameters: ["pointer", "i32", "buffer", "usize", "buffer", "usize"],
    result: "i32",
    nonblocking: true,
  },
  // int crypt_keyslot_change_by_passphrase(cd, int keyslot_old, int keyslot_new,
  //   const char *passphrase, size_t passphrase_size, const char *new_passphrase, size_t new_size);
  crypt_keyslot_change_by_passphrase: {
    parameters: ["pointer", "i32", "i32", "buffer", "usize", "buffer", "usize"],
    result: "i32",
    nonblocking: true,
  },
  // int crypt_activate_by_passphrase(cd, const char *name, int keyslot,
  //   const char *passphrase, size_t passphrase_size, uint32_t flags);
  crypt_activate_by_passphrase: {
    parameters: ["pointer", "buffer", "i32", "buffer", "usize", "u32"],
    result: "i32",
    nonblocking: true,
  },
  // int crypt_deactivate(struct crypt_device *cd, const char *name);
  crypt_deactivate: { parameters: ["pointer", "buffer"], result: "i32", nonblocking: true },
  // const char *crypt_get_uuid(struct crypt_device *cd);
  crypt_get_uuid: { parameters: ["pointer"], result: "pointer" },
  // int crypt_token_json_get(struct crypt_device *cd, int token, const char **json);
  crypt_token_json_get: { parameters: ["pointer", "i32", "buffer"], result: "i32" },
  // int crypt_token_json_set(struct crypt_device *cd, int token, const char *json);
  crypt_token_json_set: { parameters: ["pointer", "i32", "buffer"], result: "i32" },
  // int crypt_wipe(cd, const char *dev_path, crypt_wipe_pattern pattern, uint64_t offset,
  //   uint64_t length, size_t wipe_block_size, uint32_t flags,
  //   int (*progress)(uint64_t size, uint64_t offset, void *usrptr), void *usrptr);
  crypt_wipe: {
    parameters: ["pointer", "buffer", "i32", "u64", "u64", "usize", "u32", "pointer", "pointer"],
    result: "i32",
    nonblocking: true,
  },
  // int crypt_set_pbkdf_type(struct crypt_device *cd, const struct crypt_pbkdf_type *pbkdf);
  crypt_set_pbkdf_type: { parameters: ["pointer", "buffer"], result: "i32" },
  // void crypt_free(struct crypt_device *cd);
  crypt_free: { parameters: ["pointer"], result: "void" },
} as const satisfies Deno.ForeignLibraryInterface;

/** The opened library. */
export type CryptLib = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

let lib: Deno.DynamicLibrary<typeof SYMBOLS> | undefined;

/**
 * Open libcryptsetup once per process. A missing library is `luks.library_missing`,
 * a missing `--allow-ffi` is `luks.ffi_permission`.
 */
export function cryptLib(): CryptLib {
  if (lib) return lib.symbols;
  try {
    lib = Deno.dlopen(findSharedLibrary(LIBCRYPTSETUP), SYMBOLS);
  } catch (e) {
    if (e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied) {
      throw new ConfidantError(
        "luks.ffi_permission",
        "calling libcryptsetup needs FFI permission (run with --allow-ffi)",
        { cause: e },
      );
    }
    throw new ConfidantError(
      "luks.library_missing",
      `cannot load ${LIBCRYPTSETUP} (install the Debian package libcryptsetup12)`,
      { cause: e },
    );
  }
  return lib.symbols;
}

/** A NUL-terminated C string in a fresh buffer. */
export function cString(s: string): Uint8Array<ArrayBuffer> {
  const b = new TextEncoder().encode(s);
  const out = ffiBytes(b.length + 1);
  out.set(b);
  return out;
}

/** The pieces of a `struct crypt_pbkdf_type` that confidant sets. */
export interface PbkdfParams {
  type: "pbkdf2" | "argon2id" | "argon2i";
  hash: string;
  timeMs: number;
  iterations: number;
  maxMemoryKb: number;
  parallelThreads: number;
  flags: number;
}

/**
 * Encoded `struct crypt_pbkdf_type` (40 bytes on x86_64):
 * `type`@0 ptr, `hash`@8 ptr, `time_ms`@16 u32, `iterations`@20 u32,
 * `max_memory_kb`@24 u32, `parallel_threads`@28 u32, `flags`@32 u32, 4 bytes padding.
 * The returned `keep` array holds the strings the struct points to: keep it alive
 * until the call that uses the struct has returned.
 */
export function encodePbkdf(
  p: PbkdfParams,
): { struct: Uint8Array<ArrayBuffer>; keep: Uint8Array[] } {
  const type = cString(p.type);
  const hash = cString(p.hash);
  const struct = ffiBytes(40);
  const v = new DataView(struct.buffer);
  v.setBigUint64(0, ptrValue(type), true);
  v.setBigUint64(8, ptrValue(hash), true);
  v.setUint32(16, p.timeMs, true);
  v.setUint32(20, p.iterations, true);
  v.setUint32(24, p.maxMemoryKb, true);
  v.setUint32(28, p.parallelThreads, true);
  v.setUint32(32, p.flags, true);
  return { struct, keep: [type, hash] };
}

/** The pieces of a `struct crypt_params_luks2` that confidant sets. */
export interface Luks2Params {
  /** Encoded `crypt_pbkdf_type` or null. */
  pbkdf: Uint8Array | null;
  /** Integrity algorithm (e.g. `hmac(sha256)`) or null. */
  integrity: string | null;
  /** Encryption sector size in bytes. */
  sectorSize: number;
}

/**
 * Encoded `struct crypt_params_luks2` (64 bytes on x86_64):
 * `pbkdf`@0 ptr, `integrity`@8 ptr, `integrity_params`@16 ptr, `data_alignment`@24 size_t,
 * `data_device`@32 ptr, `sector_size`@40 u32 (+4 padding), `label`@48 ptr, `subsystem`@56 ptr.
 */
export function encodeLuks2Params(
  p: Luks2Params,
): { struct: Uint8Array<ArrayBuffer>; keep: Uint8Array[] } {
  const keep: Uint8Array[] = [];
  const struct = ffiBytes(64);
  const v = new DataView(struct.buffer);
  if (p.pbkdf) {
    keep.push(p.pbkdf);
    v.setBigUint64(0, ptrValue(p.pbkdf), true);
  }
  if (p.integrity) {
    const s = cString(p.integrity);
    keep.push(s);
    v.setBigUint64(8, ptrValue(s), true);
  }
  v.setUint32(40, p.sectorSize, true);
  return { struct, keep };
}

/** Address of a buffer's first byte, for pointers stored inside structs. */
export function ptrValue(b: Uint8Array): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(b as Uint8Array<ArrayBuffer>)));
}

/** Read a pointer stored in an 8-byte out-parameter buffer. */
export function readOutPointer(b: Uint8Array): Deno.PointerValue {
  const v = new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true);
  return v === 0n ? null : Deno.UnsafePointer.create(v);
}

/** Copy of a NUL-terminated C string owned by the library, or null for NULL. */
export function readCString(p: Deno.PointerValue): string | null {
  if (p === null) return null;
  return new Deno.UnsafePointerView(p).getCString();
}
