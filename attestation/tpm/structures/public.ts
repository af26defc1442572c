/**
 * TPMT_PUBLIC and TPM2B_PUBLIC (Part 2, 12.2.4 and 12.2.5): the public area of a TPM object,
 * a union over the object type (RSA, ECC, KEYEDHASH, SYMCIPHER).
 *
 * @module
 */
import {
  type Codec,
  decode,
  encode,
  ParseError,
  type Reader,
  TPM_ALG,
  type Writer,
} from "./_deps.ts";
import {
  type TpmtAsymScheme,
  tpmtAsymScheme,
  type TpmtKeyedHashScheme,
  tpmtKeyedHashScheme,
  type TpmtSymDefObject,
  tpmtSymDefObject,
} from "./schemes.ts";

/** Largest digest (authPolicy, keyed-hash unique) accepted: SHA-512. */
export const MAX_DIGEST = 64;
/** Largest RSA modulus accepted (bytes; 8192-bit keys). */
export const MAX_RSA_BYTES = 1024;
/** Largest ECC coordinate accepted (bytes; P-521 needs 66). */
export const MAX_ECC_BYTES = 128;

interface PublicCommon {
  /** Name algorithm (TPM_ALG_ID). */
  nameAlg: number;
  /** TPMA_OBJECT bits. */
  objectAttributes: number;
  /** Policy digest that authorises use (may be empty). */
  authPolicy: Uint8Array;
}

/** An RSA public area. */
export interface TpmtPublicRsa extends PublicCommon {
  /** TPM_ALG_RSA. */
  type: 0x0001;
  /** TPMS_RSA_PARMS. */
  parameters: {
    symmetric: TpmtSymDefObject;
    scheme: TpmtAsymScheme;
    keyBits: number;
    /** 0 means the default 65537. */
    exponent: number;
  };
  /** The modulus. */
  unique: { n: Uint8Array };
}

/** An ECC public area. */
export interface TpmtPublicEcc extends PublicCommon {
  /** TPM_ALG_ECC. */
  type: 0x0023;
  /** TPMS_ECC_PARMS. */
  parameters: {
    symmetric: TpmtSymDefObject;
    scheme: TpmtAsymScheme;
    curveId: number;
    kdf: TpmtAsymScheme;
  };
  /** The public point. */
  unique: { x: Uint8Array; y: Uint8Array };
}

/** A KEYEDHASH (HMAC key or sealed data) public area. */
export interface TpmtPublicKeyedHash extends PublicCommon {
  /** TPM_ALG_KEYEDHASH. */
  type: 0x0008;
  /** TPMS_KEYEDHASH_PARMS. */
  parameters: { scheme: TpmtKeyedHashScheme };
  /** Digest of the sensitive data. */
  unique: { digest: Uint8Array };
}

/** A SYMCIPHER public area. */
export interface TpmtPublicSymCipher extends PublicCommon {
  /** TPM_ALG_SYMCIPHER. */
  type: 0x0025;
  /** TPMS_SYMCIPHER_PARMS. */
  parameters: { symmetric: TpmtSymDefObject };
  /** Digest of the sensitive data. */
  unique: { digest: Uint8Array };
}

/** TPMT_PUBLIC, discriminated by `type`. */
export type TpmtPublic =
  | TpmtPublicRsa
  | TpmtPublicEcc
  | TpmtPublicKeyedHash
  | TpmtPublicSymCipher;

