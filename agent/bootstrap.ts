/**
 * The node side of `confidant init` / `confidant recover` / `confidant cluster verify`
 * (protocol in cluster/protocol.ts). A node booted with `confidant.role=init` looks for no
 * KMS: it serves this exchange on its endpoint and waits for the operator.
 *
 * What the node does with a verified operator's payload ({@link NodeBootstrap.finish}):
 * derive its state-disk key from the master secret (the KMS derivation, kms/keys.ts) and
 * format (init) or unlock (recover) the disk; mount it; run `kubeadm init` with the
 * ClusterConfiguration + InitConfiguration it writes (skipped when the admin kubeconfig is
 * already on the node); apply the Cilium WireGuard configuration; store the master secret,
 * sealed under a KEK kept on the encrypted state disk, as the KMS's Kubernetes Secret
 * (`initKms` with a `KubeStore`) together with kubeadm's certificate key; extend the cluster
 * ID into PCR 15; and return the admin kubeconfig sealed to the operator's key.
 *
 * The KMS runs in-process in the agent on control-plane nodes (not as a static pod or
 * DaemonSet): its code is then part of the measured node image that the operator (and every
 * joining node) attests, it needs no container image, registry or kubelet to be trusted, and
 * it is up before the cluster is — the {@link BootstrapDeps.startKms} port receives the store,
 * the KEK and the KMS policy once the master secret is stored (agent/kms_host.ts serves it).
 * The policy comes sealed in the payload (`kmsPolicy`, by default the operator's own policy
 * for workers) and is kept on the state disk for a later `recover`.
 *
 * Refusals: a second `init` of an initialised node (in memory, or a state disk already
 * formatted) is `409 already_initialised`; `recover` of a node without a state disk is
 * `409 nothing_to_recover`; a payload whose cluster ID does not derive from its master secret
 * is `400 cluster_id_mismatch`.
 *
 * @module
 */
import { ConfidantError, describeError } from "../lib/errors.ts";
import { fromBase64, fromHex, sha256, toBase64, toHex, wipe } from "../lib/bytes.ts";
import { akPin } from "../attestation/verify.ts";
import type { Logger } from "../lib/log.ts";
import { DEFAULT_PCRS, issueDocument } from "../attestation/issue.ts";
import { parseCertificate } from "../attestation/ek_certificate.ts";
import { loadAttestationKeys, marshalTpm2bPublic } from "../attestation/tpm/mod.ts";
import { KeyDeriver, type MasterSecret } from "../kms/keys.ts";
import { initKms } from "../kms/server.ts";
import { KubeStore } from "../kms/k8s_store.ts";
import type { SecretsApi } from "../kms/kube.ts";
import type { KmsStore } from "../kms/store.ts";
import { type KmsPolicy, kmsPolicySchema } from "../kms/policy.ts";
import { parsePolicy } from "../attestation/policy.ts";
import {
  activationProof,
  type AttestRequest,
  type AttestResponse,
  attestUserData,
  type BeginResponse,
  finishBinding,
  type FinishRequest,
  type FinishResponse,
  INIT_INFO,
  INIT_RESULT_INFO,
  type InitPayload,
  initPayloadSchema,
  type InitResult,
  type Purpose,
} from "../cluster/protocol.ts";
import { CLUSTER_ID_PCR, clusterIdFromDeriver } from "../cluster/cluster_id.ts";
import { extendClusterIdPcr } from "./cluster_pcr.ts";
import {
  type EphemeralKeyPair,
  generateEphemeralKeyPair,
  openJson,
  sealJson,
} from "../cluster/sealing.ts";
import type { AgentConfig } from "./config.ts";
import type { CommandRunner, DiskService, Files, KubeApi, Mounter } from "./ports.ts";
import type { TpmAccess } from "./adapters.ts";
import { buildInitConfiguration, initConfigurationYaml, newBootstrapToken } from "./init_config.ts";
import { runKubeadmInit } from "./kubeadm.ts";
import { CILIUM_CONFIGMAP, ciliumEncryptionConfig } from "./cilium.ts";

