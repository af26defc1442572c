/**
 * Verification of SEV-SNP evidence: the report's ECDSA P-384 signature by the VCEK or
 * VLEK, the chain VCEK/VLEK → ASK/ASVK → ARK (RSASSA-PSS/SHA-384, salt 48) ending at a
 * pinned AMD root, the certificate validity at a given time, the TCB and hardware id the
 * endorsement certificate was issued for, an optional CRL, the report-data binding and an
 * optional appraisal policy. Pure: no I/O, the clock is an argument.
 *
 * Every check runs even when an earlier one failed (where its inputs exist), and every
 * failure is named. Only malformed input (a report that is not 1184 bytes, an evidence
 * document that does not match its schema) throws.
 *
 * @module
 */
import { bytesEqual, toHex } from "../../lib/bytes.ts";
import {
  OID_EC_PUBLIC_KEY,
  OID_P384,
  parseCertificate,
  parseCrl,
  type ParsedCertificate,
  type ParsedCrl,
  verifyCertificateSignature,
  verifySignedBytes,
} from "../tee_common/mod.ts";
import { decodeSnpEvidence, type SnpEvidenceBytes } from "./evidence.ts";
import { evaluateSnpPolicy, type SnpCheckFailure, type SnpPolicy } from "./policy.ts";
import {
  AMD_ARK_PINS,
  type ArkPin,
  decodeTcb,
  productFromCommonName,
  productFromCpuid,
  type SnpProduct,
  type SnpTcb,
  spkiSha256,
  tcbReservedBytes,
} from "./product.ts";
import {
  decodeGuestPolicy,
  parseSnpReport,
  SNP_MAX_VERSION,
  SNP_MIN_VERSION,
  SNP_SIGNED_LENGTH,
  type SnpGuestPolicy,
  type SnpReport,
} from "./report.ts";
import { readAmdKeyExtensions } from "./vcek_extensions.ts";

/** Options of a verification. */
export interface SnpVerifyOptions {
  /** The time certificates (and the CRL) must be valid at. */
  now: Date;
  /** When given, REPORT_DATA must equal these 64 bytes (the binding to the caller's nonce). */
  expectedReportData?: Uint8Array;
  /** Trusted roots; default {@link AMD_ARK_PINS}. Tests pass their own. */
  roots?: readonly ArkPin[];
}

/** The report fields that matter to a relying party, as JSON-friendly values. */
export interface SnpReportSummary {
  version: number;
  product?: SnpProduct;
  signingKey: string;
  measurement: string;
  reportData: string;
  hostData: string;
  idKeyDigest: string;
  authorKeyDigest: string;
  familyId: string;
  imageId: string;
  chipId: string;
  vmpl: number;
  guestSvn: number;
  policy: { raw: string } & SnpGuestPolicy;
  platformInfo: string;
  cpuid?: { family: number; model: number; stepping: number };
  reportedTcb: SnpTcb | { raw: string };
  currentTcb: SnpTcb | { raw: string };
  committedTcb: SnpTcb | { raw: string };
  launchTcb: SnpTcb | { raw: string };
  launchMitVector?: string;
  currentMitVector?: string;
  /** The endorsement key certificate, when it parsed. */
  signer?: { subject: string; issuer: string; notBefore: string; notAfter: string; cspId?: string };
}

/** The outcome of a verification. */
export interface SnpVerification {
  /** True when no check failed. */
  ok: boolean;
  failures: SnpCheckFailure[];
  warnings: SnpCheckFailure[];
  report: SnpReportSummary;
}

const PSS = { hash: "SHA-384", saltLength: 48 } as const;

type Role = "vcek" | "vlek" | "ask" | "asvk" | "ark";

/**
 * Verify an evidence section as it travels (the JSON object of {@link snpEvidenceSchema}).
 * Without a policy only structure, signatures, chain, validity, TCB/hwid consistency,
 * CRL (if present) and the report-data binding (if expected) are checked.
 */
export async function verifySnpEvidence(
  evidence: unknown,
  policy: SnpPolicy | undefined,
  options: SnpVerifyOptions,
): Promise<SnpVerification> {
  return await verifySnpReport(decodeSnpEvidence(evidence), policy, options);
}

