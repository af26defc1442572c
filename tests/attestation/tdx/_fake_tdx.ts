/**
 * A fake Intel PKI and quote builder for tests: its own root, PCK Platform CA,
 * PCK leaf with an SGX extension, TCB Signing cert, attestation key, and
 * quotes and collateral signed by them. Nothing here is trusted by default:
 * tests pass `rootDer` to the verifier to trust this PKI.
 */
import { concat, sha256, toHex, utf8 } from "../../../lib/bytes.ts";
import {
  BasicConstraintsExtension,
  Extension,
  X509Certificate,
  X509CertificateGenerator,
} from "../../../lib/x509.ts";
import { SGX_EXTENSION_OID } from "../../../attestation/tdx/pck_extensions.ts";

// --- minimal DER encoder ---
function len(n: number): Uint8Array {
  if (n < 0x80) return new Uint8Array([n]);
  if (n < 0x100) return new Uint8Array([0x81, n]);
  return new Uint8Array([0x82, n >> 8, n & 0xff]);
}
function tlv(tag: number, body: Uint8Array): Uint8Array {
  return concat(new Uint8Array([tag]), len(body.length), body);
}
const seq = (...xs: Uint8Array[]) => tlv(0x30, concat(...xs));
function oid(s: string): Uint8Array {
  const a = s.split(".").map(Number);
  const out = [40 * a[0] + a[1]];
  for (const v of a.slice(2)) {
    const bytes = [v & 0x7f];
    let x = Math.floor(v / 128);
    while (x > 0) {
      bytes.unshift((x & 0x7f) | 0x80);
      x = Math.floor(x / 128);
    }
    out.push(...bytes);
  }
  return tlv(0x06, new Uint8Array(out));
}
function int(n: number): Uint8Array {
  const b: number[] = [];
  do {
    b.unshift(n & 0xff);
    n = Math.floor(n / 256);
  } while (n > 0);
  if (b[0] & 0x80) b.unshift(0);
  return tlv(0x02, new Uint8Array(b));
}
const octet = (b: Uint8Array) => tlv(0x04, b);

/** DER of an SGX extension value. */
export function sgxExtension(p: { fmspc: string; pceId: string; comps: number[]; pceSvn: number }) {
  const X = SGX_EXTENSION_OID;
  const tcb = p.comps.map((c, i) => seq(oid(`${X}.2.${i + 1}`), int(c)));
  tcb.push(seq(oid(`${X}.2.17`), int(p.pceSvn)));
  tcb.push(seq(oid(`${X}.2.18`), octet(new Uint8Array(p.comps))));
  return seq(
    seq(oid(`${X}.1`), octet(new Uint8Array(16).fill(7))),
    seq(oid(`${X}.2`), seq(...tcb)),
    seq(oid(`${X}.3`), octet(Uint8Array.from(p.pceId.match(/../g)!.map((h) => parseInt(h, 16))))),
    seq(oid(`${X}.4`), octet(Uint8Array.from(p.fmspc.match(/../g)!.map((h) => parseInt(h, 16))))),
    seq(oid(`${X}.5`), tlv(0x0a, new Uint8Array([0]))),
  );
}

const ALG = { name: "ECDSA", namedCurve: "P-256" } as const;
const SIGN = { name: "ECDSA", hash: "SHA-256" } as const;
const genKey = () =>
  crypto.subtle.generateKey(ALG, true, ["sign", "verify"]) as Promise<CryptoKeyPair>;
const NB = new Date("2024-01-01T00:00:00Z");
const NA = new Date("2034-01-01T00:00:00Z");
/** A time inside the fake PKI's validity. */
export const FAKE_NOW = new Date("2025-06-01T00:00:00Z");

function pem(c: X509Certificate): string {
  return c.toString("pem") + "\n";
}

/** The fake PKI. */
export interface FakePki {
  root: X509Certificate;
  rootDer: Uint8Array;
  platformCa: X509Certificate;
  caKey: CryptoKeyPair;
  rootKey: CryptoKeyPair;
  leaf: X509Certificate;
  leafKey: CryptoKeyPair;
  tcbSigning: X509Certificate;
  tcbSigningKey: CryptoKeyPair;
  attKey: CryptoKeyPair;
  chainPem: string;
  tcbChainPem: string;
}

