/**
 * Part 3, 18.4 TPM2_Quote.
 *
 * @module
 */
import {
  defineCommand,
  struct,
  tpm2b,
  TPM_CC,
  tpmlPcrSelection,
  tpmtAsymScheme,
  tpmtSignature,
  withBytes,
} from "./_deps.ts";

/** TPM2_Quote: the AK signs a TPMS_ATTEST over the selected PCRs and qualifying data. */
export const Quote = defineCommand({
  name: "TPM2_Quote",
  code: TPM_CC.Quote,
  handles: [{ name: "signHandle", auth: true }],
  params: struct({
    qualifyingData: tpm2b("TPM2B_DATA", 64),
    inScheme: tpmtAsymScheme,
    PCRselect: tpmlPcrSelection,
  }),
  responseHandle: false,
  response: struct({
    quoted: tpm2b("TPM2B_ATTEST", 4096),
    signature: withBytes(tpmtSignature),
  }),
});
