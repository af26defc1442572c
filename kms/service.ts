/**
 * The admission logic of the KMS, free of HTTP: step 1 (`begin`) checks the endorsement and
 * issues a sealed session with a credential challenge; step 2 (`finish`) checks the session,
 * the activated credential, the evidence, the policy and the disk's enrolment, then seals the
 * release to the node's ephemeral key. Every refusal names every failed check and is audited.
 *
 * @module
 */
import { createHash } from "node:crypto";
import {
  concat,
  constantTimeEqual,
  fromBase64,
  fromHex,
  toBase64,
  toHex,
  utf8,
  wipe,
} from "../lib/bytes.ts";
import { CLUSTER_ID_LABEL } from "../cluster/cluster_id.ts";
import { describeError } from "../lib/errors.ts";
import type { AuditLog } from "./audit.ts";
import type { CredentialIssuer, EvidenceVerifier } from "./evidence.ts";
import type { JoinIssuer } from "./join_ticket.ts";
import type { KeyDeriver } from "./keys.ts";
import type { KmsMetrics } from "./metrics.ts";
import type { KmsPolicy } from "./policy.ts";
import type { BeginRequest, BeginResponse, FinishRequest, FinishResponse } from "./protocol.ts";
import {
  type JoinTicket,
  type KmsIdentity,
  MAX_REPLICA_POLICY_BYTES,
  releaseBinding,
  type ReleasePayload,
  type ReplicaGrant,
  sealRelease,
} from "./release.ts";
import { ReplayCache } from "./replay_cache.ts";
import {
  MAX_SESSION_LIFETIME_MS,
  openSessionToken,
  sealSessionToken,
  type SessionKey,
} from "./session_token.ts";
import type { KmsStore } from "./store.ts";

/** What the service needs. */
export interface KmsServiceDeps {
  deriver: KeyDeriver;
  /** From `deriver.sessionKeyObject()` (synchronous AES-GCM) or `deriver.sessionKey()`. */
  sessionKey: SessionKey;
  store: KmsStore;
  /** The policy in force (read at every request). */
  policy: () => KmsPolicy;
  credentials: CredentialIssuer;
  evidence: EvidenceVerifier;
  join: JoinIssuer;
  /** What the release tells the node about this KMS. */
  identity: KmsIdentity;
  /** The cluster ID (cluster/cluster_id.ts, 64 hex): released, and checked in PCR 15. */
  clusterIdentity?: string;
  /**
   * The KEK this KMS opened the master secret with: released (sealed) to control-plane nodes
   * under the policy's `replicas.releaseKek`; absent: never released.
   */
  replicaKek?: Uint8Array;
  audit: AuditLog;
  metrics: KmsMetrics;
  replay?: ReplayCache;
  /** Clock (ms since the epoch). */
  now?: () => number;
  /** Session lifetime (ms), at most 60 s. */
  sessionLifetimeMs?: number;
}

/** Result of a step: a body to send, or a refusal. */
export type Outcome<T> =
  | { ok: true; body: T }
  | { ok: false; status: 403 | 429; error: string; checks: string[] };

/** PCR 15 of the SHA-256 bank: cluster/cluster_id.ts CLUSTER_ID_PCR. */
const CLUSTER_ID_PCR = "15";
const UNSET_PCR = "0".repeat(64);

/**
 * The policy's `clusterIdPcr` check over the verified PCR values: PCR 15 quoted, and unset
 * or `expected` (this cluster's value). Returns the failed check, if any.
 */
export function clusterPcrCheck(
  pcrs: Record<string, string> | undefined,
  expected: string | undefined,
): string | undefined {
  const v = pcrs?.[CLUSTER_ID_PCR]?.toLowerCase();
  if (v === undefined) return "cluster_pcr.not_quoted";
  if (v === UNSET_PCR) return undefined;
  if (expected !== undefined && v === expected) return undefined;
  return "cluster_pcr.other_cluster";
}

const sha256 = (b: Uint8Array) => new Uint8Array(createHash("sha256").update(b).digest());

/** The KMS protocol's two steps. */
export class KmsService {
  private readonly replay: ReplayCache;
  private readonly now: () => number;
  private readonly lifetime: number;
  /** PCR 15 of a node that took this cluster (hex), when the cluster ID is known. */
  private expectedPcr?: string;