/** Namespace of the KMS's Secrets. */
export const KMS_NAMESPACE = "confidant-system";
/** kubeadm's certificate key, for control-plane join tickets. */
export const CERTIFICATE_KEY_SECRET = {
  namespace: "kube-system",
  name: "confidant-certificate-key",
  key: "key",
} as const;
/** PCRs the node quotes in this exchange: the default set and the cluster-ID PCR. */
export const BOOTSTRAP_PCRS: readonly number[] = [...DEFAULT_PCRS, CLUSTER_ID_PCR];
/**
 * Most open sessions; a begin beyond it is refused (503 busy), never by dropping an older
 * session, so a flood of begins cannot cut off an operator's exchange in progress.
 */
export const MAX_SESSIONS = 16;
/** Most open sessions of one source address (so one client cannot take all of them). */
export const MAX_SESSIONS_PER_SOURCE = 4;
/** A session older than this is gone (ms). */
const SESSION_TTL_MS = 10 * 60_000;

/** A refusal or bad request, with its HTTP status. */
export class BootstrapError extends ConfidantError {
  constructor(readonly status: 400 | 404 | 409 | 503, error: string, message: string) {
    super(`bootstrap.${error}`, message);
    this.name = "BootstrapError";
  }
  /** The wire error name. */
  get error(): string {
    return this.code.slice("bootstrap.".length);
  }
}

/** What the node bootstrap needs from the outside. */
export interface BootstrapDeps {
  config: AgentConfig;
  nodeName: string;
  tpm: TpmAccess;
  /** The state disk. */
  disk(): DiskService;
  mounter: Mounter;
  runner: CommandRunner;
  files: Files;
  /** Read a text file (the admin kubeconfig, the KEK). */
  readText(path: string): Promise<string>;
  /** Kubernetes API (ConfigMaps) authenticated by a kubeconfig. */
  kube(kubeconfigPath: string): Promise<KubeApi>;
  /** Secrets API authenticated by a kubeconfig. */
  secrets(kubeconfigPath: string): Promise<SecretsApi>;
  /**
   * Start the in-process KMS over the stored master secret (absent: not started); resolves
   * with where joining nodes reach it and the TLS fingerprint they pin.
   */
  startKms?(o: {
    store: KmsStore;
    kek: Uint8Array;
    clusterName: string;
    /** The policy from the payload (or kept from the last init), with a `join` section. */
    policy: KmsPolicy;
    /** `<mountPoint>/kms` on the encrypted state disk. */
    stateDir: string;
    /** Secrets API of the admin kubeconfig (bootstrap tokens). */
    secrets: SecretsApi;
    /** The admin kubeconfig (the cluster CA for discovery hashes). */
    adminKubeconfig: string;
  }): Promise<{ url: string; fingerprint: string }>;
  logger: Logger;
  /** Program for kubeadm (default `kubeadm`). */
  kubeadm?: string;
  now?: () => number;
}

interface Session {
  purpose: Purpose;
  /** The caller's address, for the per-source limit. */
  source: string;
  created: number;
  phase: "begun" | "attested" | "finished";
  nonce?: Uint8Array;
  key?: EphemeralKeyPair;
}

/** The node's state of the exchange (sessions, and the cluster it took). */
export class NodeBootstrap {
  #sessions = new Map<string, Session>();
  #cluster?: { id: string; name: string };
  /** The AK public and EK certificate (deterministic primaries: made once per process). */
  #identity?: Promise<{ akPublic: string; ekCertificate?: string }>;
  #busy = false;
  readonly #now: () => number;

  constructor(private readonly deps: BootstrapDeps) {
    this.#now = deps.now ?? Date.now;
  }

  /** The cluster this node took in this process (init or recover). */
  get cluster(): { id: string; name: string } | undefined {
    return this.#cluster;
  }

