/**
 * The boot state machine: read config → attest and get the release from the
 * KMS → unlock or first-format the state disk → mount → WireGuard → kubeadm
 * join → Cilium config (first control-plane node) → encryption reported → ready.
 * A node configured not to join (`kubeadm.join: false`, the cluster in a box)
 * skips the last three steps and ends in phase `unlocked`.
 *
 * Each step has an attempt timeout and a retry policy (backoff with jitter)
 * where a retry can help, and fails with a named error where it cannot. Every
 * step checks what is already in place first, so that the agent restarted
 * after a crash continues where it stopped (an opened disk is not unlocked
 * again, a formatted disk is never formatted again, a joined node does not join
 * again).
 *
 * @module
 */
import { ConfidantError, describeError } from "../lib/errors.ts";
import { wipe } from "../lib/bytes.ts";
import type { Logger } from "../lib/log.ts";
import {
  type AgentConfig,
  type ConfigSources,
  type JoiningAgentConfig,
  joiningConfig,
} from "./config.ts";
import type {
  AttestationIdentity,
  Clock,
  CommandRunner,
  DiskService,
  Files,
  KmsClient,
  KubeApi,
  Mounter,
  Notifier,
  Release,
  WireGuardHost,
} from "./ports.ts";
import { KmsRefusedError, KmsUnavailableError } from "./ports.ts";
import { backoffDelay, once, type RetryPolicy } from "./retry.ts";
import type { DetailValue, StateStore, StepName } from "./state.ts";
import { buildJoinConfiguration, ticketSecrets } from "./join_config.ts";
import { KubeadmError, runKubeadmJoin, runKubeadmReset } from "./kubeadm.ts";
import { checkNodeEncryption, CILIUM_CONFIGMAP, ciliumEncryptionConfig } from "./cilium.ts";

/** Everything the boot needs from the outside. */
export interface BootDeps {
  loadConfig(): Promise<{ config: AgentConfig; sources: ConfigSources }>;
  hostname(): string;
  kms(config: AgentConfig): KmsClient;
  disk(config: AgentConfig): DiskService;
  mounter: Mounter;
  runner: CommandRunner;
  files: Files;
  /** Kubernetes API client authenticated by the given kubeconfig file. */
  kube(kubeconfigPath: string): Promise<KubeApi>;
  wireguard: WireGuardHost;
  clock: Clock;
  notifier: Notifier;
  logger: Logger;
  state: StateStore;
  /** Random source for jitter (default Math.random). */
  random?: () => number;
  /** Per-step overrides of the default policies. */
  policies?: Partial<Record<StepName, Partial<RetryPolicy>>>;
  /** Aborts the boot (service stop). */
  signal?: AbortSignal;
  /**
   * A KMS replica on a control-plane node (agent/kms_replica.ts): `store` keeps a release's
   * replica grant on the mounted state disk, `start` serves the replica after the join (from
   * the kept grant; "none" without one). Absent: a grant is dropped and no replica runs.
   */
  kmsReplica?: {
    store(mountPoint: string, grant: { kek: Uint8Array; policy: unknown }): Promise<void>;
    start(): Promise<{ port: number; fingerprint: string } | "none">;
  };
}

/** Default retry policy of each step. */
export function defaultPolicies(config?: AgentConfig): Record<StepName, RetryPolicy> {
  const backoff = { multiplier: 2, jitter: 0.5 };
  return {
    config: once(10_000),
    // A KMS that is down is waited for, for ever: the disk stays locked meanwhile.
    release: {
      ...backoff,
      maxAttempts: Infinity,
      initialDelayMs: 1_000,
      maxDelayMs: 60_000,
      attemptTimeoutMs: 60_000,
    },
    disk: {
      ...backoff,
      maxAttempts: 3,
      initialDelayMs: 2_000,
      maxDelayMs: 10_000,
      attemptTimeoutMs: 300_000,
    },
    mount: {
      ...backoff,
      maxAttempts: 3,
      initialDelayMs: 1_000,
      maxDelayMs: 10_000,
      attemptTimeoutMs: 600_000,
    },
    wireguard: {
      ...backoff,
      maxAttempts: 3,
      initialDelayMs: 1_000,
      maxDelayMs: 5_000,
      attemptTimeoutMs: 30_000,
    },
    join: {
      ...backoff,
      maxAttempts: config?.kubeadm.attempts ?? 3,
      initialDelayMs: 10_000,
      maxDelayMs: 60_000,
      attemptTimeoutMs: (config?.kubeadm.timeoutSeconds ?? 600) * 1000,
    },
    "cilium-config": {
      ...backoff,
      maxAttempts: 30,
      initialDelayMs: 2_000,
      maxDelayMs: 30_000,
      attemptTimeoutMs: 30_000,
      deadlineMs: 600_000,
    },
    encryption: {
      ...backoff,
      maxAttempts: Infinity,
      initialDelayMs: 2_000,
      maxDelayMs: 30_000,
      attemptTimeoutMs: 30_000,
      deadlineMs: (config?.cilium.readyTimeoutSeconds ?? 900) * 1000,
    },
  };
}

