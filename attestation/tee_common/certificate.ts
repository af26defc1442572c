/**
 * A minimal X.509 certificate reader and signature checker for TEE vendor chains (AMD,
 * Intel). It reads exactly what chain checks need — the signed TBS bytes, serial, issuer
 * and subject names, validity, public key and extensions — and verifies a certificate's
 * signature with its issuer's key through Web Crypto (RSASSA-PSS with the parameters the
 * certificate states, or ECDSA). Hostile input is a {@link ParseError}.
 *
 * @module
 */
import { toHex } from "../../lib/bytes.ts";
import { ParseError } from "../../lib/errors.ts";
import {
  derChildren,
  type DerNode,
  derOid,
  DerTag,
  expectTag,
  parsePssAlgorithm,
  readDer,
  splitSignedDer,
} from "./der.ts";

/** One certificate extension. */
export interface CertExtension {
  critical: boolean;
  /** The extnValue OCTET STRING contents. */
  value: Uint8Array;
}

/** The parsed parts of an X.509 certificate. */
export interface ParsedCertificate {
  /** The whole DER encoding. */
  der: Uint8Array;
  /** The exact signed bytes (`tbsCertificate`, tag and length included). */
  tbs: Uint8Array;
  /** The outer signature AlgorithmIdentifier. */
  signatureAlgorithm: DerNode;
  /** The signature value. */
  signature: Uint8Array;
  /** Serial number as lower-case hex of its content octets. */
  serialHex: string;
  /** DER of the issuer Name. */
  issuerRaw: Uint8Array;
  /** DER of the subject Name. */
  subjectRaw: Uint8Array;
  /** Common name of the issuer (empty when absent). */
  issuerCn: string;
  /** Common name of the subject (empty when absent). */
  subjectCn: string;
  notBefore: Date;
  notAfter: Date;
  /** DER SubjectPublicKeyInfo. */
  spki: Uint8Array;
  /** OID of the public key algorithm. */
  keyAlgorithm: string;
  /** Named-curve OID for EC keys. */
  keyCurve?: string;
  /** Extensions by OID. */
  extensions: Map<string, CertExtension>;
}

const OID_CN = "2.5.4.3";
export const OID_EC_PUBLIC_KEY = "1.2.840.10045.2.1";
export const OID_RSA = "1.2.840.113549.1.1.1";
export const OID_P256 = "1.2.840.10045.3.1.7";
export const OID_P384 = "1.3.132.0.34";
const OID_ECDSA_SHA256 = "1.2.840.10045.4.3.2";
const OID_ECDSA_SHA384 = "1.2.840.10045.4.3.3";

const td = new TextDecoder("utf-8", { fatal: false });

/** The first common name in a DER Name, or "". */
export function nameCommonName(name: DerNode, what = "name"): string {
  for (const rdn of derChildren(expectTag(name, DerTag.Sequence, what), what)) {
    for (const atv of derChildren(expectTag(rdn, DerTag.Set, what), what)) {
      const kv = derChildren(expectTag(atv, DerTag.Sequence, what), what);
      if (kv.length !== 2) throw new ParseError(what, `${what}: malformed attribute`);
      if (derOid(kv[0], what) === OID_CN) return td.decode(kv[1].contents);
    }
  }
  return "";
}

/** A DER UTCTime or GeneralizedTime as a Date. */
export function derTime(node: DerNode, what = "time"): Date {
  const s = String.fromCharCode(...node.contents);
  let m: RegExpMatchArray | null;
  let year: number;
  if (node.tag === DerTag.UtcTime) {
    m = s.match(/^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/);
    if (!m) throw new ParseError(what, `${what}: malformed UTCTime`);
    const yy = Number(m[1]);
    year = yy >= 50 ? 1900 + yy : 2000 + yy;
  } else if (node.tag === DerTag.GeneralizedTime) {
    m = s.match(/^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/);
    if (!m) throw new ParseError(what, `${what}: malformed GeneralizedTime`);
    year = Number(m[1]);
  } else {
    throw new ParseError(what, `${what}: expected a time`);
  }
  const [mo, d, h, mi, se] = m.slice(2).map(Number);
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60) {
    throw new ParseError(what, `${what}: time out of range`);
  }
  return new Date(Date.UTC(year, mo - 1, d, h, mi, se));
}

