/**
 * Algorithm-parameter unions shared by several structures: TPMT_SYM_DEF_OBJECT (Part 2, 11.1.7),
 * the asymmetric scheme unions TPMT_RSA_SCHEME / TPMT_ECC_SCHEME / TPMT_KDF_SCHEME /
 * TPMT_SIG_SCHEME (Part 2, 11.2), and TPMT_KEYEDHASH_SCHEME (Part 2, 11.1.23).
 *
 * @module
 */
import { type Codec, ParseError, type Reader, TPM_ALG, type Writer } from "./_deps.ts";

/** TPMT_SYM_DEF_OBJECT / TPMT_SYM_DEF; `algorithm` NULL has neither keyBits nor mode. */
export interface TpmtSymDefObject {
  /** Symmetric algorithm (AES, XOR, NULL, ...). */
  algorithm: number;
  /** Key size in bits (for XOR: the hash algorithm). */
  keyBits?: number;
  /** Block-cipher mode (CFB, ...); absent for NULL and XOR. */
  mode?: number;
}

/** An asymmetric/KDF/signature scheme: the scheme id and, unless NULL or RSAES, its hash. */
export interface TpmtAsymScheme {
  /** Scheme algorithm id (RSASSA, ECDSA, OAEP, KDF1_SP800_108, NULL, ...). */
  scheme: number;
  /** Hash algorithm of the scheme; absent when the scheme has no details. */
  hashAlg?: number;
}

/** TPMT_KEYEDHASH_SCHEME: NULL, HMAC (hashAlg) or XOR (hashAlg and kdf). */
export interface TpmtKeyedHashScheme {
  /** HMAC, XOR or NULL. */
  scheme: number;
  /** Hash algorithm (HMAC and XOR). */
  hashAlg?: number;
  /** Key derivation function (XOR only). */
  kdf?: number;
}

const HASH_SCHEMES = new Set<number>([
  TPM_ALG.RSASSA,
  TPM_ALG.RSAPSS,
  TPM_ALG.OAEP,
  TPM_ALG.ECDSA,
  TPM_ALG.ECDH,
  TPM_ALG.SM2,
  TPM_ALG.ECSCHNORR,
  TPM_ALG.ECMQV,
  TPM_ALG.MGF1,
  TPM_ALG.KDF1_SP800_56A,
  TPM_ALG.KDF2,
  TPM_ALG.KDF1_SP800_108,
  TPM_ALG.HMAC,
]);

function need(v: number | undefined, what: string): number {
  if (v === undefined) throw new ParseError("tpm.marshal", `${what} is required`);
  return v;
}

/** Codec of TPMT_SYM_DEF_OBJECT. */
export const tpmtSymDefObject: Codec<TpmtSymDefObject> = {
  read(r: Reader): TpmtSymDefObject {
    const algorithm = r.u16("TPMT_SYM_DEF_OBJECT.algorithm");
    if (algorithm === TPM_ALG.NULL) return { algorithm };
    const keyBits = r.u16("TPMT_SYM_DEF_OBJECT.keyBits");
    if (algorithm === TPM_ALG.XOR) return { algorithm, keyBits };
    return { algorithm, keyBits, mode: r.u16("TPMT_SYM_DEF_OBJECT.mode") };
  },
  write(w: Writer, s: TpmtSymDefObject): void {
    w.u16(s.algorithm);
    if (s.algorithm === TPM_ALG.NULL) return;
    w.u16(need(s.keyBits, "symmetric keyBits"));
    if (s.algorithm !== TPM_ALG.XOR) w.u16(need(s.mode, "symmetric mode"));
  },
};

/** Codec of the scheme unions whose details are TPMS_SCHEME_HASH or empty. ECDAA is refused. */
export const tpmtAsymScheme: Codec<TpmtAsymScheme> = {
  read(r: Reader): TpmtAsymScheme {
    const scheme = r.u16("scheme");
    if (scheme === TPM_ALG.NULL || scheme === TPM_ALG.RSAES) return { scheme };
    if (!HASH_SCHEMES.has(scheme)) {
      throw r.error(`unsupported scheme 0x${scheme.toString(16).padStart(4, "0")}`);
    }
    return { scheme, hashAlg: r.u16("scheme.hashAlg") };
  },
  write(w: Writer, s: TpmtAsymScheme): void {
    if (s.scheme === TPM_ALG.NULL || s.scheme === TPM_ALG.RSAES) {
      w.u16(s.scheme);
      return;
    }
    if (!HASH_SCHEMES.has(s.scheme)) {
      throw new ParseError("tpm.marshal", `unsupported scheme 0x${s.scheme.toString(16)}`);
    }
    w.u16(s.scheme).u16(need(s.hashAlg, "scheme hashAlg"));
  },
};

/** Codec of TPMT_KEYEDHASH_SCHEME. */
export const tpmtKeyedHashScheme: Codec<TpmtKeyedHashScheme> = {
  read(r: Reader): TpmtKeyedHashScheme {
    const scheme = r.u16("TPMT_KEYEDHASH_SCHEME.scheme");
    if (scheme === TPM_ALG.NULL) return { scheme };
    if (scheme === TPM_ALG.HMAC) return { scheme, hashAlg: r.u16("hashAlg") };
    if (scheme === TPM_ALG.XOR) return { scheme, hashAlg: r.u16("hashAlg"), kdf: r.u16("kdf") };
    throw r.error(`unsupported keyedhash scheme 0x${scheme.toString(16)}`);
  },
  write(w: Writer, s: TpmtKeyedHashScheme): void {
    w.u16(s.scheme);
    if (s.scheme === TPM_ALG.NULL) return;
    if (s.scheme === TPM_ALG.HMAC) {
      w.u16(need(s.hashAlg, "HMAC hashAlg"));
      return;
    }
    if (s.scheme === TPM_ALG.XOR) {
      w.u16(need(s.hashAlg, "XOR hashAlg")).u16(need(s.kdf, "XOR kdf"));
      return;
    }
    throw new ParseError("tpm.marshal", `unsupported keyedhash scheme 0x${s.scheme.toString(16)}`);
  },
};
