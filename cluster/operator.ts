/**
 * The operator's side of the init exchange: attest a node (two rounds, with credential
 * activation when the policy trusts AKs by EK certificate), report every failed check, and
 * only after all passed send the sealed init or recover payload; or, for
 * `confidant cluster verify`, check a control-plane node's claim of its cluster ID against
 * the cluster-ID PCR.
 *
 * Checks of {@link attestNode}, besides those of `verifyDocument` (attestation/verify.ts):
 *
 * | check               | meaning |
 * |---------------------|---------|
 * | `ek.certificate`    | EK-CA policy: no EK certificate, or it does not chain to the CAs |
 * | `ak.malformed`      | the node's AK public area does not parse |
 * | `credential.mismatch` | the node's activation proof is not the HMAC under the credential's secret |
 * | `cluster.pcr`       | PCR 15 is not quoted, or not unset (init/recover), or not the claimed cluster's (verify) |
 * | `cluster.claim`     | verify: the node claims no cluster (not initialised) |
 *
 * @module
 */
import { constantTimeEqual, fromBase64, toBase64, wipe } from "../lib/bytes.ts";
import { ConfidantError } from "../lib/errors.ts";
import { parsePolicy, type Policy } from "../attestation/policy.ts";
import { type KmsPolicy, kmsPolicySchema } from "../kms/policy.ts";
import { type CheckOutcome, verifyDocument } from "../attestation/verify.ts";
import { verifyEkCertificate } from "../attestation/ek_certificate.ts";
import { makeCredential } from "../attestation/tpm/credential/mod.ts";
import { computeName, type TpmtPublic, unmarshalTpm2bPublic } from "../attestation/tpm/mod.ts";
import type { MasterSecret } from "../kms/keys.ts";
import {
  activationProof,
  attestResponseSchema,
  attestUserData,
  beginResponseSchema,
  type ClusterClaim,
  errorResponseSchema,
  finishBinding,
  finishResponseSchema,
  INIT_ATTEST_PATH,
  INIT_BEGIN_PATH,
  INIT_FINISH_PATH,
  INIT_INFO,
  INIT_RESULT_INFO,
  type InitPayload,
  type InitResult,
  initResultSchema,
  type KubernetesSettings,
  type Purpose,
} from "./protocol.ts";
import { CLUSTER_ID_PCR, deriveClusterId, expectedClusterPcr, UNSET_PCR } from "./cluster_id.ts";
import { generateEphemeralKeyPair, openJson, sealJson } from "./sealing.ts";
import type { NodeResponse, NodeTransport } from "./node_transport.ts";

/**
 * The finish request (with the sealed master secret) was sent but no answer came: the node
 * may have taken the cluster. The recovery file must be kept.
 */
export class FinishUnknownError extends ConfidantError {
  constructor(cause: unknown) {
    super(
      "cluster.finish_unknown",
      `the node did not answer after it was sent the cluster's master secret ` +
        `(${(cause as Error)?.message ?? cause}): it may have taken the cluster. KEEP the ` +
        "recovery file; check with `confidant cluster verify` which cluster the node runs " +
        "before anything else",
      { cause },
    );
    this.name = "FinishUnknownError";
  }
}

/** The node answered with an error or a refusal. */
export class NodeRefusedError extends ConfidantError {
  constructor(
    readonly status: number,
    readonly error: string,
    readonly checks: string[],
    detail?: string,
  ) {
    super(
      "cluster.node_refused",
      `the node answered ${status} ${error}${detail ? `: ${detail}` : ""}${
        checks.length ? ` (${checks.join(", ")})` : ""
      }`,
    );
    this.name = "NodeRefusedError";
  }
}

/** Outcome of {@link attestNode}. */
export interface NodeAttestation {
  ok: boolean;
  failures: CheckOutcome[];
  warnings: CheckOutcome[];
  /** SHA-256 PCR values quoted (index → hex). */
  pcrs: Record<string, string>;
  /** The AK's pin (`sha256:...`), when it parsed. */
  akPin?: string;
  /** How the AK was trusted. */
  akTrust: "ek-ca+activation" | "pinned" | "none";
  session: string;
  nonce: Uint8Array;
  /** The node's attested X25519 key. */
  nodeKey: Uint8Array;
  /** verify: the cluster the node claims (checked against PCR 15 when ok). */
  cluster?: ClusterClaim;
}

function expectOk<T>(r: NodeResponse, parse: (b: unknown) => T, what: string): T {
  if (r.status !== 200) {
    const e = errorResponseSchema.safeParse(r.body);
    throw new NodeRefusedError(
      r.status,
      e.success ? e.data.error : "error",
      e.success ? e.data.checks ?? [] : [],
      e.success ? e.data.message : undefined,
    );
  }
  try {
    return parse(r.body);
  } catch {
    throw new ConfidantError("cluster.response", `the node's ${what} answer is malformed`);
  }
}

