/**
 * Endorsement key certificates: parse (DER or PEM), verify the chain up to configured CA
 * certificates at a given clock, and turn the certified public key into the EK's TPMT_PUBLIC
 * using the TCG default EK template for its algorithm, so MakeCredential targets exactly the
 * key in the certificate.
 *
 * Templates: RSA 2048 → TCG template L-1; ECC NIST P-256 → L-2; ECC NIST P-384 → the SHA-384
 * high-range template (H-3 attributes, policy and AES-256-CFB), which is what swtpm_setup
 * creates and certifies for its ECC EK.
 *
 * Quirks accepted on purpose (seen in real and swtpm EK certificates): a critical subject
 * alternative name holding the TPM manufacturer/model, an empty or placeholder subject,
 * NV contents with zero padding after the DER.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { createPublicKey } from "node:crypto";
import * as x509 from "../lib/x509.ts";
import { ConfidantError, ParseError } from "../lib/errors.ts";
import { fromBase64Url, fromHex } from "../lib/bytes.ts";
import {
  EK_TEMPLATE_ECC_P256,
  EK_TEMPLATE_RSA2048,
  TPM_ALG,
  TPM_ECC_CURVE,
  type TpmtPublic,
} from "./tpm/mod.ts";

/** Largest certificate accepted. */
export const MAX_CERT_BYTES = 16 * 1024;
/** Longest chain built (leaf, intermediates, anchor). */
export const MAX_CHAIN_LENGTH = 6;

/** PolicyOR-based EK policy of the SHA-384 high-range templates (TCG EK profile, H-3). */
const EK_AUTH_POLICY_SHA384 = fromHex(
  "b26e7d28d11a50bc53d882bcf5fd3a1a074148bb35d3b4e4cb1c0ad9bde419cacb47ba09699646150f9fc000f3f80e12",
);
/** H-3 attributes: fixedTPM fixedParent sensitiveDataOrigin userWithAuth adminWithPolicy restricted decrypt. */
const EK_ATTRIBUTES_HIGH = 0x000300f2;

/**
 * Length of the DER element at the start of `b` (a SEQUENCE with a definite length), so NV
 * contents padded after the certificate can be trimmed; malformed headers throw.
 */
function derLength(b: Uint8Array): number {
  if (b.length < 2 || b[0] !== 0x30) {
    throw new ParseError("ek_certificate", "not a DER certificate");
  }
  const first = b[1];
  if (first < 0x80) return 2 + first;
  const n = first & 0x7f;
  if (n === 0 || n > 3 || b.length < 2 + n) {
    throw new ParseError("ek_certificate", "bad DER length in certificate");
  }
  let len = 0;
  for (let i = 0; i < n; i++) len = len * 256 + b[2 + i];
  return 2 + n + len;
}

/** Parse a certificate from DER bytes (trailing padding trimmed) or PEM text. */
export function parseCertificate(input: Uint8Array | string): x509.X509Certificate {
  let der: Uint8Array;
  if (typeof input === "string") {
    if (input.length > MAX_CERT_BYTES * 2) throw new ParseError("ek_certificate", "PEM too large");
    const m = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+)-----END CERTIFICATE-----/.exec(input);
    if (!m) throw new ParseError("ek_certificate", "no PEM CERTIFICATE block");
    try {
      const b64 = m[1].replace(/\s+/g, "");
      const bin = atob(b64);
      der = Uint8Array.from(bin, (c) => c.charCodeAt(0));
    } catch (e) {
      throw new ParseError("ek_certificate", "bad base64 in PEM", { cause: e });
    }
  } else {
    der = input;
  }
  if (der.length > MAX_CERT_BYTES) throw new ParseError("ek_certificate", "certificate too large");
  const len = derLength(der);
  if (len > der.length) throw new ParseError("ek_certificate", "certificate is truncated");
  if (der.subarray(len).some((x) => x !== 0 && x !== 0xff)) {
    throw new ParseError("ek_certificate", "unexpected bytes after the certificate");
  }
  try {
    const cert = new x509.X509Certificate(der.slice(0, len));
    // Touch the lazily decoded fields so malformed content fails here, not later.
    void cert.subject;
    void cert.issuer;
    void cert.notBefore;
    void cert.notAfter;
    void cert.publicKey.rawData;
    return cert;
  } catch (e) {
    if (e instanceof ConfidantError) throw e;
    throw new ParseError("ek_certificate", "the certificate cannot be parsed", { cause: e });
  }
}

