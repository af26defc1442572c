/**
 * Test helper: attestation documents of every variant without hardware. The TPM half is made
 * in software (a P-256 AK generated with Web Crypto, a TPMS_ATTEST quote over SHA-256 PCRs
 * 0 and 7 with the confidant qualifying data, signed with ECDSA/SHA-256 exactly as a TPM
 * would); the TEE half is a report or quote signed by the vendor engineers' fake PKIs
 * (tests/attestation/snp/_fake_amd.ts, tests/attestation/tdx/_fake_tdx.ts), bound to the AK
 * with teeReportData. Verifying needs `teeTrust` pointing at the fake roots.
 */
import { fromHex, toBase64, toHex } from "../../lib/bytes.ts";
import type {
  SnpDocument,
  TdxDocument,
  TpmDocument,
  TpmEvidence,
} from "../../attestation/document.ts";
import { qualifyingData } from "../../attestation/qualifying_data.ts";
import { teeReportData } from "../../attestation/tee_binding.ts";
import type { TeeTrustOverrides } from "../../attestation/tee_verify.ts";
import { akPin } from "../../attestation/verify.ts";
import { encodeSnpEvidence, type SnpEvidence } from "../../attestation/snp/mod.ts";
import type { TdxCollateral, TdxEvidence } from "../../attestation/tdx/mod.ts";
import {
  AK_TEMPLATE_ECC_P256,
  computeName,
  marshalTpm2bPublic,
  marshalTpmsAttest,
  marshalTpmtSignature,
  TPM_ALG,
  TPM_GENERATED_VALUE,
  TPM_ST,
  type TpmtPublicEcc,
  unmarshalTpm2bPublic,
} from "../../attestation/tpm/mod.ts";
import { computePcrDigest } from "../../attestation/tpm/verify/mod.ts";
import { type FakeChain, makeFakeChain, makeSignedReport } from "./snp/_fake_amd.ts";
import {
  FAKE_NOW,
  type FakePki,
  fakeQeIdentity,
  fakeTcbInfo,
  makeFakePki,
  makeFakeQuote,
  signCollateral,
} from "./tdx/_fake_tdx.ts";

/** PCR values of the software TPM half (SHA-256 bank). */
export const SOFT_PCRS: Record<string, string> = { "0": "a0".repeat(32), "7": "a7".repeat(32) };

/** A software AK: its key pair and TPM2B_PUBLIC bytes. */
export interface SoftAk {
  keys: CryptoKeyPair;
  akPublic: Uint8Array;
  pin: string;
}

/** A fresh software AK (restricted ECC P-256 signing key, as the AK template). */
export async function makeSoftAk(): Promise<SoftAk> {
  const keys = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
    "sign",
    "verify",
  ]) as CryptoKeyPair;
  const raw = new Uint8Array(await crypto.subtle.exportKey("raw", keys.publicKey));
  const pub: TpmtPublicEcc = {
    ...AK_TEMPLATE_ECC_P256,
    unique: { x: raw.slice(1, 33), y: raw.slice(33, 65) },
  };
  const akPublic = marshalTpm2bPublic(pub);
  return { keys, akPublic, pin: akPin(akPublic) };
}

/** A `tpm` section: a quote by `ak` over {@link SOFT_PCRS} for `nonce`/`userData`. */
export async function softTpmSection(
  ak: SoftAk,
  nonce: Uint8Array,
  userData: Uint8Array,
): Promise<TpmEvidence> {
  const selection = [{ hash: TPM_ALG.SHA256, pcrs: [0, 7] }];
  const bank = new Map<number, Uint8Array>(
    Object.entries(SOFT_PCRS).map(([k, v]) => [Number(k), fromHex(v)]),
  );
  const attest = marshalTpmsAttest({
    magic: TPM_GENERATED_VALUE,
    type: TPM_ST.ATTEST_QUOTE,
    qualifiedSigner: await computeName(unmarshalTpm2bPublic(ak.akPublic).tpmtBytes),
    extraData: qualifyingData(nonce, userData),
    clockInfo: { clock: 1000n, resetCount: 1, restartCount: 0, safe: true },
    firmwareVersion: 0n,
    attested: {
      kind: "quote",
      pcrSelect: selection,
      pcrDigest: computePcrDigest(
        TPM_ALG.SHA256,
        selection,
        new Map([[TPM_ALG.SHA256, bank]]),
      ),
    },
  });
  const sig = new Uint8Array(
    await crypto.subtle.sign(
      { name: "ECDSA", hash: "SHA-256" },
      ak.keys.privateKey,
      attest as BufferSource,
    ),
  );
  const signature = marshalTpmtSignature({
    sigAlg: TPM_ALG.ECDSA,
    hash: TPM_ALG.SHA256,
    r: sig.slice(0, 32),
    s: sig.slice(32),
  });
  return {
    akPublic: toBase64(ak.akPublic),
    quote: toBase64(attest),
    signature: toBase64(signature),
    pcrs: { sha256: { ...SOFT_PCRS } },
  };
}

