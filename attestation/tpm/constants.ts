/**
 * TPM 2.0 constants: algorithm identifiers, ECC curves, structure tags, handles and the hash
 * algorithm helpers (TPM 2.0 Library Part 2, "Constants").
 *
 * @module
 */
import { ConfidantError } from "../../lib/errors.ts";

/** TPM_ALG_ID values (Part 2, 6.3; TCG Algorithm Registry). */
export const TPM_ALG = {
  RSA: 0x0001,
  SHA1: 0x0004,
  HMAC: 0x0005,
  AES: 0x0006,
  MGF1: 0x0007,
  KEYEDHASH: 0x0008,
  XOR: 0x000a,
  SHA256: 0x000b,
  SHA384: 0x000c,
  SHA512: 0x000d,
  NULL: 0x0010,
  RSASSA: 0x0014,
  RSAES: 0x0015,
  RSAPSS: 0x0016,
  OAEP: 0x0017,
  ECDSA: 0x0018,
  ECDH: 0x0019,
  ECDAA: 0x001a,
  SM2: 0x001b,
  ECSCHNORR: 0x001c,
  ECMQV: 0x001d,
  KDF1_SP800_56A: 0x0020,
  KDF2: 0x0021,
  KDF1_SP800_108: 0x0022,
  ECC: 0x0023,
  SYMCIPHER: 0x0025,
  CTR: 0x0040,
  OFB: 0x0041,
  CBC: 0x0042,
  CFB: 0x0043,
  ECB: 0x0044,
} as const;

/** TPM_ECC_CURVE values (Part 2, 6.4). */
export const TPM_ECC_CURVE = {
  NONE: 0x0000,
  NIST_P192: 0x0001,
  NIST_P224: 0x0002,
  NIST_P256: 0x0003,
  NIST_P384: 0x0004,
  NIST_P521: 0x0005,
  BN_P256: 0x0010,
  BN_P638: 0x0011,
  SM2_P256: 0x0020,
} as const;

/** TPM_ST structure tags (Part 2, 6.9). */
export const TPM_ST = {
  RSP_COMMAND: 0x00c4,
  NULL: 0x8000,
  NO_SESSIONS: 0x8001,
  SESSIONS: 0x8002,
  ATTEST_NV: 0x8014,
  ATTEST_COMMAND_AUDIT: 0x8015,
  ATTEST_SESSION_AUDIT: 0x8016,
  ATTEST_CERTIFY: 0x8017,
  ATTEST_QUOTE: 0x8018,
  ATTEST_TIME: 0x8019,
  ATTEST_CREATION: 0x801a,
  ATTEST_NV_DIGEST: 0x801c,
  CREATION: 0x8021,
  VERIFIED: 0x8022,
  AUTH_SECRET: 0x8023,
  HASHCHECK: 0x8024,
  AUTH_SIGNED: 0x8025,
} as const;

/** TPM_GENERATED_VALUE: the magic at the start of every TPMS_ATTEST the TPM signs ("\xffTCG"). */
export const TPM_GENERATED_VALUE = 0xff544347;

/** Permanent handles TPM_RH_* and the password session TPM_RS_PW (Part 2, 7.4). */
export const TPM_RH = {
  OWNER: 0x40000001,
  NULL: 0x40000007,
  PW: 0x40000009,
  LOCKOUT: 0x4000000a,
  ENDORSEMENT: 0x4000000b,
  PLATFORM: 0x4000000c,
} as const;

/** TPMA_OBJECT bits (Part 2, 8.3). */
export const TPMA_OBJECT = {
  fixedTPM: 1 << 1,
  stClear: 1 << 2,
  fixedParent: 1 << 4,
  sensitiveDataOrigin: 1 << 5,
  userWithAuth: 1 << 6,
  adminWithPolicy: 1 << 7,
  noDA: 1 << 10,
  encryptedDuplication: 1 << 11,
  restricted: 1 << 16,
  decrypt: 1 << 17,
  sign: 1 << 18,
} as const;

/** TPMA_SESSION bits (Part 2, 8.4). */
export const TPMA_SESSION = {
  continueSession: 0x01,
  auditExclusive: 0x02,
  auditReset: 0x04,
  decrypt: 0x20,
  encrypt: 0x40,
  audit: 0x80,
} as const;

/** TPM_SE session types (Part 2, 6.11). */
export const TPM_SE = { HMAC: 0x00, POLICY: 0x01, TRIAL: 0x03 } as const;

/** TPM_CAP capability selectors (Part 2, 6.12). */
export const TPM_CAP = {
  ALGS: 0x00000000,
  HANDLES: 0x00000001,
  COMMANDS: 0x00000002,
  PCRS: 0x00000005,
  TPM_PROPERTIES: 0x00000006,
} as const;

/** TPM_PT properties used by the client (Part 2, 6.13). */
export const TPM_PT = {
  MANUFACTURER: 0x100 + 5,
  PCR_COUNT: 0x100 + 18,
  NV_BUFFER_MAX: 0x100 + 44,
} as const;

/** Well-known NV indices of EK certificates (TCG EK Credential Profile 2.x, 2.2.1.4). */
export const EK_CERT_NV_INDEX = {
  RSA2048: 0x01c00002,
  ECC_P256: 0x01c0000a,
} as const;

const HASHES: Record<number, { name: "SHA-1" | "SHA-256" | "SHA-384" | "SHA-512"; size: number }> =
  {
    [TPM_ALG.SHA1]: { name: "SHA-1", size: 20 },
    [TPM_ALG.SHA256]: { name: "SHA-256", size: 32 },
    [TPM_ALG.SHA384]: { name: "SHA-384", size: 48 },
    [TPM_ALG.SHA512]: { name: "SHA-512", size: 64 },
  };

/** Whether `alg` is one of the hash algorithms the project supports (SHA-1/256/384/512). */
export function isHashAlg(alg: number): boolean {
  return Object.hasOwn(HASHES, alg);
}

function hashInfo(alg: number) {
  if (!isHashAlg(alg)) {
    throw new ConfidantError(
      "tpm.unsupported_hash",
      `unsupported TPM hash algorithm 0x${alg.toString(16).padStart(4, "0")}`,
    );
  }
  return HASHES[alg];
}

/** Web Crypto name of a TPM hash algorithm; an unknown id is a ConfidantError `tpm.unsupported_hash`. */
export function hashAlgName(alg: number): "SHA-1" | "SHA-256" | "SHA-384" | "SHA-512" {
  return hashInfo(alg).name;
}

/** Digest size in bytes of a TPM hash algorithm; an unknown id is a ConfidantError. */
export function hashAlgSize(alg: number): number {
  return hashInfo(alg).size;
}

/** TPM_CC command codes of the commands this client implements (Part 2, 6.5.2). */
export const TPM_CC = {
  CreatePrimary: 0x00000131,
  Startup: 0x00000144,
  ActivateCredential: 0x00000147,
  NV_Read: 0x0000014e,
  PolicySecret: 0x00000151,
  Quote: 0x00000158,
  FlushContext: 0x00000165,
  NV_ReadPublic: 0x00000169,
  ReadPublic: 0x00000173,
  StartAuthSession: 0x00000176,
  GetCapability: 0x0000017a,
  GetRandom: 0x0000017b,
  PCR_Read: 0x0000017e,
  PCR_Extend: 0x00000182,
} as const;
