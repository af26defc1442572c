/**
 * SIMULATION — a software TPM for benchmark load generation, not a TPM. Each simulated node
 * holds its endorsement key (ECC NIST P-256, TCG template L-2) and attestation key (ECC P-256,
 * restricted ECDSA-SHA-256 signing key, confidant's AK template) as software keys in this
 * process, with an EK certificate issued by a software CA ({@link createSoftCa}). Nothing
 * here is protected the way a TPM protects it: it exists so the benchmark can drive the
 * production KMS with real TPM-format evidence from thousands of nodes at once.
 *
 * What it produces is what a TPM would produce, byte for byte in format:
 *
 * - ActivateCredential (TPM 2.0 Part 1, 24; Part 3, 12.5): the encrypted secret is a
 *   TPMS_ECC_POINT (the KMS's ephemeral point); Z = ECDH(EK private, point); seed =
 *   KDFe(SHA-256, Z.x, "IDENTITY", ephemeral.x, EK.x); the integrity HMAC (KDFa "INTEGRITY")
 *   over encIdentity || AK name is checked in constant time; the credential is decrypted with
 *   AES-128-CFB under KDFa(seed, "STORAGE", AK name), zero IV.
 * - Quote (Part 3, 18.4): a TPMS_ATTEST with TPM_GENERATED_VALUE, TPM_ST_ATTEST_QUOTE,
 *   extraData = qualifyingData(nonce, userData), the SHA-256 PCR selection and the digest of
 *   the selected values, signed by the AK as a TPMT_SIGNATURE (ECDSA, SHA-256).
 *
 * {@link softAdmit} runs the client side of the KMS protocol (begin, activate, quote, finish,
 * open the sealed release) with such a node over any {@link KmsTransport}.
 *
 * @module
 */
import {
  createECDH,
  createHash,
  createHmac,
  generateKeyPairSync,
  type KeyObject,
  sign as nodeSign,
} from "node:crypto";
import * as x509 from "../lib/x509.ts";
import {
  concat,
  constantTimeEqual,
  fromBase64,
  fromBase64Url,
  sha256,
  toBase64,
  toHex,
} from "../lib/bytes.ts";
import { ConfidantError } from "../lib/errors.ts";
import {
  AK_TEMPLATE_ECC_P256,
  computeName,
  marshalTpm2bPublic,
  marshalTpmsAttest,
  marshalTpmtSignature,
  TPM_ALG,
  TPM_GENERATED_VALUE,
  type TpmtPublicEcc,
} from "../attestation/tpm/mod.ts";
import { aesCfbDecrypt, kdfa, kdfe } from "../attestation/tpm/credential/mod.ts";
import { qualifyingData } from "../attestation/qualifying_data.ts";
import type { TpmDocument } from "../attestation/document.ts";
import type { KmsTransport } from "../kms/client.ts";
import {
  BEGIN_PATH,
  beginResponseSchema,
  FINISH_PATH,
  finishResponseSchema,
  type ReleaseRequest,
} from "../kms/protocol.ts";
import {
  generateEphemeralKeyPair,
  openRelease,
  releaseBinding,
  type ReleasePayload,
} from "../kms/release.ts";

const TPM_ST_ATTEST_QUOTE = 0x8018;

/** A software certificate authority for simulated EK certificates (RSA 2048, SHA-256). */
export interface SoftCa {
  /** The CA certificate, PEM (for the KMS policy's `ak.ekCaCertificates`). */
  certPem: string;
  /** Issue an EK certificate for `ekSpki` (SubjectPublicKeyInfo DER); returns DER. */
  issue(ekSpki: Uint8Array, serial: number): Promise<Uint8Array>;
}