/** Parse every CERTIFICATE block of a PEM bundle. */
export function parsePemBundle(pem: string): x509.X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new ParseError("ek_certificate", "no certificate in PEM");
  return blocks.map((b) => parseCertificate(b));
}

/**
 * The EK's TPMT_PUBLIC for the key certified by `cert`: the default EK template of its
 * algorithm with the certified modulus/point. Unsupported keys are ConfidantError
 * `ek.unsupported_key`.
 */
export function ekPublicFromCertificate(
  cert: x509.X509Certificate | Uint8Array | string,
): TpmtPublic {
  const c = cert instanceof x509.X509Certificate ? cert : parseCertificate(cert);
  let jwk: { kty?: string; n?: string; e?: string; crv?: string; x?: string; y?: string };
  try {
    const key = createPublicKey({
      key: Buffer.from(c.publicKey.rawData),
      format: "der",
      type: "spki",
    });
    jwk = key.export({ format: "jwk" }) as typeof jwk;
  } catch (e) {
    throw new ConfidantError("ek.unsupported_key", "the certificate's public key is not usable", {
      cause: e,
    });
  }
  if (jwk.kty === "RSA" && jwk.n && jwk.e) {
    const n = fromBase64Url(jwk.n);
    if (n.length !== 256) {
      throw new ConfidantError("ek.unsupported_key", `RSA EK of ${n.length * 8} bits (need 2048)`);
    }
    let e = 0;
    for (const x of fromBase64Url(jwk.e)) e = e * 256 + x;
    if (e > 0xffffffff) throw new ConfidantError("ek.unsupported_key", "RSA exponent too large");
    return {
      ...EK_TEMPLATE_RSA2048,
      parameters: { ...EK_TEMPLATE_RSA2048.parameters, exponent: e === 65537 ? 0 : e },
      unique: { n },
    };
  }
  if (jwk.kty === "EC" && jwk.x && jwk.y) {
    const x = fromBase64Url(jwk.x);
    const y = fromBase64Url(jwk.y);
    if (jwk.crv === "P-256") return { ...EK_TEMPLATE_ECC_P256, unique: { x, y } };
    if (jwk.crv === "P-384") {
      return {
        type: TPM_ALG.ECC,
        nameAlg: TPM_ALG.SHA384,
        objectAttributes: EK_ATTRIBUTES_HIGH,
        authPolicy: EK_AUTH_POLICY_SHA384,
        parameters: {
          symmetric: { algorithm: TPM_ALG.AES, keyBits: 256, mode: TPM_ALG.CFB },
          scheme: { scheme: TPM_ALG.NULL },
          curveId: TPM_ECC_CURVE.NIST_P384,
          kdf: { scheme: TPM_ALG.NULL },
        },
        unique: { x, y },
      };
    }
  }
  throw new ConfidantError(
    "ek.unsupported_key",
    "the EK certificate's key is not RSA 2048, ECC P-256 or ECC P-384",
  );
}

/**
 * EK CA certificates parsed once, to verify many EK certificates against (a verifier builds
 * one per policy version and passes it as `anchors`, so no call re-parses the CA PEMs).
 * Immutable.
 */
export class EkTrustAnchors {
  private constructor(readonly certificates: readonly x509.X509Certificate[]) {}

