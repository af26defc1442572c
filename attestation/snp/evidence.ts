/**
 * The SEV-SNP section of an evidence document: the raw report plus every certificate the
 * verifier needs (and optionally AMD's CRL), so verification never calls AMD.
 *
 * @module
 */
import { z } from "zod";
import { fromBase64, toBase64 } from "../../lib/bytes.ts";
import { ParseError } from "../../lib/errors.ts";
import { SNP_REPORT_SIZE } from "./report.ts";

const B64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
/** Largest certificate accepted (AMD certificates are under 2 KiB). */
export const MAX_CERT_BYTES = 16 * 1024;
/** Largest CRL accepted. */
export const MAX_CRL_BYTES = 1024 * 1024;

const b64 = (maxBytes: number) =>
  z.string().max(Math.ceil(maxBytes / 3) * 4).regex(B64_RE, "must be standard base64");

/** zod schema of the evidence section (all binary values are standard base64). */
export const snpEvidenceSchema = z.object({
  /** The 1184-byte ATTESTATION_REPORT. */
  report: b64(SNP_REPORT_SIZE).refine(
    (s) => s.length === Math.ceil(SNP_REPORT_SIZE / 3) * 4,
    `report must be ${SNP_REPORT_SIZE} bytes`,
  ),
  /** DER certificates by role; VCEK or VLEK plus its ASK/ASVK and the ARK. */
  certificates: z.object({
    vcek: b64(MAX_CERT_BYTES).optional(),
    vlek: b64(MAX_CERT_BYTES).optional(),
    ask: b64(MAX_CERT_BYTES).optional(),
    asvk: b64(MAX_CERT_BYTES).optional(),
    ark: b64(MAX_CERT_BYTES).optional(),
  }).strict(),
  /** AMD's CRL for the product (DER, signed by the ARK). */
  crl: b64(MAX_CRL_BYTES).optional(),
}).strict();

/** The evidence section as it travels (JSON). */
export type SnpEvidence = z.infer<typeof snpEvidenceSchema>;

/** The evidence section decoded to bytes. */
export interface SnpEvidenceBytes {
  report: Uint8Array;
  vcek?: Uint8Array;
  vlek?: Uint8Array;
  ask?: Uint8Array;
  asvk?: Uint8Array;
  ark?: Uint8Array;
  crl?: Uint8Array;
}

/** Validate and decode an evidence section; anything malformed is a {@link ParseError}. */
export function decodeSnpEvidence(input: unknown): SnpEvidenceBytes {
  const r = snpEvidenceSchema.safeParse(input);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new ParseError(
      "snp_evidence",
      `SEV-SNP evidence ${i.path.join(".") || "document"}: ${i.message}`,
    );
  }
  const e = r.data;
  const out: SnpEvidenceBytes = { report: fromBase64(e.report, "snp_evidence") };
  if (out.report.length !== SNP_REPORT_SIZE) {
    throw new ParseError(
      "snp_evidence",
      `SEV-SNP evidence report must be ${SNP_REPORT_SIZE} bytes`,
    );
  }
  for (const k of ["vcek", "vlek", "ask", "asvk", "ark"] as const) {
    const v = e.certificates[k];
    if (v !== undefined) out[k] = fromBase64(v, "snp_evidence");
  }
  if (e.crl !== undefined) out.crl = fromBase64(e.crl, "snp_evidence");
  return out;
}

/** Encode decoded evidence into its JSON form. */
export function encodeSnpEvidence(e: SnpEvidenceBytes): SnpEvidence {
  const certificates: SnpEvidence["certificates"] = {};
  for (const k of ["vcek", "vlek", "ask", "asvk", "ark"] as const) {
    const v = e[k];
    if (v) certificates[k] = toBase64(v);
  }
  return {
    report: toBase64(e.report),
    certificates,
    ...(e.crl ? { crl: toBase64(e.crl) } : {}),
  };
}
