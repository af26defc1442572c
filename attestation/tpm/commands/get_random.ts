/**
 * Part 3, 16.1 TPM2_GetRandom.
 *
 * @module
 */
import { defineCommand, struct, tpm2b, TPM_CC, u16 } from "./_deps.ts";

/** TPM2_GetRandom: up to `bytesRequested` random bytes (the TPM may return fewer). */
export const GetRandom = defineCommand({
  name: "TPM2_GetRandom",
  code: TPM_CC.GetRandom,
  handles: [],
  params: struct({ bytesRequested: u16 }),
  responseHandle: false,
  response: struct({ randomBytes: tpm2b("TPM2B_DIGEST", 64) }),
});