let serial = 1;
async function issue(
  name: string,
  issuer: X509Certificate,
  issuerKey: CryptoKey,
  pub: CryptoKey,
  ca: boolean,
  extra: Extension[] = [],
): Promise<X509Certificate> {
  return await X509CertificateGenerator.create({
    serialNumber: (serial++).toString(16).padStart(4, "0"),
    subject: `CN=${name}, O=Fake Corp`,
    issuer: issuer.subject,
    notBefore: NB,
    notAfter: NA,
    signingAlgorithm: SIGN,
    publicKey: pub,
    signingKey: issuerKey,
    extensions: [new BasicConstraintsExtension(ca, ca ? 0 : undefined, true), ...extra],
  });
}

/** Build a fresh fake PKI whose root is named like Intel's (the name proves nothing). */
export async function makeFakePki(
  pck = {
    fmspc: "00806f050000",
    pceId: "0000",
    comps: [7, 7, 2, 2, 3, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0],
    pceSvn: 11,
  },
): Promise<FakePki> {
  const rootKey = await genKey();
  const root = await X509CertificateGenerator.createSelfSigned({
    serialNumber: "01",
    name: "CN=Intel SGX Root CA, O=Intel Corporation, L=Santa Clara, ST=CA, C=US",
    notBefore: NB,
    notAfter: NA,
    signingAlgorithm: SIGN,
    keys: rootKey,
    extensions: [new BasicConstraintsExtension(true, 1, true)],
  });
  const caKey = await genKey();
  const platformCa = await issue(
    "Fake PCK Platform CA",
    root,
    rootKey.privateKey,
    caKey.publicKey,
    true,
  );
  const leafKey = await genKey();
  const leaf = await issue(
    "Fake PCK Certificate",
    platformCa,
    caKey.privateKey,
    leafKey.publicKey,
    false,
    [new Extension(SGX_EXTENSION_OID, false, sgxExtension(pck) as BufferSource)],
  );
  const tcbSigningKey = await genKey();
  const tcbSigning = await issue(
    "Fake TCB Signing",
    root,
    rootKey.privateKey,
    tcbSigningKey.publicKey,
    false,
  );
  return {
    root,
    rootDer: new Uint8Array(root.rawData),
    platformCa,
    caKey,
    rootKey,
    leaf,
    leafKey,
    tcbSigning,
    tcbSigningKey,
    attKey: await genKey(),
    chainPem: pem(leaf) + pem(platformCa) + pem(root),
    tcbChainPem: pem(tcbSigning) + pem(root),
  };
}

/** Body fields a test may set (hex); the rest are fixed plausible values. */
export interface FakeBody {
  teeTcbSvn?: string;
  mrSeam?: string;
  mrSignerSeam?: string;
  seamAttributes?: string;
  tdAttributes?: string;
  xfam?: string;
  mrTd?: string;
  rtmrs?: string[];
  reportData?: string;
}

const h = (s: string) => Uint8Array.from(s.match(/../g) ?? [], (x) => parseInt(x, 16));
const u16 = (n: number) => new Uint8Array([n & 0xff, n >> 8]);
const u32 = (n: number) => new Uint8Array([n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, n >>> 24]);

/** Default body values of fake quotes. */
export const FAKE_BODY: Required<FakeBody> = {
  teeTcbSvn: "04010700000000000000000000000000",
  mrSeam: "aa".repeat(48),
  mrSignerSeam: "00".repeat(48),
  seamAttributes: "00".repeat(8),
  tdAttributes: "0000001000000000",
  xfam: "e702060000000000",
  mrTd: "11".repeat(48),
  rtmrs: ["21".repeat(48), "22".repeat(48), "23".repeat(48), "24".repeat(48)],
  reportData: "33".repeat(64),
};