/** Outcome of one step's body. */
interface StepOutcome {
  status: "done" | "skipped";
  detail?: Record<string, DetailValue | undefined>;
}

/** A step failure that retrying cannot fix. */
class FinalError extends ConfidantError {
  constructor(readonly inner: unknown) {
    const d = describeError(inner);
    super(d.code, d.message, { cause: inner });
  }
}

function stepTimeoutError(step: StepName, ms: number): ConfidantError {
  return new ConfidantError("agent.step_timeout", `step ${step} did not finish within ${ms} ms`);
}

/** Run one attempt of `body` under the attempt timeout and the boot's signal. */
async function attempt<T>(
  clock: Clock,
  step: StepName,
  ms: number,
  outer: AbortSignal | undefined,
  body: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const deadline = clock.deadline(ms);
  const signal = outer ? AbortSignal.any([deadline.signal, outer]) : deadline.signal;
  let onAbort: () => void = () => {};
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () =>
      reject(
        deadline.signal.aborted ? stepTimeoutError(step, ms) : new ConfidantError(
          "agent.stopped",
          `step ${step} was stopped`,
        ),
      );
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
  });
  try {
    return await Promise.race([body(signal), aborted]);
  } catch (e) {
    if (deadline.signal.aborted) throw stepTimeoutError(step, ms);
    throw e;
  } finally {
    deadline.cancel();
    signal.removeEventListener("abort", onAbort);
    aborted.catch(() => {});
  }
}