/** Parse a DER certificate; `what` names it in errors (e.g. "vcek"). */
export function parseCertificate(der: Uint8Array, what = "certificate"): ParsedCertificate {
  const signed = splitSignedDer(der, what);
  const f = derChildren(signed.tbs, what);
  let i = 0;
  if (f[0]?.tag === 0xa0) i++; // explicit version
  if (f.length < i + 6) throw new ParseError(what, `${what}: tbsCertificate has too few fields`);
  const serial = expectTag(f[i], DerTag.Integer, what);
  const issuer = expectTag(f[i + 2], DerTag.Sequence, what);
  const validity = derChildren(expectTag(f[i + 3], DerTag.Sequence, what), what);
  if (validity.length !== 2) throw new ParseError(what, `${what}: malformed validity`);
  const subject = expectTag(f[i + 4], DerTag.Sequence, what);
  const spki = expectTag(f[i + 5], DerTag.Sequence, what);
  const spkiParts = derChildren(spki, what);
  if (spkiParts.length !== 2) throw new ParseError(what, `${what}: malformed public key info`);
  const keyAlg = derChildren(expectTag(spkiParts[0], DerTag.Sequence, what), what);
  if (keyAlg.length < 1) throw new ParseError(what, `${what}: malformed key algorithm`);
  const keyAlgorithm = derOid(keyAlg[0], what);
  const keyCurve = keyAlgorithm === OID_EC_PUBLIC_KEY && keyAlg[1]?.tag === DerTag.Oid
    ? derOid(keyAlg[1], what)
    : undefined;
  const extensions = new Map<string, CertExtension>();
  for (const opt of f.slice(i + 6)) {
    if (opt.tag !== 0xa3) continue; // issuer/subject unique ids are ignored
    const inner = derChildren(opt, what);
    if (inner.length !== 1) throw new ParseError(what, `${what}: malformed extensions`);
    for (const ext of derChildren(expectTag(inner[0], DerTag.Sequence, what), what)) {
      const e = derChildren(expectTag(ext, DerTag.Sequence, what), what);
      if (e.length < 2 || e.length > 3) throw new ParseError(what, `${what}: malformed extension`);
      const oid = derOid(e[0], what);
      const critical = e.length === 3 && e[1].tag === DerTag.Boolean && e[1].contents[0] !== 0;
      const value = expectTag(e[e.length - 1], DerTag.OctetString, what).contents;
      if (extensions.has(oid)) throw new ParseError(what, `${what}: duplicate extension ${oid}`);
      extensions.set(oid, { critical, value });
    }
  }
  return {
    der,
    tbs: signed.tbs.raw,
    signatureAlgorithm: signed.signatureAlgorithm,
    signature: signed.signature,
    serialHex: toHex(serial.contents),
    issuerRaw: issuer.raw,
    subjectRaw: subject.raw,
    issuerCn: nameCommonName(issuer, what),
    subjectCn: nameCommonName(subject, what),
    notBefore: derTime(validity[0], what),
    notAfter: derTime(validity[1], what),
    spki: spki.raw,
    keyAlgorithm,
    keyCurve,
    extensions,
  };
}

/** An ECDSA DER signature (`SEQUENCE { r, s }`) as the fixed-width r‖s Web Crypto expects. */
export function ecdsaDerToRaw(sig: Uint8Array, size: number, what = "signature"): Uint8Array {
  const parts = derChildren(expectTag(readDer(sig, 0, what), DerTag.Sequence, what), what);
  if (parts.length !== 2) throw new ParseError(what, `${what}: malformed ECDSA signature`);
  const out = new Uint8Array(2 * size);
  parts.forEach((p, k) => {
    let v = expectTag(p, DerTag.Integer, what).contents;
    while (v.length > 0 && v[0] === 0) v = v.subarray(1);
    if (v.length > size) throw new ParseError(what, `${what}: ECDSA integer too large`);
    out.set(v, k * size + size - v.length);
  });
  return out;
}

/**
 * Verify `signature` over `tbs` with the issuer's SubjectPublicKeyInfo, using the algorithm
 * named by `algorithm`. Returns false for a wrong signature or a key that does not fit the
 * algorithm; throws {@link ParseError} for an algorithm it does not know.
 * When `requirePss` is set, only RSASSA-PSS with exactly those parameters is accepted.
 */
export async function verifySignedBytes(
  tbs: Uint8Array,
  algorithm: DerNode,
  signature: Uint8Array,
  issuerSpki: Uint8Array,
  requirePss?: { hash: string; saltLength: number },
): Promise<boolean> {
  const pss = parsePssAlgorithm(algorithm, "signature algorithm");
  if (requirePss) {
    if (
      !pss || pss.hash !== requirePss.hash || pss.mgfHash !== requirePss.hash ||
      pss.saltLength !== requirePss.saltLength
    ) return false;
  }
  const oid = pss
    ? ""
    : derOid(derChildren(algorithm, "signature algorithm")[0], "signature algorithm");
  if (!pss && oid !== OID_ECDSA_SHA256 && oid !== OID_ECDSA_SHA384) {
    throw new ParseError("signature_algorithm", `unsupported signature algorithm ${oid}`);
  }
  try {
    if (pss) {
      if (pss.mgfHash !== pss.hash) return false;
      const key = await crypto.subtle.importKey(
        "spki",
        issuerSpki as BufferSource,
        { name: "RSA-PSS", hash: pss.hash },
        false,
        ["verify"],
      );
      return await crypto.subtle.verify(
        { name: "RSA-PSS", saltLength: pss.saltLength },
        key,
        signature as BufferSource,
        tbs as BufferSource,
      );
    }
    const spkiKey = readDer(issuerSpki, 0, "spki");
    const alg = derChildren(derChildren(spkiKey, "spki")[0], "spki");
    const curve = alg[1] ? derOid(alg[1], "spki") : "";
    const [namedCurve, size] = curve === OID_P384 ? ["P-384", 48] as const : ["P-256", 32] as const;
    const key = await crypto.subtle.importKey(
      "spki",
      issuerSpki as BufferSource,
      { name: "ECDSA", namedCurve },
      false,
      ["verify"],
    );
    return await crypto.subtle.verify(
      { name: "ECDSA", hash: oid === OID_ECDSA_SHA384 ? "SHA-384" : "SHA-256" },
      key,
      ecdsaDerToRaw(signature, size) as BufferSource,
      tbs as BufferSource,
    );
  } catch {
    return false; // a malformed key or signature value, or a refused verification
  }
}

/** Verify a parsed certificate's signature with its issuer's key. */
export function verifyCertificateSignature(
  cert: ParsedCertificate,
  issuer: ParsedCertificate,
  requirePss?: { hash: string; saltLength: number },
): Promise<boolean> {
  return verifySignedBytes(
    cert.tbs,
    cert.signatureAlgorithm,
    cert.signature,
    issuer.spki,
    requirePss,
  );
}