const RSA_ALG = { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" } as const;

/** Make a fresh software CA valid from an hour ago for ten years. */
export async function createSoftCa(name = "CN=confidant bench SOFTWARE EK CA"): Promise<SoftCa> {
  const keys = await crypto.subtle.generateKey(
    { ...RSA_ALG, modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]) },
    false,
    ["sign", "verify"],
  ) as CryptoKeyPair;
  const now = Date.now();
  const notBefore = new Date(now - 3_600_000);
  const notAfter = new Date(now + 10 * 365 * 86_400_000);
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: "01",
    name,
    notBefore,
    notAfter,
    signingAlgorithm: RSA_ALG,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true),
    ],
  });
  const ecParams = { name: "ECDSA", namedCurve: "P-256" } as const;
  return {
    certPem: ca.toString("pem") + "\n",
    async issue(ekSpki, serial) {
      const publicKey = await crypto.subtle.importKey(
        "spki",
        ekSpki as Uint8Array<ArrayBuffer>,
        ecParams,
        true,
        ["verify"],
      );
      const cert = await x509.X509CertificateGenerator.create({
        serialNumber: (0x100000 + serial).toString(16),
        subject: "",
        issuer: ca.subject,
        notBefore,
        notAfter,
        signingAlgorithm: RSA_ALG,
        publicKey,
        signingKey: keys.privateKey,
        extensions: [
          new x509.BasicConstraintsExtension(false, undefined, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyAgreement, true),
        ],
      });
      return new Uint8Array(cert.rawData);
    },
  };
}

/** One simulated node: software EK (with certificate) and AK, and fixed PCR values. */
export interface SoftNode {
  /** Index in its pool. */
  index: number;
  /** EK certificate, DER. */
  ekCertificate: Uint8Array;
  /** The AK's TPM2B_PUBLIC. */
  akPublic: Uint8Array;
  /** The AK's TPM name (nameAlg || SHA-256 of its TPMT_PUBLIC). */
  akName: Uint8Array;
  /** SHA-256 bank values of every PCR (0..23). */
  pcrs: Uint8Array[];
  /** Private: EK ECDH key (uncompressed point and private scalar). */
  ek: { x: Uint8Array; privateKey: Uint8Array };
  /** Private: AK signing key. */
  akKey: KeyObject;
}

/**
 * The PCR values every simulated node reports (SHA-256 bank, PCR i = SHA-256("pcr" || i)):
 * what a fleet booted from one image would show.
 */
export function simulatedPcrs(): Uint8Array[] {
  return Array.from(
    { length: 24 },
    (_, i) => new Uint8Array(createHash("sha256").update(`confidant bench pcr ${i}`).digest()),
  );
}

/** Make a simulated node with a fresh EK (certified by `ca`) and AK. */
export async function createSoftNode(ca: SoftCa, index: number): Promise<SoftNode> {
  const ecdh = createECDH("prime256v1");
  ecdh.generateKeys();
  const point = new Uint8Array(ecdh.getPublicKey());
  const ekPub = await crypto.subtle.importKey(
    "raw",
    point,
    { name: "ECDSA", namedCurve: "P-256" },
    true,
    ["verify"],
  );
  const spki = new Uint8Array(await crypto.subtle.exportKey("spki", ekPub));
  const ekCertificate = await ca.issue(spki, index);
  const ak = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const jwk = ak.publicKey.export({ format: "jwk" });
  const akTpmt: TpmtPublicEcc = {
    ...AK_TEMPLATE_ECC_P256,
    unique: { x: fromBase64Url(jwk.x!), y: fromBase64Url(jwk.y!) },
  };
  return {
    index,
    ekCertificate,
    akPublic: marshalTpm2bPublic(akTpmt),
    akName: await computeName(akTpmt),
    pcrs: simulatedPcrs(),
    ek: { x: point.subarray(1, 33), privateKey: new Uint8Array(ecdh.getPrivateKey()) },
    akKey: ak.privateKey,
  };
}

function readTpm2b(b: Uint8Array, at: number, what: string): [Uint8Array, number] {
  if (at + 2 > b.length) throw new ConfidantError("soft_tpm.credential", `${what} is truncated`);
  const n = (b[at] << 8) | b[at + 1];
  if (at + 2 + n > b.length) {
    throw new ConfidantError("soft_tpm.credential", `${what} is truncated`);
  }
  return [b.subarray(at + 2, at + 2 + n), at + 2 + n];
}

