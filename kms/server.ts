/**
 * Assembly of a running KMS: open the master secret from the store with the KEK, build the
 * service and the Hono app, and (only in {@link serveKms}) bind it to a TLS socket.
 *
 * @module
 */
import { ConfidantError } from "../lib/errors.ts";
import { wipe } from "../lib/bytes.ts";
import type { Logger } from "../lib/log.ts";
import { createKmsApp, type KmsEnv } from "./app.ts";
import type { AuditLog } from "./audit.ts";
import type { TeeTrustOverrides } from "../attestation/tee_verify.ts";
import {
  createTpmEvidenceVerifier,
  type CredentialIssuer,
  type EvidenceVerifier,
  tpmCredentialIssuer,
  tpmEvidenceVerifier,
} from "./evidence.ts";
import { type JoinIssuer, noJoinIssuer } from "./join_ticket.ts";
import { generateMasterSecret, KeyDeriver, type MasterSecret } from "./keys.ts";
import { openMaster, sealMaster } from "./master_at_rest.ts";
import { clusterIdFromDeriver } from "../cluster/cluster_id.ts";
import { KmsMetrics } from "./metrics.ts";
import type { PolicyHolder } from "./policy.ts";
import type { ReplayCache } from "./replay_cache.ts";
import { KmsService } from "./service.ts";
import type { KmsStore } from "./store.ts";
import type { Hono } from "hono";

/** Create the master secret in `store` (fresh, or `imported`); refuses if one exists. */
export async function initKms(
  store: KmsStore,
  kek: Uint8Array,
  clusterId: string,
  imported?: MasterSecret,
): Promise<{ clusterId: string }> {
  const m = imported ?? generateMasterSecret(clusterId);
  try {
    const sealed = await sealMaster(m, kek);
    if (!(await store.createMaster(sealed))) {
      throw new ConfidantError(
        "kms.already_initialised",
        `${store.description} already holds a master secret`,
      );
    }
    return { clusterId: m.clusterId };
  } finally {
    wipe(m.secret);
    wipe(m.salt);
  }
}

/** Options of {@link buildKms}. */
export interface BuildKmsOptions {
  store: KmsStore;
  kek: Uint8Array;
  policy: PolicyHolder;
  /** SHA-256 of the TLS certificate the KMS serves (lower hex). */
  tlsFingerprint: string;
  audit: AuditLog;
  log: Logger;
  join?: JoinIssuer;
  credentials?: CredentialIssuer;
  evidence?: EvidenceVerifier;
  /**
   * Tests only: TEE trust anchors (fake AMD ARK pins, a fake Intel root) for the default
   * evidence verifier. Deliberately not reachable from `confidant kms serve` or the policy.
   */
  teeTrust?: TeeTrustOverrides;
  replay?: ReplayCache;
  now?: () => number;
  rateLimit?: { ratePerSecond: number; burst: number };
  maxInFlight?: number;
  /** Latency target of the admission control (ms, see `createKmsApp`). */
  targetWaitMs?: number;
}

/** A built KMS. */
export interface BuiltKms {
  app: Hono<{ Bindings: KmsEnv }>;
  service: KmsService;
  metrics: KmsMetrics;
  /** The cluster's name (the master secret's `clusterId`). */
  clusterId: string;
  /** The derived cluster ID (cluster/cluster_id.ts), what PCR 15 of its nodes carries. */
  clusterIdentity: string;
}

/** Open the state and build the app. */
export async function buildKms(o: BuildKmsOptions): Promise<BuiltKms> {
  const sealed = await o.store.loadMaster();
  if (!sealed) {
    throw new ConfidantError(
      "kms.not_initialised",
      `${o.store.description} holds no master secret: run confidant kms init`,
    );
  }
  const m = await openMaster(sealed, o.kek);
  let deriver: KeyDeriver;
  let clusterIdentity: string;
  try {
    deriver = await KeyDeriver.create(m);
    clusterIdentity = await clusterIdFromDeriver(deriver);
  } finally {
    wipe(m.secret);
    wipe(m.salt);
  }
  const metrics = new KmsMetrics();
  const service = new KmsService({
    deriver,
    sessionKey: deriver.sessionKeyObject(),
    store: o.store,
    policy: () => o.policy.current.policy,
    credentials: o.credentials ?? tpmCredentialIssuer,
    evidence: o.evidence ??
      (o.teeTrust
        ? createTpmEvidenceVerifier(undefined, { teeTrust: o.teeTrust })
        : tpmEvidenceVerifier),
    join: o.join ?? noJoinIssuer,
    identity: { clusterId: m.clusterId, tlsFingerprint: o.tlsFingerprint },
    clusterIdentity,
    // Held like the master secret it opens; released only under `replicas.releaseKek`.
    replicaKek: o.kek.slice(),
    audit: o.audit,
    metrics,
    replay: o.replay,
    now: o.now,
  });
  const app = createKmsApp({
    service,
    metrics,
    log: o.log,
    now: o.now,
    rateLimit: o.rateLimit,
    maxInFlight: o.maxInFlight,
    targetWaitMs: o.targetWaitMs,
  });
  return { app, service, metrics, clusterId: m.clusterId, clusterIdentity };
}

/**
 * Serve `app` over TLS; returns the server (call `shutdown()`). With `reusePort` several
 * processes bind the same port and Linux spreads connections across them (SO_REUSEPORT; with
 * TLS, Deno 2.9 needs `--unstable-net` for it): one process per core.
 */
export function serveKms(
  app: Hono<{ Bindings: KmsEnv }>,
  o: {
    hostname: string;
    port: number;
    certPem: string;
    keyPem: string;
    reusePort?: boolean;
    onListen?: (addr: Deno.NetAddr) => void;
  },
): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve(
    {
      hostname: o.hostname,
      port: o.port,
      cert: o.certPem,
      key: o.keyPem,
      ...(o.reusePort ? { reusePort: true } : {}),
      onListen: (a) => o.onListen?.(a),
    },
    (req, info) =>
      app.fetch(req, { remoteAddr: { hostname: (info.remoteAddr as Deno.NetAddr).hostname } }),
  );
}
