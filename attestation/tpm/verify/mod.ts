/**
 * Pure verification primitives for TPM evidence: public keys from TPMT_PUBLIC, TPMT_SIGNATURE
 * checks, and PCR digest recomputation.
 *
 * @module
 */
export { type CurveInfo, curveInfo, eccJwk, publicKeyFromTpmt, rsaJwk } from "./public_key.ts";
export { type SignatureVerdict, verifyTpmSignature } from "./signature.ts";
export {
  computePcrDigest,
  type PcrBankSelection,
  type PcrValues,
  selectedPcrValues,
} from "./pcr_digest.ts";
