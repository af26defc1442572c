/**
 * `confidant verify-report --type tdx --quote QUOTE.bin [--collateral DIR]
 * [--at RFC3339] [--policy FILE]`: verify a raw TDX quote offline.
 *
 * The collateral directory may hold any of these files (all optional):
 *   tcb_info.json                 Intel PCS TCB info response, as downloaded
 *   qe_identity.json              Intel PCS QE identity response, as downloaded
 *   tcb_info_issuer_chain.pem     TCB Signing cert + root (TCB-Info-Issuer-Chain)
 *   qe_identity_issuer_chain.pem  TCB Signing cert + root (SGX-Enclave-Identity-Issuer-Chain)
 *   pck_crl.der                   CRL of the PCK certificate's issuing CA (DER)
 *   root_ca_crl.der               CRL of the Intel SGX Root CA (DER)
 *
 * @module
 */
import { parse as parseYaml } from "yaml";
import { fromHex, toBase64 } from "../../lib/bytes.ts";
import { ConfidantError, ExitCode, UsageError } from "../../lib/errors.ts";
import type { CommandContext } from "../../lib/cli.ts";
import { MAX_QUOTE_BYTES } from "./quote.ts";
import type { TdxCollateral } from "./evidence.ts";
import { type TdxPolicy, TdxPolicySchema } from "./policy.ts";
import { verifyTdxQuote } from "./verify.ts";

/** Input of {@link runTdxVerifyReport} (the validated flags of `verify-report`). */
export interface TdxVerifyReportInput {
  /** Path of the raw quote. */
  quote: string;
  /** Collateral directory (layout in this module's doc). */
  collateral?: string;
  /** Verification time, RFC 3339; default now. */
  at?: string;
  /** Policy file, JSON or YAML ({@link TdxPolicySchema}). */
  policy?: string;
  /** Expected REPORTDATA, 64 bytes of hex. */
  reportData?: string;
}

/** File names of the collateral directory, by collateral field. */
export const COLLATERAL_FILES = {
  tcbInfo: "tcb_info.json",
  qeIdentity: "qe_identity.json",
  tcbInfoIssuerChain: "tcb_info_issuer_chain.pem",
  qeIdentityIssuerChain: "qe_identity_issuer_chain.pem",
  pckCrl: "pck_crl.der",
  rootCaCrl: "root_ca_crl.der",
} as const;

async function readOptional(path: string): Promise<Uint8Array | undefined> {
  try {
    return await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw new ConfidantError("io.read", `cannot read ${path}: ${(e as Error).message}`, {
      cause: e,
    });
  }
}

/** Read a collateral directory laid out as {@link COLLATERAL_FILES}. */
export async function readTdxCollateralDir(dir: string): Promise<TdxCollateral> {
  const st = await Deno.stat(dir).catch(() => undefined);
  if (!st?.isDirectory) throw new ConfidantError("io.read", `${dir} is not a directory`);
  const out: TdxCollateral = {};
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  const f = COLLATERAL_FILES;
  const t = await readOptional(`${dir}/${f.tcbInfo}`);
  if (t) out.tcbInfo = text(t);
  const q = await readOptional(`${dir}/${f.qeIdentity}`);
  if (q) out.qeIdentity = text(q);
  const tc = await readOptional(`${dir}/${f.tcbInfoIssuerChain}`);
  if (tc) out.tcbInfoIssuerChain = text(tc);
  const qc = await readOptional(`${dir}/${f.qeIdentityIssuerChain}`);
  if (qc) out.qeIdentityIssuerChain = text(qc);
  const pc = await readOptional(`${dir}/${f.pckCrl}`);
  if (pc) out.pckCrl = toBase64(pc);
  const rc = await readOptional(`${dir}/${f.rootCaCrl}`);
  if (rc) out.rootCaCrl = toBase64(rc);
  return out;
}

/** Read and validate a policy file (JSON or YAML). */
export async function readTdxPolicy(path: string): Promise<TdxPolicy> {
  let doc: unknown;
  try {
    doc = parseYaml(await Deno.readTextFile(path));
  } catch (e) {
    throw new ConfidantError("tdx.policy", `cannot read policy ${path}: ${(e as Error).message}`, {
      cause: e,
    });
  }
  const r = TdxPolicySchema.safeParse(doc);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new ConfidantError(
      "tdx.policy",
      `policy ${path}: ${i.path.join(".") || "document"}: ${i.message}`,
    );
  }
  return r.data;
}

/**
 * Run `verify-report --type tdx`: prints the JSON result (`ok`, `failures`,
 * `warnings`, `quote`) on stdout and returns 0 when every check holds, 1
 * otherwise. A bad `--at` is a usage error (exit 2).
 */
export async function runTdxVerifyReport(
  input: TdxVerifyReportInput,
  ctx: CommandContext,
): Promise<number> {
  let now = new Date();
  if (input.at !== undefined) {
    if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(input.at)) {
      throw new UsageError(`--at: ${JSON.stringify(input.at)} is not an RFC 3339 time`);
    }
    now = new Date(input.at);
    if (Number.isNaN(now.getTime())) throw new UsageError(`--at: ${input.at} is not a valid time`);
  }
  const st = await Deno.stat(input.quote).catch((e) => {
    throw new ConfidantError("io.read", `cannot read ${input.quote}: ${e.message}`, { cause: e });
  });
  if (st.size > MAX_QUOTE_BYTES) {
    throw new ConfidantError("io.read", `${input.quote} is larger than ${MAX_QUOTE_BYTES} bytes`);
  }
  const quote = await Deno.readFile(input.quote);
  const collateral = input.collateral ? await readTdxCollateralDir(input.collateral) : undefined;
  const policy = input.policy ? await readTdxPolicy(input.policy) : undefined;
  let expectedReportData: Uint8Array | undefined;
  if (input.reportData !== undefined) {
    if (!/^[0-9a-fA-F]{128}$/.test(input.reportData)) {
      throw new UsageError("--report-data: must be 64 bytes of hex (128 hex digits)");
    }
    expectedReportData = fromHex(input.reportData);
  }
  const result = await verifyTdxQuote(quote, { now, collateral, policy, expectedReportData });
  ctx.out(JSON.stringify({ type: "tdx", at: now.toISOString(), ...result }, null, 2));
  if (!result.ok && !ctx.json) {
    for (const f of result.failures) ctx.err(`refused: ${f.check}: ${f.message}`);
  }
  return result.ok ? ExitCode.Ok : ExitCode.Failed;
}
