/**
 * `confidant verify-report --type sev-snp`: verify a raw SEV-SNP report file with a KDS
 * certificate chain (and optionally a separate VCEK/VLEK and a policy), print the result as
 * JSON, exit 0 when every check holds and 1 otherwise.
 *
 * @module
 */
import { parse as parseYaml } from "yaml";
import { fromHex } from "../../lib/bytes.ts";
import type { CommandContext } from "../../lib/cli.ts";
import { ConfidantError, ExitCode, UsageError } from "../../lib/errors.ts";
import { parseCertificate, pemBlocks } from "../tee_common/mod.ts";
import type { SnpEvidenceBytes } from "./evidence.ts";
import { parseSnpPolicy, type SnpPolicy } from "./policy.ts";
import { SNP_REPORT_SIZE } from "./report.ts";
import { verifySnpReport } from "./verify.ts";

/** Input of {@link runSnpVerifyReport} (file paths and flag values). */
export interface SnpVerifyReportInput {
  /** Path of the raw report (1184 bytes; a longer file's first 1184 bytes are used, with a warning). */
  report: string;
  /** PEM with ASK (or ASVK) and ARK; may also hold the VCEK/VLEK. */
  certs: string;
  /** Path of the VCEK or VLEK, PEM or DER. */
  vcek?: string;
  /** RFC 3339 time to check validity at; default now. */
  at?: string;
  /** Path of a YAML/JSON policy (attestation/snp/README.md). */
  policy?: string;
  /** Expected REPORT_DATA, 64 bytes of hex. */
  reportData?: string;
}

async function readFile(path: string, what: string): Promise<Uint8Array> {
  try {
    return await Deno.readFile(path);
  } catch (e) {
    throw new ConfidantError("io.read", `cannot read ${what} ${path}: ${(e as Error).message}`, {
      cause: e,
    });
  }
}

/** Sort certificates into evidence roles by their AMD common names. */
export function classifyAmdCertificates(ders: Uint8Array[]): Omit<SnpEvidenceBytes, "report"> {
  const out: Omit<SnpEvidenceBytes, "report"> = {};
  for (const der of ders) {
    const cn = parseCertificate(der, "certificate").subjectCn;
    const role = cn === "SEV-VCEK"
      ? "vcek"
      : cn === "SEV-VLEK"
      ? "vlek"
      : cn.startsWith("SEV-VLEK-")
      ? "asvk"
      : cn.startsWith("SEV-")
      ? "ask"
      : cn.startsWith("ARK-")
      ? "ark"
      : undefined;
    if (!role) {
      throw new ConfidantError("snp.certs", `certificate "${cn}" is not an AMD SEV certificate`);
    }
    if (out[role]) {
      throw new ConfidantError(
        "snp.certs",
        `more than one ${role.toUpperCase()} certificate given`,
      );
    }
    out[role] = der;
  }
  return out;
}

/** Load and validate a policy file (YAML or JSON). */
export async function loadSnpPolicy(path: string): Promise<SnpPolicy> {
  const text = new TextDecoder().decode(await readFile(path, "policy"));
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new ConfidantError(
      "snp.policy",
      `policy ${path} is not YAML/JSON: ${(e as Error).message}`,
    );
  }
  return parseSnpPolicy(doc);
}

/** Run the verification; prints one JSON document and returns the exit code. */
export async function runSnpVerifyReport(
  input: SnpVerifyReportInput,
  ctx: Pick<CommandContext, "out" | "err">,
): Promise<number> {
  let now = new Date();
  if (input.at !== undefined) {
    if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(input.at)) {
      throw new UsageError(`--at must be an RFC 3339 time, e.g. 2025-06-01T00:00:00Z`);
    }
    now = new Date(input.at);
    if (Number.isNaN(now.getTime())) throw new UsageError(`--at ${input.at} is not a valid time`);
  }
  let expectedReportData: Uint8Array | undefined;
  if (input.reportData !== undefined) {
    if (!/^[0-9a-fA-F]{128}$/.test(input.reportData)) {
      throw new UsageError("--report-data must be 64 bytes of hex");
    }
    expectedReportData = fromHex(input.reportData);
  }
  const policy = input.policy !== undefined ? await loadSnpPolicy(input.policy) : undefined;
  let report = await readFile(input.report, "report");
  const extraWarnings = [];
  if (report.length < SNP_REPORT_SIZE) {
    throw new ConfidantError(
      "parse.snp_report",
      `report ${input.report} has ${report.length} bytes, fewer than ${SNP_REPORT_SIZE}`,
    );
  }
  if (report.length > SNP_REPORT_SIZE) {
    extraWarnings.push({
      check: "report.trailing",
      message: `report file has ${
        report.length - SNP_REPORT_SIZE
      } bytes after the report; they were ignored`,
    });
    report = report.subarray(0, SNP_REPORT_SIZE);
  }
  const chainText = new TextDecoder().decode(await readFile(input.certs, "certificate chain"));
  const ders = pemBlocks(chainText, "CERTIFICATE", "certs");
  if (ders.length === 0) {
    throw new ConfidantError("snp.certs", `${input.certs} holds no PEM certificate`);
  }
  if (input.vcek !== undefined) {
    const raw = await readFile(input.vcek, "VCEK");
    const text = new TextDecoder().decode(raw.subarray(0, 64));
    ders.push(
      text.includes("-----BEGIN")
        ? pemBlocks(new TextDecoder().decode(raw))[0] ?? new Uint8Array()
        : raw,
    );
  }
  const certs = classifyAmdCertificates(ders);
  const result = await verifySnpReport({ report, ...certs }, policy, { now, expectedReportData });
  result.warnings.push(...extraWarnings);
  ctx.out(JSON.stringify(result, null, 2));
  return result.ok ? ExitCode.Ok : ExitCode.Failed;
}
