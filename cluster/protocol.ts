/**
 * The operator ↔ node exchange of `confidant init`, `confidant recover` and
 * `confidant cluster verify` (JSON over HTTP(S) to the agent's endpoint; TLS is not relied on:
 * trust comes from the attestation and the HPKE sealing).
 *
 * 1. `POST /v1/init/begin {purpose}` → `{session, akPublic, ekCertificate?}`: the node's AK
 *    (TPM2B_PUBLIC) and EK certificate (DER), both base64.
 * 2. The operator checks the EK certificate against the policy's EK CAs and makes a credential
 *    for the AK name to that EK (MakeCredential); `POST /v1/init/attest {session, nonce,
 *    credential?}` → `{activationProof?, document, ephemeralPublicKey, cluster?}`. The node
 *    activated the credential and quoted with userData = {@link attestUserData} (binds
 *    purpose, session, its fresh X25519 key and, for `verify`, the cluster ID and name it
 *    claims). It never returns the activated secret itself, only {@link activationProof}
 *    (an HMAC under it over this exchange's transcript): the node's EK and AK are the ones
 *    its KMS client uses, so a raw secret would make any caller's credential — one a KMS
 *    made for this node — activate here (an activation oracle).
 * 3. `init`/`recover` only, after every check passed: `POST /v1/init/finish {session,
 *    operatorPublicKey, sealed}` with the {@link InitPayload} sealed to the node's key under
 *    info `confidant/v1/init` and aad {@link finishBinding}; the answer carries the
 *    {@link InitResult} (admin kubeconfig) sealed to the operator's key under info
 *    `confidant/v1/init-result` and the same aad.
 *
 * @module
 */
import { z } from "zod";
import { createHmac } from "node:crypto";
import { concat, sha256, utf8 } from "../lib/bytes.ts";
import { b64 } from "../kms/protocol.ts";
import { CLUSTER_ID_RE } from "../kms/keys.ts";
import { kmsPolicySchema } from "../kms/policy.ts";
import { CLUSTER_ID_HEX_RE } from "./cluster_id.ts";

/** Path of step 1. */
export const INIT_BEGIN_PATH = "/v1/init/begin";
/** Path of step 2. */
export const INIT_ATTEST_PATH = "/v1/init/attest";
/** Path of step 3. */
export const INIT_FINISH_PATH = "/v1/init/finish";
/** HPKE info of the init payload. */
export const INIT_INFO = "confidant/v1/init";
/** HPKE info of the init result. */
export const INIT_RESULT_INFO = "confidant/v1/init-result";
/** Longest the node gives an init or recover (kubeadm init included) before it gives up (ms). */
export const NODE_FINISH_TIMEOUT_MS = 20 * 60_000;
/**
 * How long the operator waits for the node's answer: longer than {@link NODE_FINISH_TIMEOUT_MS},
 * so the operator never gives up on a node that is still taking the cluster (ms).
 */
export const OPERATOR_FINISH_TIMEOUT_MS = NODE_FINISH_TIMEOUT_MS + 5 * 60_000;
/** Largest request body the node reads (bytes). */
export const MAX_INIT_BODY_BYTES = 256 * 1024;

/** What an exchange is for. */
export const purposeSchema = z.enum(["init", "recover", "verify"]);
/** What an exchange is for. */
export type Purpose = z.infer<typeof purposeSchema>;

const session = z.string().regex(/^[0-9a-f]{32}$/, "must be a session id");

/** Step 1 request. */
export const beginRequestSchema = z.strictObject({ purpose: purposeSchema });
/** Step 1 answer. */
export const beginResponseSchema = z.strictObject({
  session,
  akPublic: b64(2048),
  ekCertificate: b64(16 * 1024).optional(),
});
/** Step 1 answer. */
export type BeginResponse = z.infer<typeof beginResponseSchema>;

/** Step 2 request. */
export const attestRequestSchema = z.strictObject({
  session,
  nonce: b64(64, 16),
  credential: z.strictObject({
    credentialBlob: b64(1024),
    encryptedSecret: b64(1024),
  }).optional(),
});
/** Step 2 request. */
export type AttestRequest = z.infer<typeof attestRequestSchema>;