  #session(id: string, phase: Session["phase"]): Session {
    const s = this.#sessions.get(id);
    if (!s || this.#now() - s.created > SESSION_TTL_MS) {
      this.#sessions.delete(id);
      throw new BootstrapError(404, "unknown_session", "no such session (expired?): begin again");
    }
    if (s.phase !== phase) {
      throw new BootstrapError(409, "session_state", `the session is ${s.phase}, not ${phase}`);
    }
    return s;
  }

  async #refuseIfInitialised(purpose: Purpose): Promise<void> {
    if (purpose === "verify") return;
    if (this.#cluster) {
      throw new BootstrapError(
        409,
        "already_initialised",
        `this node already took cluster ${this.#cluster.id}`,
      );
    }
    const d = await this.deps.disk().inspect();
    if (purpose === "init" && d.formatted) {
      throw new BootstrapError(
        409,
        "already_initialised",
        "this node's state disk is already formatted: it was initialised (use recover)",
      );
    }
    if (purpose === "recover" && !d.formatted) {
      throw new BootstrapError(409, "nothing_to_recover", "this node's state disk is blank");
    }
  }

  /** The AK public and EK certificate, read from the TPM once. */
  #readIdentity(): Promise<{ akPublic: string; ekCertificate?: string }> {
    this.#identity ??= this.deps.tpm.with(async (tpm) => {
      const keys = await loadAttestationKeys(tpm, { ek: "rsa", ak: "ecc" });
      try {
        let ekCertificate: string | undefined;
        try {
          ekCertificate = toBase64(
            new Uint8Array(parseCertificate(await tpm.nvRead(keys.ekCertIndex)).rawData),
          );
        } catch {
          ekCertificate = undefined; // pinned-AK policies need none
        }
        return { akPublic: toBase64(marshalTpm2bPublic(keys.ak.public)), ekCertificate };
      } finally {
        await keys.flush();
      }
    });
    this.#identity.catch(() => this.#identity = undefined);
    return this.#identity;
  }

  /**
   * Step 1: the node's AK and EK certificate. `source` is the caller's address: at most
   * {@link MAX_SESSIONS_PER_SOURCE} open sessions per source and {@link MAX_SESSIONS} in all;
   * beyond that a begin is refused (503 busy) until sessions finish or expire.
   */
  async begin(purpose: Purpose, source = "unknown"): Promise<BeginResponse> {
    await this.#refuseIfInitialised(purpose);
    for (const [id, s] of this.#sessions) {
      if (this.#now() - s.created > SESSION_TTL_MS) this.#sessions.delete(id);
    }
    const mine = [...this.#sessions.values()].filter((s) => s.source === source).length;
    if (this.#sessions.size >= MAX_SESSIONS || mine >= MAX_SESSIONS_PER_SOURCE) {
      throw new BootstrapError(503, "busy", "too many open sessions: try again later");
    }
    const out = await this.#readIdentity();
    const session = toHex(crypto.getRandomValues(new Uint8Array(16)));
    this.#sessions.set(session, { purpose, source, created: this.#now(), phase: "begun" });
    return {
      session,
      akPublic: out.akPublic,
      ...(out.ekCertificate ? { ekCertificate: out.ekCertificate } : {}),
    };
  }

  /** Step 2: activate the credential, make the ephemeral key, quote. */
  async attest(req: AttestRequest): Promise<AttestResponse> {
    const s = this.#session(req.session, "begun");
    s.phase = "attested";
    const nonce = fromBase64(req.nonce, "nonce");
    const key = await generateEphemeralKeyPair();
    const cluster = s.purpose === "verify" ? this.#cluster : undefined;
    const userData = await attestUserData(s.purpose, req.session, key.publicKey, cluster);
    if (s.purpose === "verify") this.#sessions.delete(req.session); // verify has no step 3
    const { proof, document } = await this.deps.tpm.with(async (tpm) => {
      let proof: Uint8Array | undefined;
      if (req.credential) {
        const keys = await loadAttestationKeys(tpm, { ek: "rsa", ak: "ecc" });
        try {
          const activated = await tpm.activateCredential(
            keys.ak.handle,
            keys.ek.handle,
            fromBase64(req.credential.credentialBlob),
            fromBase64(req.credential.encryptedSecret),
          );
          // Never the secret itself: a MAC under it over this exchange (cluster/protocol.ts).
          proof = activationProof(activated, {
            purpose: s.purpose,
            session: req.session,
            nonce,
            nodeKey: key.publicKey,
            akName: keys.ak.name,
          });
          wipe(activated);
        } catch (e) {
          throw new BootstrapError(
            400,
            "credential",
            `the credential does not activate: ${describeError(e).message}`,
          );
        } finally {
          await keys.flush();
        }
      }
      const document = await issueDocument(tpm, {
        nonce,
        userData,
        pcrs: BOOTSTRAP_PCRS,
        ekAlg: "rsa",
      });
      return { proof, document };
    });
    s.nonce = nonce;
    s.key = key;
    return {
      ...(proof ? { activationProof: toBase64(proof) } : {}),
      document,
      ephemeralPublicKey: toBase64(key.publicKey),
      ...(cluster ? { cluster } : {}),
    };
  }

  /** Step 3: open the operator's payload, take the cluster, answer with the sealed result. */
  async finish(req: FinishRequest, signal: AbortSignal): Promise<FinishResponse> {
    const s = this.#session(req.session, "attested");
    if (s.purpose === "verify") {
      throw new BootstrapError(400, "purpose", "a verify session has no finish");
    }
    if (this.#busy) throw new BootstrapError(409, "busy", "an init or recover is in progress");
    this.#busy = true;
    s.phase = "finished";
    try {
      const operatorKey = fromBase64(req.operatorPublicKey, "operatorPublicKey");
      const aad = await finishBinding(
        s.purpose,
        req.session,
        s.nonce!,
        s.key!.publicKey,
        operatorKey,
      );
      let payload: InitPayload;
      try {
        payload = await openJson(req.sealed, s.key!, INIT_INFO, aad, initPayloadSchema);
      } catch (e) {
        throw new BootstrapError(400, "sealed", describeError(e).message);
      }
      if (payload.purpose !== s.purpose) {
        throw new BootstrapError(400, "purpose", "the payload is not for this session's purpose");
      }
      const result = await this.#take(payload, signal);
      return {
        clusterId: result.clusterId,
        sealed: await sealJson(result, operatorKey, INIT_RESULT_INFO, aad),
      };
    } finally {
      this.#busy = false;
      this.#sessions.delete(req.session);
    }
  }

  async #take(p: InitPayload, signal: AbortSignal): Promise<InitResult> {
    const { config, logger: log } = this.deps;
    await this.#refuseIfInitialised(p.purpose);
    if (p.purpose === "init" && !p.kubernetes) {
      throw new BootstrapError(400, "kubernetes", "init needs the Kubernetes settings");
    }
    const master: MasterSecret = {
      clusterId: p.cluster.name,
      secret: fromBase64(p.cluster.masterSecret),
      salt: fromBase64(p.cluster.salt),
    };
    try {
      const deriver = await KeyDeriver.create(master);
      const clusterId = await clusterIdFromDeriver(deriver);
      if (clusterId !== p.cluster.id) {
        throw new BootstrapError(
          400,
          "cluster_id_mismatch",
          "the cluster ID does not derive from the master secret sent",
        );
      }
      log.info("taking the cluster", { purpose: p.purpose, clusterId, cluster: p.cluster.name });

      // State disk: format (init) or unlock (recover) with the derived key.
      const disk = this.deps.disk();
      const inspection = await disk.inspect();
      let device: string;
      let diskOutcome: InitResult["disk"];
      let diskUuid = inspection.uuid;
      if (inspection.opened && inspection.openedDevice) {
        device = inspection.openedDevice;
        diskOutcome = "opened";
      } else {
        // the header's UUID (keyed, or an init cut short), else a new one; formatted with it
        const uuid = inspection.uuid ?? crypto.randomUUID();
        diskUuid = uuid;
        const key = await deriver.diskKey(uuid);
        try {
          const r = await disk.unlockOrFormat(uuid, key, signal);
          device = r.openedDevice;
          diskOutcome = r.formatted ? "formatted" : "opened";
        } finally {
          wipe(key);
        }
      }
      const mp = config.disk.mountPoint;
      if (!await this.deps.mounter.isMounted(mp)) {
        if (!await this.deps.mounter.hasFilesystem(device, config.disk.fsType)) {
          await this.deps.mounter.mkfs(device, config.disk.fsType, signal);
        }
        await this.deps.mounter.mount(device, mp, config.disk.fsType, signal);
      }
      const kek = await this.#kek(`${mp}/kms/kek`);

      // kubeadm init (once: the admin kubeconfig on the node means it ran).
      const admin = config.cilium.adminKubeconfig;
      let kubeadm: InitResult["kubeadm"] = "skipped";
      let certificateKey: string | undefined;
      if (!await this.deps.files.exists(admin)) {
        if (!p.kubernetes) {
          throw new BootstrapError(
            409,
            "nothing_to_recover",
            "the node has no Kubernetes control plane to recover (no admin kubeconfig)",
          );
        }
        certificateKey = toHex(crypto.getRandomValues(new Uint8Array(32)));
        const bootstrapToken = newBootstrapToken();
        const docs = buildInitConfiguration(p.kubernetes, {
          clusterName: p.cluster.name,
          nodeName: this.deps.nodeName,
          criSocket: config.kubeadm.criSocket,
          nodeIp: config.kubeadm.nodeIp,
          advertiseAddress: config.kubeadm.advertiseAddress,
          bindPort: config.kubeadm.bindPort,
          kubeletExtraArgs: config.kubeadm.kubeletExtraArgs,
          certificateKey,
          bootstrapToken,
        });
        await runKubeadmInit({
          runner: this.deps.runner,
          files: this.deps.files,
          runtimeDir: config.kubeadm.runtimeDir,
          configYaml: initConfigurationYaml(docs),
          secrets: [certificateKey, bootstrapToken],
          logger: log,
          signal,
          kubeadm: this.deps.kubeadm,
        });
        kubeadm = "ran";
      }

      // Cilium WireGuard configuration.
      const kube = await this.deps.kube(admin);
      await kube.mergeConfigMap(
        CILIUM_CONFIGMAP.namespace,
        CILIUM_CONFIGMAP.name,
        ciliumEncryptionConfig(config.cilium),
      );

      // The master secret for the KMS replicas, and the certificate key for join tickets.
      const secrets = await this.deps.secrets(admin);
      const store = new KubeStore(secrets, KMS_NAMESPACE);
      let masterStored = false;
      try {
        await initKms(store, kek, master.clusterId, {
          clusterId: master.clusterId,
          secret: master.secret.slice(),
          salt: master.salt.slice(),
        });
        masterStored = true;
      } catch (e) {
        if (!(e instanceof ConfidantError && e.code === "kms.already_initialised")) throw e;
      }
      if (certificateKey) {
        await secrets.create({
          ...CERTIFICATE_KEY_SECRET,
          type: "Opaque",
          labels: { "app.kubernetes.io/managed-by": "confidant-agent" },
          data: {
            [CERTIFICATE_KEY_SECRET.key]: toBase64(new TextEncoder().encode(certificateKey)),
          },
        });
      }
      const kmsPolicy = await this.#kmsPolicy(p, `${mp}/kms/policy.json`);
      // This node's own disk key derives from the master secret like any other: enrol its
      // UUID to this node before the KMS serves, or any admitted node could ask for it.
      if (diskUuid) await this.#enrollOwnDisk(store, diskUuid, kmsPolicy);
      else log.warn("the state disk's UUID is unknown: it is not enrolled with the KMS", {});
      let kms: InitResult["kms"];
      if (this.deps.startKms && kmsPolicy) {
        try {
          kms = await this.deps.startKms({
            store,
            kek,
            clusterName: master.clusterId,
            policy: kmsPolicy,
            stateDir: `${mp}/kms`,
            secrets,
            adminKubeconfig: admin,
          });
        } finally {
          wipe(kek);
        }
      } else {
        wipe(kek);
        if (this.deps.startKms) {
          log.warn("no KMS policy (payload or state disk): KMS not started", {});
        }
      }

      // The cluster ID into PCR 15 (once per boot).
      await this.#extendClusterPcr(clusterId);
      this.#cluster = { id: clusterId, name: master.clusterId };
      log.info("cluster taken", { purpose: p.purpose, clusterId, disk: diskOutcome, kubeadm });
      return {
        version: 1,
        clusterId,
        adminKubeconfig: await this.deps.readText(admin),
        disk: diskOutcome,
        kubeadm,
        masterStored,
        ...(kms ? { kms } : {}),
      };
    } finally {
      wipe(master.secret);
      wipe(master.salt);
    }
  }

  /**
   * The in-process KMS's policy: the payload's (kept at `path` on the state disk for a later
   * recover) or, without one, the kept one. A policy without `join` gets one for this node's
   * API server and kubeadm's certificate-key Secret.
   */
  async #kmsPolicy(p: InitPayload, path: string): Promise<KmsPolicy | undefined> {
    if (p.kmsPolicy) {
      const policy = this.#withJoin(parsePolicy(p.kmsPolicy, kmsPolicySchema), p);
      await this.deps.files.remove(path);
      await this.deps.files.writeSecret(path, JSON.stringify(policy) + "\n");
      return policy;
    }
    if (!await this.deps.files.exists(path)) return undefined;
    try {
      return this.#withJoin(
        parsePolicy(JSON.parse(await this.deps.readText(path)), kmsPolicySchema),
        p,
      );
    } catch (e) {
      throw new ConfidantError("agent.kms_policy", `${path}: ${describeError(e).message}`, {
        cause: e,
      });
    }
  }

  /** `policy`, with a `join` section for this node's API server when it has none. */
  #withJoin(policy: KmsPolicy, p: InitPayload): KmsPolicy {
    if (policy.join) return policy;
    const k = this.deps.config.kubeadm;
    const address = k.advertiseAddress ?? k.nodeIp;
    const endpoint = p.kubernetes?.controlPlaneEndpoint ??
      (address ? `${address.includes(":") ? `[${address}]` : address}:${k.bindPort}` : undefined);
    if (!endpoint) return policy;
    return {
      ...policy,
      join: {
        apiServerEndpoint: endpoint,
        certificateKeySecret: { ...CERTIFICATE_KEY_SECRET },
        ttlMinutes: 15,
      },
    };
  }

  /**
   * Enrol this node's state disk in the KMS store (role control-plane) with the identity the
   * KMS gives this node when it asks: under a pinned-AK policy the AK pin's digest, else
   * SHA-256 of the EK certificate's SubjectPublicKeyInfo (kms/ek_trust.ts). An existing
   * record (recover) is kept as it is.
   */
  async #enrollOwnDisk(
    store: KmsStore,
    uuid: string,
    policy: KmsPolicy | undefined,
  ): Promise<void> {
    const id = await this.#readIdentity();
    let identity: string;
    if (policy?.ak && "pinned" in policy.ak) {
      identity = akPin(fromBase64(id.akPublic)).slice("sha256:".length);
    } else if (id.ekCertificate) {
      const cert = parseCertificate(fromBase64(id.ekCertificate));
      identity = toHex(await sha256(new Uint8Array(cert.publicKey.rawData)));
    } else {
      throw new ConfidantError(
        "agent.identity",
        "the node has no EK certificate, so its own disk cannot be enrolled with the KMS",
      );
    }
    const r = await store.enrollDisk({
      version: 1,
      uuid,
      identity,
      nodeName: this.deps.nodeName,
      role: "control-plane",
      enrolledAt: new Date(this.#now()).toISOString(),
      previous: [],
    });
    if (!r.created && r.record.identity !== identity) {
      this.deps.logger.warn("this node's disk is enrolled to another identity", {
        uuid,
        enrolled: r.record.identity,
        identity,
      });
    }
  }

  /** The KMS's KEK on the (encrypted, mounted) state disk; made on first use. */
  async #kek(path: string): Promise<Uint8Array> {
    if (!await this.deps.files.exists(path)) {
      await this.deps.files.mkdirp(path.slice(0, path.lastIndexOf("/")), 0o700);
      await this.deps.files.writeSecret(path, toHex(crypto.getRandomValues(new Uint8Array(32))));
    }
    const text = (await this.deps.readText(path)).trim();
    if (!/^[0-9a-f]{64}$/.test(text)) {
      throw new ConfidantError("agent.kek", `${path} does not hold a 32-byte hex KEK`);
    }
    return fromHex(text, "KEK");
  }

  async #extendClusterPcr(clusterId: string): Promise<void> {
    await this.deps.tpm.with((tpm) => extendClusterIdPcr(tpm, clusterId));
  }
}
