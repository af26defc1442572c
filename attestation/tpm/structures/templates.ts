/**
 * Key templates: the TCG EK Credential Profile default EK templates (profile 2.x, B.3.3
 * "Template L-1" RSA 2048 and "Template L-2" ECC NIST P-256) and the attestation key templates
 * confidant creates as primaries in the endorsement hierarchy.
 *
 * @module
 */
import { fromHex } from "../../../lib/bytes.ts";
import { TPM_ALG, TPM_ECC_CURVE, TPMA_OBJECT } from "../constants.ts";
import type { TpmtPublicEcc, TpmtPublicRsa } from "./public.ts";

/** PolicySecret(TPM_RH_ENDORSEMENT) policy digest (SHA-256) used by the default EK templates. */
export const EK_AUTH_POLICY_SHA256: Uint8Array = fromHex(
  "837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa",
);

/** EK attributes: fixedTPM, fixedParent, sensitiveDataOrigin, adminWithPolicy, restricted, decrypt. */
export const EK_ATTRIBUTES = TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent |
  TPMA_OBJECT.sensitiveDataOrigin | TPMA_OBJECT.adminWithPolicy | TPMA_OBJECT.restricted |
  TPMA_OBJECT.decrypt;

/** AK attributes: fixedTPM, fixedParent, sensitiveDataOrigin, userWithAuth, restricted, sign. */
export const AK_ATTRIBUTES = TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent |
  TPMA_OBJECT.sensitiveDataOrigin | TPMA_OBJECT.userWithAuth | TPMA_OBJECT.restricted |
  TPMA_OBJECT.sign;

/** TCG default EK template L-1: RSA 2048, AES-128-CFB, unique = 256 zero bytes. */
export const EK_TEMPLATE_RSA2048: TpmtPublicRsa = Object.freeze({
  type: TPM_ALG.RSA,
  nameAlg: TPM_ALG.SHA256,
  objectAttributes: EK_ATTRIBUTES,
  authPolicy: EK_AUTH_POLICY_SHA256,
  parameters: {
    symmetric: { algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB },
    scheme: { scheme: TPM_ALG.NULL },
    keyBits: 2048,
    exponent: 0,
  },
  unique: { n: new Uint8Array(256) },
});

/** TCG default EK template L-2: ECC NIST P-256, AES-128-CFB, unique = two 32-byte zero coordinates. */
export const EK_TEMPLATE_ECC_P256: TpmtPublicEcc = Object.freeze({
  type: TPM_ALG.ECC,
  nameAlg: TPM_ALG.SHA256,
  objectAttributes: EK_ATTRIBUTES,
  authPolicy: EK_AUTH_POLICY_SHA256,
  parameters: {
    symmetric: { algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB },
    scheme: { scheme: TPM_ALG.NULL },
    curveId: TPM_ECC_CURVE.NIST_P256,
    kdf: { scheme: TPM_ALG.NULL },
  },
  unique: { x: new Uint8Array(32), y: new Uint8Array(32) },
});

/** Restricted signing AK: ECC NIST P-256, ECDSA with SHA-256, nameAlg SHA-256, empty authPolicy. */
export const AK_TEMPLATE_ECC_P256: TpmtPublicEcc = Object.freeze({
  type: TPM_ALG.ECC,
  nameAlg: TPM_ALG.SHA256,
  objectAttributes: AK_ATTRIBUTES,
  authPolicy: new Uint8Array(0),
  parameters: {
    symmetric: { algorithm: TPM_ALG.NULL },
    scheme: { scheme: TPM_ALG.ECDSA, hashAlg: TPM_ALG.SHA256 },
    curveId: TPM_ECC_CURVE.NIST_P256,
    kdf: { scheme: TPM_ALG.NULL },
  },
  unique: { x: new Uint8Array(0), y: new Uint8Array(0) },
});

/** Restricted signing AK: RSA 2048, RSASSA-PKCS1-v1_5 with SHA-256, nameAlg SHA-256. */
export const AK_TEMPLATE_RSA2048: TpmtPublicRsa = Object.freeze({
  type: TPM_ALG.RSA,
  nameAlg: TPM_ALG.SHA256,
  objectAttributes: AK_ATTRIBUTES,
  authPolicy: new Uint8Array(0),
  parameters: {
    symmetric: { algorithm: TPM_ALG.NULL },
    scheme: { scheme: TPM_ALG.RSASSA, hashAlg: TPM_ALG.SHA256 },
    keyBits: 2048,
    exponent: 0,
  },
  unique: { n: new Uint8Array(0) },
});
