/**
 * A small, strict DER reader for the parts of X.509 that TEE verifiers need and that
 * @peculiar/x509 keeps private: the exact `tbsCertificate` / `tbsCertList` bytes that a
 * signature covers, the signature algorithm's parameters, and the signature value.
 *
 * Input is hostile: every length is checked against the buffer, only definite lengths and
 * single-byte tags are accepted, nesting is bounded, and any violation is a
 * {@link ParseError} (never a RangeError or an out-of-range read).
 *
 * @module
 */
import { fromBase64 } from "../../lib/bytes.ts";
import { ParseError } from "../../lib/errors.ts";

/** One DER TLV: its tag byte, its content bytes and the whole encoding. */
export interface DerNode {
  /** The identifier octet (class, constructed bit and tag number). */
  tag: number;
  /** Content octets (a view into the input). */
  contents: Uint8Array;
  /** Tag, length and contents (a view into the input). */
  raw: Uint8Array;
}

/** Universal tags used by callers. */
export const DerTag = {
  Boolean: 0x01,
  Integer: 0x02,
  BitString: 0x03,
  OctetString: 0x04,
  Null: 0x05,
  Oid: 0x06,
  Utf8String: 0x0c,
  PrintableString: 0x13,
  Ia5String: 0x16,
  UtcTime: 0x17,
  GeneralizedTime: 0x18,
  Sequence: 0x30,
  Set: 0x31,
} as const;

/** Largest DER object accepted (16 MiB): certificates and CRLs are far smaller. */
const MAX_LENGTH = 16 * 1024 * 1024;

/**
 * Read one TLV at `offset` of `buf`; `what` names the input in errors.
 * The node must fit inside `buf`.
 */
export function readDer(buf: Uint8Array, offset = 0, what = "der"): DerNode {
  if (offset < 0 || offset + 2 > buf.length) {
    throw new ParseError(what, `${what}: truncated DER header at offset ${offset}`);
  }
  const tag = buf[offset];
  if ((tag & 0x1f) === 0x1f) {
    throw new ParseError(what, `${what}: multi-byte DER tags are not supported`);
  }
  let len = buf[offset + 1];
  let p = offset + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0) throw new ParseError(what, `${what}: indefinite length is not DER`);
    if (n > 4) throw new ParseError(what, `${what}: DER length of ${n} bytes is too long`);
    if (p + n > buf.length) throw new ParseError(what, `${what}: truncated DER length`);
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[p + i];
    if (buf[p] === 0 || len < 0x80) throw new ParseError(what, `${what}: non-minimal DER length`);
    p += n;
  }
  if (len > MAX_LENGTH) {
    throw new ParseError(what, `${what}: DER object of ${len} bytes is too large`);
  }
  if (p + len > buf.length) {
    throw new ParseError(what, `${what}: DER object of ${len} bytes overruns its container`);
  }
  return { tag, contents: buf.subarray(p, p + len), raw: buf.subarray(offset, p + len) };
}

/** Read a buffer that must hold exactly one TLV (no trailing bytes). */
export function readDerExact(buf: Uint8Array, what = "der"): DerNode {
  const n = readDer(buf, 0, what);
  if (n.raw.length !== buf.length) {
    throw new ParseError(
      what,
      `${what}: ${buf.length - n.raw.length} trailing bytes after DER object`,
    );
  }
  return n;
}

/** The child TLVs of a constructed node, in order. */
export function derChildren(node: DerNode, what = "der"): DerNode[] {
  if (!(node.tag & 0x20)) throw new ParseError(what, `${what}: expected a constructed DER object`);
  const out: DerNode[] = [];
  let p = 0;
  while (p < node.contents.length) {
    if (out.length >= 10_000) throw new ParseError(what, `${what}: too many DER children`);
    const c = readDer(node.contents, p, what);
    out.push(c);
    p += c.raw.length;
  }
  return out;
}

/** Require `node.tag === tag`. */
export function expectTag(node: DerNode, tag: number, what = "der"): DerNode {
  if (node.tag !== tag) {
    throw new ParseError(
      what,
      `${what}: expected DER tag 0x${tag.toString(16)}, got 0x${node.tag.toString(16)}`,
    );
  }
  return node;
}

/** Dotted-decimal text of an OBJECT IDENTIFIER node. */
export function derOid(node: DerNode, what = "der"): string {
  expectTag(node, DerTag.Oid, what);
  const b = node.contents;
  if (b.length === 0 || b.length > 64) throw new ParseError(what, `${what}: bad OID length`);
  const arcs: number[] = [];
  let v = 0;
  for (let i = 0; i < b.length; i++) {
    if (v === 0 && b[i] === 0x80) throw new ParseError(what, `${what}: non-minimal OID arc`);
    v = v * 128 + (b[i] & 0x7f);
    if (v > Number.MAX_SAFE_INTEGER / 256) throw new ParseError(what, `${what}: OID arc too large`);
    if (!(b[i] & 0x80)) {
      arcs.push(v);
      v = 0;
    } else if (i === b.length - 1) {
      throw new ParseError(what, `${what}: truncated OID`);
    }
  }
  const first = arcs[0] < 40 ? 0 : arcs[0] < 80 ? 1 : 2;
  return [first, arcs[0] - first * 40, ...arcs.slice(1)].join(".");
}

