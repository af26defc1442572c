/**
 * The release: what a node gets after a successful attestation (its disk key, a join ticket
 * and the KMS's identity), and its sealing with HPKE (RFC 9180, base mode,
 * DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM) to the node's ephemeral key.
 *
 * Binding: the HPKE `info` is the fixed label `confidant/v1/release`; the AEAD additional
 * data is SHA-256 over the label, the session token, the canonical request JSON and the
 * ephemeral public key (each followed by a zero byte), so a sealed release opens only for
 * the session and request it was made for.
 *
 * @module
 */
import { z } from "zod";
import { createHash } from "node:crypto";
import { utf8 } from "../lib/bytes.ts";
import { b64, type ReleaseRequest, roleSchema } from "./protocol.ts";
import { DISK_UUID_RE } from "./keys.ts";
import {
  type EphemeralKeyPair,
  openJson,
  type SealedJson,
  type SealedJsonErrors,
  sealJson,
} from "./sealed_json.ts";

export {
  type EphemeralKeyPair,
  generateEphemeralKeyPair,
  RELEASE_SUITE,
  releaseSuite,
} from "./sealed_json.ts";

const INFO = "confidant/v1/release";
const RELEASE_ERRORS: SealedJsonErrors = {
  noun: "release",
  key: "kms.ephemeral_key",
  suite: "kms.release_suite",
  tampered: "kms.release_tampered",
  malformed: "kms.release_malformed",
};

/** A kubeadm join ticket. */
export const joinTicketSchema = z.discriminatedUnion("available", [
  z.object({
    available: z.literal(true),
    kind: z.literal("kubeadm"),
    /** `HOST:PORT` of the API server. */
    apiServerEndpoint: z.string().min(1).max(300),
    /** Bootstrap token `<id>.<secret>`. */
    token: z.string().regex(/^[a-z0-9]{6}\.[a-z0-9]{16}$/),
    /** `sha256:<hex>` of the cluster CA's SubjectPublicKeyInfo. */
    caCertHashes: z.array(z.string().regex(/^sha256:[0-9a-f]{64}$/)).min(1).max(8),
    /** Expiry of the token, RFC 3339. */
    expiresAt: z.string(),
    /** For control-plane joins: kubeadm's certificate key (hex). */
    certificateKey: z.string().regex(/^[0-9a-f]{64}$/).optional(),
  }).strict(),
  z.object({ available: z.literal(false), reason: z.string().max(500) }).strict(),
]);
/** A kubeadm join ticket, or why there is none. */
export type JoinTicket = z.infer<typeof joinTicketSchema>;

/** The identity of the KMS, for the node to pin and check end to end. */
export const kmsIdentitySchema = z.object({
  clusterId: z.string().max(63),
  /** SHA-256 of the KMS's TLS certificate (DER), lower-case hex. */
  tlsFingerprint: z.string().regex(/^[0-9a-f]{64}$/),
}).strict();
/** The identity of the KMS. */
export type KmsIdentity = z.infer<typeof kmsIdentitySchema>;

/** Largest KMS policy (JSON bytes) a replica release carries. */
export const MAX_REPLICA_POLICY_BYTES = 64 * 1024;

/**
 * What a control-plane node needs to run a KMS replica over the shared state: the KEK that
 * opens the sealed master secret (secret: only ever inside the sealed release) and the policy
 * in force at the releasing KMS.
 */
export const replicaGrantSchema = z.object({
  /** The 32-byte KEK, base64. */
  kek: b64(32, 32),
  /** The KMS policy (JSON object, validated by the replica with `kmsPolicySchema`). */
  policy: z.record(z.string(), z.unknown()),
}).strict();
/** What a replica needs. */
export type ReplicaGrant = z.infer<typeof replicaGrantSchema>;

/** The plaintext of a release. */
export const releasePayloadSchema = z.object({
  version: z.literal(1),
  /** The disk's LUKS2 key (32 bytes), base64. */
  diskKey: b64(32, 32),
  disk: z.object({ uuid: z.string().regex(DISK_UUID_RE) }).strict(),
  role: roleSchema,
  nodeName: z.string().max(253),
  /** The node's identity as the KMS recorded it: SHA-256 of its EK public key, hex. */
  identity: z.string().regex(/^[0-9a-f]{64}$/),
  /** True when this release enrolled the disk (first release of the UUID). */
  enrolled: z.boolean(),
  join: joinTicketSchema,
  /**
   * The cluster's name as the master secret carries it (`kms.clusterId` is this name too);
   * see `clusterIdentity` for the derived cluster ID.
   */
  kms: kmsIdentitySchema,
  /**
   * The cluster ID (cluster/cluster_id.ts `deriveClusterId`, 64 hex): what the node extends
   * into PCR 15. Absent from releases of KMSes before it existed.
   */
  clusterIdentity: z.string().regex(/^[0-9a-f]{64}$/).optional(),
  /** Control-plane releases under `replicas.releaseKek` only. */
  replica: replicaGrantSchema.optional(),
  /** RFC 3339. */
  issuedAt: z.string(),
}).strict();
/** The plaintext of a release. */
export type ReleasePayload = z.infer<typeof releasePayloadSchema>;

/** The request in the canonical form that enters the binding. */
export function canonicalRequest(r: ReleaseRequest): string {
  return JSON.stringify({
    role: r.role,
    disk: { uuid: r.disk.uuid.toLowerCase() },
    nodeName: r.nodeName,
  });
}

/** The AEAD additional data binding a release to its session, request and ephemeral key. */
export function releaseBinding(
  session: string,
  request: ReleaseRequest,
  ephemeralPublicKey: Uint8Array,
): Promise<Uint8Array> {
  const z0 = new Uint8Array(1);
  const h = createHash("sha256");
  for (
    const part of [utf8(INFO), utf8(session), utf8(canonicalRequest(request)), ephemeralPublicKey]
  ) {
    h.update(part).update(z0);
  }
  return Promise.resolve(new Uint8Array(h.digest()));
}

/** A sealed release as it travels. */
export type SealedRelease = SealedJson;

/**
 * Seal `payload` to the raw X25519 public key `recipient`, bound by `aad` (HPKE base mode of
 * the release suite, synchronously with node:crypto: hpke.ts; nodes open with @hpke/core).
 * A recipient key that is not X25519 is a ConfidantError `kms.ephemeral_key`.
 */
export function sealRelease(
  payload: ReleasePayload,
  recipient: Uint8Array,
  aad: Uint8Array,
): Promise<SealedRelease> {
  return sealJson(payload, recipient, INFO, aad, RELEASE_ERRORS);
}

/**
 * Open a sealed release with the ephemeral private key; a tampered or mis-bound release is a
 * ConfidantError `kms.release_tampered`; a payload that does not match the schema is
 * `kms.release_malformed`.
 */
export function openRelease(
  sealed: SealedRelease,
  key: EphemeralKeyPair,
  aad: Uint8Array,
): Promise<ReleasePayload> {
  return openJson(sealed, key, INFO, aad, releasePayloadSchema, RELEASE_ERRORS);
}
