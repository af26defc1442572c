/**
 * Verification of TDX evidence: quote structure, the PCK chain to the pinned
 * Intel SGX Root CA, the QE report signature and its binding of the
 * attestation key, the quote signature, optional Intel collateral (CRLs, TCB
 * info, QE identity) and an optional policy. The result names every failed
 * check; nothing here throws for bad evidence.
 *
 * @module
 */
import { bytesEqual, concat, fromBase64, sha256, toHex } from "../../lib/bytes.ts";
import { ConfidantError } from "../../lib/errors.ts";
import { X509Crl } from "../../lib/x509.ts";
import type { X509Certificate } from "../../lib/x509.ts";
import {
  certName,
  type ChainOptions,
  type CheckFailure,
  p256Key,
  verifyChain,
} from "./intel_pki.ts";
import { INTEL_QE_VENDOR_ID, parseTdxQuote, type TdxQuote } from "./quote.ts";
import { type PckExtensions, pckExtensions } from "./pck_extensions.ts";
import {
  parseQeIdentity,
  parseTcbInfo,
  type TcbStatus,
  verifySignedCollateral,
} from "./collateral.ts";
import { convergeOutOfDate, evaluateQeIdentity, evaluateTdxTcb } from "./tcb.ts";
import type { TdxPolicy } from "./policy.ts";
import { type TdxCollateral, type TdxEvidence, TdxEvidenceSchema } from "./evidence.ts";

/** The quote fields a relying party decides on, as lower-case hex. */
export interface TdxQuoteSummary {
  version: number;
  bodyType: number;
  qeSvn: number;
  pceSvn: number;
  teeTcbSvn: string;
  mrSeam: string;
  mrSignerSeam: string;
  seamAttributes: string;
  tdAttributes: string;
  xfam: string;
  mrTd: string;
  mrConfigId: string;
  mrOwner: string;
  mrOwnerConfig: string;
  rtmr0: string;
  rtmr1: string;
  rtmr2: string;
  rtmr3: string;
  reportData: string;
  teeTcbSvn2?: string;
  mrServiceTd?: string;
  /** From the PCK certificate, when it parsed. */
  fmspc?: string;
  pceId?: string;
  /** Converged TCB status, when collateral was given and evaluated. */
  tcbStatus?: TcbStatus;
  /** TCB status of the quoting enclave from its identity, when given. */
  qeTcbStatus?: TcbStatus;
  advisoryIds?: string[];
}

/** Outcome of a verification: `ok` exactly when `failures` is empty. */
export interface TdxVerifyResult {
  ok: boolean;
  failures: CheckFailure[];
  warnings: string[];
  /** Present whenever the quote parsed. */
  quote?: TdxQuoteSummary;
}

/** Options of {@link verifyTdxQuote} and {@link verifyTdxEvidence}. */
export interface TdxVerifyOptions {
  /** The clock: certificate validity, CRL and collateral dates are checked against it. */
  now: Date;
  /** REPORTDATA the quote must carry (the session binding), 64 bytes. */
  expectedReportData?: Uint8Array;
  /** Collateral; its TCB info and QE identity are checked when present. */
  collateral?: TdxCollateral;
  /** Policy; without it only structure, signatures and chains are checked. */
  policy?: TdxPolicy;
  /** Trust anchor DER; defaults to the pinned Intel SGX Root CA (tests only). */
  rootDer?: Uint8Array;
}

/** Summary of a parsed quote, hex-encoded. */
export function summarizeTdxQuote(q: TdxQuote): TdxQuoteSummary {
  const b = q.body;
  const s: TdxQuoteSummary = {
    version: q.header.version,
    bodyType: q.bodyType,
    qeSvn: q.header.qeSvn,
    pceSvn: q.header.pceSvn,
    teeTcbSvn: toHex(b.teeTcbSvn),
    mrSeam: toHex(b.mrSeam),
    mrSignerSeam: toHex(b.mrSignerSeam),
    seamAttributes: toHex(b.seamAttributes),
    tdAttributes: toHex(b.tdAttributes),
    xfam: toHex(b.xfam),
    mrTd: toHex(b.mrTd),
    mrConfigId: toHex(b.mrConfigId),
    mrOwner: toHex(b.mrOwner),
    mrOwnerConfig: toHex(b.mrOwnerConfig),
    rtmr0: toHex(b.rtmrs[0]),
    rtmr1: toHex(b.rtmrs[1]),
    rtmr2: toHex(b.rtmrs[2]),
    rtmr3: toHex(b.rtmrs[3]),
    reportData: toHex(b.reportData),
  };
  if (b.teeTcbSvn2) s.teeTcbSvn2 = toHex(b.teeTcbSvn2);
  if (b.mrServiceTd) s.mrServiceTd = toHex(b.mrServiceTd);
  return s;
}

