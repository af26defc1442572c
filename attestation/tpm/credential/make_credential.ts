/**
 * TPM2_MakeCredential done in software (TPM 2.0 Part 1, 24 "Credential Protection"; Part 3,
 * 12.6): protect a short secret so that only the TPM holding the endorsement key `ek`, and
 * only while the object named `objectName` (the AK) is loaded in it, can recover it with
 * TPM2_ActivateCredential.
 *
 * Steps: a random seed is shared with the EK (RSA: OAEP-encrypted with label "IDENTITY";
 * ECC: an ephemeral ECDH exchange whose Z goes through KDFe with label "IDENTITY"); the seed
 * derives an AES key (KDFa "STORAGE", context = object name) that encrypts TPM2B_DIGEST(secret)
 * in CFB mode with a zero IV, and an HMAC key (KDFa "INTEGRITY") that authenticates
 * encIdentity || objectName.
 *
 * @module
 */
import {
  constants as nodeConstants,
  createECDH,
  createHmac,
  createPublicKey,
  publicEncrypt,
  randomBytes,
} from "node:crypto";
import { ConfidantError } from "../../../lib/errors.ts";
import { concat } from "../../../lib/bytes.ts";
import type { TpmtPublic } from "../mod.ts";
import { digestSize, isSupportedHash, nodeHashName } from "../verify/_hash.ts";
import { kdfa, kdfe } from "./kdf.ts";
import { aesCfbEncrypt } from "./aes_cfb.ts";
import { curveInfo, rsaJwk } from "../verify/public_key.ts";

const ALG_RSA = 0x0001;
const ALG_ECC = 0x0023;
const ALG_AES = 0x0006;
const ALG_CFB = 0x0043;
const ALG_NULL = 0x0010;
const ALG_OAEP = 0x0017;
const ALG_ECDH = 0x0019;

/**
 * The two parameters of TPM2_ActivateCredential, as the CONTENTS of their TPM2B wrappers
 * (without the u16 size), matching `Tpm.activateCredential` and `marshalCredentialFile`.
 */
export interface Credential {
  /** Contents of the TPM2B_ID_OBJECT: TPM2B_DIGEST(integrityHMAC) || encIdentity. */
  credentialBlob: Uint8Array;
  /** Contents of the TPM2B_ENCRYPTED_SECRET: OAEP ciphertext, or a TPMS_ECC_POINT. */
  encryptedSecret: Uint8Array;
}

/** Test hook: fixed seed / ephemeral key material instead of fresh randomness. */
export interface MakeCredentialRandomness {
  /** The seed for RSA EKs (digest size of the EK nameAlg). */
  seed?: Uint8Array;
  /** The ephemeral private scalar for ECC EKs (curve size). */
  ephemeralPrivate?: Uint8Array;
}

function tpm2b(b: Uint8Array): Uint8Array {
  if (b.length > 0xffff) throw new ConfidantError("tpm.credential", "field too large for TPM2B");
  const out = new Uint8Array(2 + b.length);
  out[0] = b.length >> 8;
  out[1] = b.length & 0xff;
  out.set(b, 2);
  return out;
}

function leftPad(b: Uint8Array, size: number): Uint8Array {
  if (b.length > size) throw new ConfidantError("tpm.credential", "EK point coordinate too long");
  const out = new Uint8Array(size);
  out.set(b, size - b.length);
  return out;
}

function fail(message: string): never {
  throw new ConfidantError("tpm.credential", message);
}

/** Seed and encrypted secret for an RSA EK (Part 1, B.10.3: OAEP with label "IDENTITY\0"). */
function rsaSeed(ek: Extract<TpmtPublic, { type: 0x0001 }>, rnd?: MakeCredentialRandomness) {
  const scheme = ek.parameters.scheme;
  if (scheme.scheme !== ALG_NULL && scheme.scheme !== ALG_OAEP) {
    fail("the RSA EK's scheme does not allow OAEP secret sharing");
  }
  const oaepHashAlg = scheme.scheme === ALG_OAEP && scheme.hashAlg !== undefined
    ? scheme.hashAlg
    : ek.nameAlg;
  const seed = rnd?.seed?.slice() ?? new Uint8Array(randomBytes(digestSize(ek.nameAlg)));
  const key = createPublicKey({ key: rsaJwk(ek), format: "jwk" });
  const enc = publicEncrypt(
    {
      key,
      padding: nodeConstants.RSA_PKCS1_OAEP_PADDING,
      oaepHash: nodeHashName(oaepHashAlg),
      oaepLabel: new TextEncoder().encode("IDENTITY\0"),
    },
    seed,
  );
  return { seed, secret: new Uint8Array(enc) };
}

