/**
 * Part 3, 11.1 TPM2_StartAuthSession.
 *
 * @module
 */
import { defineCommand, struct, tpm2b, TPM_CC, tpmtSymDefObject, u16, u8 } from "./_deps.ts";

/** TPM2_StartAuthSession: starts an HMAC, policy or trial session. */
export const StartAuthSession = defineCommand({
  name: "TPM2_StartAuthSession",
  code: TPM_CC.StartAuthSession,
  handles: [{ name: "tpmKey", auth: false }, { name: "bind", auth: false }],
  params: struct({
    nonceCaller: tpm2b("TPM2B_NONCE", 64),
    encryptedSalt: tpm2b("TPM2B_ENCRYPTED_SECRET", 1024),
    sessionType: u8,
    symmetric: tpmtSymDefObject,
    authHash: u16,
  }),
  responseHandle: true,
  response: struct({ nonceTPM: tpm2b("TPM2B_NONCE", 64) }),
});