/** Attest a node for `purpose` against `policy`; never sends anything secret. */
export async function attestNode(
  transport: NodeTransport,
  policy: Policy,
  purpose: Purpose,
  now: Date = new Date(),
): Promise<NodeAttestation> {
  const failures: CheckOutcome[] = [];
  const fail = (check: string, message: string) => failures.push({ check, message });
  const begun = expectOk(
    await transport.post(INIT_BEGIN_PATH, { purpose }),
    (b) => beginResponseSchema.parse(b),
    "begin",
  );
  const nonce = crypto.getRandomValues(new Uint8Array(32));
  const akPublic = fromBase64(begun.akPublic, "akPublic");
  let akName: Uint8Array | undefined;
  try {
    akName = await computeName(unmarshalTpm2bPublic(akPublic).tpmtBytes);
  } catch (e) {
    fail("ak.malformed", `the node's AK does not parse: ${(e as Error).message}`);
  }
  // EK-CA trust: the EK must chain to the policy's CAs, and the node must activate a
  // credential made to that EK for this AK name.
  let ekPublic: TpmtPublic | undefined;
  let secret: Uint8Array | undefined;
  let credential: { credentialBlob: string; encryptedSecret: string } | undefined;
  const ak = policy.ak;
  if (ak && "ekCaCertificates" in ak) {
    if (!begun.ekCertificate) fail("ek.certificate", "the node sent no EK certificate");
    else {
      try {
        ekPublic = (await verifyEkCertificate(fromBase64(begun.ekCertificate), {
          caCertificates: ak.ekCaCertificates,
          now,
        })).ekPublic;
      } catch (e) {
        fail("ek.certificate", (e as Error).message);
      }
    }
    if (ekPublic && akName) {
      secret = crypto.getRandomValues(new Uint8Array(32));
      const c = makeCredential(ekPublic, akName, secret);
      credential = {
        credentialBlob: toBase64(c.credentialBlob),
        encryptedSecret: toBase64(c.encryptedSecret),
      };
    }
  }
  const att = expectOk(
    await transport.post(INIT_ATTEST_PATH, {
      session: begun.session,
      nonce: toBase64(nonce),
      ...(credential ? { credential } : {}),
    }),
    (b) => attestResponseSchema.parse(b),
    "attest",
  );
  const nodeKey = fromBase64(att.ephemeralPublicKey, "ephemeralPublicKey");
  let activated = false;
  if (secret && akName) {
    const got = att.activationProof ? fromBase64(att.activationProof) : new Uint8Array(0);
    const want = activationProof(secret, {
      purpose,
      session: begun.session,
      nonce,
      nodeKey,
      akName,
    });
    activated = got.length === want.length && constantTimeEqual(got, want);
    if (!activated) {
      fail("credential.mismatch", "the node's activation proof does not match the credential");
    }
    wipe(secret);
  }
  const userData = await attestUserData(purpose, begun.session, nodeKey, att.cluster);
  const r = await verifyDocument(att.document, policy, {
    nonce,
    userData,
    now,
    ...(activated && ekPublic && akName
      ? { akTrust: { activated: true as const, ekPublic, akName } }
      : {}),
  });
  const named = failures.some((x) =>
    ["ek.certificate", "credential.mismatch", "ak.malformed"].includes(x.check)
  );
  for (const f of r.failures) {
    // Without a live activation the verifier names ak.activation; the cause is named above.
    if (f.check === "ak.activation" && named) continue;
    failures.push(f);
  }
  const pcr = r.pcrs[String(CLUSTER_ID_PCR)];
  if (purpose === "verify") {
    if (!att.cluster) fail("cluster.claim", "the node claims no cluster: it is not initialised");
    else if (pcr === undefined) {
      fail("cluster.pcr", `PCR ${CLUSTER_ID_PCR} is not in the quote`);
    } else if (pcr !== await expectedClusterPcr(att.cluster.id)) {
      fail(
        "cluster.pcr",
        `PCR ${CLUSTER_ID_PCR} is ${pcr}, not the measurement of cluster ${att.cluster.id}`,
      );
    }
  } else if (pcr !== UNSET_PCR) {
    fail(
      "cluster.pcr",
      pcr === undefined
        ? `PCR ${CLUSTER_ID_PCR} is not in the quote`
        : `PCR ${CLUSTER_ID_PCR} is ${pcr}, not unset: the node already took a cluster this boot`,
    );
  }
  return {
    ok: failures.length === 0,
    failures,
    warnings: r.warnings,
    pcrs: r.pcrs,
    akPin: r.ak?.digest,
    akTrust: activated ? "ek-ca+activation" : ak && "pinned" in ak ? "pinned" : "none",
    session: begun.session,
    nonce,
    nodeKey,
    ...(att.cluster ? { cluster: att.cluster } : {}),
  };
}

