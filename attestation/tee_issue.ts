/**
 * The TEE half of issuing a document: find out whether this guest is an SEV-SNP or TDX
 * guest (Linux configfs-tsm, `/sys/kernel/config/tsm/report`), and get its report over the
 * layered binding `teeReportData({ nonce, userData, akPublic })` with the certificates and
 * collateral a verifier needs. All file access goes through the small `TsmFs` interface of
 * attestation/snp/configfs_tsm.ts (the TDX issuer needs a subset of it), so tests can stand in
 * for the kernel.
 *
 * Detection: the report directory must exist; an entry is created, its `provider` read
 * (`sev_guest` → `sev-snp`, `tdx_guest` → `tdx`; an unreadable provider, which the kernel
 * answers with ENXIO when no TEE driver registered, or another one means no TEE), and the
 * entry removed again. A directory that exists but refuses the entry is an error, not "no
 * TEE": it means the guest may be confidential but cannot prove it.
 *
 * @module
 */
import { toHex } from "../lib/bytes.ts";
import { ConfidantError } from "../lib/errors.ts";
import type { TeeVariant } from "./document.ts";
import {
  denoTsmFs,
  issueSnpReport,
  type SnpEvidence,
  type SnpEvidenceBytes,
  TSM_REPORT_ROOT,
  type TsmFs,
} from "./snp/mod.ts";
import { encodeSnpEvidence } from "./snp/evidence.ts";
import { ConfigfsTsm, issueTdxEvidence, type TdxCollateral, type TdxEvidence } from "./tdx/mod.ts";
import { type TeeBindingInput, teeReportData } from "./tee_binding.ts";

/** Which TEE evidence to add to a document: detect it, a given one, or none. */
export type TeeChoice = "auto" | TeeVariant | "none";

/** Certificates a node has cached for its SEV-SNP platform (DER), used where the host's
 * certificate table (`auxblob`) lacks them. */
export type SnpChainCache = Omit<SnpEvidenceBytes, "report">;

/** Where and how to reach configfs-tsm, and what the node adds to the vendor report. */
export interface TeeIssueOptions {
  /** Report directory; default `/sys/kernel/config/tsm/report`. */
  tsmRoot?: string;
  /** File operations; default the real file system. */
  tsmFs?: TsmFs;
  /** SEV-SNP: VMPL to request the report at (0..3; default: the kernel's). */
  snpPrivlevel?: number;
  /** SEV-SNP: cached VCEK/VLEK, ASK/ASVK, ARK and CRL for what the host does not supply. */
  snpCertificates?: SnpChainCache;
  /** TDX: Intel collateral (TCB info, QE identity, issuer chains, CRLs) the node has cached. */
  tdxCollateral?: TdxCollateral;
}

const PROVIDERS: Record<string, TeeVariant> = { sev_guest: "sev-snp", tdx_guest: "tdx" };

/**
 * Detect the TEE of this guest through configfs-tsm: `"sev-snp"`, `"tdx"`, or `undefined`
 * when there is none. Throws `attestation.tee_unavailable` when the report directory exists
 * but no entry can be created in it.
 */
export async function detectTee(opts: TeeIssueOptions = {}): Promise<TeeVariant | undefined> {
  const fs = opts.tsmFs ?? denoTsmFs;
  const root = opts.tsmRoot ?? TSM_REPORT_ROOT;
  if (!await fs.exists(root)) return undefined;
  const dir = `${root}/confidant-probe-${toHex(crypto.getRandomValues(new Uint8Array(8)))}`;
  try {
    await fs.mkdir(dir);
  } catch (e) {
    throw new ConfidantError(
      "attestation.tee_unavailable",
      `configfs-tsm is present but ${dir} cannot be created (${(e as Error).message})`,
      { cause: e },
    );
  }
  try {
    let provider: string;
    try {
      provider = new TextDecoder().decode(await fs.readFile(`${dir}/provider`)).trim();
    } catch {
      return undefined;
    }
    return PROVIDERS[provider];
  } finally {
    await fs.rmdir(dir).catch(() => {});
  }
}

/** Resolve a {@link TeeChoice} to the TEE to use, detecting it for `"auto"`. */
export async function resolveTee(
  choice: TeeChoice,
  opts: TeeIssueOptions = {},
): Promise<TeeVariant | undefined> {
  if (choice === "none") return undefined;
  if (choice === "auto") return await detectTee(opts);
  return choice;
}

function withCachedChain(ev: SnpEvidenceBytes, cache: SnpChainCache | undefined): SnpEvidence {
  const merged: SnpEvidenceBytes = { ...ev };
  for (const k of ["vcek", "vlek", "ask", "asvk", "ark", "crl"] as const) {
    if (merged[k] === undefined && cache?.[k] !== undefined) merged[k] = cache[k];
  }
  const missing: string[] = [];
  if (!merged.vcek && !merged.vlek) missing.push("the VCEK or VLEK");
  if (!merged.ask && !merged.asvk) missing.push("the ASK or ASVK");
  if (!merged.ark) missing.push("the ARK");
  if (missing.length) {
    throw new ConfidantError(
      "attestation.tee_chain",
      `the SEV-SNP evidence lacks ${missing.join(", ")}: the host's certificate table does ` +
        "not carry them, so the node must supply them (snpCertificates)",
    );
  }
  return encodeSnpEvidence(merged);
}

/**
 * Get the `tee` section of a `tee` document bound to `binding` (REPORT_DATA =
 * `teeReportData(binding)`), with the chain or collateral from `opts`.
 */
export async function issueTeeSection(
  tee: "sev-snp",
  binding: TeeBindingInput,
  opts?: TeeIssueOptions,
): Promise<SnpEvidence>;
export async function issueTeeSection(
  tee: "tdx",
  binding: TeeBindingInput,
  opts?: TeeIssueOptions,
): Promise<TdxEvidence>;
export async function issueTeeSection(
  tee: TeeVariant,
  binding: TeeBindingInput,
  opts?: TeeIssueOptions,
): Promise<SnpEvidence | TdxEvidence>;
export async function issueTeeSection(
  tee: TeeVariant,
  binding: TeeBindingInput,
  opts: TeeIssueOptions = {},
): Promise<SnpEvidence | TdxEvidence> {
  if (tee === "sev-snp") {
    const ev = await issueSnpReport(await teeReportData(binding), {
      root: opts.tsmRoot,
      fs: opts.tsmFs,
      privlevel: opts.snpPrivlevel,
    });
    return withCachedChain(ev, opts.snpCertificates);
  }
  const provider = new ConfigfsTsm({ root: opts.tsmRoot, fs: opts.tsmFs });
  return await issueTdxEvidence(provider, binding, opts.tdxCollateral);
}