  constructor(private readonly d: KmsServiceDeps) {
    if (d.clusterIdentity) {
      const m = sha256(concat(utf8(CLUSTER_ID_LABEL), fromHex(d.clusterIdentity, "cluster ID")));
      this.expectedPcr = toHex(sha256(concat(new Uint8Array(32), m)));
    }
    this.replay = d.replay ?? new ReplayCache();
    this.now = d.now ?? Date.now;
    this.lifetime = Math.min(
      d.sessionLifetimeMs ?? MAX_SESSION_LIFETIME_MS,
      MAX_SESSION_LIFETIME_MS,
    );
  }

  private refuse<T>(
    event: string,
    source: string,
    checks: string[],
    extra: { identity?: string; request?: FinishRequest["request"]; detail?: string } = {},
  ): Outcome<T> {
    this.d.metrics.refusal(checks);
    this.d.audit.record({
      time: new Date(this.now()).toISOString(),
      event,
      decision: "refused",
      source,
      identity: extra.identity,
      request: extra.request,
      checks,
      detail: extra.detail,
    });
    return { ok: false, status: 403, error: "refused", checks };
  }

  /** Step 1. */
  async begin(req: BeginRequest, source: string): Promise<Outcome<BeginResponse>> {
    const now = this.now();
    const policy = this.d.policy();
    if (!policy.variants.includes(req.variant)) {
      // The name verifyDocument gives the same refusal at step 2.
      return this.refuse("begin", source, ["document.variant"], {
        detail: `the policy accepts ${policy.variants.join(", ")}, not "${req.variant}"`,
      });
    }
    const secret = crypto.getRandomValues(new Uint8Array(32));
    try {
      const r = await this.d.credentials.begin({
        ekCertificate: fromBase64(req.ekCertificate, "ekCertificate"),
        ekIntermediates: req.ekIntermediates.map((c) => fromBase64(c, "ekIntermediates")),
        akPublic: fromBase64(req.akPublic, "akPublic"),
        secret,
        policy,
        now: new Date(now),
      });
      if (!r.ok) return this.refuse("begin", source, r.checks, { detail: r.detail });
      const nonce = crypto.getRandomValues(new Uint8Array(32));
      const session = await sealSessionToken(this.d.sessionKey, {
        sid: crypto.getRandomValues(new Uint8Array(16)),
        nonce,
        secretDigest: sha256(secret),
        akName: r.akName,
        identity: r.identity,
        endorsement: r.endorsement,
        variant: req.variant,
        expiresAt: now + this.lifetime,
      }, now);
      return {
        ok: true,
        body: {
          session,
          nonce: toBase64(nonce),
          credential: {
            credentialBlob: toBase64(r.credential.credentialBlob),
            encryptedSecret: toBase64(r.credential.encryptedSecret),
          },
        },
      };
    } finally {
      wipe(secret);
    }
  }

