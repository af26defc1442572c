/**
 * Parser of Intel TDX quotes, versions 4 and 5 (Intel TDX DCAP Quoting Library
 * API, appendix "Quote format"). The quote is hostile input: every length is
 * checked against the buffer before it is read, and anything malformed is a
 * {@link ParseError}. Bytes after the quote (padding that some tools append) are
 * ignored: the quote's length comes from its own `sig_data_len`.
 *
 * @module
 */
import { ParseError } from "../../lib/errors.ts";
import { fromBase64 } from "../../lib/bytes.ts";
import { readNode, Tag } from "./_der.ts";

/** Largest quote buffer accepted (real quotes are about 5 KiB). */
export const MAX_QUOTE_BYTES = 1 << 20;
/** Header length of v4 and v5 quotes. */
export const HEADER_BYTES = 48;
/** TDX 1.0 TD report body length (TD_REPORT10 in the quote). */
export const BODY_V4_BYTES = 584;
/** TDX 1.5 TD report body length (adds TEE_TCB_SVN_2 and MRSERVICETD). */
export const BODY_V15_BYTES = 648;
/** SGX REPORT body length of the quoting enclave's report. */
export const QE_REPORT_BYTES = 384;
/** Attestation key type 2: ECDSA-256 with P-256. */
export const ATT_KEY_TYPE_ECDSA_P256 = 2;
/** TEE type of TDX in the quote header. */
export const TEE_TYPE_TDX = 0x81;
/** Intel's QE vendor id. */
export const INTEL_QE_VENDOR_ID = "939a7233f79c4ca9940a0db3957f0607";
/** Certification data type 5: PEM PCK certificate chain. */
export const CERT_TYPE_PCK_CHAIN = 5;
/** Certification data type 6: QE report certification data. */
export const CERT_TYPE_QE_REPORT = 6;

/** Header of a TDX quote. */
export interface TdxQuoteHeader {
  version: number;
  attestationKeyType: number;
  teeType: number;
  qeSvn: number;
  pceSvn: number;
  qeVendorId: Uint8Array;
  userData: Uint8Array;
}

/** The TD report body the quote signs (TDX 1.0 fields, plus the TDX 1.5 ones when present). */
export interface TdxReportBody {
  teeTcbSvn: Uint8Array;
  mrSeam: Uint8Array;
  mrSignerSeam: Uint8Array;
  seamAttributes: Uint8Array;
  tdAttributes: Uint8Array;
  xfam: Uint8Array;
  mrTd: Uint8Array;
  mrConfigId: Uint8Array;
  mrOwner: Uint8Array;
  mrOwnerConfig: Uint8Array;
  rtmrs: [Uint8Array, Uint8Array, Uint8Array, Uint8Array];
  reportData: Uint8Array;
  /** TDX 1.5 only. */
  teeTcbSvn2?: Uint8Array;
  /** TDX 1.5 only. */
  mrServiceTd?: Uint8Array;
}

/** The SGX REPORT body of the quoting enclave (the fields the verifier uses). */
export interface QeReport {
  /** All 384 bytes, as signed by the PCK key. */
  raw: Uint8Array;
  cpuSvn: Uint8Array;
  miscSelect: number;
  attributes: Uint8Array;
  mrEnclave: Uint8Array;
  mrSigner: Uint8Array;
  isvProdId: number;
  isvSvn: number;
  reportData: Uint8Array;
}

/** A parsed TDX quote. Byte fields are views into a private copy of the input. */
export interface TdxQuote {
  header: TdxQuoteHeader;
  /** v5 body type (2 = TDX 1.0, 3 = TDX 1.5); 2 for v4 quotes. */
  bodyType: number;
  body: TdxReportBody;
  /** Bytes covered by the quote signature: header (+ v5 type and size) + body. */
  signedRegion: Uint8Array;
  /** ECDSA P-256 signature, r||s big-endian. */
  signature: Uint8Array;
  /** Attestation public key, x||y. */
  attestationKey: Uint8Array;
  qeReport: QeReport;
  /** ECDSA P-256 signature of the PCK key over `qeReport.raw`, r||s. */
  qeReportSignature: Uint8Array;
  qeAuthData: Uint8Array;
  /** DER certificates of the PCK chain, leaf first, as carried in the quote. */
  pckChain: Uint8Array[];
  /** How the chain was encoded in the quote (type 5 is specified as PEM). */
  pckChainEncoding: "pem" | "der";
  /** Length of the quote itself; the input may have had trailing bytes. */
  length: number;
}

