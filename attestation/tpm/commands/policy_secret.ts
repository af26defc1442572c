/**
 * Part 3, 23.4 TPM2_PolicySecret.
 *
 * @module
 */
import { defineCommand, i32, struct, tpm2b, TPM_CC, tpmtTicket } from "./_deps.ts";

/** TPM2_PolicySecret: satisfies a policy with the authorization of `authHandle`. */
export const PolicySecret = defineCommand({
  name: "TPM2_PolicySecret",
  code: TPM_CC.PolicySecret,
  handles: [{ name: "authHandle", auth: true }, { name: "policySession", auth: false }],
  params: struct({
    nonceTPM: tpm2b("TPM2B_NONCE", 64),
    cpHashA: tpm2b("TPM2B_DIGEST", 64),
    policyRef: tpm2b("TPM2B_NONCE", 64),
    expiration: i32,
  }),
  responseHandle: false,
  response: struct({ timeout: tpm2b("TPM2B_TIMEOUT", 8), policyTicket: tpmtTicket }),
});
