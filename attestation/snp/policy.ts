/**
 * The appraisal policy for SEV-SNP reports (a zod schema) and its pure evaluation against
 * a parsed report. Each rule that fails is reported by a stable check name.
 *
 * @module
 */
import { z } from "zod";
import { toHex } from "../../lib/bytes.ts";
import { ConfidantError } from "../../lib/errors.ts";
import { decodeTcb, type SnpProduct, type SnpTcb } from "./product.ts";
import { decodeGuestPolicy, type SnpReport } from "./report.ts";

const hexBytes = (n: number) =>
  z.string().regex(new RegExp(`^[0-9a-fA-F]{${2 * n}}$`), `must be ${n} bytes of hex`)
    .transform((s) => s.toLowerCase());
const svn = z.number().int().min(0).max(255);

/** zod schema of an SEV-SNP appraisal policy (see attestation/snp/README.md). */
export const snpPolicySchema = z.object({
  /** Accepted launch measurements (48-byte hex). Absent: any measurement. */
  measurements: z.array(hexBytes(48)).min(1).optional(),
  /** Accept guests whose policy allows debugging (bit 19). Default false. */
  allowDebug: z.boolean().default(false),
  /** Accept guests whose policy allows SMT (bit 16). Default true. */
  allowSmt: z.boolean().default(true),
  /** Accept guests whose policy allows a migration agent (bit 18). Default false. */
  allowMigrateMa: z.boolean().default(false),
  /** Require the single-socket policy bit (bit 20). Default false. */
  requireSingleSocket: z.boolean().default(false),
  /** Accepted VMPLs the report was requested at. Absent: any. */
  allowedVmpls: z.array(z.number().int().min(0).max(3)).min(1).optional(),
  /** Minimum reported TCB (each field compared separately; `fmc` applies to Turin only). */
  minTcb: z.object({
    bootloader: svn.optional(),
    tee: svn.optional(),
    snp: svn.optional(),
    microcode: svn.optional(),
    fmc: svn.optional(),
  }).strict().optional(),
  /** Minimum guest SVN. */
  minGuestSvn: z.number().int().min(0).max(0xffffffff).optional(),
  /** Minimum ABI version the guest policy requires. */
  minAbi: z.object({ major: svn, minor: svn }).strict().optional(),
  /** Required HOST_DATA (32-byte hex). */
  hostData: hexBytes(32).optional(),
  /** Accepted ID_KEY_DIGESTs (48-byte hex). */
  idKeyDigests: z.array(hexBytes(48)).min(1).optional(),
  /** Accepted AUTHOR_KEY_DIGESTs (48-byte hex). */
  authorKeyDigests: z.array(hexBytes(48)).min(1).optional(),
  /** Accepted signing keys. Default both. */
  signingKeys: z.array(z.enum(["vcek", "vlek"])).min(1).default(["vcek", "vlek"]),
  /** Accepted product lines. Absent: any pinned product. */
  products: z.array(z.enum(["Milan", "Genoa", "Turin"])).min(1).optional(),
  /** Lowest accepted report version. Default 2. */
  minReportVersion: z.number().int().min(2).max(5).default(2),
  /** Refuse evidence that carries no CRL. Default false. */
  requireCrl: z.boolean().default(false),
}).strict();

/** A validated policy (defaults applied). */
export type SnpPolicy = z.infer<typeof snpPolicySchema>;
/** A policy as written in a file (defaults optional). */
export type SnpPolicyInput = z.input<typeof snpPolicySchema>;

/** One failed check. */
export interface SnpCheckFailure {
  /** Stable name, e.g. `report.signature`, `policy.debug`. */
  check: string;
  message: string;
}