async function ecdsaP256(key: CryptoKey, sig: Uint8Array, data: Uint8Array): Promise<boolean> {
  try {
    return await crypto.subtle.verify(
      { name: "ECDSA", hash: "SHA-256" },
      key,
      sig as BufferSource,
      data as BufferSource,
    );
  } catch {
    return false;
  }
}

async function checkCrl(
  b64: string,
  issuer: X509Certificate,
  subject: X509Certificate,
  name: string,
  now: Date,
  failures: CheckFailure[],
): Promise<void> {
  let crl: X509Crl;
  try {
    crl = new X509Crl(fromBase64(b64, name) as BufferSource);
  } catch (e) {
    failures.push({
      check: `${name}.parse`,
      message: `${name} does not parse: ${(e as Error).message}`,
    });
    return;
  }
  let ok = false;
  try {
    ok = crl.issuer === issuer.subject && await crl.verify({ publicKey: issuer });
  } catch {
    ok = false;
  }
  if (!ok) {
    failures.push({
      check: `${name}.signature`,
      message: `${name} is not signed by "${certName(issuer)}"`,
    });
    return;
  }
  if (now < crl.thisUpdate || (crl.nextUpdate && now > crl.nextUpdate)) {
    failures.push({
      check: `${name}.freshness`,
      message:
        `${name} is valid ${crl.thisUpdate.toISOString()} to ${crl.nextUpdate?.toISOString()}, not at ${now.toISOString()}`,
    });
  }
  const serial = subject.serialNumber.toLowerCase().replace(/^0+/, "");
  if (crl.entries.some((e) => e.serialNumber.toLowerCase().replace(/^0+/, "") === serial)) {
    failures.push({
      check: "pck.revoked",
      message: `"${certName(subject)}" (serial ${subject.serialNumber}) is revoked by ${name}`,
    });
  }
}

function anyOf(what: string, value: string, allowed: string[] | undefined, f: CheckFailure[]) {
  if (allowed && !allowed.includes(value)) {
    f.push({
      check: `policy.${what}`,
      message: `${what} ${value} is not in the policy's allowlist`,
    });
  }
}

function applyPolicy(
  p: TdxPolicy,
  q: TdxQuote,
  s: TdxQuoteSummary,
  have: { tcbEvaluated: boolean; qeGiven: boolean },
  f: CheckFailure[],
) {
  anyOf("mr_td", s.mrTd, p.mrTd, f);
  anyOf("rtmr0", s.rtmr0, p.rtmr0, f);
  anyOf("rtmr1", s.rtmr1, p.rtmr1, f);
  anyOf("rtmr2", s.rtmr2, p.rtmr2, f);
  anyOf("rtmr3", s.rtmr3, p.rtmr3, f);
  anyOf("mr_seam", s.mrSeam, p.mrSeam, f);
  anyOf("mr_signer_seam", s.mrSignerSeam, p.mrSignerSeam, f);
  anyOf("mr_config_id", s.mrConfigId, p.mrConfigId, f);
  anyOf("mr_owner", s.mrOwner, p.mrOwner, f);
  anyOf("mr_owner_config", s.mrOwnerConfig, p.mrOwnerConfig, f);
  anyOf("td_attributes", s.tdAttributes, p.tdAttributes, f);
  anyOf("xfam", s.xfam, p.xfam, f);
  if (!p.allowDebug && (q.body.tdAttributes[0] & 1)) {
    f.push({
      check: "policy.td_attributes.debug",
      message: "the TD is debuggable (TDATTRIBUTES bit 0 is set)",
    });
  }
  if (p.minTeeTcbSvn) {
    const min = p.minTeeTcbSvn;
    for (let i = 0; i < 16; i++) {
      const want = parseInt(min.slice(2 * i, 2 * i + 2), 16);
      if (q.body.teeTcbSvn[i] < want) {
        f.push({
          check: "policy.min_tee_tcb_svn",
          message: `TEE_TCB_SVN byte ${i} is ${q.body.teeTcbSvn[i]}, below the policy's ${want}`,
        });
        break;
      }
    }
  }
  if (p.reportData && s.reportData !== p.reportData) {
    f.push({ check: "policy.report_data", message: "REPORTDATA is not the policy's" });
  }
  if (p.requireCollateral && !(have.tcbEvaluated && have.qeGiven)) {
    f.push({
      check: "policy.tcb_status",
      message:
        "the policy requires collateral (TCB info and QE identity with issuer chains) to judge the TCB status",
    });
  } else if (have.tcbEvaluated) {
    if (!s.tcbStatus) {
      f.push({ check: "policy.tcb_status", message: "the TCB status could not be determined" });
    } else if (!p.acceptedTcbStatuses.includes(s.tcbStatus)) {
      f.push({
        check: "policy.tcb_status",
        message: `TCB status ${s.tcbStatus} is not accepted (accepted: ${
          p.acceptedTcbStatuses.join(", ")
        })`,
      });
    }
  }
}

