/**
 * Part 3, 31.6 TPM2_NV_ReadPublic.
 *
 * @module
 */
import { defineCommand, struct, tpm2b, tpm2bNvPublic, TPM_CC } from "./_deps.ts";

/** TPM2_NV_ReadPublic: public area and name of an NV index. */
export const NV_ReadPublic = defineCommand({
  name: "TPM2_NV_ReadPublic",
  code: TPM_CC.NV_ReadPublic,
  handles: [{ name: "nvIndex", auth: false }],
  params: struct({}),
  responseHandle: false,
  response: struct({ nvPublic: tpm2bNvPublic, nvName: tpm2b("TPM2B_NAME", 66) }),
});
