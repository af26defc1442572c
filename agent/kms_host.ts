/**
 * The KMS in-process on the first control-plane node (agent/bootstrap.ts explains why
 * in-process rather than a static pod): the same assembly as `confidant kms serve`
 * (kms/commands.ts) over kms's exported pieces — `buildKms` over the store and KEK, a TLS
 * identity from `loadOrCreateTlsIdentity`, `serveKms` — with a fixed policy from the init
 * payload and join tickets issued through the admin kubeconfig.
 *
 * Where the state lives:
 * - master secret and disk enrollments: Kubernetes Secrets in `confidant-system`
 *   (`KubeStore`, where the bootstrap already stored the sealed master secret). Every KMS
 *   replica on every control-plane node must see the same enrollments (create-if-absent on
 *   the API server decides a race between replicas), and they must outlive this node; a
 *   directory on one node's disk would give each replica its own view and lose them with
 *   the node. The Secrets hold nothing usable without the KEK: the master secret is sealed.
 * - KEK, TLS identity (private key sealed under the KEK), policy and audit log: this node's
 *   encrypted, attested state disk (`<mountPoint>/kms/`), i.e. per replica and never in the
 *   API server.
 *
 * @module
 */
import { join } from "node:path";
import { ConfidantError, describeError } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import { buildKms, serveKms } from "../kms/server.ts";
import { PolicyHolder } from "../kms/policy.ts";
import type { KmsPolicy } from "../kms/policy.ts";
import type { KmsStore } from "../kms/store.ts";
import { loadOrCreateTlsIdentity } from "../kms/tls.ts";
import { FileAuditLog } from "../kms/audit.ts";
import { type JoinIssuer, noJoinIssuer, policyJoinIssuer } from "../kms/join_ticket.ts";
import { clusterCaPem, loadKubeConfig, type SecretsApi } from "../kms/kube.ts";
import type { AgentConfig } from "./config.ts";
import type { BootstrapDeps } from "./bootstrap.ts";

/** Options of {@link startInProcessKms}. */
export interface InProcessKmsOptions {
  store: KmsStore;
  /** Opens the sealed master secret and the TLS key; not kept after the start. */
  kek: Uint8Array;
  policy: KmsPolicy;
  /** Directory on the encrypted state disk for the TLS identity and the audit log. */
  stateDir: string;
  /** `HOST:PORT` to listen on (port 0: any free port). */
  listen: string;
  /** Names and addresses for the certificate besides localhost and 127.0.0.1. */
  names: string[];
  /** Kubernetes Secrets API for bootstrap tokens; absent: releases carry no join ticket. */
  secrets?: SecretsApi;
  /** The cluster CA (PEM), for the default discovery hash of join tickets. */
  clusterCaPem?: string;
  log: Logger;
  /** Stops the server. */
  signal?: AbortSignal;
}

/** A running in-process KMS. */
export interface InProcessKms {
  /** The port it listens on. */
  port: number;
  /** SHA-256 of its TLS certificate (lower hex): what nodes pin. */
  fingerprint: string;
  /** The cluster name the master secret is for. */
  clusterId: string;
  /** Stop serving and close the audit log. */
  stop(): Promise<void>;
}

/** The join issuer of an in-process KMS: policy `join`, default discovery hash from the CA. */
function joinIssuer(o: InProcessKmsOptions, policy: PolicyHolder): JoinIssuer {
  if (!o.secrets) return noJoinIssuer;
  return policyJoinIssuer(o.secrets, () => policy.current.policy.join, o.clusterCaPem);
}