/**
 * Verify a TDX quote (raw bytes; trailing bytes after the quote are ignored).
 * Checks, each named in `failures` when it fails: `quote.parse`,
 * `quote.qe_vendor`, `pck.chain.*`, `pck.extensions`, `pck.revoked`,
 * `pck_crl.*`, `root_crl.*`, `qe_report.signature`, `qe_report.binding`,
 * `quote.signature`, `report_data`, `tcb_info.*`, `tcb.*`, `qe_identity.*`,
 * and `policy.*`.
 */
export async function verifyTdxQuote(
  quoteBytes: Uint8Array,
  opts: TdxVerifyOptions,
): Promise<TdxVerifyResult> {
  const failures: CheckFailure[] = [];
  const warnings: string[] = [];
  const done = (quote?: TdxQuoteSummary): TdxVerifyResult => ({
    ok: failures.length === 0,
    failures,
    warnings,
    quote,
  });
  let q: TdxQuote;
  try {
    q = parseTdxQuote(quoteBytes);
  } catch (e) {
    if (!(e instanceof ConfidantError)) throw e;
    failures.push({ check: "quote.parse", message: e.message });
    return done();
  }
  const summary = summarizeTdxQuote(q);
  if (quoteBytes.length > q.length) {
    warnings.push(`${quoteBytes.length - q.length} bytes after the quote were ignored`);
  }
  if (q.pckChainEncoding === "der") warnings.push("the PCK chain is DER, not PEM as specified");
  if (toHex(q.header.qeVendorId) !== INTEL_QE_VENDOR_ID) {
    failures.push({
      check: "quote.qe_vendor",
      message: `QE vendor id ${toHex(q.header.qeVendorId)} is not Intel's`,
    });
  }
  const chainOpts: ChainOptions = { now: opts.now, rootDer: opts.rootDer };

  // PCK chain and the QE report it signs.
  const chain = await verifyChain(q.pckChain, "pck.chain", chainOpts);
  failures.push(...chain.failures);
  const leaf = chain.certs[0];
  let pck: PckExtensions | undefined;
  if (leaf) {
    try {
      pck = pckExtensions(leaf);
      summary.fmspc = pck.fmspc;
      summary.pceId = pck.pceId;
    } catch (e) {
      failures.push({ check: "pck.extensions", message: (e as Error).message });
    }
    let leafKey: CryptoKey | undefined;
    try {
      leafKey = await p256Key(leaf);
    } catch {
      failures.push({
        check: "pck.chain.key",
        message: "the PCK certificate's key is not ECDSA P-256",
      });
    }
    if (!leafKey || !await ecdsaP256(leafKey, q.qeReportSignature, q.qeReport.raw)) {
      failures.push({
        check: "qe_report.signature",
        message: "the QE report signature does not verify with the PCK certificate's key",
      });
    }
  } else {
    failures.push({
      check: "qe_report.signature",
      message: "no PCK certificate to verify the QE report with",
    });
  }
  const binding = await sha256(concat(q.attestationKey, q.qeAuthData));
  const rd = q.qeReport.reportData;
  if (!bytesEqual(rd.subarray(0, 32), binding) || rd.subarray(32).some((x) => x !== 0)) {
    failures.push({
      check: "qe_report.binding",
      message: "QE report data is not SHA-256(attestation key || QE auth data) followed by zeros",
    });
  }

  // The quote itself.
  let attKey: CryptoKey | undefined;
  try {
    attKey = await crypto.subtle.importKey(
      "raw",
      concat(new Uint8Array([4]), q.attestationKey) as BufferSource,
      { name: "ECDSA", namedCurve: "P-256" },
      false,
      ["verify"],
    );
  } catch {
    attKey = undefined;
  }
  if (!attKey || !await ecdsaP256(attKey, q.signature, q.signedRegion)) {
    failures.push({
      check: "quote.signature",
      message: attKey
        ? "the quote signature does not verify with the attestation key"
        : "the attestation key is not a P-256 point",
    });
  }
  if (opts.expectedReportData && !bytesEqual(q.body.reportData, opts.expectedReportData)) {
    failures.push({
      check: "report_data",
      message: `REPORTDATA ${summary.reportData} is not the expected binding ${
        toHex(opts.expectedReportData)
      }`,
    });
  }

  // Collateral.
  const c = opts.collateral ?? {};
  if (c.pckCrl && chain.certs.length >= 2) {
    await checkCrl(c.pckCrl, chain.certs[1], leaf, "pck_crl", opts.now, failures);
  }
  if (c.rootCaCrl && chain.certs.length >= 3) {
    const root = chain.certs[chain.certs.length - 1];
    for (const ca of chain.certs.slice(1, -1)) {
      await checkCrl(c.rootCaCrl, root, ca, "root_crl", opts.now, failures);
    }
  }
  let platform: TcbStatus | undefined;
  let qeStatus: TcbStatus | undefined;
  let tcbEvaluated = false;
  if (c.tcbInfo !== undefined) {
    try {
      const doc = parseTcbInfo(c.tcbInfo);
      if (c.tcbInfoIssuerChain === undefined) {
        failures.push({
          check: "tcb_info.issuer_chain.missing",
          message: "TCB info was given without its issuer chain",
        });
      } else {
        failures.push(
          ...await verifySignedCollateral(doc, c.tcbInfoIssuerChain, "tcb_info", chainOpts),
        );
      }
      if (pck) {
        const ev = evaluateTdxTcb(doc.body, pck, q.body);
        failures.push(...ev.failures);
        platform = ev.status;
        tcbEvaluated = true;
        if (ev.advisoryIds.length) summary.advisoryIds = ev.advisoryIds;
      }
    } catch (e) {
      if (!(e instanceof ConfidantError)) throw e;
      failures.push({ check: "tcb_info.parse", message: e.message });
    }
  }
  if (c.qeIdentity !== undefined) {
    try {
      const doc = parseQeIdentity(c.qeIdentity);
      if (c.qeIdentityIssuerChain === undefined) {
        failures.push({
          check: "qe_identity.issuer_chain.missing",
          message: "QE identity was given without its issuer chain",
        });
      } else {
        failures.push(
          ...await verifySignedCollateral(doc, c.qeIdentityIssuerChain, "qe_identity", chainOpts),
        );
      }
      const ev = evaluateQeIdentity(doc.body, q.qeReport);
      failures.push(...ev.failures);
      qeStatus = ev.status;
      summary.qeTcbStatus = qeStatus;
    } catch (e) {
      if (!(e instanceof ConfidantError)) throw e;
      failures.push({ check: "qe_identity.parse", message: e.message });
    }
  }
  if (platform) summary.tcbStatus = qeStatus ? convergeOutOfDate(platform, qeStatus) : platform;
  if (!c.tcbInfo) warnings.push("no TCB info: the platform TCB status was not evaluated");
  if (!c.qeIdentity) warnings.push("no QE identity: the quoting enclave's TCB was not evaluated");
  if (!c.pckCrl) warnings.push("no PCK CRL: revocation of the PCK certificate was not checked");

  if (opts.policy) {
    applyPolicy(
      opts.policy,
      q,
      summary,
      { tcbEvaluated, qeGiven: c.qeIdentity !== undefined },
      failures,
    );
  }
  return done(summary);
}

/**
 * Verify a TDX evidence section (validated against {@link TdxEvidenceSchema}
 * first; a malformed one is reported as `evidence.schema`) with its own
 * collateral. `expectedReportData` is the binding the KMS computed for this
 * request (see attestation/tee_binding.ts).
 */
export async function verifyTdxEvidence(
  evidence: unknown,
  policy: TdxPolicy | undefined,
  opts: { now: Date; expectedReportData?: Uint8Array; rootDer?: Uint8Array },
): Promise<TdxVerifyResult> {
  const parsed = TdxEvidenceSchema.safeParse(evidence);
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    return {
      ok: false,
      failures: [{
        check: "evidence.schema",
        message: `${i.path.join(".") || "evidence"}: ${i.message}`,
      }],
      warnings: [],
    };
  }
  const ev: TdxEvidence = parsed.data;
  return await verifyTdxQuote(fromBase64(ev.quote, "quote"), {
    ...opts,
    policy,
    collateral: ev.collateral,
  });
}
