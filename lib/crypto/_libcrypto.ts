/**
 * The libcrypto (OpenSSL 3, Debian's `libssl3`, soname `libcrypto.so.3`) symbols the
 * fast ECDSA path uses, and the one place the library is opened.
 *
 * Route: the EC_KEY API (deprecated in OpenSSL 3 but exported by libcrypto.so.3) has the
 * fewest calls between bytes and a verdict: a key is a copy of a cached EC_GROUP plus
 * `EC_KEY_oct2key` (which refuses points off the curve or coordinates >= p), a signature is
 * two BIGNUMs in an ECDSA_SIG, and `ECDSA_do_verify` checks them against a digest computed
 * with the one-shot `SHA256()`/`SHA384()`/`SHA512()` functions. Measured here: key setup
 * ~5.6 µs, P-256 verify ~134 µs, SHA-256 of 120 bytes ~0.9 µs (node:crypto's createHash
 * ~5.7 µs), `EC_KEY_new_by_curve_name` instead of the cached group ~21 µs.
 *
 * `ECDSA_do_verify` is declared twice: synchronous (on the calling thread) and
 * `nonblocking` (on Deno's blocking thread pool, so concurrent verifications use every
 * core). Everything else is synchronous and cheap.
 *
 * @module
 */

/** Shared-object name of libcrypto (Debian package `libssl3`, pulled in by `openssl`). */
export const LIBCRYPTO = "libcrypto.so.3";

/** OpenSSL NIDs of the curves: NID_X9_62_prime256v1 and NID_secp384r1. */
export const NID = { "P-256": 415, "P-384": 715 } as const;

/** Symbols with their C signatures (OpenSSL 3.0 headers, LP64). */
export const SYMBOLS = {
  // EC_GROUP *EC_GROUP_new_by_curve_name(int nid);
  EC_GROUP_new_by_curve_name: { parameters: ["i32"], result: "pointer" },
  // EC_KEY *EC_KEY_new(void);
  EC_KEY_new: { parameters: [], result: "pointer" },
  // int EC_KEY_set_group(EC_KEY *key, const EC_GROUP *group);  (copies the group)
  EC_KEY_set_group: { parameters: ["pointer", "pointer"], result: "i32" },
  // int EC_KEY_oct2key(EC_KEY *key, const unsigned char *buf, size_t len, BN_CTX *ctx);
  EC_KEY_oct2key: { parameters: ["pointer", "buffer", "usize", "pointer"], result: "i32" },
  // void EC_KEY_free(EC_KEY *key);
  EC_KEY_free: { parameters: ["pointer"], result: "void" },
  // BIGNUM *BN_bin2bn(const unsigned char *s, int len, BIGNUM *ret);
  BN_bin2bn: { parameters: ["buffer", "i32", "pointer"], result: "pointer" },
  // void BN_free(BIGNUM *a);
  BN_free: { parameters: ["pointer"], result: "void" },
  // ECDSA_SIG *ECDSA_SIG_new(void);
  ECDSA_SIG_new: { parameters: [], result: "pointer" },
  // int ECDSA_SIG_set0(ECDSA_SIG *sig, BIGNUM *r, BIGNUM *s);  (takes r and s on success)
  ECDSA_SIG_set0: { parameters: ["pointer", "pointer", "pointer"], result: "i32" },
  // void ECDSA_SIG_free(ECDSA_SIG *sig);
  ECDSA_SIG_free: { parameters: ["pointer"], result: "void" },
  // int ECDSA_do_verify(const unsigned char *dgst, int dgst_len, const ECDSA_SIG *sig,
  //                     EC_KEY *eckey);  1 = valid, 0 = invalid, -1 = error
  ECDSA_do_verify: { parameters: ["buffer", "i32", "pointer", "pointer"], result: "i32" },
  ECDSA_do_verify_offload: {
    name: "ECDSA_do_verify",
    parameters: ["buffer", "i32", "pointer", "pointer"],
    result: "i32",
    nonblocking: true,
  },
  // unsigned char *SHA256(const unsigned char *d, size_t n, unsigned char *md);  (and 384, 512)
  SHA256: { parameters: ["buffer", "usize", "buffer"], result: "pointer" },
  SHA384: { parameters: ["buffer", "usize", "buffer"], result: "pointer" },
  SHA512: { parameters: ["buffer", "usize", "buffer"], result: "pointer" },
  // void ERR_clear_error(void);
  ERR_clear_error: { parameters: [], result: "void" },
  // unsigned long ERR_peek_error(void);
  ERR_peek_error: { parameters: [], result: "u64" },
} as const;

/** The opened library's symbols. */
export type Libcrypto = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** The outcome of trying to open libcrypto: the symbols, or why not. */
export type LibcryptoOpening =
  | { ok: true; lib: Libcrypto; groups: Record<keyof typeof NID, Deno.PointerObject> }
  | { ok: false; reason: string };

/**
 * Open `path` (default {@link LIBCRYPTO}) and build one EC_GROUP per curve. Never throws:
 * a missing library, a missing `--allow-ffi` or a missing symbol is `{ ok: false, reason }`.
 * The groups live as long as the process (they are copied into each key).
 */
export function openLibcrypto(path: string = findSharedLibrary(LIBCRYPTO)): LibcryptoOpening {
  let dl: Deno.DynamicLibrary<typeof SYMBOLS>;
  try {
    dl = Deno.dlopen(path, SYMBOLS);
  } catch (e) {
    const why = e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied
      ? `no FFI permission for ${path} (run with --allow-ffi)`
      : `cannot open ${path} (Debian package libssl3): ${
        e instanceof Error ? e.message : String(e)
      }`;
    return { ok: false, reason: why };
  }
  const lib = dl.symbols;
  const p256 = lib.EC_GROUP_new_by_curve_name(NID["P-256"]);
  const p384 = lib.EC_GROUP_new_by_curve_name(NID["P-384"]);
  lib.ERR_clear_error();
  if (p256 === null || p384 === null) {
    dl.close();
    return { ok: false, reason: `${path} has no P-256/P-384 curve` };
  }
  return { ok: true, lib, groups: { "P-256": p256, "P-384": p384 } };
}
import { findSharedLibrary } from "../shared_library.ts";
