/**
 * Shared imports of the command descriptor files (private).
 *
 * @module
 */
export { defineCommand } from "../command.ts";
export { TPM_CC } from "../constants.ts";
export { empty, i32, sized, struct, tpm2b, u16, u32, u8, withBytes } from "../marshal.ts";
export {
  capabilityData,
  tpm2bNvPublic,
  tpm2bPublic,
  tpmlDigest,
  tpmlDigestValues,
  tpmlPcrSelection,
  tpmtAsymScheme,
  tpmtSignature,
  tpmtSymDefObject,
  tpmtTicket,
} from "../structures/mod.ts";