/** Value of an INTEGER node that fits in a JavaScript safe integer (negative values refused). */
export function derSmallUint(node: DerNode, what = "der"): number {
  expectTag(node, DerTag.Integer, what);
  const b = node.contents;
  if (b.length === 0) throw new ParseError(what, `${what}: empty INTEGER`);
  if (b[0] & 0x80) throw new ParseError(what, `${what}: negative INTEGER`);
  if (b.length > 1 && b[0] === 0 && !(b[1] & 0x80)) {
    throw new ParseError(what, `${what}: non-minimal INTEGER`);
  }
  if (b.length > 7) throw new ParseError(what, `${what}: INTEGER too large`);
  let v = 0;
  for (const x of b) v = v * 256 + x;
  return v;
}

/** The bytes of a BIT STRING with no unused bits. */
export function derBitStringBytes(node: DerNode, what = "der"): Uint8Array {
  expectTag(node, DerTag.BitString, what);
  if (node.contents.length === 0 || node.contents[0] !== 0) {
    throw new ParseError(what, `${what}: BIT STRING with unused bits`);
  }
  return node.contents.subarray(1);
}

/** A signed X.509 object (certificate or CRL) split into what its signature covers. */
export interface SignedDer {
  /** The exact TBS bytes (tag and length included) the signature is computed over. */
  tbs: DerNode;
  /** The outer AlgorithmIdentifier SEQUENCE. */
  signatureAlgorithm: DerNode;
  /** The signature value (BIT STRING contents without the unused-bits octet). */
  signature: Uint8Array;
}

/**
 * Split a DER certificate or CRL (`SEQUENCE { tbs, AlgorithmIdentifier, BIT STRING }`).
 * Trailing bytes after the outer SEQUENCE are refused.
 */
export function splitSignedDer(der: Uint8Array, what = "certificate"): SignedDer {
  const outer = expectTag(readDerExact(der, what), DerTag.Sequence, what);
  const parts = derChildren(outer, what);
  if (parts.length !== 3) {
    throw new ParseError(what, `${what}: expected 3 parts, got ${parts.length}`);
  }
  expectTag(parts[0], DerTag.Sequence, what);
  expectTag(parts[1], DerTag.Sequence, what);
  return {
    tbs: parts[0],
    signatureAlgorithm: parts[1],
    signature: derBitStringBytes(parts[2], what),
  };
}

/** OIDs of the RSASSA-PSS / SHA-384 algorithm identifier pieces. */
const OID_RSASSA_PSS = "1.2.840.113549.1.1.10";
const OID_SHA384 = "2.16.840.1.101.3.4.2.2";
const OID_MGF1 = "1.2.840.113549.1.1.8";

/** Parameters of an RSASSA-PSS AlgorithmIdentifier. */
export interface PssParams {
  hash: string;
  mgfHash: string;
  saltLength: number;
}

function hashOid(oid: string): string {
  return oid === OID_SHA384
    ? "SHA-384"
    : oid === "2.16.840.1.101.3.4.2.1"
    ? "SHA-256"
    : oid === "2.16.840.1.101.3.4.2.3"
    ? "SHA-512"
    : `oid:${oid}`;
}

/**
 * Parse an RSASSA-PSS AlgorithmIdentifier (RFC 4055). Returns `undefined` when the
 * algorithm is not RSASSA-PSS. Absent fields take the RFC defaults (SHA-1, salt 20).
 */
export function parsePssAlgorithm(alg: DerNode, what = "algorithm"): PssParams | undefined {
  const kids = derChildren(expectTag(alg, DerTag.Sequence, what), what);
  if (kids.length < 1 || derOid(kids[0], what) !== OID_RSASSA_PSS) return undefined;
  const out: PssParams = { hash: "SHA-1", mgfHash: "SHA-1", saltLength: 20 };
  if (kids.length < 2) return out;
  for (const f of derChildren(expectTag(kids[1], DerTag.Sequence, what), what)) {
    const inner = derChildren(f, what);
    if (inner.length !== 1) throw new ParseError(what, `${what}: malformed PSS parameter`);
    if (f.tag === 0xa0) {
      out.hash = hashOid(derOid(derChildren(inner[0], what)[0], what));
    } else if (f.tag === 0xa1) {
      const mgf = derChildren(inner[0], what);
      if (mgf.length !== 2 || derOid(mgf[0], what) !== OID_MGF1) {
        throw new ParseError(what, `${what}: PSS mask generation is not MGF1`);
      }
      out.mgfHash = hashOid(derOid(derChildren(mgf[1], what)[0], what));
    } else if (f.tag === 0xa2) {
      out.saltLength = derSmallUint(inner[0], what);
    } else if (f.tag === 0xa3) {
      if (derSmallUint(inner[0], what) !== 1) {
        throw new ParseError(what, `${what}: PSS trailer is not 1`);
      }
    } else {
      throw new ParseError(what, `${what}: unknown PSS parameter tag 0x${f.tag.toString(16)}`);
    }
  }
  return out;
}

/** Every `-----BEGIN <label>-----` block of a PEM text, decoded; other text is ignored. */
export function pemBlocks(text: string, label = "CERTIFICATE", what = "pem"): Uint8Array[] {
  const re = new RegExp(`-----BEGIN ${label}-----([\\s\\S]*?)-----END ${label}-----`, "g");
  const out: Uint8Array[] = [];
  for (const m of text.matchAll(re)) out.push(fromBase64(m[1].replace(/\s+/g, ""), what));
  return out;
}
