/**
 * Part 3, 22.2 TPM2_PCR_Extend.
 *
 * @module
 */
import { defineCommand, empty, struct, TPM_CC, tpmlDigestValues } from "./_deps.ts";

/** TPM2_PCR_Extend: extends one PCR in each bank named by `digests`. */
export const PCR_Extend = defineCommand({
  name: "TPM2_PCR_Extend",
  code: TPM_CC.PCR_Extend,
  handles: [{ name: "pcrHandle", auth: true }],
  params: struct({ digests: tpmlDigestValues }),
  responseHandle: false,
  response: empty,
});