/** Runs the boot. Resolves with true when the node is ready, false when a step failed. */
export async function runBoot(deps: BootDeps): Promise<boolean> {
  const { clock, state } = deps;
  const random = deps.random ?? Math.random;
  const log = deps.logger;
  let policies = defaultPolicies();

  const runStep = async (
    step: StepName,
    body: (signal: AbortSignal, attemptNo: number) => Promise<StepOutcome>,
    retryable: (e: unknown) => boolean,
    beforeRetry?: (signal: AbortSignal) => Promise<void>,
  ): Promise<boolean> => {
    const policy = { ...policies[step], ...deps.policies?.[step] };
    const first = clock.now();
    for (let n = 1;; n++) {
      state.attemptStarted(step);
      const t0 = clock.now();
      log.info("step started", { step, attempt: n });
      try {
        if (n > 1 && beforeRetry) {
          await attempt(clock, step, policy.attemptTimeoutMs, deps.signal, beforeRetry);
        }
        const out = await attempt(
          clock,
          step,
          policy.attemptTimeoutMs,
          deps.signal,
          (s) => body(s, n),
        );
        const detail: Record<string, DetailValue> = {};
        for (const [k, v] of Object.entries(out.detail ?? {})) if (v !== undefined) detail[k] = v;
        state.finished(step, out.status, detail);
        log.info("step finished", {
          step,
          outcome: out.status,
          attempt: n,
          durationMs: clock.now() - t0,
          ...detail,
        });
        return true;
      } catch (e) {
        const err = describeError(e instanceof FinalError ? e.inner : e);
        const inner = e instanceof FinalError ? e.inner : e;
        const stopped = deps.signal?.aborted === true;
        const canRetry = !stopped && !(e instanceof FinalError) && retryable(inner);
        const delay = backoffDelay(policy, n, random);
        const pastDeadline = policy.deadlineMs !== undefined &&
          clock.now() + delay - first > policy.deadlineMs;
        if (canRetry && n < policy.maxAttempts && !pastDeadline) {
          state.attemptFailed(step, err, delay);
          log.warn("step attempt failed, retrying", {
            step,
            outcome: "retry",
            attempt: n,
            durationMs: clock.now() - t0,
            code: err.code,
            error: err.message,
            retryInMs: delay,
          });
          try {
            await clock.sleep(delay, deps.signal);
          } catch {
            state.failed(step, { code: "agent.stopped", message: "the agent was stopped" });
            return false;
          }
          continue;
        }
        const checks = inner instanceof KmsRefusedError ? inner.checks : undefined;
        const why = canRetry
          ? (pastDeadline ? ` (gave up after ${clock.now() - first} ms)` : ` (after ${n} attempts)`)
          : "";
        state.failed(step, { code: err.code, message: err.message + why }, checks);
        log.error("step failed", {
          step,
          outcome: "failed",
          attempt: n,
          durationMs: clock.now() - t0,
          code: err.code,
          error: err.message + why,
          ...(checks ? { checks } : {}),
        });
        for (const check of checks ?? []) log.error("failed check", { step, check });
        return false;
      }
    }
  };
  const never = () => false;

  // 1. config
  let config!: JoiningAgentConfig;
  let nodeName = "";
  if (
    !await runStep("config", async () => {
      const loaded = await deps.loadConfig();
      config = joiningConfig(loaded.config);
      nodeName = config.nodeName.source === "config" ? config.nodeName.name! : deps.hostname();
      if (!/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(nodeName)) {
        throw new ConfidantError(
          "agent.node_name",
          `node name ${JSON.stringify(nodeName.slice(0, 64))} is not a valid Kubernetes name`,
        );
      }
      state.setNode({ name: nodeName, role: config.role });
      return {
        status: "done",
        detail: {
          role: config.role,
          nodeName,
          fromCmdline: loaded.sources.fromCmdline.join(",") || "-",
        },
      };
    }, never)
  ) return false;
  policies = defaultPolicies(config);
  const disk = deps.disk(config);
  const kms = deps.kms(config);

  // 2. release (attestation happens inside the KMS client)
  let release: Release | undefined;
  let identity: AttestationIdentity | undefined;
  let diskUuid = "";
  let diskOpenedDevice: string | undefined;
  if (
    !await runStep("release", async (signal) => {
      // The UUID is decided before the KMS is asked: the header's (keyed, or left by a
      // first boot cut short), else one random UUID kept for every attempt of this boot.
      const inspection = await disk.inspect();
      diskUuid = inspection.uuid ?? diskUuid ?? "";
      if (!inspection.formatted && !diskUuid) diskUuid = crypto.randomUUID();
      if (inspection.formatted && !inspection.uuid) {
        throw new ConfidantError("agent.disk", "the state disk has a LUKS header without a UUID");
      }
      diskOpenedDevice = inspection.opened ? inspection.openedDevice : undefined;
      if (kms.identity && !identity) {
        identity = await kms.identity(signal).catch((e) => {
          log.warn("cannot read the TPM's attestation identity", {
            step: "release",
            error: describeError(e).message,
          });
          return undefined;
        });
        if (identity) log.info("attestation identity", { step: "release", ...identity });
      }
      release = await kms.requestRelease({ role: config.role, nodeName, diskUuid }, signal);
      return {
        status: "done",
        detail: {
          diskUuid,
          kms: release.kmsIdentity ?? "-",
          joinTicket: release.joinTicket !== undefined,
          akName: identity?.akName,
        },
      };
    }, (e) => e instanceof KmsUnavailableError || isTimeout(e))
  ) return false;

  // 3. disk
  let device = "";
  const released = release!;
  try {
    if (
      !await runStep("disk", async (signal) => {
        if (diskOpenedDevice) {
          device = diskOpenedDevice;
          return { status: "skipped", detail: { diskUuid, alreadyOpen: true, formatted: false } };
        }
        const r = await disk.unlockOrFormat(diskUuid, released.diskKey, signal);
        device = r.openedDevice;
        if (r.formatted) log.info("state disk formatted (first boot)", { step: "disk", diskUuid });
        return { status: "done", detail: { diskUuid, formatted: r.formatted } };
      }, isTimeout)
    ) return false;
  } finally {
    wipe(released.diskKey);
  }

  // 4. mount
  if (
    !await runStep("mount", async (signal) => {
      const mp = config.disk.mountPoint;
      if (await deps.mounter.isMounted(mp)) {
        return { status: "skipped", detail: { mountPoint: mp, alreadyMounted: true } };
      }
      let madeFs = false;
      if (!await deps.mounter.hasFilesystem(device, config.disk.fsType)) {
        await deps.mounter.mkfs(device, config.disk.fsType, signal);
        madeFs = true;
      }
      await deps.mounter.mount(device, mp, config.disk.fsType, signal);
      return { status: "done", detail: { mountPoint: mp, createdFilesystem: madeFs } };
    }, isTimeout)
  ) return false;

  // The replica grant goes to the encrypted state disk, now mounted; never kept in memory.
  const grant = released.replica;
  if (grant) {
    try {
      if (config.role === "control-plane" && deps.kmsReplica) {
        await deps.kmsReplica.store(config.disk.mountPoint, grant);
        log.info("KMS replica grant kept on the state disk", { step: "mount" });
      }
    } catch (e) {
      const err = describeError(e);
      state.failed("mount", { code: err.code, message: err.message });
      log.error("step failed", { step: "mount", code: err.code, error: err.message });
      return false;
    } finally {
      wipe(grant.kek);
    }
  }

  // 5. wireguard on the host
  if (
    !await runStep("wireguard", async (signal) => {
      await deps.wireguard.ensure(signal);
      return { status: "done" };
    }, () => true)
  ) return false;

  // No Kubernetes to join (cluster in a box): the disk is what this node was for.
  if (!config.kubeadm.join) {
    const reason = "no Kubernetes in this box (kubeadm.join: false)";
    for (const step of ["join", "cilium-config", "encryption"] as const) {
      state.attemptStarted(step);
      state.finished(step, "skipped", { reason });
      log.info("step finished", { step, outcome: "skipped", attempt: 1, durationMs: 0, reason });
    }
    state.markUnlocked();
    log.info("node unlocked", { step: "unlocked", outcome: "unlocked" });
    await deps.notifier.notify({ READY: "1", STATUS: "node unlocked (no cluster to join)" })
      .catch((e) => log.warn("sd_notify failed", { error: describeError(e).message }));
    return true;
  }

  // 6. kubeadm join
  if (
    !await runStep(
      "join",
      async (signal) => {
        if (await deps.files.exists(config.kubeadm.joinedMarker)) {
          return { status: "skipped", detail: { alreadyJoined: true } };
        }
        const ticket = released.joinTicket;
        if (!ticket) {
          throw new FinalError(
            new ConfidantError(
              "agent.no_join_ticket",
              "the node has not joined and the KMS's release carries no join ticket",
            ),
          );
        }
        let joinConfig;
        try {
          joinConfig = buildJoinConfiguration(ticket, {
            role: config.role,
            nodeName,
            criSocket: config.kubeadm.criSocket,
            nodeIp: config.kubeadm.nodeIp,
            advertiseAddress: config.kubeadm.advertiseAddress,
            bindPort: config.kubeadm.bindPort,
            kubeletExtraArgs: config.kubeadm.kubeletExtraArgs,
          });
        } catch (e) {
          throw new FinalError(e);
        }
        await runKubeadmJoin({
          runner: deps.runner,
          files: deps.files,
          runtimeDir: config.kubeadm.runtimeDir,
          config: joinConfig,
          secrets: ticketSecrets(ticket),
          logger: log,
          signal,
        });
        return {
          status: "done",
          detail: {
            apiServer: ticket.apiServerEndpoint,
            controlPlane: config.role === "control-plane",
          },
        };
      },
      (e) => e instanceof KubeadmError || isTimeout(e),
      (signal) => runKubeadmReset(deps.runner, log, signal),
    )
  ) return false;

  // A control-plane node with a replica grant serves the KMS on the shared state.
  if (config.role === "control-plane" && deps.kmsReplica) {
    try {
      const r = await deps.kmsReplica.start();
      if (r !== "none") {
        log.info("KMS replica serving", { port: r.port, fingerprint: r.fingerprint });
      }
    } catch (e) {
      const err = describeError(e);
      log.error("KMS replica did not start", { code: err.code, error: err.message });
    }
  }

  // 7. cilium-config (first control-plane node only)
  if (
    !await runStep("cilium-config", async () => {
      if (config.role !== "control-plane" || !config.cilium.applyConfig) {
        return { status: "skipped", detail: { reason: "not the configuring control-plane node" } };
      }
      const kube = await deps.kube(config.cilium.adminKubeconfig);
      const data = ciliumEncryptionConfig(config.cilium);
      const r = await kube.mergeConfigMap(CILIUM_CONFIGMAP.namespace, CILIUM_CONFIGMAP.name, data);
      return { status: "done", detail: { configMap: r, keys: Object.keys(data).join(",") } };
    }, () => true)
  ) return false;

  // 8. encryption reported by Cilium
  if (
    !await runStep("encryption", async () => {
      const kube = await deps.kube(config.cilium.nodeKubeconfig).catch(() => undefined);
      const enc = await checkNodeEncryption(kube, deps.wireguard, nodeName);
      state.setEncryption(enc);
      if (!enc.enabled) {
        throw new ConfidantError(
          "agent.encryption_not_reported",
          `Cilium does not report WireGuard on node ${nodeName} yet (no wg-pub-key annotation, ` +
            `no cilium_wg0 interface)`,
        );
      }
      return { status: "done", detail: { evidence: enc.evidence.join(",") } };
    }, () => true)
  ) return false;

  state.markReady();
  log.info("node ready", { step: "ready", outcome: "ready" });
  await deps.notifier.notify({ READY: "1", STATUS: "node ready" }).catch((e) =>
    log.warn("sd_notify failed", { error: describeError(e).message })
  );
  return true;
}

function isTimeout(e: unknown): boolean {
  return e instanceof ConfidantError && e.code === "agent.step_timeout";
}
