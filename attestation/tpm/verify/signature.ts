/**
 * Verification of a TPMT_SIGNATURE (Part 2, 11.3.4) over a message — in attestation the raw
 * TPMS_ATTEST bytes — with the key of a TPMT_PUBLIC: RSASSA-PKCS1-v1_5, RSA-PSS (any salt
 * length) and ECDSA on P-256/P-384. Pure; returns a verdict with a reason instead of throwing.
 *
 * @module
 */
import { constants as nodeConstants, verify as nodeVerify } from "node:crypto";
import type { TpmtPublic, TpmtSignature } from "../mod.ts";
import { ConfidantError } from "../../../lib/errors.ts";
import { isSupportedHash, nodeHashName } from "./_hash.ts";
import { type CurveInfo, curveInfo, eccJwk, publicKeyFromTpmt } from "./public_key.ts";
import { type EcdsaHash, verifyEcdsa } from "../../../lib/crypto/mod.ts";

const ALG = {
  RSA: 0x0001,
  SHA1: 0x0004,
  NULL: 0x0010,
  RSASSA: 0x0014,
  RSAPSS: 0x0016,
  ECDSA: 0x0018,
  ECC: 0x0023,
} as const;

/** Outcome of {@link verifyTpmSignature}. */
export interface SignatureVerdict {
  /** The signature is valid for the message and key. */
  ok: boolean;
  /** Why not, when `ok` is false. */
  reason?: string;
}

function no(reason: string): SignatureVerdict {
  return { ok: false, reason };
}

function trimmed(b: Uint8Array): Uint8Array {
  let i = 0;
  while (i < b.length && b[i] === 0) i++;
  return b.subarray(i);
}

const ECDSA_HASH: Record<number, EcdsaHash> = {
  0x000b: "SHA-256",
  0x000c: "SHA-384",
  0x000d: "SHA-512",
};

/** Why the key of `pub` is unusable (as {@link publicKeyFromTpmt} says), or null. */
function keyProblem(pub: TpmtPublic): string | null {
  try {
    publicKeyFromTpmt(pub);
    return null;
  } catch (e) {
    if (e instanceof ConfidantError) return e.message;
    throw e;
  }
}

/**
 * ECDSA with an ECC key through lib/crypto's `verifyEcdsa` (OpenSSL's libcrypto: the KMS
 * checks one quote per admission, and node:crypto's key import costs more than the
 * verification). The verdicts and reasons are those of the node:crypto path: the key is only
 * parsed with node:crypto when the check fails, to name an unusable key as before.
 */
function verifyEcdsaQuote(
  pub: Extract<TpmtPublic, { type: 0x0023 }>,
  message: Uint8Array,
  sig: Extract<TpmtSignature, { sigAlg: 0x0018 }>,
): SignatureVerdict {
  let curve: CurveInfo;
  try {
    curve = curveInfo(pub.parameters.curveId);
    eccJwk(pub); // coordinate sizes
  } catch (e) {
    if (e instanceof ConfidantError) return no(e.message);
    throw e;
  }
  const hash = ECDSA_HASH[sig.hash];
  const size = curve.size;
  const r = trimmed(sig.r);
  const s = trimmed(sig.s);
  if (r.length === 0 || s.length === 0 || r.length > size || s.length > size || !hash) {
    return no(keyProblem(pub) ?? "the ECDSA signature values are out of range");
  }
  let ok: boolean;
  try {
    ok = verifyEcdsa({
      curve: curve.jwk,
      hash,
      publicKey: { x: pub.unique.x, y: pub.unique.y },
      r,
      s,
      message,
    });
  } catch (e) {
    return no(`the signature cannot be checked: ${e instanceof Error ? e.message : String(e)}`);
  }
  return ok ? { ok } : no(keyProblem(pub) ?? "the ECDSA signature does not verify");
}

/**
 * Check `sig` over `message` with the key `pub`. The signature algorithm must fit the key
 * type and, when the key carries a signing scheme, match it exactly (scheme and hash).
 * SHA-1 signatures are refused.
 */
export function verifyTpmSignature(
  pub: TpmtPublic,
  message: Uint8Array,
  sig: TpmtSignature,
): SignatureVerdict {
  if (sig.sigAlg === ALG.NULL) return no("the signature is empty (TPM_ALG_NULL)");
  if (pub.type !== ALG.RSA && pub.type !== ALG.ECC) return no("the key is neither RSA nor ECC");
  const hash = sig.hash;
  if (!isSupportedHash(hash)) return no(`unsupported signature hash 0x${hash.toString(16)}`);
  if (hash === ALG.SHA1) return no("SHA-1 signatures are not accepted");
  const keyScheme = pub.parameters.scheme;
  if (keyScheme.scheme !== ALG.NULL) {
    if (keyScheme.scheme !== sig.sigAlg || keyScheme.hashAlg !== hash) {
      return no("the signature scheme differs from the key's scheme");
    }
  }
  if (sig.sigAlg === ALG.ECDSA && pub.type === ALG.ECC) return verifyEcdsaQuote(pub, message, sig);
  let key;
  try {
    key = publicKeyFromTpmt(pub);
  } catch (e) {
    if (e instanceof ConfidantError) return no(e.message);
    throw e;
  }
  const name = nodeHashName(hash);
  try {
    if (sig.sigAlg === ALG.RSASSA || sig.sigAlg === ALG.RSAPSS) {
      if (pub.type !== ALG.RSA) return no("an RSA signature from a non-RSA key");
      if (sig.sig.length !== pub.parameters.keyBits / 8) {
        return no("the RSA signature length differs from the modulus length");
      }
      const ok = nodeVerify(
        name,
        message,
        sig.sigAlg === ALG.RSASSA ? { key, padding: nodeConstants.RSA_PKCS1_PADDING } : {
          key,
          padding: nodeConstants.RSA_PKCS1_PSS_PADDING,
          saltLength: nodeConstants.RSA_PSS_SALTLEN_AUTO,
        },
        sig.sig,
      );
      return ok ? { ok } : no("the RSA signature does not verify");
    }
    if (sig.sigAlg === ALG.ECDSA) {
      // ECC keys took the libcrypto path above.
      return no("an ECDSA signature from a non-ECC key");
    }
  } catch (e) {
    return no(`the signature cannot be checked: ${e instanceof Error ? e.message : String(e)}`);
  }
  return no(`unsupported signature algorithm 0x${(sig as { sigAlg: number }).sigAlg.toString(16)}`);
}