/** Verify decoded evidence (raw report and DER certificates). */
export async function verifySnpReport(
  input: SnpEvidenceBytes,
  policy: SnpPolicy | undefined,
  options: SnpVerifyOptions,
): Promise<SnpVerification> {
  const failures: SnpCheckFailure[] = [];
  const warnings: SnpCheckFailure[] = [];
  const fail = (check: string, message: string) => failures.push({ check, message });
  const warn = (check: string, message: string) => warnings.push({ check, message });
  const now = options.now;
  const roots = options.roots ?? AMD_ARK_PINS;

  const report = parseSnpReport(input.report);

  // Structure.
  if (report.version < SNP_MIN_VERSION || report.version > SNP_MAX_VERSION) {
    fail(
      "report.version",
      `report version ${report.version} is not ${SNP_MIN_VERSION}..${SNP_MAX_VERSION}`,
    );
  }
  if (report.signatureAlgo !== 1) {
    fail(
      "report.signature_algo",
      `signature algorithm ${report.signatureAlgo} is not ECDSA P-384/SHA-384`,
    );
  }
  if (report.nonZeroReserved.length) {
    const where = report.nonZeroReserved.map(([a, b]) =>
      `0x${a.toString(16)}..0x${b.toString(16)}`
    );
    fail("report.reserved", `must-be-zero bytes are set at ${where.join(", ")}`);
  }
  let signerRole: "vcek" | "vlek";
  if (report.signingKey === "vcek" || report.signingKey === "vlek") {
    signerRole = report.signingKey;
  } else {
    fail(
      "report.signing_key",
      `report signing key is ${report.signingKey} (flags 0x${report.flags.toString(16)})`,
    );
    signerRole = input.vlek && !input.vcek ? "vlek" : "vcek";
  }
  const interRole: "ask" | "asvk" = signerRole === "vlek" ? "asvk" : "ask";

  // Certificates.
  const parse = (role: Role, der: Uint8Array | undefined): ParsedCertificate | undefined => {
    if (!der) {
      fail(`${role}.missing`, `no ${role.toUpperCase()} certificate in the evidence`);
      return undefined;
    }
    try {
      return parseCertificate(der, role);
    } catch (e) {
      fail(
        `${role}.parse`,
        `${role.toUpperCase()} certificate is malformed: ${(e as Error).message}`,
      );
      return undefined;
    }
  };
  const signer = parse(signerRole, signerRole === "vlek" ? input.vlek : input.vcek);
  const inter = parse(interRole, interRole === "asvk" ? (input.asvk ?? input.ask) : input.ask);
  const ark = parse("ark", input.ark);

  const validity = (role: Role, c: ParsedCertificate | undefined) => {
    if (c && (now < c.notBefore || now > c.notAfter)) {
      fail(
        `${role}.validity`,
        `${role.toUpperCase()} is valid ${c.notBefore.toISOString()}..${c.notAfter.toISOString()}, not at ${now.toISOString()}`,
      );
    }
  };
  const issuedBy = async (role: Role, c?: ParsedCertificate, issuer?: ParsedCertificate) => {
    if (!c || !issuer) return;
    if (!bytesEqual(c.issuerRaw, issuer.subjectRaw)) {
      fail(
        `${role}.issuer`,
        `${role.toUpperCase()} issuer "${c.issuerCn}" is not "${issuer.subjectCn}"`,
      );
    }
    let ok = false;
    try {
      ok = await verifyCertificateSignature(c, issuer, PSS);
    } catch (e) {
      fail(`${role}.signature`, `${role.toUpperCase()} signature: ${(e as Error).message}`);
      return;
    }
    if (!ok) {
      fail(
        `${role}.signature`,
        `${role.toUpperCase()} is not signed by "${issuer.subjectCn}" with RSASSA-PSS/SHA-384`,
      );
    }
  };

  // Root.
  let pinProduct: SnpProduct | undefined;
  if (ark) {
    const digest = await spkiSha256(ark.spki);
    const pin = roots.find((r) => r.spkiSha256 === digest);
    if (!pin) fail("ark.pin", `ARK key (SHA-256 ${digest}) is not a pinned AMD root`);
    else pinProduct = pin.product;
    await issuedBy("ark", ark, ark);
    validity("ark", ark);
    const cnProduct = productFromCommonName(ark.subjectCn);
    if (pinProduct && cnProduct !== pinProduct) {
      fail("ark.product", `ARK "${ark.subjectCn}" does not name the pinned product ${pinProduct}`);
    }
  }

  // Intermediate.
  await issuedBy(interRole, inter, ark);
  validity(interRole, inter);
  let interProduct: SnpProduct | undefined;
  if (inter) {
    interProduct = productFromCommonName(inter.subjectCn);
    const vlekCa = inter.subjectCn.startsWith("SEV-VLEK-");
    if (!interProduct || vlekCa !== (interRole === "asvk")) {
      fail(`${interRole}.kind`, `"${inter.subjectCn}" is not an AMD ${interRole.toUpperCase()}`);
    }
  }

  // Endorsement key.
  await issuedBy(signerRole, signer, inter);
  validity(signerRole, signer);
  let ext: ReturnType<typeof readAmdKeyExtensions> | undefined;
  if (signer) {
    const expectCn = signerRole === "vlek" ? "SEV-VLEK" : "SEV-VCEK";
    if (signer.subjectCn !== expectCn) {
      fail(`${signerRole}.kind`, `signer "${signer.subjectCn}" is not a ${expectCn} certificate`);
    }
    if (signer.keyAlgorithm !== OID_EC_PUBLIC_KEY || signer.keyCurve !== OID_P384) {
      fail(`${signerRole}.key`, `${signerRole.toUpperCase()} key is not ECDSA P-384`);
    }
    try {
      ext = readAmdKeyExtensions(signer.extensions, signerRole);
    } catch (e) {
      fail(`${signerRole}.extensions`, (e as Error).message);
    }
  }

  // Product: from the pinned root, the ASK name, the report's CPUID and the VCEK's product name.
  const cpuidProduct = report.cpuid && (report.cpuid.family || report.cpuid.model)
    ? productFromCpuid(report.cpuid.family, report.cpuid.model)
    : undefined;
  if (report.cpuid && (report.cpuid.family || report.cpuid.model) && !cpuidProduct) {
    warn(
      "product.cpuid",
      `CPUID family 0x${report.cpuid.family.toString(16)} model 0x${
        report.cpuid.model.toString(16)
      } is not a known product`,
    );
  }
  const extProduct = ext?.productName
    ? (["Milan", "Genoa", "Turin"] as const).find((p) => ext!.productName!.startsWith(p))
    : undefined;
  const product = pinProduct ?? interProduct ?? cpuidProduct;
  const claims: Array<[string, SnpProduct | undefined]> = [
    ["pinned ARK", pinProduct],
    [interRole.toUpperCase(), interProduct],
    ["report CPUID", cpuidProduct],
    [`${signerRole.toUpperCase()} product name`, extProduct],
  ];
  const named = claims.filter(([, p]) => p !== undefined);
  if (named.some(([, p]) => p !== named[0][1])) {
    fail(
      "product.mismatch",
      `product claims disagree: ${named.map(([w, p]) => `${w}=${p}`).join(", ")}`,
    );
  }
  if (!product) {
    fail("product.unknown", "the product line cannot be established from the chain or report");
  }

  // Report signature.
  if (signer && signer.keyAlgorithm === OID_EC_PUBLIC_KEY && signer.keyCurve === OID_P384) {
    let ok = false;
    try {
      const key = await crypto.subtle.importKey(
        "spki",
        signer.spki as BufferSource,
        { name: "ECDSA", namedCurve: "P-384" },
        false,
        ["verify"],
      );
      const sig = new Uint8Array(96);
      sig.set(report.signatureR, 0);
      sig.set(report.signatureS, 48);
      ok = await crypto.subtle.verify(
        { name: "ECDSA", hash: "SHA-384" },
        key,
        sig,
        report.raw.subarray(0, SNP_SIGNED_LENGTH) as BufferSource,
      );
    } catch {
      ok = false;
    }
    if (!ok) fail("report.signature", `report is not signed by this ${signerRole.toUpperCase()}`);
  }

  // TCB and hardware id the endorsement key was issued for.
  if (product) {
    for (const off of tcbReservedBytes(product)) {
      if (report.reportedTcb[off] !== 0) {
        fail(
          "report.tcb_reserved",
          `reported TCB byte ${off} is reserved on ${product} but is set`,
        );
        break;
      }
    }
  }
  if (ext && product) {
    const tcb = decodeTcb(report.reportedTcb, product);
    const diffs: string[] = [];
    const fields = [
      "bootloader",
      "tee",
      "snp",
      "microcode",
      ...(product === "Turin" ? ["fmc"] : []),
    ] as const;
    for (const k of fields as readonly ("bootloader" | "tee" | "snp" | "microcode" | "fmc")[]) {
      const certified = ext[k];
      if (certified === undefined) diffs.push(`${k} missing in certificate`);
      else if (certified !== tcb[k]) diffs.push(`${k} report ${tcb[k]} ≠ certificate ${certified}`);
    }
    if (diffs.length) {
      fail(
        `${signerRole}.tcb`,
        `reported TCB is not the one the ${signerRole.toUpperCase()} certifies: ${
          diffs.join("; ")
        }`,
      );
    }
    if (ext.reservedSpl.some((v) => v !== 0)) {
      warn(`${signerRole}.tcb`, "certificate has non-zero reserved SPL extensions");
    }
  }
  if (ext && signerRole === "vcek") {
    const want = product === "Turin" ? report.chipId.subarray(0, 8) : report.chipId;
    if (!ext.hwid) fail("vcek.hwid", "VCEK has no hardware id extension");
    else if (!bytesEqual(ext.hwid, want)) {
      fail(
        "vcek.hwid",
        `VCEK hardware id ${toHex(ext.hwid)} is not the report's CHIP_ID ${toHex(want)}`,
      );
    }
  }
  if (ext && signerRole === "vlek") {
    if (ext.hwid) fail("vlek.kind", "VLEK certificate carries a hardware id");
    if (!ext.cspId) fail("vlek.kind", "VLEK certificate carries no CSP id");
  }

  // Revocation.
  if (input.crl) {
    let crl: ParsedCrl | undefined;
    try {
      crl = parseCrl(input.crl);
    } catch (e) {
      fail("crl.parse", `CRL is malformed: ${(e as Error).message}`);
    }
    if (crl && ark) {
      if (!bytesEqual(crl.issuerRaw, ark.subjectRaw)) {
        fail("crl.issuer", `CRL issuer "${crl.issuerCn}" is not the ARK "${ark.subjectCn}"`);
      }
      let ok = false;
      try {
        ok = await verifySignedBytes(crl.tbs, crl.signatureAlgorithm, crl.signature, ark.spki, PSS);
      } catch {
        ok = false;
      }
      if (!ok) fail("crl.signature", "CRL is not signed by the ARK with RSASSA-PSS/SHA-384");
      if (now < crl.thisUpdate || (crl.nextUpdate && now > crl.nextUpdate)) {
        fail(
          "crl.freshness",
          `CRL covers ${crl.thisUpdate.toISOString()}..${
            crl.nextUpdate?.toISOString() ?? "open"
          }, not ${now.toISOString()}`,
        );
      }
      if (inter && crl.revokedSerials.has(inter.serialHex)) {
        fail(
          `${interRole}.revoked`,
          `${interRole.toUpperCase()} serial ${inter.serialHex} is revoked`,
        );
      }
      if (signer && crl.revokedSerials.has(signer.serialHex)) {
        fail(
          `${signerRole}.revoked`,
          `${signerRole.toUpperCase()} serial ${signer.serialHex} is revoked`,
        );
      }
    }
  } else if (policy?.requireCrl) {
    fail("crl.missing", "the policy requires a CRL and the evidence has none");
  }

  // Binding.
  if (options.expectedReportData !== undefined) {
    if (!bytesEqual(report.reportData, options.expectedReportData)) {
      fail("report_data", "REPORT_DATA is not the expected binding value");
    }
  }

  if (policy) failures.push(...evaluateSnpPolicy(report, policy, product));

  return {
    ok: failures.length === 0,
    failures,
    warnings,
    report: summarize(report, product, signer, ext?.cspId),
  };
}

