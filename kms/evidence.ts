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
import { parseCertificate } from "../attestation/ek_certificate.ts";
import { makeCredential } from "../attestation/tpm/credential/mod.ts";
import { computeName, unmarshalTpm2bPublic } from "../attestation/tpm/structures/mod.ts";
import {
  akPin,
  type AkTrustMode,
  type PreverifiedActivatedAk,
  verifyDocument,
} from "../attestation/verify.ts";
import type { TeeTrustOverrides } from "../attestation/tee_verify.ts";
import { EkTrust, type KnownEk } from "./ek_trust.ts";

/** The digest of an AK pin (`sha256:<hex>` of the TPM2B_PUBLIC) as bytes. */
function akPinDigest(akPublic: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(akPublic).digest());
}
import type { KmsPolicy } from "./policy.ts";

/** How step 1 trusted the node, carried (sealed) from step 1 to step 2 in the session. */
export interface Endorsement {
  /**
   * `ek-ca`: the EK certificate chained to the policy's EK CAs (checked once, at step 1);
   * `pinned`: the AK is pinned in the policy (checked again at step 2 by the verifier).
   */
  trust: "ek-ca" | "pinned";
  /** SHA-256 of the EK certificate DER step 1 accepted. */
  ekCertificateDigest: Uint8Array;
  /** `ek-ca`: digest of the EK CA set it was verified against ({@link anchorSetDigest}). */
  anchors?: Uint8Array;
}

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
    /** How the node was trusted, for step 2. */
    endorsement: Endorsement;
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
  /** Name of the AK the session's credential was made for (and the node activated). */
  akName: Uint8Array;
  /** Node identity of the session (SHA-256 of the EK SubjectPublicKeyInfo). */
  identity: Uint8Array;
  /** How step 1 trusted the node. */
  endorsement: Endorsement;
  now: Date;
}

/** Step 2 of the protocol. */
export interface EvidenceVerifier {
  verify(input: EvidenceInput): Promise<EvidenceResult>;
}

/** Outcome of step 2. */
export interface EvidenceResult {
  /** Failed checks (empty: passed). */
  checks: string[];
  detail?: string;
  /** How the AK was trusted, when it was (`verifyDocument`'s `akTrust`). */
  akTrust?: AkTrustMode;
  /** SHA-256 PCR values of the document (index → hex); quoted values when `checks` is empty. */
  pcrs?: Record<string, string>;
}

/** The EK caches shared by the default issuer and verifier of this process. */
const sharedEkTrust = new EkTrust();

// TPMA_OBJECT bits (Part 2, 8.3).
const FIXED_TPM = 1 << 1;
const FIXED_PARENT = 1 << 4;
const SENSITIVE_DATA_ORIGIN = 1 << 5;
const RESTRICTED = 1 << 16;
const DECRYPT = 1 << 17;
const SIGN = 1 << 18;

const TPM_ALG_SHA256 = 0x000b;

/**
 * TPM name of an unmarshalled public area: nameAlg ‖ H(TPMT_PUBLIC). SHA-256 names (every AK
 * the KMS sees) are hashed synchronously here; other algorithms go through `computeName`.
 */
async function nameOf(
  pub: { public: { nameAlg: number }; tpmtBytes: Uint8Array },
): Promise<Uint8Array> {
  if (pub.public.nameAlg !== TPM_ALG_SHA256) return await computeName(pub.tpmtBytes);
  const out = new Uint8Array(34);
  out[0] = TPM_ALG_SHA256 >> 8;
  out[1] = TPM_ALG_SHA256 & 0xff;
  out.set(createHash("sha256").update(pub.tpmtBytes).digest(), 2);
  return out;
}

/** SHA-256 of a certificate's SubjectPublicKeyInfo: the node identity the KMS records. */
export function identityOfEkCertificate(der: Uint8Array): Uint8Array {
  const spki = new Uint8Array(parseCertificate(der).publicKey.rawData);
  return new Uint8Array(createHash("sha256").update(spki).digest());
}

/**
 * Step 1 for TPMs: the EK certificate must chain to the policy's EK CAs (or, with pinned
 * AKs, the AK must be pinned), the AK must be a restricted signing key fixed to its TPM, and
 * the credential is made to the certified EK for the AK's name. Chains and parsed EKs are
 * remembered in `trust` ({@link EkTrust}), per policy version.
 */
export function createTpmCredentialIssuer(trust: EkTrust = sharedEkTrust): CredentialIssuer {
  return {
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
        const d = akPin(input.akPublic);
        if (!ak.pinned.some((p) => p.toLowerCase() === d)) checks.push("ak.not_pinned");
      }
      let ek: KnownEk | undefined;
      let anchors: Uint8Array | undefined;
      try {
        if ("ekCaCertificates" in ak) {
          ek = await trust.verify(
            input.ekCertificate,
            input.ekIntermediates,
            ak.ekCaCertificates,
            input.now,
          );
          anchors = trust.anchorsDigest(ak.ekCaCertificates);
        } else {
          ek = trust.known(input.ekCertificate);
        }
      } catch (e) {
        const d = describeError(e);
        checks.push(d.code === "ek.unsupported_key" ? "ek.unsupported_key" : "ek.certificate");
        detail = d.message;
      }
      if (checks.length || !ek) return { ok: false, checks, detail };
      const akName = await nameOf(akPub);
      const cred = makeCredential(ek.ekPublic, akName, input.secret);
      return {
        ok: true,
        // Under pinned trust the EK certificate is not chained, so its key is the caller's
        // choice: the node's identity is the AK pin (the AK is what the policy trusts).
        identity: anchors ? ek.identity : akPinDigest(input.akPublic),
        akName,
        endorsement: {
          trust: anchors ? "ek-ca" : "pinned",
          ekCertificateDigest: ek.certificateDigest,
          anchors,
        },
        credential: cred,
      };
    },
  };
}