/** Seed and encrypted secret for an ECC EK (Part 1, C.6.4: one-pass ECDH + KDFe "IDENTITY"). */
function eccSeed(ek: Extract<TpmtPublic, { type: 0x0023 }>, rnd?: MakeCredentialRandomness) {
  const scheme = ek.parameters.scheme;
  if (scheme.scheme !== ALG_NULL && scheme.scheme !== ALG_ECDH) {
    fail("the ECC EK's scheme does not allow ECDH secret sharing");
  }
  const curve = curveInfo(ek.parameters.curveId);
  const ekX = leftPad(ek.unique.x, curve.size);
  const ekY = leftPad(ek.unique.y, curve.size);
  const ecdh = createECDH(curve.openssl);
  if (rnd?.ephemeralPrivate) ecdh.setPrivateKey(rnd.ephemeralPrivate);
  else ecdh.generateKeys();
  const pub = new Uint8Array(ecdh.getPublicKey());
  const ephX = pub.subarray(1, 1 + curve.size);
  const ephY = pub.subarray(1 + curve.size);
  let z: Uint8Array;
  try {
    z = new Uint8Array(ecdh.computeSecret(concat(Uint8Array.of(4), ekX, ekY)));
  } catch (e) {
    throw new ConfidantError("tpm.credential", "the EK's ECC point is not on its curve", {
      cause: e,
    });
  }
  const bits = digestSize(ek.nameAlg) * 8;
  const seed = kdfe(ek.nameAlg, leftPad(z, curve.size), "IDENTITY", ephX, ekX, bits);
  z.fill(0);
  return { seed, secret: concat(tpm2b(ephX), tpm2b(ephY)) };
}

/**
 * MakeCredential for the EK `ek` (RSA with OAEP, or ECC with ECDH; AES-CFB symmetric),
 * binding `secret` (at most the digest size of the EK's nameAlg) to the object name
 * `objectName` (nameAlg || digest, as the TPM computes it for the AK).
 * Throws ConfidantError `tpm.credential` for unusable keys or sizes.
 */
export function makeCredential(
  ek: TpmtPublic,
  objectName: Uint8Array,
  secret: Uint8Array,
  randomness?: MakeCredentialRandomness,
): Credential {
  if (!isSupportedHash(ek.nameAlg)) fail("the EK's nameAlg is not a supported hash");
  const hashSize = digestSize(ek.nameAlg);
  if (secret.length === 0 || secret.length > hashSize) {
    fail(`the credential secret must be 1..${hashSize} bytes`);
  }
  if (objectName.length < 2) fail("the object name is too short");
  const nameAlg = (objectName[0] << 8) | objectName[1];
  if (!isSupportedHash(nameAlg) || objectName.length !== 2 + digestSize(nameAlg)) {
    fail("the object name is not nameAlg || digest of a supported hash");
  }
  if (ek.type !== ALG_RSA && ek.type !== ALG_ECC) fail("the EK is neither RSA nor ECC");
  const sym = ek.parameters.symmetric;
  if (sym.algorithm !== ALG_AES || sym.mode !== ALG_CFB) {
    fail("the EK's symmetric definition is not AES-CFB");
  }
  const keyBits = sym.keyBits ?? 0;
  if (keyBits !== 128 && keyBits !== 192 && keyBits !== 256) fail("unsupported AES key size");

  const { seed, secret: encSeed } = ek.type === ALG_RSA ? rsaSeed(ek, randomness) : eccSeed(
    ek,
    randomness,
  );
  try {
    const symKey = kdfa(ek.nameAlg, seed, "STORAGE", objectName, new Uint8Array(0), keyBits);
    const encIdentity = aesCfbEncrypt(symKey, new Uint8Array(16), tpm2b(secret));
    symKey.fill(0);
    const hmacKey = kdfa(
      ek.nameAlg,
      seed,
      "INTEGRITY",
      new Uint8Array(0),
      new Uint8Array(0),
      hashSize * 8,
    );
    const mac = createHmac(nodeHashName(ek.nameAlg), hmacKey).update(encIdentity).update(objectName)
      .digest();
    hmacKey.fill(0);
    return {
      credentialBlob: concat(tpm2b(new Uint8Array(mac)), encIdentity),
      encryptedSecret: encSeed,
    };
  } finally {
    seed.fill(0);
  }
}