function summarize(
  r: SnpReport,
  product: SnpProduct | undefined,
  signer: ParsedCertificate | undefined,
  cspId: string | undefined,
): SnpReportSummary {
  const tcb = (raw: Uint8Array) => (product ? decodeTcb(raw, product) : { raw: toHex(raw) });
  return {
    version: r.version,
    product,
    signingKey: r.signingKey,
    measurement: toHex(r.measurement),
    reportData: toHex(r.reportData),
    hostData: toHex(r.hostData),
    idKeyDigest: toHex(r.idKeyDigest),
    authorKeyDigest: toHex(r.authorKeyDigest),
    familyId: toHex(r.familyId),
    imageId: toHex(r.imageId),
    chipId: toHex(r.chipId),
    vmpl: r.vmpl,
    guestSvn: r.guestSvn,
    policy: { raw: "0x" + r.policy.toString(16), ...decodeGuestPolicy(r.policy) },
    platformInfo: "0x" + r.platformInfo.toString(16),
    ...(r.cpuid ? { cpuid: r.cpuid } : {}),
    reportedTcb: tcb(r.reportedTcb),
    currentTcb: tcb(r.currentTcb),
    committedTcb: tcb(r.committedTcb),
    launchTcb: tcb(r.launchTcb),
    ...(r.launchMitVector !== undefined
      ? { launchMitVector: "0x" + r.launchMitVector.toString(16) }
      : {}),
    ...(r.currentMitVector !== undefined
      ? { currentMitVector: "0x" + r.currentMitVector.toString(16) }
      : {}),
    ...(signer
      ? {
        signer: {
          subject: signer.subjectCn,
          issuer: signer.issuerCn,
          notBefore: signer.notBefore.toISOString(),
          notAfter: signer.notAfter.toISOString(),
          ...(cspId ? { cspId } : {}),
        },
      }
      : {}),
  };
}