/** A `tpm` document made in software. */
export async function softTpmDocument(
  ak: SoftAk,
  nonce: Uint8Array,
  userData: Uint8Array,
): Promise<TpmDocument> {
  return {
    version: 1,
    variant: "tpm",
    nonce: toBase64(nonce),
    userData: toBase64(userData),
    tpm: await softTpmSection(ak, nonce, userData),
  };
}

/** Raw TCB of fake SNP reports and what the fake VCEK certifies (Milan layout). */
export const SNP_TCB = new Uint8Array([1, 2, 0, 0, 0, 0, 3, 4]);
/** A time inside the fake AMD chain's validity. */
export const SNP_NOW = new Date("2025-06-01T00:00:00Z");
/** Launch measurement of fake SNP reports. */
export const SNP_MEASUREMENT = "ab".repeat(48);

/** A fake AMD platform: chain plus chip id. */
export interface FakeSnpPlatform {
  chain: FakeChain;
  chipId: Uint8Array;
}

/** A fake Milan platform (non-AMD ARK). */
export async function makeFakeSnpPlatform(): Promise<FakeSnpPlatform> {
  const chipId = crypto.getRandomValues(new Uint8Array(64));
  const chain = await makeFakeChain(
    "Milan",
    { bootloader: 1, tee: 2, snp: 3, microcode: 4 },
    chipId,
  );
  return { chain, chipId };
}

/** An SNP report signed by the fake VCEK over `reportData`, with its chain (no CRL). */
export async function fakeSnpEvidence(
  p: FakeSnpPlatform,
  reportData: Uint8Array,
  fields: { policy?: bigint; measurement?: Uint8Array } = {},
): Promise<SnpEvidence> {
  const report = await makeSignedReport(
    { tcb: SNP_TCB, chipId: p.chipId, reportData, cpuid: [0x19, 1, 1], ...fields },
    p.chain.vcekKeys.privateKey,
  );
  return encodeSnpEvidence({ report, vcek: p.chain.vcek, ask: p.chain.ask, ark: p.chain.ark });
}

/** A `sev-snp` document: software TPM half plus a fake SNP report bound to its AK. */
export async function fakeSnpDocument(
  p: FakeSnpPlatform,
  ak: SoftAk,
  nonce: Uint8Array,
  userData: Uint8Array,
): Promise<SnpDocument> {
  const rd = await teeReportData({ nonce, userData, akPublic: ak.akPublic });
  return {
    ...await softTpmDocument(ak, nonce, userData),
    variant: "sev-snp",
    tee: await fakeSnpEvidence(p, rd),
  };
}

/** A time inside the fake Intel PKI's validity and its collateral's dates. */
export const TDX_NOW = FAKE_NOW;

/** Signed collateral of the fake Intel PKI (TCB UpToDate for fake quotes). */
export async function fakeTdxCollateral(pki: FakePki): Promise<TdxCollateral> {
  return {
    tcbInfo: await signCollateral(pki, "tcbInfo", fakeTcbInfo()),
    tcbInfoIssuerChain: pki.tcbChainPem,
    qeIdentity: await signCollateral(pki, "enclaveIdentity", fakeQeIdentity()),
    qeIdentityIssuerChain: pki.tcbChainPem,
  };
}

/** A fake TDX quote over `reportData` with collateral. */
export async function fakeTdxEvidence(pki: FakePki, reportData: Uint8Array): Promise<TdxEvidence> {
  return {
    quote: toBase64(await makeFakeQuote(pki, { reportData: toHex(reportData) })),
    collateral: await fakeTdxCollateral(pki),
  };
}

/** A `tdx` document: software TPM half plus a fake TDX quote bound to its AK. */
export async function fakeTdxDocument(
  pki: FakePki,
  ak: SoftAk,
  nonce: Uint8Array,
  userData: Uint8Array,
): Promise<TdxDocument> {
  const rd = await teeReportData({ nonce, userData, akPublic: ak.akPublic });
  return {
    ...await softTpmDocument(ak, nonce, userData),
    variant: "tdx",
    tee: await fakeTdxEvidence(pki, rd),
  };
}

export { makeFakePki };

/** Trust overrides for the fake PKIs. */
export function fakeTrust(p?: FakeSnpPlatform, pki?: FakePki): TeeTrustOverrides {
  return {
    ...(p ? { snpArkPins: [p.chain.pin] } : {}),
    ...(pki ? { tdxRootDer: pki.rootDer } : {}),
  };
}
