/**
 * CLI commands of the attestation area: `attest`, `verify`, `debug pcrs`.
 *
 * @module
 */
import { z } from "zod";
import { type Command, defineCommand, flag } from "../lib/cli.ts";
import { atomicWriteFile } from "../lib/atomic_write.ts";
import { fromHex, toHex } from "../lib/bytes.ts";
import { ConfidantError, ExitCode } from "../lib/errors.ts";
import { MAX_DOCUMENT_BYTES } from "./document.ts";
import { DEFAULT_PCRS, issueDocument } from "./issue.ts";
import { MAX_POLICY_BYTES, parsePolicyJson } from "./policy.ts";
import { verifyDocument } from "./verify.ts";
import { hashAlgSize, Tpm, TPM_ALG } from "./tpm/mod.ts";

const BANKS: Record<string, number> = {
  sha1: TPM_ALG.SHA1,
  sha256: TPM_ALG.SHA256,
  sha384: TPM_ALG.SHA384,
  sha512: TPM_ALG.SHA512,
};

const tpmSpec = z.string().regex(
  /^(?:\/dev\/tpm(?:rm)?\d+|swtpm:[A-Za-z0-9.:[\]-]+:\d{1,5})$/,
  "must be a device path (/dev/tpmrm0) or swtpm:HOST:PORT",
);

const pcrList = z.string().regex(/^\d{1,2}(?:,\d{1,2})*$/, "must be a comma-separated list")
  .transform(
    (s) => s.split(",").map(Number),
  ).refine((l) => l.every((p) => p <= 23), "PCR indices must be 0..23");

/** RFC 3339 date-time with a zone (`Z` or `±hh:mm`), as accepted by `--at`. */
const rfc3339 = z.string().regex(
  /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})$/,
  "must be an RFC 3339 time such as 2025-06-01T00:00:00Z",
).transform((s, ctx) => {
  const d = new Date(s.toUpperCase());
  if (Number.isNaN(d.getTime())) {
    ctx.addIssue({ code: "custom", message: "is not a valid time" });
    return z.NEVER;
  }
  return d;
});

async function readFileLimited(path: string, max: number, what: string): Promise<string> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (e) {
    throw new ConfidantError("io", `cannot read ${what} ${path}: ${(e as Error).message}`);
  }
  if (info.size > max) {
    throw new ConfidantError("io", `${what} ${path} is larger than ${max} bytes`);
  }
  return await Deno.readTextFile(path);
}

/** `confidant attest`. */
export const attestCommand = defineCommand({
  path: ["attest"],
  summary: "produce a TPM attestation document (quote + PCRs + AK) for a nonce",
  description: `
Creates the EK and the AK as primaries in the endorsement hierarchy, quotes the SHA-256 PCR
bank over qualifyingData = SHA-256("confidant-attestation-v2" || u16be(len nonce) || nonce ||
u16be(len userData) || userData), reads the same PCRs, and prints the document as JSON (or writes it atomically to --out). The EK
certificate is included when the TPM has one in NV.
--tee sev-snp|tdx adds a TEE report from configfs-tsm (/sys/kernel/config/tsm/report) whose
REPORT_DATA binds the nonce, user data and the AK (a "sev-snp"/"tdx" document); --tee auto
adds it only on an SEV-SNP or TDX guest. Default: none (a "tpm" document).
Default PCRs: ${DEFAULT_PCRS.join(",")} (the measured-boot set that is stable per image).`,
  flags: [
    { name: "tpm", type: "string", value: "DEV|swtpm:HOST:PORT", help: "the TPM to use" },
    { name: "nonce", type: "string", value: "HEX", help: "verifier nonce (1..64 bytes)" },
    { name: "user-data", type: "string", value: "HEX", help: "data to bind (≤ 1024 bytes)" },
    { name: "pcrs", type: "string", value: "LIST", help: "SHA-256 PCRs to quote, e.g. 0,4,7" },
    { name: "ek", type: "string", value: "ecc|rsa", help: "EK algorithm (default ecc)" },
    {
      name: "tee",
      type: "string",
      value: "auto|sev-snp|tdx|none",
      help: "add TEE evidence (default none)",
    },
    { name: "out", type: "string", value: "FILE", help: "write the document here (mode 0644)" },
  ],
  examples: [
    "confidant attest --tpm /dev/tpmrm0 --nonce 9f86d081884c7d65 > doc.json",
    "confidant attest --tpm swtpm:127.0.0.1:2321 --nonce 0011 --user-data cafe --pcrs 0,4,7 --out doc.json",
  ],
  schema: z.object({
    tpm: tpmSpec,
    nonce: flag.hex().refine((s) => s.length >= 2 && s.length <= 128, "must be 1..64 bytes"),
    "user-data": flag.hex().refine((s) => s.length <= 2048, "must be at most 1024 bytes")
      .optional(),
    pcrs: pcrList.optional(),
    ek: z.enum(["ecc", "rsa"]).default("ecc"),
    tee: z.enum(["auto", "sev-snp", "tdx", "none"]).default("none"),
    out: z.string().min(1).optional(),
  }),
  async run(input, ctx) {
    const tpm = Tpm.open(input.tpm);
    try {
      const doc = await issueDocument(tpm, {
        nonce: fromHex(input.nonce),
        userData: fromHex(input["user-data"] ?? ""),
        pcrs: input.pcrs,
        ekAlg: input.ek,
        tee: input.tee,
      });
      const text = JSON.stringify(doc, null, 2);
      if (input.out) await atomicWriteFile(input.out, text + "\n", { mode: 0o644 });
      else ctx.out(text);
    } finally {
      await tpm.close();
    }
  },
});

