/**
 * Test helper: a home-made (non-AMD) ARK → ASK → VCEK chain built with Web Crypto and
 * @peculiar/x509, and reports signed by its VCEK. RSA-2048 keeps key generation quick;
 * the signatures use the same RSASSA-PSS/SHA-384/salt-48 scheme as AMD's.
 */
import * as x509 from "../../../lib/x509.ts";
import { spkiSha256 } from "../../../attestation/snp/product.ts";
import type { ArkPin, SnpProduct } from "../../../attestation/snp/product.ts";
import { SNP_REPORT_SIZE, SNP_SIGNED_LENGTH } from "../../../attestation/snp/report.ts";

const PSS_ALG = { name: "RSA-PSS", hash: "SHA-384", saltLength: 48 } as const;
const RSA_GEN = {
  name: "RSA-PSS",
  hash: "SHA-384",
  modulusLength: 2048,
  publicExponent: new Uint8Array([1, 0, 1]),
} as const;

function name(cn: string): string {
  return `OU=Engineering, C=US, L=Test, ST=CA, O=Not AMD, CN=${cn}`;
}

function derInt(v: number): Uint8Array {
  return v < 0x80 ? new Uint8Array([2, 1, v]) : new Uint8Array([2, 2, 0, v]);
}

function ia5(s: string): Uint8Array {
  return new Uint8Array([0x16, s.length, ...new TextEncoder().encode(s)]);
}

/** TCB values a fake VCEK certifies. */
export interface FakeTcb {
  fmc?: number;
  bootloader: number;
  tee: number;
  snp: number;
  microcode: number;
}

/** A fake chain and the pin that trusts its ARK. */
export interface FakeChain {
  product: SnpProduct;
  ark: Uint8Array;
  ask: Uint8Array;
  vcek: Uint8Array;
  arkKeys: CryptoKeyPair;
  askKeys: CryptoKeyPair;
  vcekKeys: CryptoKeyPair;
  pin: ArkPin;
  askSerial: string;
}

/** Build a fake chain for `product` whose VCEK certifies `tcb` and `hwid`. */
export async function makeFakeChain(
  product: SnpProduct,
  tcb: FakeTcb,
  hwid: Uint8Array,
  validity = {
    notBefore: new Date("2024-01-01T00:00:00Z"),
    notAfter: new Date("2030-01-01T00:00:00Z"),
  },
): Promise<FakeChain> {
  const arkKeys = await crypto.subtle.generateKey(RSA_GEN, true, [
    "sign",
    "verify",
  ]) as CryptoKeyPair;
  const askKeys = await crypto.subtle.generateKey(RSA_GEN, true, [
    "sign",
    "verify",
  ]) as CryptoKeyPair;
  const vcekKeys = await crypto.subtle.generateKey(
    { name: "ECDSA", namedCurve: "P-384" },
    true,
    ["sign", "verify"],
  ) as CryptoKeyPair;
  const ark = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: "010000",
    name: name(`ARK-${product}`),
    keys: arkKeys,
    signingAlgorithm: PSS_ALG,
    ...validity,
  });
  const askSerial = "010001";
  const ask = await x509.X509CertificateGenerator.create({
    serialNumber: askSerial,
    issuer: ark.subject,
    subject: name(`SEV-${product}`),
    publicKey: askKeys.publicKey,
    signingKey: arkKeys.privateKey,
    signingAlgorithm: PSS_ALG,
    ...validity,
  });
  const ext = (oid: string, v: Uint8Array) => new x509.Extension(oid, false, v as BufferSource);
  const extensions = [
    ext("1.3.6.1.4.1.3704.1.1", derInt(1)),
    ext("1.3.6.1.4.1.3704.1.2", ia5(product === "Milan" ? "Milan-B0" : product)),
    ext("1.3.6.1.4.1.3704.1.3.1", derInt(tcb.bootloader)),
    ext("1.3.6.1.4.1.3704.1.3.2", derInt(tcb.tee)),
    ext("1.3.6.1.4.1.3704.1.3.3", derInt(tcb.snp)),
    ext("1.3.6.1.4.1.3704.1.3.8", derInt(tcb.microcode)),
    ...(tcb.fmc !== undefined ? [ext("1.3.6.1.4.1.3704.1.3.9", derInt(tcb.fmc))] : []),
    ext("1.3.6.1.4.1.3704.1.4", hwid),
  ];
  const vcek = await x509.X509CertificateGenerator.create({
    serialNumber: "00",
    issuer: ask.subject,
    subject: name("SEV-VCEK"),
    publicKey: vcekKeys.publicKey,
    signingKey: askKeys.privateKey,
    signingAlgorithm: PSS_ALG,
    extensions,
    ...validity,
  });
  const arkDer = new Uint8Array(ark.rawData);
  return {
    product,
    ark: arkDer,
    ask: new Uint8Array(ask.rawData),
    vcek: new Uint8Array(vcek.rawData),
    arkKeys,
    askKeys,
    vcekKeys,
    pin: { product, spkiSha256: await spkiSha256(new Uint8Array(ark.publicKey.rawData)) },
    askSerial,
  };
}

