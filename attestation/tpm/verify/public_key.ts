/**
 * Public keys of TPM objects as node:crypto / JWK keys: RSA (modulus n, exponent e where 0
 * means 65537) and ECC on NIST P-256 / P-384 (x, y). Pure conversions; a key the verifier
 * cannot use is a ConfidantError `tpm.key`.
 *
 * @module
 */
import { createPublicKey, type JsonWebKey, type KeyObject } from "node:crypto";
import { ConfidantError } from "../../../lib/errors.ts";
import { toBase64Url } from "../../../lib/bytes.ts";
import type { TpmtPublic } from "../mod.ts";

const ALG_RSA = 0x0001;
const ALG_ECC = 0x0023;

/** What the verifier knows about a TPM_ECC_CURVE. */
export interface CurveInfo {
  /** JWK `crv`. */
  jwk: "P-256" | "P-384";
  /** OpenSSL curve name for node:crypto ECDH. */
  openssl: "prime256v1" | "secp384r1";
  /** Coordinate size in bytes. */
  size: number;
}

const CURVES: Record<number, CurveInfo> = {
  0x0003: { jwk: "P-256", openssl: "prime256v1", size: 32 },
  0x0004: { jwk: "P-384", openssl: "secp384r1", size: 48 },
};

function keyError(message: string): never {
  throw new ConfidantError("tpm.key", message);
}

/** Curve parameters of a TPM_ECC_CURVE id (NIST P-256 or P-384); others throw `tpm.key`. */
export function curveInfo(curveId: number): CurveInfo {
  if (!Object.hasOwn(CURVES, curveId)) {
    keyError(`unsupported ECC curve 0x${(curveId >>> 0).toString(16).padStart(4, "0")}`);
  }
  return CURVES[curveId];
}

function stripZeros(b: Uint8Array): Uint8Array {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  return b.subarray(i);
}

function exponentBytes(e: number): Uint8Array {
  const v = e === 0 ? 65537 : e >>> 0;
  return stripZeros(Uint8Array.of(v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff));
}

/** JWK of an RSA TPMT_PUBLIC; refuses other types, keys under 2048 bits and size mismatches. */
export function rsaJwk(pub: TpmtPublic): JsonWebKey {
  if (pub.type !== ALG_RSA) keyError("not an RSA key");
  const n = stripZeros(pub.unique.n);
  const bits = pub.parameters.keyBits;
  if (bits < 2048 || bits > 8192 || bits % 8 !== 0) keyError(`unsupported RSA key size ${bits}`);
  if (pub.unique.n.length !== bits / 8 || n.length !== bits / 8 || (n[0] & 0x80) === 0) {
    keyError("RSA modulus does not match keyBits");
  }
  const e = pub.parameters.exponent >>> 0;
  if (e !== 0 && (e < 3 || e % 2 === 0)) keyError("RSA exponent is invalid");
  return { kty: "RSA", n: toBase64Url(n), e: toBase64Url(exponentBytes(e)) };
}

/** JWK of an ECC TPMT_PUBLIC on P-256/P-384; coordinates are left-padded to the curve size. */
export function eccJwk(pub: TpmtPublic): JsonWebKey {
  if (pub.type !== ALG_ECC) keyError("not an ECC key");
  const c = curveInfo(pub.parameters.curveId);
  const pad = (b: Uint8Array) => {
    if (b.length > c.size) keyError("ECC coordinate longer than the curve size");
    const out = new Uint8Array(c.size);
    out.set(b, c.size - b.length);
    return out;
  };
  return {
    kty: "EC",
    crv: c.jwk,
    x: toBase64Url(pad(pub.unique.x)),
    y: toBase64Url(pad(pub.unique.y)),
  };
}

/** node:crypto public key of an RSA or ECC TPMT_PUBLIC (the point must be on the curve). */
export function publicKeyFromTpmt(pub: TpmtPublic): KeyObject {
  const jwk = pub.type === ALG_RSA
    ? rsaJwk(pub)
    : pub.type === ALG_ECC
    ? eccJwk(pub)
    : keyError("the key is neither RSA nor ECC");
  try {
    return createPublicKey({ key: jwk, format: "jwk" });
  } catch (e) {
    throw new ConfidantError("tpm.key", "the public key is not valid", { cause: e });
  }
}
