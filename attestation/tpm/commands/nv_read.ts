/**
 * Part 3, 31.13 TPM2_NV_Read.
 *
 * @module
 */
import { defineCommand, struct, tpm2b, TPM_CC, u16 } from "./_deps.ts";

/** TPM2_NV_Read: `size` bytes at `offset` of an NV index (at most the TPM's NV buffer). */
export const NV_Read = defineCommand({
  name: "TPM2_NV_Read",
  code: TPM_CC.NV_Read,
  handles: [{ name: "authHandle", auth: true }, { name: "nvIndex", auth: false }],
  params: struct({ size: u16, offset: u16 }),
  responseHandle: false,
  response: struct({ data: tpm2b("TPM2B_MAX_NV_BUFFER", 4096) }),
});