/** Step 1 for TPMs with the process's shared {@link EkTrust}. */
export const tpmCredentialIssuer: CredentialIssuer = createTpmCredentialIssuer();

/** Hex of a node identity. */
export function identityHex(identity: Uint8Array): string {
  return toHex(identity);
}

/** Options of {@link createTpmEvidenceVerifier}. */
export interface EvidenceVerifierOptions {
  /**
   * TEE roots instead of AMD's ARK pins and Intel's root CA: tests only. Set through
   * `buildKms({ teeTrust })`; no CLI flag or policy field reaches it.
   */
  teeTrust?: TeeTrustOverrides;
}

/**
 * Step 2 (every variant: `tpm`, and the TPM half plus the TEE half of `sev-snp`/`tdx`):
 * `verifyDocument` of the attestation area with the session's nonce and the expected
 * userData; the document's AK must be the one the credential was made for
 * (`ak.session_mismatch`).
 *
 * Under EK-CA trust the chain is not checked again: step 1 verified it and made the credential
 * to that EK for this AK name, and the service has checked the activated secret, so the AK
 * with that name is proven. The document is verified against the policy as it is, with
 * `akTrust: { activated: true, akName, ekChainVerified: true }`, which checks everything else
 * (signature, qualifying data, PCRs, TEE half) and reports the AK as trusted by
 * `ek-ca-verified+activation`. The session must have been begun under the EK CA set in force
 * now (else `ek.policy_changed`: begin again), and an EK certificate in the document, if any,
 * must be the session's (`ek.session_mismatch`). Under pinned trust no activation is claimed,
 * so a pin removed since step 1 is honoured.
 */
export function createTpmEvidenceVerifier(
  trust: EkTrust = sharedEkTrust,
  options: EvidenceVerifierOptions = {},
): EvidenceVerifier {
  return {
    async verify(input) {
      const checks: string[] = [];
      const details: string[] = [];
      const fail = (check: string, message: string) => {
        if (!checks.includes(check)) checks.push(check);
        details.push(`${check}: ${message}`);
      };
      const doc = input.evidence as { tpm?: { akPublic?: unknown; ekCertificate?: unknown } };
      const akPolicy = input.policy.ak;
      let akTrust: PreverifiedActivatedAk | undefined;

      // The AK must be the one the credential was made for.
      const akB64 = doc.tpm?.akPublic;
      try {
        if (typeof akB64 !== "string" || akB64.length > 4096) throw new Error("no akPublic");
        const docAk = fromBase64(akB64, "akPublic");
        const name = await nameOf(unmarshalTpm2bPublic(docAk));
        if (!bytesEqual(name, input.akName)) {
          fail(
            "ak.session_mismatch",
            "the document's AK is not the one the credential was made for",
          );
        }
      } catch {
        fail("ak.session_mismatch", "the document's AK cannot be read");
      }

      if (akPolicy && "ekCaCertificates" in akPolicy) {
        const e = input.endorsement;
        if (
          e.trust !== "ek-ca" || !e.anchors ||
          !bytesEqual(e.anchors, trust.anchorsDigest(akPolicy.ekCaCertificates))
        ) {
          fail("ek.policy_changed", "the session was begun under another AK trust; begin again");
        }
        const ekB64 = doc.tpm?.ekCertificate;
        if (ekB64 !== undefined) {
          try {
            if (typeof ekB64 !== "string" || ekB64.length > 16 * 1024) throw new Error("bad");
            const digest = createHash("sha256").update(fromBase64(ekB64, "ekCertificate"))
              .digest();
            if (!bytesEqual(new Uint8Array(digest), e.ekCertificateDigest)) {
              fail("ek.session_mismatch", "the document's EK certificate is not the session's");
            }
          } catch {
            fail("ek.session_mismatch", "the document's EK certificate cannot be read");
          }
        }
        // Step 1 verified the chain; the activation proves the AK with the session's name.
        akTrust = { activated: true, akName: input.akName, ekChainVerified: true };
      }
      const r = await verifyDocument(input.evidence, input.policy, {
        nonce: input.nonce,
        userData: input.userData,
        now: input.now,
        akTrust,
        teeTrust: options.teeTrust,
      });
      for (const f of r.failures) {
        // Another AK than the session's: already named above.
        if (f.check === "ak.activation" && checks.includes("ak.session_mismatch")) continue;
        fail(f.check, f.message);
      }
      return {
        checks,
        detail: details.join("; ").slice(0, 1000) || undefined,
        akTrust: r.akTrust,
        pcrs: r.pcrs,
      };
    },
  };
}

/** Step 2 for TPMs with the process's shared {@link EkTrust}. */
export const tpmEvidenceVerifier: EvidenceVerifier = createTpmEvidenceVerifier();