/** `confidant verify`. */
export const verifyCommand = defineCommand({
  path: ["verify"],
  summary: "verify an attestation document (tpm, sev-snp, tdx) against a policy",
  description: `
Checks the document's schema, the quote's signature with the AK, the qualifying data for
--nonce/--user-data, that the quoted PCR selection and digest match the listed PCR values,
the PCR values against the policy, and that the policy trusts the AK. A "sev-snp" or "tdx"
document must also pass its TEE half: the vendor report, its certificate chain to AMD's or
Intel's pinned root and collateral, the policy's "snp"/"tdx" section, and REPORT_DATA =
teeReportData(nonce, user data, AK) (check tee.binding). The policy must accept the
document's variant ("variants", default ["tpm"]). Certificates are checked at --at (default
now). Exit 0 and a JSON result when every check holds; exit 1 listing EVERY failed check
otherwise (JSON with --json). A policy with "ak": {"ekCaCertificates": [...]} needs a live
credential activation (done by the KMS), so a stored document can only pass a pinned-AK
policy here. Policy fields and check names: attestation/README.md.

Policy examples:
  { "pcrs": { "7": { "expected": ["<64 hex>"], "warnOnly": false } },
    "ak": { "pinned": ["sha256:<hex of SHA-256 of the AK's TPM2B_PUBLIC>"] } }
  { "variants": ["sev-snp"], "ak": { "pinned": ["sha256:<hex>"] },
    "snp": { "measurements": ["<96 hex>"], "products": ["Genoa"] } }`,
  flags: [
    { name: "policy", type: "string", value: "FILE", help: "policy JSON" },
    { name: "nonce", type: "string", value: "HEX", help: "the nonce you issued" },
    { name: "user-data", type: "string", value: "HEX", help: "the userData you expect" },
    {
      name: "at",
      type: "string",
      value: "RFC3339",
      help: "check certificate validity at this time (default now)",
    },
  ],
  positionals: [{ name: "doc", help: "attestation document JSON" }],
  examples: [
    "confidant verify --policy policy.json --nonce 9f86d081884c7d65 doc.json",
    "confidant verify --policy policy.json --nonce 0011 --user-data cafe --json doc.json",
    "confidant verify --policy snp.json --nonce 0011 --at 2025-06-01T00:00:00Z doc.json",
  ],
  schema: z.object({
    policy: z.string().min(1),
    nonce: flag.hex().refine((s) => s.length <= 128, "must be at most 64 bytes"),
    "user-data": flag.hex().refine((s) => s.length <= 2048, "must be at most 1024 bytes")
      .optional(),
    at: rfc3339.optional(),
    doc: z.string().min(1),
  }),
  async run(input, ctx) {
    const policy = parsePolicyJson(
      await readFileLimited(input.policy, MAX_POLICY_BYTES, "policy"),
    );
    const text = await readFileLimited(input.doc, MAX_DOCUMENT_BYTES, "document");
    const r = await verifyDocument(text, policy, {
      nonce: fromHex(input.nonce),
      userData: fromHex(input["user-data"] ?? ""),
      now: input.at,
    });
    if (r.ok) {
      ctx.out(JSON.stringify(r, null, 2));
      return ExitCode.Ok;
    }
    if (ctx.json) {
      ctx.out(JSON.stringify(r, null, 2));
    } else {
      ctx.err(`confidant: verification failed (${r.failures.length} check(s)):`);
      for (const f of r.failures) ctx.err(`  FAIL ${f.check}: ${f.message}`);
      for (const w of r.warnings) ctx.err(`  WARN ${w.check}: ${w.message}`);
    }
    return ExitCode.Failed;
  },
});

/** `confidant debug pcrs`. */
export const debugPcrsCommand = defineCommand({
  path: ["debug", "pcrs"],
  summary: "print the TPM's PCR values",
  description: "Reads all 24 PCRs of one bank and prints index and value (JSON with --json).",
  flags: [
    { name: "tpm", type: "string", value: "DEV|swtpm:HOST:PORT", help: "the TPM to use" },
    {
      name: "bank",
      type: "string",
      value: "ALG",
      help: "sha1|sha256|sha384|sha512 (default sha256)",
    },
  ],
  examples: [
    "confidant debug pcrs --tpm /dev/tpmrm0",
    "confidant debug pcrs --tpm swtpm:127.0.0.1:2321 --bank sha1 --json",
  ],
  schema: z.object({
    tpm: tpmSpec,
    bank: z.enum(["sha1", "sha256", "sha384", "sha512"]).default("sha256"),
  }),
  async run(input, ctx) {
    const tpm = Tpm.open(input.tpm);
    try {
      const alg = BANKS[input.bank];
      const pcrs = Array.from({ length: 24 }, (_, i) => i);
      const values = (await tpm.pcrRead([{ hash: alg, pcrs }])).get(alg)!;
      const out: Record<string, string> = {};
      for (const p of pcrs) {
        const v = values.get(p);
        if (v && v.length === hashAlgSize(alg)) out[String(p)] = toHex(v);
      }
      if (ctx.json) ctx.out(JSON.stringify({ bank: input.bank, pcrs: out }));
      else for (const [k, v] of Object.entries(out)) ctx.out(`${input.bank}:${k.padStart(2)} ${v}`);
    } finally {
      await tpm.close();
    }
  },
});

/** Commands registered in main.ts. */
export const commands: Command[] = [attestCommand, verifyCommand, debugPcrsCommand];