/** What an initialised node says about its cluster. */
export const clusterClaimSchema = z.strictObject({
  id: z.string().regex(CLUSTER_ID_HEX_RE),
  name: z.string().regex(CLUSTER_ID_RE),
});
/** What an initialised node says about its cluster. */
export type ClusterClaim = z.infer<typeof clusterClaimSchema>;

/** Step 2 answer. */
export const attestResponseSchema = z.strictObject({
  activationProof: b64(32, 32).optional(),
  document: z.unknown(),
  ephemeralPublicKey: b64(32, 32),
  cluster: clusterClaimSchema.optional(),
});
/** Step 2 answer. */
export type AttestResponse = z.infer<typeof attestResponseSchema>;

/** A sealed message on the wire. */
export const sealedSchema = z.strictObject({
  suite: z.literal("DHKEM(X25519,HKDF-SHA256)/HKDF-SHA256/AES-256-GCM"),
  enc: b64(32, 32),
  ciphertext: b64(192 * 1024),
});

/** Step 3 request. */
export const finishRequestSchema = z.strictObject({
  session,
  operatorPublicKey: b64(32, 32),
  sealed: sealedSchema,
});
/** Step 3 request. */
export type FinishRequest = z.infer<typeof finishRequestSchema>;

/** Step 3 answer. */
export const finishResponseSchema = z.strictObject({
  clusterId: z.string().regex(CLUSTER_ID_HEX_RE),
  sealed: sealedSchema,
});
/** Step 3 answer. */
export type FinishResponse = z.infer<typeof finishResponseSchema>;

/** A refusal or error: `{error, message?, checks?}`. */
export const errorResponseSchema = z.object({
  error: z.string().max(200),
  message: z.string().max(2000).optional(),
  checks: z.array(z.string().max(200)).max(100).optional(),
});

const cidr = z.string().max(64).regex(
  /^([0-9.]+\/\d{1,2}|[0-9a-fA-F:]+\/\d{1,3})$/,
  "must be a CIDR",
);

/** Cluster-wide Kubernetes settings chosen by the operator (the node adds its own address). */
export const kubernetesSettingsSchema = z.strictObject({
  kubernetesVersion: z.string().regex(/^v\d+\.\d+\.\d+$/, "must be vMAJOR.MINOR.PATCH"),
  /** `HOST:PORT` of the API server's stable address (load balancer); default: the node. */
  controlPlaneEndpoint: z.string().max(300).regex(
    /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/,
    "must be HOST:PORT",
  ).optional(),
  podSubnet: cidr.default("10.244.0.0/16"),
  serviceSubnet: cidr.default("10.96.0.0/12"),
  dnsDomain: z.string().max(253).regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/).default(
    "cluster.local",
  ),
  certSANs: z.array(z.string().max(253).regex(/^[A-Za-z0-9.:*-]+$/)).max(32).default([]),
});
/** Cluster-wide Kubernetes settings. */
export type KubernetesSettings = z.infer<typeof kubernetesSettingsSchema>;

/** The sealed init (or recover) payload. Secret. */
export const initPayloadSchema = z.strictObject({
  version: z.literal(1),
  purpose: z.enum(["init", "recover"]),
  cluster: z.strictObject({
    /** The cluster's name (the KMS's "cluster id" in derivations and at rest). */
    name: z.string().regex(CLUSTER_ID_RE),
    /** The cluster ID the operator derived; the node checks it derives the same. */
    id: z.string().regex(CLUSTER_ID_HEX_RE),
    masterSecret: b64(32, 32),
    salt: b64(32, 32),
  }),
  /** Required for `init`; `recover` uses what the node's state disk already holds. */
  kubernetes: kubernetesSettingsSchema.optional(),
  /**
   * Policy of the KMS the node runs in-process (who may join, with which PCRs, AK trust and
   * roles). The operator's default: its own attestation policy with `roles: [worker]`. The
   * node keeps it on its encrypted state disk; a `recover` without one reuses the kept one.
   * The node adds a `join` section (its API server, kubeadm's certificate-key Secret) when
   * there is none.
   */
  kmsPolicy: kmsPolicySchema.optional(),
});
/** The sealed init payload. */
export type InitPayload = z.infer<typeof initPayloadSchema>;