/** Codec of TPMT_PUBLIC. */
export const tpmtPublic: Codec<TpmtPublic> = {
  read(r: Reader): TpmtPublic {
    const type = r.u16("TPMT_PUBLIC.type");
    const nameAlg = r.u16("TPMT_PUBLIC.nameAlg");
    const objectAttributes = r.u32("TPMT_PUBLIC.objectAttributes");
    const authPolicy = r.tpm2b("TPMT_PUBLIC.authPolicy", MAX_DIGEST);
    const common = { nameAlg, objectAttributes, authPolicy };
    switch (type) {
      case TPM_ALG.RSA: {
        const symmetric = tpmtSymDefObject.read(r);
        const scheme = tpmtAsymScheme.read(r);
        const keyBits = r.u16("TPMS_RSA_PARMS.keyBits");
        const exponent = r.u32("TPMS_RSA_PARMS.exponent");
        const n = r.tpm2b("TPM2B_PUBLIC_KEY_RSA", MAX_RSA_BYTES);
        return {
          type: TPM_ALG.RSA,
          ...common,
          parameters: { symmetric, scheme, keyBits, exponent },
          unique: { n },
        };
      }
      case TPM_ALG.ECC: {
        const symmetric = tpmtSymDefObject.read(r);
        const scheme = tpmtAsymScheme.read(r);
        const curveId = r.u16("TPMS_ECC_PARMS.curveID");
        const kdf = tpmtAsymScheme.read(r);
        const x = r.tpm2b("TPMS_ECC_POINT.x", MAX_ECC_BYTES);
        const y = r.tpm2b("TPMS_ECC_POINT.y", MAX_ECC_BYTES);
        return {
          type: TPM_ALG.ECC,
          ...common,
          parameters: { symmetric, scheme, curveId, kdf },
          unique: { x, y },
        };
      }
      case TPM_ALG.KEYEDHASH: {
        const scheme = tpmtKeyedHashScheme.read(r);
        const digest = r.tpm2b("TPM2B_DIGEST", MAX_DIGEST);
        return { type: TPM_ALG.KEYEDHASH, ...common, parameters: { scheme }, unique: { digest } };
      }
      case TPM_ALG.SYMCIPHER: {
        const symmetric = tpmtSymDefObject.read(r);
        const digest = r.tpm2b("TPM2B_DIGEST", MAX_DIGEST);
        return {
          type: TPM_ALG.SYMCIPHER,
          ...common,
          parameters: { symmetric },
          unique: { digest },
        };
      }
      default:
        throw r.error(`unsupported TPMT_PUBLIC type 0x${type.toString(16).padStart(4, "0")}`);
    }
  },
  write(w: Writer, p: TpmtPublic): void {
    w.u16(p.type).u16(p.nameAlg).u32(p.objectAttributes).tpm2b(p.authPolicy, "authPolicy");
    switch (p.type) {
      case TPM_ALG.RSA:
        tpmtSymDefObject.write(w, p.parameters.symmetric);
        tpmtAsymScheme.write(w, p.parameters.scheme);
        w.u16(p.parameters.keyBits).u32(p.parameters.exponent).tpm2b(p.unique.n, "n");
        return;
      case TPM_ALG.ECC:
        tpmtSymDefObject.write(w, p.parameters.symmetric);
        tpmtAsymScheme.write(w, p.parameters.scheme);
        w.u16(p.parameters.curveId);
        tpmtAsymScheme.write(w, p.parameters.kdf);
        w.tpm2b(p.unique.x, "x").tpm2b(p.unique.y, "y");
        return;
      case TPM_ALG.KEYEDHASH:
        tpmtKeyedHashScheme.write(w, p.parameters.scheme);
        w.tpm2b(p.unique.digest, "digest");
        return;
      case TPM_ALG.SYMCIPHER:
        tpmtSymDefObject.write(w, p.parameters.symmetric);
        w.tpm2b(p.unique.digest, "digest");
        return;
      default:
        throw new ParseError("tpm.marshal", "unsupported TPMT_PUBLIC type");
    }
  },
};

/** Codec of TPM2B_PUBLIC (u16 size + TPMT_PUBLIC, exactly consumed). */
export const tpm2bPublic: Codec<TpmtPublic> = {
  read(r: Reader): TpmtPublic {
    const n = r.u16("TPM2B_PUBLIC.size");
    if (n === 0) throw r.error("empty TPM2B_PUBLIC");
    const sub = r.sub(n, "TPM2B_PUBLIC");
    const p = tpmtPublic.read(sub);
    sub.end("TPMT_PUBLIC");
    return p;
  },
  write(w: Writer, p: TpmtPublic): void {
    w.tpm2b(encode(tpmtPublic, p), "TPM2B_PUBLIC");
  },
};

/** Parses a TPMT_PUBLIC occupying the whole buffer. */
export function unmarshalTpmtPublic(b: Uint8Array): TpmtPublic {
  return decode(tpmtPublic, b, "tpm.public");
}

/** Encodes a TPMT_PUBLIC. */
export function marshalTpmtPublic(p: TpmtPublic): Uint8Array {
  return encode(tpmtPublic, p);
}

/**
 * Parses a TPM2B_PUBLIC occupying the whole buffer (e.g. `tpm2_createak -u` output), returning
 * the structure and the exact TPMT_PUBLIC bytes inside it (what the object's name hashes).
 */
export function unmarshalTpm2bPublic(b: Uint8Array): { public: TpmtPublic; tpmtBytes: Uint8Array } {
  const p = decode(tpm2bPublic, b, "tpm.public");
  return { public: p, tpmtBytes: b.slice(2) };
}

/** Encodes a TPM2B_PUBLIC. */
export function marshalTpm2bPublic(p: TpmtPublic): Uint8Array {
  return encode(tpm2bPublic, p);
}
