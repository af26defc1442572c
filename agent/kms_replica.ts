/**
 * A KMS replica on a control-plane node that joined through the KMS. The first node's KEK
 * (which opens the sealed master secret in the shared Kubernetes state) reaches this node only
 * inside its HPKE-sealed release, under the KMS policy's `replicas.releaseKek`
 * (kms/release.ts `replica`). The agent keeps it, and the policy that came with it, on its
 * own encrypted, attested state disk — `<mountPoint>/kms/kek` (hex, 0600, atomic) and
 * `<mountPoint>/kms/policy.json` — the same places the first node uses (agent/bootstrap.ts),
 * and once the node has joined it serves the KMS in-process (agent/kms_host.ts) over the
 * KMS Secrets of the cluster, reached through the admin kubeconfig `kubeadm join
 * --control-plane` wrote. After an agent restart the kept KEK serves again.
 *
 * @module
 */
import { join } from "node:path";
import { ConfidantError, describeError } from "../lib/errors.ts";
import { fromHex, toHex, wipe } from "../lib/bytes.ts";
import { atomicWriteFile } from "../lib/atomic_write.ts";
import type { Logger } from "../lib/log.ts";
import { parsePolicy } from "../attestation/policy.ts";
import { type KmsPolicy, kmsPolicySchema } from "../kms/policy.ts";
import { KubeStore } from "../kms/k8s_store.ts";
import type { SecretsApi } from "../kms/kube.ts";
import type { AgentConfig } from "./config.ts";
import { type InProcessKms, startInProcessKms } from "./kms_host.ts";
import { KMS_NAMESPACE } from "./bootstrap.ts";

/** Where a node keeps its KMS state on the state disk. */
export function kmsStateDir(mountPoint: string): string {
  return join(mountPoint, "kms");
}

/**
 * Keep a replica grant on the (mounted, encrypted) state disk: the KEK as hex at
 * `<mountPoint>/kms/kek` and the policy at `<mountPoint>/kms/policy.json`, both 0600 and
 * written atomically. The policy is validated first (a malformed one is `agent.kms_policy`).
 */
export async function storeReplicaGrant(
  mountPoint: string,
  grant: { kek: Uint8Array; policy: unknown },
): Promise<void> {
  if (grant.kek.length !== 32) {
    throw new ConfidantError("agent.kek", "a replica KEK is 32 bytes");
  }
  let policy: KmsPolicy;
  try {
    policy = parsePolicy(grant.policy, kmsPolicySchema);
  } catch (e) {
    throw new ConfidantError(
      "agent.kms_policy",
      `the released KMS policy: ${describeError(e).message}`,
      { cause: e },
    );
  }
  const dir = kmsStateDir(mountPoint);
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const hex = toHex(grant.kek);
  await atomicWriteFile(join(dir, "kek"), hex, { mode: 0o600 });
  await atomicWriteFile(join(dir, "policy.json"), JSON.stringify(policy) + "\n", { mode: 0o600 });
}

/** The kept KEK and policy, or undefined when this node holds no replica grant. */
export async function loadReplicaGrant(
  mountPoint: string,
): Promise<{ kek: Uint8Array; policy: KmsPolicy } | undefined> {
  const dir = kmsStateDir(mountPoint);
  let text: string;
  try {
    text = (await Deno.readTextFile(join(dir, "kek"))).trim();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
  if (!/^[0-9a-f]{64}$/.test(text)) {
    throw new ConfidantError("agent.kek", `${join(dir, "kek")} does not hold a 32-byte hex KEK`);
  }
  let policy: KmsPolicy;
  try {
    const raw = await Deno.readTextFile(join(dir, "policy.json"));
    if (raw.length > 1024 * 1024) throw new Error("too large");
    policy = parsePolicy(JSON.parse(raw), kmsPolicySchema);
  } catch (e) {
    throw new ConfidantError(
      "agent.kms_policy",
      `${join(dir, "policy.json")}: ${describeError(e).message}`,
      { cause: e },
    );
  }
  return { kek: fromHex(text, "KEK"), policy };
}

/** What {@link kmsReplicaStarter} needs. */
export interface KmsReplicaDeps {
  config: AgentConfig;
  log: Logger;
  /** Secrets API authenticated by a kubeconfig (the admin kubeconfig of the joined node). */
  secrets(kubeconfigPath: string): Promise<SecretsApi>;
  /** The cluster CA (PEM) for join tickets' discovery hash, when known. */
  clusterCaPem?(kubeconfigPath: string): Promise<string | undefined>;
  signal?: AbortSignal;
  /** Called with the running replica. */
  onStarted?(kms: InProcessKms): void;
}

/**
 * Start this node's KMS replica from the kept grant: "none" when the node holds none, else the
 * running replica (listening on `kmsServer.listen`, on the Secrets of `confidant-system`).
 */
export function kmsReplicaStarter(
  d: KmsReplicaDeps,
): () => Promise<InProcessKms | "none"> {
  return async () => {
    const mp = d.config.disk.mountPoint;
    const grant = await loadReplicaGrant(mp);
    if (!grant) return "none";
    try {
      const admin = d.config.cilium.adminKubeconfig;
      const secrets = await d.secrets(admin);
      const ca = await d.clusterCaPem?.(admin).catch(() => undefined);
      const k = d.config.kubeadm;
      const kms = await startInProcessKms({
        store: new KubeStore(secrets, KMS_NAMESPACE),
        kek: grant.kek,
        policy: grant.policy,
        stateDir: kmsStateDir(mp),
        listen: d.config.kmsServer.listen,
        names: [
          ...d.config.kmsServer.names,
          ...[k.advertiseAddress, k.nodeIp].filter((x): x is string => !!x),
        ],
        secrets,
        ...(ca ? { clusterCaPem: ca } : {}),
        log: d.log,
        signal: d.signal,
      });
      d.onStarted?.(kms);
      return kms;
    } finally {
      wipe(grant.kek);
    }
  };
}