/** The sealed result of init/recover. Secret (admin credentials). */
export const initResultSchema = z.strictObject({
  version: z.literal(1),
  clusterId: z.string().regex(CLUSTER_ID_HEX_RE),
  /** The admin kubeconfig kubeadm wrote. */
  adminKubeconfig: z.string().max(64 * 1024),
  disk: z.enum(["formatted", "opened"]),
  kubeadm: z.enum(["ran", "skipped"]),
  /** The master secret was stored as a Kubernetes Secret now (false: it already was). */
  masterStored: z.boolean(),
  /** The node's in-process KMS: where joining nodes reach it and the TLS key they pin. */
  kms: z.strictObject({
    url: z.string().max(300).regex(/^https:\/\/\S+$/, "must be an https:// URL"),
    fingerprint: z.string().regex(/^[0-9a-f]{64}$/),
  }).optional(),
});
/** The sealed result of init/recover. */
export type InitResult = z.infer<typeof initResultSchema>;

const Z = new Uint8Array(1);

/**
 * userData of the node's quote: binds purpose, session, its ephemeral key and the cluster it
 * claims (ID and name; `verify` only), so every field the operator reports is attested.
 */
export function attestUserData(
  purpose: Purpose,
  session: string,
  ephemeralPublicKey: Uint8Array,
  cluster?: ClusterClaim,
): Promise<Uint8Array> {
  return sha256(
    concat(
      utf8("confidant/v1/node-attest"),
      Z,
      utf8(purpose),
      Z,
      utf8(session),
      Z,
      ephemeralPublicKey,
      Z,
      utf8(cluster?.id ?? ""),
      Z,
      utf8(cluster?.name ?? ""),
      Z,
    ),
  );
}

/** Label of {@link activationProof}. */
export const ACTIVATION_PROOF_LABEL = "confidant-init-activation-v1";

function framed(b: Uint8Array): Uint8Array {
  if (b.length > 0xffff) throw new RangeError("field longer than 65535 bytes");
  return concat(new Uint8Array([b.length >>> 8, b.length & 0xff]), b);
}

/**
 * What the node returns instead of the activated credential secret:
 * `HMAC-SHA256(key = secret, "confidant-init-activation-v1" ‖ L(purpose) ‖ L(session) ‖
 * L(nonce) ‖ L(nodeKey) ‖ L(akName))`, `L(x)` = u16be(len(x)) ‖ x. The operator, who chose
 * the secret, recomputes it and compares in constant time. A caller who sends a credential
 * someone else made (a KMS's) gets a MAC bound to this exchange, which is no answer to
 * that credential.
 */
export function activationProof(
  secret: Uint8Array,
  t: {
    purpose: Purpose;
    session: string;
    nonce: Uint8Array;
    nodeKey: Uint8Array;
    akName: Uint8Array;
  },
): Uint8Array {
  const mac = createHmac("sha256", secret);
  mac.update(utf8(ACTIVATION_PROOF_LABEL));
  for (const f of [utf8(t.purpose), utf8(t.session), t.nonce, t.nodeKey, t.akName]) {
    mac.update(framed(f));
  }
  return new Uint8Array(mac.digest());
}

/** AEAD additional data of step 3 (both directions). */
export function finishBinding(
  purpose: Purpose,
  session: string,
  nonce: Uint8Array,
  nodeKey: Uint8Array,
  operatorKey: Uint8Array,
): Promise<Uint8Array> {
  return sha256(
    concat(
      utf8(INIT_INFO),
      Z,
      utf8(purpose),
      Z,
      utf8(session),
      Z,
      nonce,
      Z,
      nodeKey,
      Z,
      operatorKey,
      Z,
    ),
  );
}