class Reader {
  constructor(readonly buf: Uint8Array, public off: number, readonly end: number) {}
  need(n: number, what: string): void {
    if (n < 0 || this.off + n > this.end) {
      throw new ParseError(
        "tdx_quote",
        `quote truncated: ${what} needs ${n} bytes at offset ${this.off}, only ${
          this.end - this.off
        } left`,
      );
    }
  }
  bytes(n: number, what: string): Uint8Array {
    this.need(n, what);
    const b = this.buf.subarray(this.off, this.off + n);
    this.off += n;
    return b;
  }
  u16(what: string): number {
    const b = this.bytes(2, what);
    return b[0] | (b[1] << 8);
  }
  u32(what: string): number {
    const b = this.bytes(4, what);
    return (b[0] | (b[1] << 8) | (b[2] << 16)) + b[3] * 0x1000000;
  }
}

function parseBody(r: Reader, size: number): TdxReportBody {
  const b = (n: number, w: string) => r.bytes(n, w);
  const body: TdxReportBody = {
    teeTcbSvn: b(16, "TEE_TCB_SVN"),
    mrSeam: b(48, "MRSEAM"),
    mrSignerSeam: b(48, "MRSIGNERSEAM"),
    seamAttributes: b(8, "SEAMATTRIBUTES"),
    tdAttributes: b(8, "TDATTRIBUTES"),
    xfam: b(8, "XFAM"),
    mrTd: b(48, "MRTD"),
    mrConfigId: b(48, "MRCONFIGID"),
    mrOwner: b(48, "MROWNER"),
    mrOwnerConfig: b(48, "MROWNERCONFIG"),
    rtmrs: [b(48, "RTMR0"), b(48, "RTMR1"), b(48, "RTMR2"), b(48, "RTMR3")],
    reportData: b(64, "REPORTDATA"),
  };
  if (size === BODY_V15_BYTES) {
    body.teeTcbSvn2 = b(16, "TEE_TCB_SVN_2");
    body.mrServiceTd = b(48, "MRSERVICETD");
  }
  return body;
}

function parseQeReport(raw: Uint8Array): QeReport {
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  return {
    raw,
    cpuSvn: raw.subarray(0, 16),
    miscSelect: dv.getUint32(16, true),
    attributes: raw.subarray(48, 64),
    mrEnclave: raw.subarray(64, 96),
    mrSigner: raw.subarray(128, 160),
    isvProdId: dv.getUint16(256, true),
    isvSvn: dv.getUint16(258, true),
    reportData: raw.subarray(320, 384),
  };
}

/** Most certificates accepted in one PCK chain. */
export const MAX_CHAIN_CERTS = 8;

/** Split concatenated DER certificates (some quotes carry DER instead of PEM under type 5). */
function derChain(b: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let off = 0;
  while (off < b.length) {
    if (out.length >= MAX_CHAIN_CERTS) {
      throw new ParseError("tdx_quote", "too many PCK certificates");
    }
    const n = readNode(b, off);
    if (n.tag !== Tag.Sequence) {
      throw new ParseError("tdx_quote", "PCK chain holds a non-certificate");
    }
    out.push(b.subarray(off, n.end));
    off = n.end;
  }
  return out;
}

const PEM_RE = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\r\n]*?)-----END CERTIFICATE-----/g;

/** Certificates of a PEM chain, strictly: only certificate armour, base64 and whitespace. */
export function pemCertificates(text: string, what = "PCK certificate chain"): Uint8Array[] {
  const out: Uint8Array[] = [];
  let rest = text;
  for (const m of text.matchAll(PEM_RE)) {
    if (out.length >= MAX_CHAIN_CERTS) {
      throw new ParseError("tdx_quote", `too many certificates in ${what}`);
    }
    out.push(fromBase64(m[1].replace(/[\r\n]/g, ""), what));
    rest = rest.replace(m[0], "");
  }
  if (rest.trim() !== "") {
    throw new ParseError("tdx_quote", `${what} holds text outside certificates`);
  }
  if (out.length === 0) throw new ParseError("tdx_quote", `${what} holds no certificate`);
  return out;
}

/** The PCK chain of certification data type 5: PEM text (standard) or concatenated DER. */
function pckChain(b: Uint8Array): { encoding: "pem" | "der"; certs: Uint8Array[] } {
  // Some producers NUL-terminate the chain.
  let end = b.length;
  while (end > 0 && b[end - 1] === 0) end--;
  const data = b.subarray(0, end);
  if (data.length > 0 && data[0] === Tag.Sequence) {
    return { encoding: "der", certs: derChain(data) };
  }
  for (const c of data) {
    if (c !== 0x0a && c !== 0x0d && (c < 0x20 || c > 0x7e)) {
      throw new ParseError("tdx_quote", "PCK certificate chain is neither PEM text nor DER");
    }
  }
  return { encoding: "pem", certs: pemCertificates(new TextDecoder().decode(data)) };
}

