/**
 * The TDX section of an evidence document: the quote and, optionally, the
 * Intel collateral the verifier needs, so that verification never calls
 * Intel. Binary values are standard base64; Intel's JSON documents are kept
 * as their raw text because their signatures cover exact bytes.
 *
 * @module
 */
import { z } from "zod";

const b64 = z.string().max(2 * 1024 * 1024).regex(
  /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/,
  "must be standard base64",
);
const pem = z.string().max(64 * 1024).includes("-----BEGIN CERTIFICATE-----", {
  message: "must be PEM certificates",
});
const json = z.string().max(256 * 1024);

/** Intel PCS collateral for one quote. */
export const TdxCollateralSchema = z.object({
  /** Raw text of the TCB info response (`{"tcbInfo":{...},"signature":"..."}`). */
  tcbInfo: json.optional(),
  /** Raw text of the QE identity response (`{"enclaveIdentity":{...},"signature":"..."}`). */
  qeIdentity: json.optional(),
  /** PEM: Intel SGX TCB Signing certificate, then the root. */
  tcbInfoIssuerChain: pem.optional(),
  /** PEM: Intel SGX TCB Signing certificate, then the root. */
  qeIdentityIssuerChain: pem.optional(),
  /** DER CRL of the PCK certificate's issuing CA, base64. */
  pckCrl: b64.optional(),
  /** DER CRL of the Intel SGX Root CA, base64. */
  rootCaCrl: b64.optional(),
}).strict();
/** Collateral as carried in evidence. */
export type TdxCollateral = z.infer<typeof TdxCollateralSchema>;

/** The TDX evidence section: `{ quote: base64, collateral?: {...} }`. */
export const TdxEvidenceSchema = z.object({
  /** The quote as read from configfs-tsm `outblob`, base64. */
  quote: b64,
  collateral: TdxCollateralSchema.optional(),
}).strict();
/** A TDX evidence section. */
export type TdxEvidence = z.infer<typeof TdxEvidenceSchema>;