/** A v4 quote signed by the fake PKI's attestation key, its QE report signed by the fake PCK. */
export async function makeFakeQuote(pki: FakePki, over: FakeBody = {}): Promise<Uint8Array> {
  const b = { ...FAKE_BODY, ...over };
  const header = concat(
    u16(4),
    u16(2),
    u32(0x81),
    u16(0),
    u16(11),
    h("939a7233f79c4ca9940a0db3957f0607"),
    new Uint8Array(20),
  );
  const body = concat(
    h(b.teeTcbSvn),
    h(b.mrSeam),
    h(b.mrSignerSeam),
    h(b.seamAttributes),
    h(b.tdAttributes),
    h(b.xfam),
    h(b.mrTd),
    new Uint8Array(48 * 3),
    ...b.rtmrs.map(h),
    h(b.reportData),
  );
  const signed = concat(header, body);
  const sig = new Uint8Array(
    await crypto.subtle.sign(SIGN, pki.attKey.privateKey, signed as BufferSource),
  );
  const attPub = new Uint8Array(await crypto.subtle.exportKey("raw", pki.attKey.publicKey))
    .subarray(1);
  const auth = new Uint8Array(32).map((_, i) => i);
  const qe = new Uint8Array(384);
  qe.set(h("dc9e2a7c6f948f17474e34a7fc43ed030f7c1563f1babddf6340c82e0e54a8c5"), 128);
  qe.set(u16(2), 256);
  qe.set(u16(4), 258);
  qe.set(await sha256(concat(attPub, auth)), 320);
  const qeSig = new Uint8Array(
    await crypto.subtle.sign(SIGN, pki.leafKey.privateKey, qe as BufferSource),
  );
  const chain = utf8(pki.chainPem);
  const inner = concat(qe, qeSig, u16(auth.length), auth, u16(5), u32(chain.length), chain);
  const sigData = concat(sig, attPub, u16(6), u32(inner.length), inner);
  return concat(signed, u32(sigData.length), sigData);
}

/** A signed PCS document `{"<key>":<inner>,"signature":"<hex>"}` over the exact inner text. */
export async function signCollateral(pki: FakePki, key: string, inner: string): Promise<string> {
  const sig = new Uint8Array(
    await crypto.subtle.sign(SIGN, pki.tcbSigningKey.privateKey, utf8(inner) as BufferSource),
  );
  return `{"${key}":${inner},"signature":"${toHex(sig)}"}`;
}

const comps = (xs: number[]) => xs.map((svn) => ({ svn }));

/** A TDX TCB info for the fake platform, with levels [UpToDate at `up`, OutOfDate below]. */
export function fakeTcbInfo(opts: {
  fmspc?: string;
  upToDateStatus?: string;
  sgx?: number[];
  pceSvn?: number;
  tdx?: number[];
} = {}): string {
  const sgx = opts.sgx ?? [7, 7, 2, 2, 3, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0];
  const tdx = opts.tdx ?? [0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
  const level = (s: number[], p: number, t: number[], status: string) => ({
    tcb: { sgxtcbcomponents: comps(s), pcesvn: p, tdxtcbcomponents: comps(t) },
    tcbDate: "2024-03-13T00:00:00Z",
    tcbStatus: status,
  });
  return JSON.stringify({
    id: "TDX",
    version: 3,
    issueDate: "2025-05-01T00:00:00Z",
    nextUpdate: "2025-07-01T00:00:00Z",
    fmspc: opts.fmspc ?? "00806f050000",
    pceId: "0000",
    tcbType: 0,
    tcbEvaluationDataNumber: 17,
    tdxModule: {
      mrsigner: "00".repeat(48),
      attributes: "0000000000000000",
      attributesMask: "FFFFFFFFFFFFFFFF",
    },
    tdxModuleIdentities: [{
      id: "TDX_01",
      mrsigner: "00".repeat(48),
      attributes: "0000000000000000",
      attributesMask: "FFFFFFFFFFFFFFFF",
      tcbLevels: [
        { tcb: { isvsvn: 4 }, tcbDate: "2024-03-13T00:00:00Z", tcbStatus: "UpToDate" },
        { tcb: { isvsvn: 2 }, tcbDate: "2023-08-09T00:00:00Z", tcbStatus: "OutOfDate" },
      ],
    }],
    tcbLevels: [
      level(sgx, opts.pceSvn ?? 11, tdx, opts.upToDateStatus ?? "UpToDate"),
      level(sgx.map(() => 0), 0, tdx.map(() => 0), "OutOfDate"),
    ],
  });
}

/** A TD_QE identity matching the fake QE report (ISVSVN 4). */
export function fakeQeIdentity(): string {
  return JSON.stringify({
    id: "TD_QE",
    version: 2,
    issueDate: "2025-05-01T00:00:00Z",
    nextUpdate: "2025-07-01T00:00:00Z",
    tcbEvaluationDataNumber: 17,
    miscselect: "00000000",
    miscselectMask: "FFFFFFFF",
    attributes: "00000000000000000000000000000000",
    attributesMask: "FBFFFFFFFFFFFFFF0000000000000000",
    mrsigner: "DC9E2A7C6F948F17474E34A7FC43ED030F7C1563F1BABDDF6340C82E0E54A8C5",
    isvprodid: 2,
    tcbLevels: [{ tcb: { isvsvn: 4 }, tcbDate: "2024-03-13T00:00:00Z", tcbStatus: "UpToDate" }],
  });
}
