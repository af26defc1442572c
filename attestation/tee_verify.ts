/**
 * The TEE half of a `sev-snp` or `tdx` document: the vendor verifier (attestation/snp,
 * attestation/tdx) run on the document's `tee` section with the policy's `snp`/`tdx` section
 * and, as the expected REPORT_DATA, the layered binding
 * `teeReportData({ nonce, userData, akPublic })` over the verifier's nonce and userData and
 * the document's own AK. Pure: the clock and (for tests) the trust anchors are arguments.
 *
 * Every vendor check keeps its name under a `tee.` prefix (`tee.report.signature`,
 * `tee.ark.pin`, `tee.pck.chain.root`, `tee.policy.measurement`, …), except the vendor's
 * REPORT_DATA comparison, which is `tee.binding`: the TEE report does not vouch for this
 * nonce, userData and AK. `tee.evidence` is SEV-SNP evidence the vendor parser refuses (TDX
 * reports it as `tee.quote.parse`) and `tee.policy` a policy without the variant's section.
 *
 * @module
 */
import { ParseError } from "../lib/errors.ts";
import type { TeeDocument } from "./document.ts";
import type { Policy } from "./policy.ts";
import { type ArkPin, type SnpReportSummary, verifySnpEvidence } from "./snp/mod.ts";
import { type TdxQuoteSummary, verifyTdxEvidence } from "./tdx/mod.ts";
import { teeReportData } from "./tee_binding.ts";
import type { CheckOutcome } from "./verify.ts";

/** Trust anchors other than the vendors' (tests only; production uses the pinned roots). */
export interface TeeTrustOverrides {
  /** SEV-SNP: accepted ARK pins instead of AMD's (attestation/snp/product.ts). */
  snpArkPins?: readonly ArkPin[];
  /** TDX: DER of the root CA instead of the pinned Intel SGX Root CA. */
  tdxRootDer?: Uint8Array;
}

/** What the TEE report says, when it parsed. */
export type TeeSummary =
  | { variant: "sev-snp"; report: SnpReportSummary }
  | { variant: "tdx"; quote?: TdxQuoteSummary };

/** Outcome of {@link verifyTeeHalf}. */
export interface TeeHalfResult {
  failures: CheckOutcome[];
  warnings: CheckOutcome[];
  summary?: TeeSummary;
}

/** Input of {@link verifyTeeHalf}. */
export interface TeeHalfInput {
  /** The nonce the verifier issued. */
  nonce: Uint8Array;
  /** The userData the verifier expects. */
  userData: Uint8Array;
  /** TPM2B_PUBLIC bytes of the document's AK. */
  akPublic: Uint8Array;
  /** Clock for certificate, CRL and collateral validity. */
  now: Date;
  /** Test trust anchors. */
  trust?: TeeTrustOverrides;
}

/** The vendor's name for "REPORT_DATA differs from the expected value". */
const VENDOR_REPORT_DATA = "report_data";

function prefixed(check: string): string {
  return check === VENDOR_REPORT_DATA ? "tee.binding" : `tee.${check}`;
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Verify the `tee` section of `doc` against `policy`; never throws for bad evidence. */
export async function verifyTeeHalf(
  doc: TeeDocument,
  policy: Policy,
  input: TeeHalfInput,
): Promise<TeeHalfResult> {
  const failures: CheckOutcome[] = [];
  const warnings: CheckOutcome[] = [];
  let expected: Uint8Array;
  try {
    expected = await teeReportData({
      nonce: input.nonce,
      userData: input.userData,
      akPublic: input.akPublic,
    });
  } catch (e) {
    failures.push({ check: "tee.binding", message: messageOf(e) });
    return { failures, warnings };
  }

  if (doc.variant === "sev-snp") {
    if (!policy.snp) {
      failures.push({ check: "tee.policy", message: "the policy has no snp section" });
      return { failures, warnings };
    }
    try {
      const r = await verifySnpEvidence(doc.tee, policy.snp, {
        now: input.now,
        expectedReportData: expected,
        roots: input.trust?.snpArkPins,
      });
      for (const f of r.failures) failures.push({ check: prefixed(f.check), message: f.message });
      for (const w of r.warnings) warnings.push({ check: prefixed(w.check), message: w.message });
      return { failures, warnings, summary: { variant: "sev-snp", report: r.report } };
    } catch (e) {
      const why = e instanceof ParseError ? e.message : `malformed: ${messageOf(e)}`;
      failures.push({ check: "tee.evidence", message: why });
      return { failures, warnings };
    }
  }

  if (!policy.tdx) {
    failures.push({ check: "tee.policy", message: "the policy has no tdx section" });
    return { failures, warnings };
  }
  try {
    const r = await verifyTdxEvidence(doc.tee, policy.tdx, {
      now: input.now,
      expectedReportData: expected,
      rootDer: input.trust?.tdxRootDer,
    });
    // The TDX verifier reports unparseable input as `quote.parse`, not as an exception.
    for (const f of r.failures) failures.push({ check: prefixed(f.check), message: f.message });
    for (const w of r.warnings) {
      warnings.push({ check: w.startsWith("no ") ? "tee.collateral" : "tee.quote", message: w });
    }
    return { failures, warnings, summary: { variant: "tdx", quote: r.quote } };
  } catch (e) {
    failures.push({ check: "tee.evidence", message: `malformed: ${messageOf(e)}` });
    return { failures, warnings };
  }
}