  /** Step 2. */
  async finish(req: FinishRequest, source: string): Promise<Outcome<FinishResponse>> {
    const now = this.now();
    const request = { ...req.request, disk: { uuid: req.request.disk.uuid.toLowerCase() } };
    const opened = await openSessionToken(this.d.sessionKey, req.session, now);
    if (!opened.ok) return this.refuse("finish", source, [opened.failure], { request });
    const claims = opened.claims;
    const identity = toHex(claims.identity);
    const claim = this.replay.claim(claims.sid, claims.expiresAt, now);
    if (claim === "replayed") {
      return this.refuse("finish", source, ["session.replayed"], { identity, request });
    }
    if (claim === "full") {
      // Too many sessions finished in the last minute to remember: shed, never forget.
      this.d.metrics.refusal(["kms.busy"]);
      return { ok: false, status: 429, error: "busy", checks: ["kms.busy"] };
    }

    const policy = this.d.policy();
    const checks: string[] = [];
    const details: string[] = [];
    let akTrust: string | undefined;
    const activated = fromBase64(req.activatedSecret, "activatedSecret");
    if (!constantTimeEqual(sha256(activated), claims.secretDigest)) {
      checks.push("credential.mismatch");
    }
    wipe(activated);
    if (!policy.roles.includes(request.role)) checks.push("request.role");
    const ephemeral = fromBase64(req.ephemeralPublicKey, "ephemeralPublicKey");
    // The document must be of the variant announced at begin (a node cannot switch, e.g.
    // from the sev-snp it began with to a plain tpm document); whether the policy accepts
    // it now is the verifier's `document.variant`.
    const variant = (req.evidence as { variant?: unknown }).variant;
    if (variant !== claims.variant) {
      checks.push("evidence.variant");
      details.push(
        `evidence.variant: the session was begun for "${claims.variant}", the document is ` +
          (typeof variant === "string" ? `"${variant.slice(0, 16)}"` : "of no variant"),
      );
    }
    try {
      const v = await this.d.evidence.verify({
        evidence: req.evidence,
        policy,
        nonce: claims.nonce,
        userData: sha256(ephemeral),
        akName: claims.akName,
        identity: claims.identity,
        endorsement: claims.endorsement,
        now: new Date(now),
      });
      for (const c of v.checks) if (!checks.includes(c)) checks.push(c);
      if (v.detail) details.push(v.detail);
      akTrust = v.akTrust;
      if (policy.clusterIdPcr?.required) {
        const c = clusterPcrCheck(v.pcrs, this.expectedPcr);
        if (c) {
          checks.push(c);
          details.push(
            c === "cluster_pcr.not_quoted"
              ? "cluster_pcr.not_quoted: the quote does not include PCR 15"
              : "cluster_pcr.other_cluster: PCR 15 holds another cluster's (or an unknown) value",
          );
        }
      }
    } catch (e) {
      checks.push("evidence.malformed");
      details.push(describeError(e).message);
    }
    const detail = details.join("; ").slice(0, 1000) || undefined;
    if (checks.length) return this.refuse("finish", source, checks, { identity, request, detail });

    // The disk is bound to the first identity that received it.
    let enrolled = false;
    let record = await this.d.store.getDisk(request.disk.uuid);
    if (!record) {
      const r = await this.d.store.enrollDisk({
        version: 1,
        uuid: request.disk.uuid,
        identity,
        nodeName: request.nodeName,
        role: request.role,
        enrolledAt: new Date(now).toISOString(),
        previous: [],
      });
      record = r.record;
      enrolled = r.created;
    }
    if (record.identity !== identity) {
      return this.refuse("finish", source, ["disk.identity_mismatch"], {
        identity,
        request,
        detail: `disk ${request.disk.uuid} is enrolled to identity ${record.identity}`,
      });
    }

    let join: JoinTicket;
    try {
      join = await this.d.join.issue(
        { role: request.role, nodeName: request.nodeName },
        new Date(now),
      );
    } catch (e) {
      join = {
        available: false,
        reason: `join ticket failed: ${describeError(e).message}`.slice(0, 500),
      };
    }
    const replica = this.replicaGrant(request.role, policy);
    const diskKey = this.d.deriver.diskKeySync(request.disk.uuid);
    const payload: ReleasePayload = {
      version: 1,
      diskKey: toBase64(diskKey),
      disk: request.disk,
      role: request.role,
      nodeName: request.nodeName,
      identity,
      enrolled,
      join,
      kms: this.d.identity,
      ...(this.d.clusterIdentity ? { clusterIdentity: this.d.clusterIdentity } : {}),
      ...(replica ? { replica } : {}),
      issuedAt: new Date(now).toISOString(),
    };
    wipe(diskKey);
    const aad = await releaseBinding(req.session, request, ephemeral);
    const release = await sealRelease(payload, ephemeral, aad);
    payload.diskKey = "";
    if (payload.replica) payload.replica.kek = "";
    this.d.metrics.release(enrolled);
    this.d.audit.record({
      time: new Date(now).toISOString(),
      event: "finish",
      decision: "released",
      source,
      identity,
      request,
      detail: `${enrolled ? "enrolled; " : ""}${claims.variant}; ak ${akTrust ?? "trusted"}; ` +
        `join ${join.available ? "issued" : "unavailable"}${replica ? "; replica KEK" : ""}`,
    });
    return { ok: true, body: { release } };
  }

  /**
   * What a control-plane release carries for a KMS replica: only for role `control-plane`,
   * only when the policy admits that role and says `replicas.releaseKek`, and only when this
   * KMS holds the KEK and its policy fits the release.
   */
  private replicaGrant(role: string, policy: KmsPolicy): ReplicaGrant | undefined {
    if (role !== "control-plane" || !policy.roles.includes("control-plane")) return undefined;
    if (!policy.replicas?.releaseKek || !this.d.replicaKek) return undefined;
    const policyJson = JSON.stringify(policy);
    if (policyJson.length > MAX_REPLICA_POLICY_BYTES) return undefined;
    return {
      kek: toBase64(this.d.replicaKek),
      policy: JSON.parse(policyJson) as Record<string, unknown>,
    };
  }
}