/** Evaluate `policy` against `report`; `product` is the product the chain established. */
export function evaluateSnpPolicy(
  report: SnpReport,
  policy: SnpPolicy,
  product: SnpProduct | undefined,
): SnpCheckFailure[] {
  const out: SnpCheckFailure[] = [];
  const fail = (check: string, message: string) => out.push({ check, message });
  const gp = decodeGuestPolicy(report.policy);
  const measurement = toHex(report.measurement);
  if (policy.measurements && !policy.measurements.includes(measurement)) {
    fail("policy.measurement", `measurement ${measurement} is not in the allowlist`);
  }
  if (gp.debug && !policy.allowDebug) {
    fail("policy.debug", "guest policy allows debugging (bit 19)");
  }
  if (gp.smt && !policy.allowSmt) fail("policy.smt", "guest policy allows SMT (bit 16)");
  if (gp.migrateMa && !policy.allowMigrateMa) {
    fail("policy.migrate_ma", "guest policy allows a migration agent (bit 18)");
  }
  if (policy.requireSingleSocket && !gp.singleSocket) {
    fail("policy.single_socket", "guest policy does not require a single socket (bit 20)");
  }
  if (policy.allowedVmpls && !policy.allowedVmpls.includes(report.vmpl)) {
    fail(
      "policy.vmpl",
      `report VMPL ${report.vmpl} is not one of ${policy.allowedVmpls.join(", ")}`,
    );
  }
  if (policy.minTcb) {
    if (!product) {
      fail("policy.min_tcb", "the product is unknown, so the TCB cannot be decoded");
    } else {
      const tcb: SnpTcb = decodeTcb(report.reportedTcb, product);
      const low: string[] = [];
      for (const k of ["bootloader", "tee", "snp", "microcode", "fmc"] as const) {
        const min = policy.minTcb[k];
        if (min === undefined) continue;
        const have = tcb[k];
        if (have === undefined) continue; // fmc on a product without it
        if (have < min) low.push(`${k} ${have} < ${min}`);
      }
      if (low.length) fail("policy.min_tcb", `reported TCB below minimum: ${low.join(", ")}`);
    }
  }
  if (policy.minGuestSvn !== undefined && report.guestSvn < policy.minGuestSvn) {
    fail("policy.guest_svn", `guest SVN ${report.guestSvn} < ${policy.minGuestSvn}`);
  }
  if (policy.minAbi) {
    const { major, minor } = policy.minAbi;
    if (gp.abiMajor < major || (gp.abiMajor === major && gp.abiMinor < minor)) {
      fail("policy.abi", `guest ABI ${gp.abiMajor}.${gp.abiMinor} < ${major}.${minor}`);
    }
  }
  if (policy.hostData !== undefined && toHex(report.hostData) !== policy.hostData) {
    fail("policy.host_data", `HOST_DATA ${toHex(report.hostData)} is not the expected value`);
  }
  if (policy.idKeyDigests && !policy.idKeyDigests.includes(toHex(report.idKeyDigest))) {
    fail("policy.id_key_digest", `ID_KEY_DIGEST ${toHex(report.idKeyDigest)} is not accepted`);
  }
  if (
    policy.authorKeyDigests && !policy.authorKeyDigests.includes(toHex(report.authorKeyDigest))
  ) {
    fail(
      "policy.author_key_digest",
      `AUTHOR_KEY_DIGEST ${toHex(report.authorKeyDigest)} is not accepted`,
    );
  }
  if (
    report.signingKey !== "vcek" && report.signingKey !== "vlek" ||
    !policy.signingKeys.includes(report.signingKey)
  ) {
    fail("policy.signing_key", `signing key ${report.signingKey} is not accepted`);
  }
  if (policy.products && (!product || !policy.products.includes(product))) {
    fail("policy.product", `product ${product ?? "unknown"} is not accepted`);
  }
  if (report.version < policy.minReportVersion) {
    fail("policy.report_version", `report version ${report.version} < ${policy.minReportVersion}`);
  }
  return out;
}

/** Validate a policy document (e.g. parsed from YAML/JSON); invalid is a `snp.policy` error. */
export function parseSnpPolicy(input: unknown): SnpPolicy {
  const r = snpPolicySchema.safeParse(input);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new ConfidantError(
      "snp.policy",
      `SEV-SNP policy ${i.path.join(".") || "document"}: ${i.message}`,
    );
  }
  return r.data;
}
