/**
 * Part 3, 22.4 TPM2_PCR_Read.
 *
 * @module
 */
import { defineCommand, struct, TPM_CC, tpmlDigest, tpmlPcrSelection, u32 } from "./_deps.ts";

/** TPM2_PCR_Read: values of the selected PCRs (at most 8 digests per response). */
export const PCR_Read = defineCommand({
  name: "TPM2_PCR_Read",
  code: TPM_CC.PCR_Read,
  handles: [],
  params: struct({ pcrSelectionIn: tpmlPcrSelection }),
  responseHandle: false,
  response: struct({
    pcrUpdateCounter: u32,
    pcrSelectionOut: tpmlPcrSelection,
    pcrValues: tpmlDigest,
  }),
});
