/**
 * Intel TDX evidence: quote parsing, verification against the pinned Intel
 * SGX Root CA and Intel collateral, the verifier policy, and quote issuing
 * through configfs-tsm.
 *
 * @module
 */
export {
  BODY_V15_BYTES,
  BODY_V4_BYTES,
  MAX_QUOTE_BYTES,
  parseTdxQuote,
  type QeReport,
  type TdxQuote,
  type TdxQuoteHeader,
  type TdxReportBody,
} from "./quote.ts";
export {
  type CheckFailure,
  INTEL_SGX_ROOT_CA_DER,
  INTEL_SGX_ROOT_CA_SPKI_SHA256,
} from "./intel_pki.ts";
export { type PckExtensions, pckExtensions, SGX_EXTENSION_OID } from "./pck_extensions.ts";
export {
  parseQeIdentity,
  parseTcbInfo,
  type QeIdentity,
  type TcbStatus,
  TcbStatusSchema,
  type TdxTcbInfo,
} from "./collateral.ts";
export { evaluateQeIdentity, evaluateTdxTcb, type TdxTcbEvaluation } from "./tcb.ts";
export { type TdxPolicy, type TdxPolicyInput, TdxPolicySchema } from "./policy.ts";
export {
  type TdxCollateral,
  TdxCollateralSchema,
  type TdxEvidence,
  TdxEvidenceSchema,
} from "./evidence.ts";
export {
  summarizeTdxQuote,
  type TdxQuoteSummary,
  type TdxVerifyOptions,
  type TdxVerifyResult,
  verifyTdxEvidence,
  verifyTdxQuote,
} from "./verify.ts";
export {
  ConfigfsTsm,
  type ConfigfsTsmOptions,
  denoTsmFs,
  type TdxQuoteProvider,
  TSM_REPORT_ROOT,
  type TsmFs,
} from "./configfs_tsm.ts";
export { issueTdxEvidence } from "./issue.ts";
export {
  COLLATERAL_FILES,
  readTdxCollateralDir,
  readTdxPolicy,
  runTdxVerifyReport,
  type TdxVerifyReportInput,
} from "./cli.ts";