  /**
   * Parse CA PEMs (each entry may be a bundle). A PEM without a certificate or one that does
   * not parse is a ParseError; an empty list gives an empty set (which trusts nothing).
   */
  static fromPem(caCertificates: readonly string[]): EkTrustAnchors {
    return new EkTrustAnchors(Object.freeze(caCertificates.flatMap((p) => parsePemBundle(p))));
  }

  /** Anchors from certificates already parsed. */
  static of(certificates: readonly x509.X509Certificate[]): EkTrustAnchors {
    return new EkTrustAnchors(Object.freeze([...certificates]));
  }
}

/** Options of {@link verifyEkCertificate}: exactly one of `caCertificates` and `anchors`. */
export interface VerifyEkCertificateOptions {
  /** Trust anchors (PEM; a bundle per entry is fine), parsed on every call. */
  caCertificates?: readonly string[];
  /** Trust anchors already parsed: an {@link EkTrustAnchors} or the certificates. */
  anchors?: EkTrustAnchors | readonly x509.X509Certificate[];
  /** Untrusted intermediates that may be used to build the chain (PEM or DER). */
  intermediates?: readonly (string | Uint8Array)[];
  /** The clock at which every certificate in the chain must be valid. */
  now: Date;
}

/** Result of a successful {@link verifyEkCertificate}. */
export interface VerifiedEkCertificate {
  /** The EK public area derived from the certificate. */
  ekPublic: TpmtPublic;
  /** The leaf certificate. */
  certificate: x509.X509Certificate;
  /** Subjects from the leaf to the anchor. */
  chain: string[];
  /**
   * The window in which every certificate of the chain (leaf, intermediates used, anchor) is
   * valid: the latest notBefore and the earliest notAfter. A verifier may reuse the outcome
   * for the same inputs while its clock is inside it.
   */
  validFrom: Date;
  validUntil: Date;
}

function validAt(c: x509.X509Certificate, now: Date): boolean {
  return c.notBefore.getTime() <= now.getTime() && now.getTime() <= c.notAfter.getTime();
}

function isCa(c: x509.X509Certificate): boolean {
  const bc = c.getExtension(x509.BasicConstraintsExtension);
  return bc !== null && bc.ca;
}

/** TCG EK certificate extended key usage (tcg-kp-EKCertificate). */
export const TCG_KP_EK_CERTIFICATE = "2.23.133.8.1";

/**
 * Why `issuer` may not sign at `depth` (the number of CA certificates between it and the leaf,
 * RFC 5280 6.1.4: its pathLenConstraint must allow them), or undefined: a keyUsage extension,
 * when present, must assert keyCertSign.
 */
function issuerProblem(c: x509.X509Certificate, depth: number): string | undefined {
  const ku = c.getExtension(x509.KeyUsagesExtension);
  if (ku && (ku.usages & x509.KeyUsageFlags.keyCertSign) === 0) {
    return `"${c.subject}" has no keyCertSign key usage`;
  }
  const bc = c.getExtension(x509.BasicConstraintsExtension);
  if (bc?.pathLength !== undefined && depth > bc.pathLength) {
    return `"${c.subject}" allows ${bc.pathLength} CA certificate(s) below it, the chain has ${depth}`;
  }
  return undefined;
}

/** Run an extension check; an extension that does not decode is a problem, not a crash. */
function extensionsSay(
  check: () => string | undefined,
  c: x509.X509Certificate,
): string | undefined {
  try {
    return check();
  } catch {
    return `"${c.subject}" has an extension that does not decode`;
  }
}

/** Why `leaf` is no EK certificate (a CA, or an EKU without tcg-kp-EKCertificate), or undefined. */
function leafProblem(leaf: x509.X509Certificate): string | undefined {
  if (isCa(leaf)) return "the EK certificate is a CA certificate (basicConstraints CA:TRUE)";
  const eku = leaf.getExtension(x509.ExtendedKeyUsageExtension);
  if (eku && !eku.usages.map(String).includes(TCG_KP_EK_CERTIFICATE)) {
    return `the EK certificate's extended key usage lacks tcg-kp-EKCertificate (${TCG_KP_EK_CERTIFICATE})`;
  }
  return undefined;
}