/** Fields of a fake report (everything else zero). */
export interface FakeReportFields {
  version?: number;
  policy?: bigint;
  vmpl?: number;
  reportData?: Uint8Array;
  measurement?: Uint8Array;
  /** Raw 8-byte TCB used for current/reported/committed/launch TCB. */
  tcb: Uint8Array;
  chipId: Uint8Array;
  cpuid?: [number, number, number];
}

/** Lay out a report and sign it with `key` (ECDSA P-384/SHA-384, AMD little-endian R/S). */
export async function makeSignedReport(f: FakeReportFields, key: CryptoKey): Promise<Uint8Array> {
  const b = new Uint8Array(SNP_REPORT_SIZE);
  const dv = new DataView(b.buffer);
  dv.setUint32(0x00, f.version ?? 3, true);
  dv.setBigUint64(0x08, f.policy ?? 0x30000n, true);
  dv.setUint32(0x30, f.vmpl ?? 0, true);
  dv.setUint32(0x34, 1, true);
  b.set(f.tcb, 0x38);
  dv.setBigUint64(0x40, 1n, true);
  if (f.reportData) b.set(f.reportData, 0x50);
  b.set(f.measurement ?? new Uint8Array(48).fill(0xab), 0x90);
  b.set(f.tcb, 0x180);
  if (f.cpuid && (f.version ?? 3) >= 3) b.set(f.cpuid, 0x188);
  b.set(f.chipId, 0x1a0);
  b.set(f.tcb, 0x1e0);
  b.set(f.tcb, 0x1f0);
  const sig = new Uint8Array(
    await crypto.subtle.sign(
      { name: "ECDSA", hash: "SHA-384" },
      key,
      b.subarray(0, SNP_SIGNED_LENGTH),
    ),
  );
  b.set(sig.slice(0, 48).reverse(), 0x2a0);
  b.set(sig.slice(48, 96).reverse(), 0x2e8);
  return b;
}

/** A CRL signed by `signer` naming `issuerName`, revoking `serials`. */
export async function makeCrl(
  issuerName: string,
  signer: CryptoKey,
  serials: string[],
  thisUpdate: Date,
  nextUpdate: Date,
): Promise<Uint8Array> {
  const crl = await x509.X509CrlGenerator.create({
    issuer: issuerName,
    thisUpdate,
    nextUpdate,
    entries: serials.map((s) => ({ serialNumber: s, revocationDate: thisUpdate })),
    signingKey: signer,
    signingAlgorithm: PSS_ALG,
  });
  return new Uint8Array(crl.rawData);
}

/** The subject name of a DER certificate as @peculiar/x509 prints it. */
export function subjectOf(der: Uint8Array): string {
  return new x509.X509Certificate(der as BufferSource).subject;
}
