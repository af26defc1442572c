/**
 * The two attestation steps the KMS delegates, behind narrow interfaces so the HTTP core does
 * not depend on a TEE variant:
 *
 * - {@link CredentialIssuer}: step 1, check the node's endorsement (EK certificate chain or a
 *   pinned AK), and make a credential for its AK that only its TPM can activate;
 * - {@link EvidenceVerifier}: step 2, check the attestation document against the policy, the
 *   session nonce, the node's userData and the AK the credential was made for.
 *
 * Both return the list of failed checks (empty: passed) and throw only for malformed input.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { bytesEqual, fromBase64, toHex } from "../lib/bytes.ts";
import { describeError } from "../lib/errors.ts";
import { parseCertificate, verifyEkCertificate } from "../attestation/ek_certificate.ts";
import { ekPublicFromCertificate } from "../attestation/ek_certificate.ts";
import { makeCredential } from "../attestation/tpm/credential/mod.ts";
import { computeName, unmarshalTpm2bPublic } from "../attestation/tpm/structures/mod.ts";
import { type ActivatedAk, verifyDocument } from "../attestation/verify.ts";
import type { KmsPolicy } from "./policy.ts";

/** Input of step 1. */
export interface EndorsementInput {
  /** DER of the EK certificate. */
  ekCertificate: Uint8Array;
  /** DER of intermediates offered by the node. */
  ekIntermediates: Uint8Array[];
  /** TPM2B_PUBLIC of the AK. */
  akPublic: Uint8Array;
  /** The secret to wrap in the credential. */
  secret: Uint8Array;
  policy: KmsPolicy;
  now: Date;
}

/** Outcome of step 1. */
export type EndorsementResult =
  | {
    ok: true;
    /** SHA-256 of the EK certificate's SubjectPublicKeyInfo (32 bytes). */
    identity: Uint8Array;
    /** TPM name of the AK. */
    akName: Uint8Array;
    /** TPM2B_ID_OBJECT and TPM2B_ENCRYPTED_SECRET. */
    credential: { credentialBlob: Uint8Array; encryptedSecret: Uint8Array };
  }
  | { ok: false; checks: string[]; detail?: string };

/** Step 1 of the protocol. */
export interface CredentialIssuer {
  begin(input: EndorsementInput): Promise<EndorsementResult>;
}

/** Input of step 2. */
export interface EvidenceInput {
  /** The attestation document as received (unvalidated JSON). */
  evidence: unknown;
  policy: KmsPolicy;
  nonce: Uint8Array;
  /** What the document must carry as userData (SHA-256 of the ephemeral key). */
  userData: Uint8Array;
  /** Name of the AK the session's credential was made for. */
  akName: Uint8Array;
  /** Node identity of the session (SHA-256 of the EK SubjectPublicKeyInfo). */
  identity: Uint8Array;
  now: Date;
}

/** Step 2 of the protocol. */
export interface EvidenceVerifier {
  verify(input: EvidenceInput): Promise<{ checks: string[]; detail?: string }>;
}

// TPMA_OBJECT bits (Part 2, 8.3).
const FIXED_TPM = 1 << 1;
const FIXED_PARENT = 1 << 4;
const SENSITIVE_DATA_ORIGIN = 1 << 5;
const RESTRICTED = 1 << 16;
const DECRYPT = 1 << 17;
const SIGN = 1 << 18;

/** SHA-256 of a certificate's SubjectPublicKeyInfo: the node identity the KMS records. */
export function identityOfEkCertificate(der: Uint8Array): Uint8Array {
  const spki = new Uint8Array(parseCertificate(der).publicKey.rawData);
  return new Uint8Array(createHash("sha256").update(spki).digest());
}

/**
 * Step 1 for TPMs: the EK certificate must chain to the policy's EK CAs (or, with pinned
 * AKs, the AK must be pinned), the AK must be a restricted signing key fixed to its TPM, and
 * the credential is made to the certified EK for the AK's name.
 */
