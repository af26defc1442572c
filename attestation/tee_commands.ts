/**
 * CLI commands for raw TEE reports: `verify-report`, dispatching on `--type` to the
 * SEV-SNP verifier (attestation/snp/cli.ts) or the TDX verifier (attestation/tdx/cli.ts).
 *
 * @module
 */
import { z } from "zod";
import { type Command, defineCommand } from "../lib/cli.ts";
import { runSnpVerifyReport } from "./snp/cli.ts";
import { runTdxVerifyReport } from "./tdx/cli.ts";

/** `confidant verify-report`. */
export const verifyReportCommand = defineCommand({
  path: ["verify-report"],
  summary: "verify a raw SEV-SNP report or TDX quote offline",
  description: `
Prints a JSON result: ok, every failed check by name, warnings, and the report fields that
matter (measurement, TCB, policy, report data). Exit 0 when every check holds, 1 otherwise.
Without --policy only structure, signatures, certificate chain and validity are checked.
sev-snp: --report is the 1184-byte report; --certs is a PEM with the ASK (or ASVK) and ARK
as AMD's key service serves them (cert_chain); the VCEK or VLEK comes with --vcek or inside
--certs. tdx: --quote (or --report) is the quote; --collateral a directory of Intel PCS
collateral (see attestation/tdx/cli.ts).`,
  flags: [
    { name: "type", type: "string", value: "sev-snp|tdx", help: "kind of report" },
    { name: "report", type: "string", value: "FILE", help: "raw report (sev-snp) or quote (tdx)" },
    { name: "certs", type: "string", value: "PEM", help: "AMD certificate chain (sev-snp)" },
    {
      name: "vcek",
      type: "string",
      value: "FILE",
      help: "VCEK or VLEK certificate, PEM or DER (sev-snp)",
    },
    { name: "quote", type: "string", value: "FILE", help: "raw quote (tdx; same as --report)" },
    { name: "collateral", type: "string", value: "DIR", help: "Intel collateral directory (tdx)" },
    {
      name: "at",
      type: "string",
      value: "RFC3339",
      help: "check certificate validity at this time (default now)",
    },
    { name: "policy", type: "string", value: "FILE", help: "appraisal policy, YAML or JSON" },
    {
      name: "report-data",
      type: "string",
      value: "HEX",
      help: "expected REPORT_DATA, 64 bytes of hex",
    },
  ],
  examples: [
    "confidant verify-report --type sev-snp --report report.bin --certs cert_chain.pem --vcek vcek.der",
    "confidant verify-report --type sev-snp --report report.bin --certs chain.pem --policy snp.yaml --at 2025-06-01T00:00:00Z",
    "confidant verify-report --type tdx --quote quote.bin --collateral collateral/",
  ],
  schema: z.object({
    type: z.enum(["sev-snp", "tdx"]),
    report: z.string().min(1).optional(),
    quote: z.string().min(1).optional(),
    certs: z.string().min(1).optional(),
    vcek: z.string().min(1).optional(),
    collateral: z.string().min(1).optional(),
    at: z.string().optional(),
    policy: z.string().min(1).optional(),
    "report-data": z.string().optional(),
  }).refine((v) => (v.report ?? v.quote) !== undefined, {
    message: "a report file is required (--report, or --quote for tdx)",
    path: ["report"],
  }).refine((v) => v.type !== "sev-snp" || v.certs !== undefined, {
    message: "--certs is required for --type sev-snp",
    path: ["certs"],
  }),
  run(input, ctx) {
    const file = (input.report ?? input.quote)!;
    if (input.type === "sev-snp") {
      return runSnpVerifyReport({
        report: file,
        certs: input.certs!,
        vcek: input.vcek,
        at: input.at,
        policy: input.policy,
        reportData: input["report-data"],
      }, ctx);
    }
    return runTdxVerifyReport({
      quote: file,
      collateral: input.collateral,
      at: input.at,
      policy: input.policy,
      reportData: input["report-data"],
    }, ctx);
  },
});

/** Commands registered in main.ts. */
export const commands: Command[] = [verifyReportCommand as unknown as Command];