/** Options of {@link initNode}. */
export interface InitNodeOptions {
  transport: NodeTransport;
  policy: Policy;
  purpose: "init" | "recover";
  master: MasterSecret;
  /** Required for `init`. */
  kubernetes?: KubernetesSettings;
  /**
   * Policy of the node's in-process KMS; default: `policy` (the one the node was just
   * attested against) with `roles: [worker]`.
   */
  kmsPolicy?: KmsPolicy;
  now?: Date;
  /** Called just before the sealed payload (the master secret) is sent to the node. */
  onFinishSent?: () => void;
}

/** The default policy of a first node's in-process KMS: the operator's, for workers only. */
export function defaultKmsPolicy(policy: Policy): KmsPolicy {
  return parsePolicy({ ...structuredClone(policy), roles: ["worker"] }, kmsPolicySchema);
}

/** Outcome of {@link initNode}: the attestation, and the result when it was sent. */
export interface InitOutcome {
  attestation: NodeAttestation;
  clusterId: string;
  /** Present only when the attestation passed and the node answered. */
  result?: InitResult;
}

/**
 * Attest the node; if and only if every check passed, send it the sealed payload (master
 * secret, salt, cluster name and ID, Kubernetes settings) and open the sealed result.
 */
export async function initNode(o: InitNodeOptions): Promise<InitOutcome> {
  if (o.purpose === "init" && !o.kubernetes) {
    throw new ConfidantError("cluster.usage", "init needs the Kubernetes settings");
  }
  const clusterId = await deriveClusterId(o.master);
  const attestation = await attestNode(o.transport, o.policy, o.purpose, o.now);
  if (!attestation.ok) return { attestation, clusterId };
  const mine = await generateEphemeralKeyPair();
  const aad = await finishBinding(
    o.purpose,
    attestation.session,
    attestation.nonce,
    attestation.nodeKey,
    mine.publicKey,
  );
  const payload: InitPayload = {
    version: 1,
    purpose: o.purpose,
    cluster: {
      name: o.master.clusterId,
      id: clusterId,
      masterSecret: toBase64(o.master.secret),
      salt: toBase64(o.master.salt),
    },
    ...(o.kubernetes ? { kubernetes: o.kubernetes } : {}),
    kmsPolicy: o.kmsPolicy ?? defaultKmsPolicy(o.policy),
  };
  const sealed = await sealJson(payload, attestation.nodeKey, INIT_INFO, aad);
  payload.cluster.masterSecret = "";
  payload.cluster.salt = "";
  let answer: NodeResponse;
  o.onFinishSent?.();
  try {
    answer = await o.transport.post(INIT_FINISH_PATH, {
      session: attestation.session,
      operatorPublicKey: toBase64(mine.publicKey),
      sealed,
    });
  } catch (e) {
    throw new FinishUnknownError(e);
  }
  const fin = expectOk(answer, (b) => finishResponseSchema.parse(b), "finish");
  const result = await openJson(fin.sealed, mine, INIT_RESULT_INFO, aad, initResultSchema);
  if (result.clusterId !== clusterId || fin.clusterId !== clusterId) {
    throw new ConfidantError(
      "cluster.id_mismatch",
      `the node reports cluster ${result.clusterId}, not ${clusterId}`,
    );
  }
  return { attestation, clusterId, result };
}

/** The statement of `confidant cluster verify`. */
export interface ClusterReport {
  ok: boolean;
  clusterId?: string;
  clusterName?: string;
  failures: CheckOutcome[];
  warnings: CheckOutcome[];
  akTrust: NodeAttestation["akTrust"];
  akPin?: string;
  pcrs: Record<string, string>;
  verifiedAt: string;
}

/** Attest a control-plane node for `verify` and state which cluster it belongs to. */
export async function verifyCluster(
  transport: NodeTransport,
  policy: Policy,
  now: Date = new Date(),
): Promise<ClusterReport> {
  const a = await attestNode(transport, policy, "verify", now);
  return {
    ok: a.ok,
    ...(a.ok && a.cluster ? { clusterId: a.cluster.id, clusterName: a.cluster.name } : {}),
    failures: a.failures,
    warnings: a.warnings,
    akTrust: a.akTrust,
    ...(a.akPin ? { akPin: a.akPin } : {}),
    pcrs: a.pcrs,
    verifiedAt: now.toISOString(),
  };
}