/** Build and serve the KMS; resolves once it listens. */
export async function startInProcessKms(o: InProcessKmsOptions): Promise<InProcessKms> {
  const m = /^(.*):(\d{1,5})$/.exec(o.listen);
  if (!m) throw new ConfidantError("agent.kms_listen", `${o.listen} is not HOST:PORT`);
  const hostname = m[1].replace(/^\[|\]$/g, "");
  await Deno.mkdir(o.stateDir, { recursive: true, mode: 0o700 });
  const names = [
    ...new Set([
      "localhost",
      "127.0.0.1",
      ...(hostname !== "0.0.0.0" && hostname !== "::" ? [hostname] : []),
      ...o.names,
    ]),
  ];
  const tls = await loadOrCreateTlsIdentity(o.stateDir, o.kek, names);
  const audit = new FileAuditLog(join(o.stateDir, "audit.jsonl"));
  const policy = PolicyHolder.fixed(o.policy);
  const kms = await buildKms({
    store: o.store,
    kek: o.kek,
    policy,
    tlsFingerprint: tls.fingerprint,
    audit,
    log: o.log,
    join: joinIssuer(o, policy),
  });
  let listening!: (a: Deno.NetAddr) => void;
  const addr = new Promise<Deno.NetAddr>((r) => listening = r);
  const server = serveKms(kms.app, {
    hostname,
    port: Number(m[2]),
    certPem: tls.certPem,
    keyPem: tls.keyPem,
    onListen: (a) => listening(a),
  });
  const { port } = await addr;
  let stopped: Promise<void> | undefined;
  const stop = () =>
    stopped ??= (async () => {
      await server.shutdown();
      await audit.close();
    })();
  o.signal?.addEventListener("abort", () => void stop(), { once: true });
  o.log.info("in-process KMS listening", {
    address: `${hostname}:${port}`,
    fingerprint: tls.fingerprint,
    cluster: kms.clusterId,
    store: o.store.description,
  });
  return { port, fingerprint: tls.fingerprint, clusterId: kms.clusterId, stop };
}

/** The URL joining nodes are told for an in-process KMS on `port` (see `kmsServer.url`). */
export function inProcessKmsUrl(config: AgentConfig, port: number): string {
  if (config.kmsServer.url) return config.kmsServer.url;
  const listenHost = config.kmsServer.listen.replace(/:\d+$/, "").replace(/^\[|\]$/g, "");
  const host = config.kubeadm.advertiseAddress ?? config.kubeadm.nodeIp ??
    (listenHost === "0.0.0.0" || listenHost === "::" ? "127.0.0.1" : listenHost);
  return `https://${host.includes(":") ? `[${host}]` : host}:${port}`;
}

/** What {@link inProcessKmsStarter} needs. */
export interface KmsStarterDeps {
  config: AgentConfig;
  log: Logger;
  /** Stops the KMS (the agent's stop). */
  signal?: AbortSignal;
  /** Called with the running KMS (tests stop it; the service logs it). */
  onStarted?(kms: InProcessKms): void;
}

/** The {@link BootstrapDeps.startKms} port over {@link startInProcessKms}. */
export function inProcessKmsStarter(d: KmsStarterDeps): NonNullable<BootstrapDeps["startKms"]> {
  return async (o) => {
    let ca: string | undefined;
    try {
      ca = await clusterCaPem(loadKubeConfig({ kubeconfig: o.adminKubeconfig }));
    } catch (e) {
      d.log.warn(
        "cluster CA not readable from the admin kubeconfig: join tickets need " +
          "join.caCertHashes in the KMS policy",
        { error: describeError(e).message },
      );
    }
    const k = d.config.kubeadm;
    const kms = await startInProcessKms({
      store: o.store,
      kek: o.kek,
      policy: o.policy,
      stateDir: o.stateDir,
      listen: d.config.kmsServer.listen,
      names: [
        ...d.config.kmsServer.names,
        ...[k.advertiseAddress, k.nodeIp].filter((x): x is string => !!x),
      ],
      secrets: o.secrets,
      ...(ca ? { clusterCaPem: ca } : {}),
      log: d.log,
      signal: d.signal,
    });
    d.onStarted?.(kms);
    return { url: inProcessKmsUrl(d.config, kms.port), fingerprint: kms.fingerprint };
  };
}
