/**
 * AMD SEV-SNP evidence: the agent-side issuer (configfs-tsm), the evidence section schema,
 * and the pure verifier (report signature, AMD certificate chain to a pinned ARK, TCB,
 * CRL, report-data binding and appraisal policy).
 *
 * @module
 */
export {
  decodeGuestPolicy,
  parseSnpReport,
  SNP_REPORT_SIZE,
  SNP_SIGNED_LENGTH,
  type SnpGuestPolicy,
  type SnpReport,
  type SnpSigningKey,
} from "./report.ts";
export {
  AMD_ARK_PINS,
  type ArkPin,
  decodeTcb,
  productFromCpuid,
  type SnpProduct,
  type SnpTcb,
  spkiSha256,
} from "./product.ts";
export {
  decodeSnpEvidence,
  encodeSnpEvidence,
  type SnpEvidence,
  type SnpEvidenceBytes,
  snpEvidenceSchema,
} from "./evidence.ts";
export {
  evaluateSnpPolicy,
  parseSnpPolicy,
  type SnpCheckFailure,
  type SnpPolicy,
  type SnpPolicyInput,
  snpPolicySchema,
} from "./policy.ts";
export {
  type SnpReportSummary,
  type SnpVerification,
  type SnpVerifyOptions,
  verifySnpEvidence,
  verifySnpReport,
} from "./verify.ts";
export {
  buildSnpCertTable,
  certificatesFromTable,
  parseSnpCertTable,
  SnpCertGuid,
  type SnpCertTableEntry,
} from "./cert_table.ts";
export {
  denoTsmFs,
  issueSnpEvidence,
  type IssueSnpOptions,
  issueSnpReport,
  TSM_REPORT_ROOT,
  type TsmFs,
} from "./configfs_tsm.ts";
export { runSnpVerifyReport, type SnpVerifyReportInput } from "./cli.ts";