/**
 * Software TPM2_ActivateCredential with `node`'s EK for its AK: recover the secret that
 * MakeCredential wrapped, or throw `soft_tpm.credential` when the blob was not made for this
 * EK and AK (integrity HMAC mismatch) or is malformed.
 */
export function softActivateCredential(
  node: SoftNode,
  credentialBlob: Uint8Array,
  encryptedSecret: Uint8Array,
): Uint8Array {
  const [ephX, next] = readTpm2b(encryptedSecret, 0, "the encrypted secret");
  const [ephY, end] = readTpm2b(encryptedSecret, next, "the encrypted secret");
  if (end !== encryptedSecret.length || ephX.length > 32 || ephY.length > 32) {
    throw new ConfidantError("soft_tpm.credential", "the encrypted secret is not a P-256 point");
  }
  const pad = (v: Uint8Array) => concat(new Uint8Array(32 - v.length), v);
  const ecdh = createECDH("prime256v1");
  ecdh.setPrivateKey(node.ek.privateKey);
  let z: Uint8Array;
  try {
    z = new Uint8Array(ecdh.computeSecret(concat(Uint8Array.of(4), pad(ephX), pad(ephY))));
  } catch (e) {
    throw new ConfidantError("soft_tpm.credential", "the ephemeral point is not on P-256", {
      cause: e,
    });
  }
  const seed = kdfe(TPM_ALG.SHA256, z, "IDENTITY", pad(ephX), node.ek.x, 256);
  z.fill(0);
  const [mac, macEnd] = readTpm2b(credentialBlob, 0, "the credential blob");
  const encIdentity = credentialBlob.subarray(macEnd);
  const hmacKey = kdfa(
    TPM_ALG.SHA256,
    seed,
    "INTEGRITY",
    new Uint8Array(0),
    new Uint8Array(0),
    256,
  );
  const want = new Uint8Array(
    createHmac("sha256", hmacKey).update(encIdentity).update(node.akName).digest(),
  );
  hmacKey.fill(0);
  if (!constantTimeEqual(mac, want)) {
    seed.fill(0);
    throw new ConfidantError("soft_tpm.credential", "the credential's integrity check fails");
  }
  const symKey = kdfa(TPM_ALG.SHA256, seed, "STORAGE", node.akName, new Uint8Array(0), 128);
  seed.fill(0);
  const plain = aesCfbDecrypt(symKey, new Uint8Array(16), encIdentity);
  symKey.fill(0);
  const [secret, secretEnd] = readTpm2b(plain, 0, "the decrypted credential");
  if (secretEnd !== plain.length) {
    throw new ConfidantError("soft_tpm.credential", "the decrypted credential has trailing bytes");
  }
  return secret.slice();
}

/**
 * A TPM-format attestation document (`variant: "tpm"`) from `node`: a TPMS_ATTEST quote of
 * the SHA-256 `pcrs` with qualifyingData(nonce, userData), signed by the AK.
 */