/**
 * Parse a TDX quote (v4, or v5 with body type 2 or 3) with ECDSA P-256
 * attestation key and QE-report certification data carrying a PEM PCK chain.
 * Anything else, or any length that does not fit, throws {@link ParseError}.
 */
export function parseTdxQuote(input: Uint8Array): TdxQuote {
  if (!(input instanceof Uint8Array)) throw new ParseError("tdx_quote", "quote must be bytes");
  if (input.length > MAX_QUOTE_BYTES) {
    throw new ParseError(
      "tdx_quote",
      `quote is ${input.length} bytes; more than ${MAX_QUOTE_BYTES} is refused`,
    );
  }
  const buf = input.slice();
  const r = new Reader(buf, 0, buf.length);
  const version = r.u16("version");
  if (version !== 4 && version !== 5) {
    throw new ParseError(
      "tdx_quote",
      `quote format not supported: version ${version} (4 or 5 expected)`,
    );
  }
  const attestationKeyType = r.u16("attestation key type");
  if (attestationKeyType !== ATT_KEY_TYPE_ECDSA_P256) {
    throw new ParseError(
      "tdx_quote",
      `attestation key type ${attestationKeyType} not supported (2 = ECDSA-256 expected)`,
    );
  }
  const teeType = r.u32("TEE type");
  if (teeType !== TEE_TYPE_TDX) {
    throw new ParseError("tdx_quote", `TEE type 0x${teeType.toString(16)} is not TDX (0x81)`);
  }
  const header: TdxQuoteHeader = {
    version,
    attestationKeyType,
    teeType,
    qeSvn: r.u16("QE SVN"),
    pceSvn: r.u16("PCE SVN"),
    qeVendorId: r.bytes(16, "QE vendor id"),
    userData: r.bytes(20, "user data"),
  };
  let bodyType = 2;
  let bodySize = BODY_V4_BYTES;
  if (version === 5) {
    bodyType = r.u16("body type");
    bodySize = r.u32("body size");
    const expected = bodyType === 2 ? BODY_V4_BYTES : bodyType === 3 ? BODY_V15_BYTES : -1;
    if (expected < 0) {
      throw new ParseError("tdx_quote", `v5 body type ${bodyType} not supported (2 or 3 expected)`);
    }
    if (bodySize !== expected) {
      throw new ParseError(
        "tdx_quote",
        `v5 body type ${bodyType} must be ${expected} bytes, quote says ${bodySize}`,
      );
    }
  }
  const body = parseBody(r, bodySize);
  const signedRegion = buf.subarray(0, r.off);
  const sigDataLen = r.u32("signature data length");
  r.need(sigDataLen, "signature data");
  const length = r.off + sigDataLen;
  const s = new Reader(buf, r.off, length);
  const signature = s.bytes(64, "quote signature");
  const attestationKey = s.bytes(64, "attestation key");
  const certType = s.u16("certification data type");
  if (certType !== CERT_TYPE_QE_REPORT) {
    throw new ParseError(
      "tdx_quote",
      `certification data type ${certType} not supported (6 = QE report expected)`,
    );
  }
  const certSize = s.u32("certification data size");
  if (s.off + certSize !== length) {
    throw new ParseError(
      "tdx_quote",
      `size of certificate data is 0x${certSize.toString(16)}; expected 0x${
        (length - s.off).toString(16)
      }`,
    );
  }
  const c = new Reader(buf, s.off, length);
  const qeReport = parseQeReport(c.bytes(QE_REPORT_BYTES, "QE report"));
  const qeReportSignature = c.bytes(64, "QE report signature");
  const authLen = c.u16("QE auth data length");
  const qeAuthData = c.bytes(authLen, "QE auth data");
  const innerType = c.u16("inner certification data type");
  if (innerType !== CERT_TYPE_PCK_CHAIN) {
    throw new ParseError(
      "tdx_quote",
      `inner certification data type ${innerType} not supported (5 = PEM PCK chain expected)`,
    );
  }
  const innerSize = c.u32("inner certification data size");
  if (c.off + innerSize !== length) {
    throw new ParseError(
      "tdx_quote",
      `inner certification data is 0x${innerSize.toString(16)} bytes; expected 0x${
        (length - c.off).toString(16)
      }`,
    );
  }
  const chain = pckChain(c.bytes(innerSize, "PCK certificate chain"));
  return {
    header,
    bodyType,
    body,
    signedRegion,
    signature,
    attestationKey,
    qeReport,
    qeReportSignature,
    qeAuthData,
    pckChain: chain.certs,
    pckChainEncoding: chain.encoding,
    length,
  };
}
