/**
 * Part 3, 12.5 TPM2_ActivateCredential.
 *
 * @module
 */
import { defineCommand, struct, tpm2b, TPM_CC } from "./_deps.ts";

/** TPM2_ActivateCredential: recovers a credential bound to `activateHandle`'s name via `keyHandle`. */
export const ActivateCredential = defineCommand({
  name: "TPM2_ActivateCredential",
  code: TPM_CC.ActivateCredential,
  handles: [{ name: "activateHandle", auth: true }, { name: "keyHandle", auth: true }],
  params: struct({
    credentialBlob: tpm2b("TPM2B_ID_OBJECT", 1024),
    secret: tpm2b("TPM2B_ENCRYPTED_SECRET", 1024),
  }),
  responseHandle: false,
  response: struct({ certInfo: tpm2b("TPM2B_DIGEST", 64) }),
});
