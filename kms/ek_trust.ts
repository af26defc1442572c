/**
 * The KMS's memory of EK certificates, so the admission path does not redo what it already
 * knows. Two caches, both bounded (oldest entry evicted first):
 *
 * - **Parsed EKs**, keyed by SHA-256 of the certificate DER: the EK's TPMT_PUBLIC (for
 *   MakeCredential) and the node identity (SHA-256 of its SubjectPublicKeyInfo). Parsing a
 *   certificate and exporting its key costs milliseconds; the result depends on the bytes only.
 * - **Verified chains, per policy version**: the state is keyed by the policy's
 *   `ekCaCertificates` array (a reload makes a new array, so a new, empty state; the old one
 *   is garbage-collected). It holds the anchors parsed once ({@link EkTrustAnchors}, passed to
 *   every `verifyEkCertificate` of that version) and, keyed by SHA-256 of the EK DER and the
 *   intermediates offered, the outcome of `verifyEkCertificate` with the window in which every
 *   certificate of the chain it built is valid (`validFrom`..`validUntil`). A hit outside that
 *   window is verified again. Failures are never cached.
 *
 * @module
 */
import { createHash } from "node:crypto";
import type * as x509 from "../lib/x509.ts";
import { toHex } from "../lib/bytes.ts";
import {
  ekPublicFromCertificate,
  EkTrustAnchors,
  parseCertificate,
  verifyEkCertificate,
} from "../attestation/ek_certificate.ts";
import type { TpmtPublic } from "../attestation/tpm/mod.ts";

/** An EK certificate as the KMS uses it. */
export interface KnownEk {
  /** SHA-256 of the certificate DER. */
  certificateDigest: Uint8Array;
  /** The EK public area (TCG default template with the certified key). */
  ekPublic: TpmtPublic;
  /** Node identity: SHA-256 of the certificate's SubjectPublicKeyInfo DER. */
  identity: Uint8Array;
}

/** A {@link KnownEk} whose chain to the policy's EK CAs was verified. */
export interface VerifiedEk extends KnownEk {
  /** The answer came from the cache. */
  cached: boolean;
}

interface ChainEntry {
  ek: KnownEk;
  /** ms since the epoch: every certificate of the chain is valid in [notBefore, notAfter]. */
  notBefore: number;
  notAfter: number;
}

interface PolicyState {
  /** SHA-256 over the CA PEMs: names the anchor set in session tokens. */
  digest: Uint8Array;
  /** Parsed anchors, or why a CA PEM of this version does not parse (reported every call). */
  anchors: EkTrustAnchors | { error: unknown };
  chains: Map<string, ChainEntry>;
}

function sha256(...parts: Uint8Array[]): Uint8Array {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

function lengthPrefixed(b: Uint8Array): Uint8Array[] {
  const n = new Uint8Array(4);
  new DataView(n.buffer).setUint32(0, b.length);
  return [n, b];
}

function remember<V>(m: Map<string, V>, key: string, value: V, max: number): void {
  if (m.size >= max) m.delete(m.keys().next().value!);
  m.set(key, value);
}

/** Digest of a list of CA PEMs (order and content), as carried in session tokens. */
export function anchorSetDigest(caCertificates: readonly string[]): Uint8Array {
  const enc = new TextEncoder();
  return sha256(...caCertificates.flatMap((p) => lengthPrefixed(enc.encode(p))));
}

/** The EK caches (see the module doc). */
export class EkTrust {
  private readonly parsed = new Map<string, KnownEk>();
  private readonly policies = new WeakMap<readonly string[], PolicyState>();

  /** `maxEntries` bounds each cache (parsed EKs, and verified chains per policy version). */
  constructor(private readonly maxEntries = 4096) {}

  /** The parsed EK of a certificate (cached by its DER digest); throws as the parser does. */
  known(der: Uint8Array, parsed?: x509.X509Certificate): KnownEk {
    const digest = sha256(der);
    const key = toHex(digest);
    const hit = this.parsed.get(key);
    if (hit) return hit;
    const cert = parsed ?? parseCertificate(der);
    const ek: KnownEk = {
      certificateDigest: digest,
      ekPublic: ekPublicFromCertificate(cert),
      identity: sha256(new Uint8Array(cert.publicKey.rawData)),
    };
    remember(this.parsed, key, ek, this.maxEntries);
    return ek;
  }

  private state(caCertificates: readonly string[]): PolicyState {
    let s = this.policies.get(caCertificates);
    if (!s) {
      let anchors: PolicyState["anchors"];
      try {
        anchors = EkTrustAnchors.fromPem(caCertificates);
      } catch (error) {
        anchors = { error };
      }
      s = { digest: anchorSetDigest(caCertificates), anchors, chains: new Map() };
      this.policies.set(caCertificates, s);
    }
    return s;
  }

  /** Digest of the anchor set of this policy version (cached with it). */
  anchorsDigest(caCertificates: readonly string[]): Uint8Array {
    return this.state(caCertificates).digest;
  }

  /**
   * Verify that `der` chains to `caCertificates` (through `intermediates`) at `now`, from the
   * cache when this policy version already verified the same certificate and intermediates
   * and `now` is inside the chain's validity. Failure is the ConfidantError of
   * `verifyEkCertificate` (`ek.certificate`, `ek.unsupported_key`, a ParseError).
   */
  async verify(
    der: Uint8Array,
    intermediates: readonly Uint8Array[],
    caCertificates: readonly string[],
    now: Date,
  ): Promise<VerifiedEk> {
    const s = this.state(caCertificates);
    const key = toHex(sha256(...lengthPrefixed(der), ...intermediates.flatMap(lengthPrefixed)));
    const t = now.getTime();
    const hit = s.chains.get(key);
    if (hit && hit.notBefore <= t && t <= hit.notAfter) return { ...hit.ek, cached: true };
    if (!(s.anchors instanceof EkTrustAnchors)) throw s.anchors.error;
    const leaf = parseCertificate(der);
    const r = await verifyEkCertificate(leaf, { anchors: s.anchors, intermediates, now });
    const ek = this.known(der, leaf);
    const notBefore = r.validFrom.getTime();
    const notAfter = r.validUntil.getTime();
    if (notBefore <= t && t <= notAfter) {
      remember(s.chains, key, { ek, notBefore, notAfter }, this.maxEntries);
    }
    return { ...ek, cached: false };
  }
}