export const tpmCredentialIssuer: CredentialIssuer = {
  async begin(input) {
    const checks: string[] = [];
    let detail: string | undefined;
    const ak = input.policy.ak;
    if (!ak) return { ok: false, checks: ["ak.untrusted"], detail: "the policy trusts no AK" };
    let akPub;
    try {
      akPub = unmarshalTpm2bPublic(input.akPublic);
    } catch (e) {
      return { ok: false, checks: ["ak.malformed"], detail: describeError(e).message };
    }
    const a = akPub.public.objectAttributes;
    const need = FIXED_TPM | FIXED_PARENT | SENSITIVE_DATA_ORIGIN | RESTRICTED | SIGN;
    if ((a & need) !== need || (a & DECRYPT) !== 0) checks.push("ak.attributes");
    if ("pinned" in ak) {
      const d = "sha256:" + createHash("sha256").update(input.akPublic).digest("hex");
      if (!ak.pinned.some((p) => p.toLowerCase() === d)) checks.push("ak.not_pinned");
    }
    let ekPublic;
    try {
      if ("ekCaCertificates" in ak) {
        ekPublic = (await verifyEkCertificate(input.ekCertificate, {
          caCertificates: ak.ekCaCertificates,
          intermediates: input.ekIntermediates,
          now: input.now,
        })).ekPublic;
      } else {
        ekPublic = ekPublicFromCertificate(input.ekCertificate);
      }
    } catch (e) {
      const d = describeError(e);
      checks.push(d.code === "ek.unsupported_key" ? "ek.unsupported_key" : "ek.certificate");
      detail = d.message;
    }
    if (checks.length || !ekPublic) return { ok: false, checks, detail };
    const akName = await computeName(akPub.tpmtBytes);
    const cred = makeCredential(ekPublic, akName, input.secret);
    return {
      ok: true,
      identity: identityOfEkCertificate(input.ekCertificate),
      akName,
      credential: cred,
    };
  },
};

/** Hex of a node identity. */
export function identityHex(identity: Uint8Array): string {
  return toHex(identity);
}

/**
 * Step 2 for TPMs: `verifyDocument` of the attestation area with the session's nonce and the
 * expected userData. The document's AK must be the one the credential was made for; under
 * EK-CA trust its EK certificate must be the session's (same identity), and the activation
 * is passed to the verifier as `akTrust`.
 */
export const tpmEvidenceVerifier: EvidenceVerifier = {
  async verify(input) {
    const checks: string[] = [];
    const details: string[] = [];
    const doc = input.evidence as { tpm?: { akPublic?: unknown; ekCertificate?: unknown } };
    let akTrust: ActivatedAk | undefined;
    const ekB64 = doc.tpm?.ekCertificate;
    if (input.policy.ak && "ekCaCertificates" in input.policy.ak) {
      if (typeof ekB64 !== "string" || ekB64.length > 16 * 1024) {
        checks.push("ek.certificate");
        details.push("the document carries no EK certificate");
      } else {
        try {
          const der = fromBase64(ekB64, "ekCertificate");
          if (!bytesEqual(identityOfEkCertificate(der), input.identity)) {
            checks.push("ek.session_mismatch");
            details.push("the document's EK certificate is not the one of the session");
          } else {
            akTrust = {
              activated: true,
              ekPublic: ekPublicFromCertificate(der),
              akName: input.akName,
            };
          }
        } catch (e) {
          checks.push("ek.certificate");
          details.push(describeError(e).message);
        }
      }
    }
    const akB64 = doc.tpm?.akPublic;
    try {
      if (typeof akB64 !== "string" || akB64.length > 4096) throw new Error("no akPublic");
      const name = await computeName(unmarshalTpm2bPublic(fromBase64(akB64, "akPublic")).tpmtBytes);
      if (!bytesEqual(name, input.akName)) {
        checks.push("ak.session_mismatch");
        details.push("the document's AK is not the one the credential was made for");
      }
    } catch {
      checks.push("ak.session_mismatch");
      details.push("the document's AK cannot be read");
    }
    const r = await verifyDocument(input.evidence, input.policy, {
      nonce: input.nonce,
      userData: input.userData,
      now: input.now,
      akTrust,
    });
    for (const f of r.failures) {
      if (!checks.includes(f.check)) checks.push(f.check);
      details.push(`${f.check}: ${f.message}`);
    }
    return { checks, detail: details.join("; ").slice(0, 1000) || undefined };
  },
};