async function signedBy(
  child: x509.X509Certificate,
  parent: x509.X509Certificate,
): Promise<boolean> {
  if (child.issuer !== parent.subject) return false;
  try {
    return await child.verify({ publicKey: parent.publicKey, signatureOnly: true });
  } catch {
    return false;
  }
}

/**
 * Verify an EK certificate: it must chain (through the given intermediates) to one of the CA
 * certificates by signatures, every certificate must be valid at `now`, every intermediate
 * must be a CA, every issuer (the trust anchor included) must allow keyCertSign when it has a
 * keyUsage extension and must allow the CA certificates below it by its pathLenConstraint,
 * and the leaf must not be a CA and, when it has an extended key usage, must include
 * tcg-kp-EKCertificate. Failure is a ConfidantError `ek.certificate` whose message says what
 * failed.
 */
export async function verifyEkCertificate(
  cert: Uint8Array | string | x509.X509Certificate,
  opts: VerifyEkCertificateOptions,
): Promise<VerifiedEkCertificate> {
  const fail = (m: string): never => {
    throw new ConfidantError("ek.certificate", m);
  };
  if ((opts.caCertificates === undefined) === (opts.anchors === undefined)) {
    throw new ConfidantError(
      "ek.options",
      "verifyEkCertificate needs exactly one of caCertificates and anchors",
    );
  }
  const leaf = cert instanceof x509.X509Certificate ? cert : parseCertificate(cert);
  const anchors: readonly x509.X509Certificate[] = opts.anchors === undefined
    ? opts.caCertificates!.flatMap((p) => parsePemBundle(p))
    : opts.anchors instanceof EkTrustAnchors
    ? opts.anchors.certificates
    : opts.anchors;
  if (anchors.length === 0) fail("no EK CA certificates are configured");
  const pool = (opts.intermediates ?? []).map((c) => parseCertificate(c));
  const chain: x509.X509Certificate[] = [leaf];
  const bad = extensionsSay(() => leafProblem(leaf), leaf);
  if (bad) fail(bad);
  if (!validAt(leaf, opts.now)) {
    fail(
      `the EK certificate is not valid at ${opts.now.toISOString()} ` +
        `(${leaf.notBefore.toISOString()} .. ${leaf.notAfter.toISOString()})`,
    );
  }
  let current = leaf;
  for (let depth = 0; depth < MAX_CHAIN_LENGTH; depth++) {
    for (const a of anchors) {
      if (await signedBy(current, a)) {
        if (!validAt(a, opts.now)) fail(`the CA certificate ${a.subject} is not valid now`);
        const why = extensionsSay(() => issuerProblem(a, chain.length - 1), a);
        if (why) fail(why);
        chain.push(a);
        return {
          ekPublic: ekPublicFromCertificate(leaf),
          certificate: leaf,
          chain: chain.map((c) => c.subject),
          validFrom: new Date(Math.max(...chain.map((c) => c.notBefore.getTime()))),
          validUntil: new Date(Math.min(...chain.map((c) => c.notAfter.getTime()))),
        };
      }
    }
    let next: x509.X509Certificate | undefined;
    for (const p of pool) {
      if (chain.includes(p)) continue;
      if (await signedBy(current, p)) {
        next = p;
        break;
      }
    }
    if (!next) {
      fail(`no trusted issuer found for "${current.subject}" (issuer "${current.issuer}")`);
    }
    const n = next as x509.X509Certificate;
    if (!isCa(n)) fail(`intermediate "${n.subject}" is not a CA`);
    if (!validAt(n, opts.now)) fail(`intermediate "${n.subject}" is not valid now`);
    const why = extensionsSay(() => issuerProblem(n, chain.length - 1), n);
    if (why) fail(why);
    chain.push(n);
    current = n;
  }
  return fail("the certificate chain is too long");
}