export function softQuoteDocument(
  node: SoftNode,
  nonce: Uint8Array,
  userData: Uint8Array,
  pcrs: readonly number[],
): TpmDocument {
  const list = [...new Set(pcrs)].sort((a, b) => a - b);
  const h = createHash("sha256");
  for (const p of list) h.update(node.pcrs[p]);
  const attest = marshalTpmsAttest({
    magic: TPM_GENERATED_VALUE,
    type: TPM_ST_ATTEST_QUOTE,
    qualifiedSigner: node.akName,
    extraData: qualifyingData(nonce, userData),
    clockInfo: { clock: 1_000_000n, resetCount: 1, restartCount: 0, safe: true },
    firmwareVersion: 0x2023_0001n,
    attested: {
      kind: "quote",
      pcrSelect: [{ hash: TPM_ALG.SHA256, pcrs: list }],
      pcrDigest: new Uint8Array(h.digest()),
    },
  });
  const sig = new Uint8Array(
    nodeSign("sha256", attest, { key: node.akKey, dsaEncoding: "ieee-p1363" }),
  );
  const signature = marshalTpmtSignature({
    sigAlg: TPM_ALG.ECDSA as 0x0018,
    hash: TPM_ALG.SHA256,
    r: sig.subarray(0, 32),
    s: sig.subarray(32),
  });
  const sha256: Record<string, string> = {};
  for (const p of list) sha256[String(p)] = toHex(node.pcrs[p]);
  return {
    version: 1,
    variant: "tpm",
    nonce: toBase64(nonce),
    userData: toBase64(userData),
    tpm: {
      akPublic: toBase64(node.akPublic),
      quote: toBase64(attest),
      signature: toBase64(signature),
      pcrs: { sha256 },
      ekCertificate: toBase64(node.ekCertificate),
    },
  };
}

/** Outcome of one {@link softAdmit} exchange. */
export type SoftAdmission =
  | { ok: true; release: ReleasePayload; diskKey: Uint8Array }
  | { ok: false; step: "begin" | "finish"; status: number; error: string };

function refusal(step: "begin" | "finish", status: number, body: unknown): SoftAdmission {
  const b = body as { error?: unknown; checks?: unknown } | null;
  const checks = Array.isArray(b?.checks) ? `: ${b.checks.join(",")}` : "";
  return { ok: false, step, status, error: `${String(b?.error ?? "error")}${checks}` };
}

/**
 * One complete admission of `node` through `transport`: begin with the EK certificate and
 * AK, activate the credential in software, quote with userData = SHA-256(ephemeral X25519
 * public key), finish, and open the sealed release. A non-200 answer is returned (not
 * thrown) with its status, so a load generator can count 429/503/5xx; a transport error or
 * a malformed answer throws.
 */
export async function softAdmit(
  node: SoftNode,
  transport: KmsTransport,
  request: ReleaseRequest,
  pcrs: readonly number[],
): Promise<SoftAdmission> {
  const begun = await transport.post(BEGIN_PATH, {
    variant: "tpm",
    ekCertificate: toBase64(node.ekCertificate),
    ekIntermediates: [],
    akPublic: toBase64(node.akPublic),
  });
  if (begun.status !== 200) return refusal("begin", begun.status, begun.body);
  const b = beginResponseSchema.parse(begun.body);
  const secret = softActivateCredential(
    node,
    fromBase64(b.credential.credentialBlob),
    fromBase64(b.credential.encryptedSecret),
  );
  const ephemeral = await generateEphemeralKeyPair();
  const evidence = softQuoteDocument(
    node,
    fromBase64(b.nonce),
    await sha256(ephemeral.publicKey),
    pcrs,
  );
  const fin = await transport.post(FINISH_PATH, {
    session: b.session,
    activatedSecret: toBase64(secret),
    evidence,
    ephemeralPublicKey: toBase64(ephemeral.publicKey),
    request,
  });
  secret.fill(0);
  if (fin.status !== 200) return refusal("finish", fin.status, fin.body);
  const f = finishResponseSchema.parse(fin.body);
  const aad = await releaseBinding(b.session, request, ephemeral.publicKey);
  const release = await openRelease(f.release, ephemeral, aad);
  return { ok: true, release, diskKey: fromBase64(release.diskKey) };
}

/** A release request unique to node `index` (its own disk UUID and node name). */
export function softRequest(index: number, salt = 0): ReleaseRequest {
  const hex = (index >>> 0).toString(16).padStart(8, "0");
  const s = (salt >>> 0).toString(16).padStart(4, "0");
  return {
    role: "worker",
    disk: { uuid: `${hex}-${s}-4000-8000-00000000bbbb` },
    nodeName: `bench-node-${index}`,
  };
}
