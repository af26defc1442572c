/**
 * `confidant agent run`: wires the real adapters into the boot state machine,
 * serves the HTTP endpoint for the whole life of the process, and keeps
 * re-checking encryption after the node is ready. A failed boot is final for
 * this boot: the process stays up and reports the failure (state, logs,
 * `STATUS=` to systemd) instead of exiting into a restart loop.
 *
 * @module
 */
import { hostname } from "node:os";
import { Logger, setLogSink } from "../lib/log.ts";
import { describeError } from "../lib/errors.ts";
import { type AgentConfig, type ConfigSources, joiningConfig, loadAgentConfig } from "./config.ts";
import { type BootDeps, runBoot } from "./machine.ts";
import { StateStore } from "./state.ts";
import { createAgentApp } from "./http.ts";
import { systemClock } from "./clock.ts";
import { HostCommandRunner, HostFiles, HostMounter, HostWireGuard } from "./host.ts";
import { createNotifier } from "./sd_notify.ts";
import { kubeApiFromFile } from "./kube_api.ts";
import { checkNodeEncryption } from "./cilium.ts";
import { kmsClientAdapter, StateDiskAdapter, TpmAccess, tpmAttestor } from "./adapters.ts";
import type { DiskService } from "./ports.ts";
import { openStateDisk } from "../cryptsetup/state_disk.ts";
import { clusterCaPem, kubeSecretsApi, loadKubeConfig } from "../kms/kube.ts";
import { NodeBootstrap } from "./bootstrap.ts";
import { inProcessKmsStarter } from "./kms_host.ts";
import { kmsReplicaStarter, storeReplicaGrant } from "./kms_replica.ts";

/** Options of {@link runAgentService}. */
export interface AgentServiceOptions {
  configPath: string;
  /** Kernel command line file (default /proc/cmdline). */
  cmdlinePath?: string;
  /** Seconds between encryption re-checks after ready (default 60). */
  recheckSeconds?: number;
  signal?: AbortSignal;
}

async function readOptional(path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return "";
    throw e;
  }
}

/** Load the config file and kernel command line (a missing file is an empty config). */
export async function readAgentConfig(
  configPath: string,
  cmdlinePath = "/proc/cmdline",
): Promise<{ config: AgentConfig; sources: ConfigSources }> {
  return loadAgentConfig(await readOptional(configPath), await readOptional(cmdlinePath));
}

/** A DiskService that opens the device on first use. */
function lazyStateDisk(config: AgentConfig) {
  let inner: Promise<DiskService> | undefined;
  const get = () =>
    inner ??= openStateDisk(config.disk.device).then((disk) =>
      new StateDiskAdapter({
        disk,
        cluster: config.disk.cluster,
        integrity: config.disk.integrity,
      })
    );
  return {
    inspect: async () => (await get()).inspect(),
    unlockOrFormat: async (uuid: string, key: Uint8Array, signal: AbortSignal) =>
      (await get()).unlockOrFormat(uuid, key, signal),
  } satisfies DiskService;
}

/** Run the agent until `signal` aborts. Resolves with the boot's outcome once stopped. */
export async function runAgentService(opts: AgentServiceOptions): Promise<boolean> {
  const enc = new TextEncoder();
  setLogSink((line) => Deno.stdout.writeSync(enc.encode(line + "\n")));
  const log = new Logger("agent");
  const state = new StateStore();
  const runner = new HostCommandRunner();
  const notifier = createNotifier({ socket: Deno.env.get("NOTIFY_SOCKET"), runner });
  log.info("agent starting", { notify: notifier.mode, config: opts.configPath });

  // The listen address is needed before the boot's config step; a broken config still
  // gets an endpoint (on the default address) that reports the failure.
  const early = await readAgentConfig(opts.configPath, opts.cmdlinePath).catch(() => undefined);
  const listen = early?.config.listen ?? "0.0.0.0:9443";
  const idx = listen.lastIndexOf(":");
  const tpm = early ? new TpmAccess(early.config.tpm.device) : undefined;
  // role init: no KMS to ask; serve the init exchange and wait for the operator.
  const bootstrap = early?.config.role === "init" && tpm
    ? new NodeBootstrap({
      config: early.config,
      nodeName: early.config.nodeName.source === "config"
        ? early.config.nodeName.name!
        : hostname(),
      tpm,
      disk: () => lazyStateDisk(early.config),
      mounter: new HostMounter(runner),
      runner,
      files: new HostFiles(),
      readText: (p) => Deno.readTextFile(p),
      kube: (p) => Promise.resolve(kubeApiFromFile(p)),
      secrets: (p) => Promise.resolve(kubeSecretsApi(loadKubeConfig({ kubeconfig: p }))),
      startKms: inProcessKmsStarter({ config: early.config, log, signal: opts.signal }),
      logger: log,
    })
    : undefined;
  const app = createAgentApp({
    state,
    attestor: tpm && early ? tpmAttestor(tpm, { tee: early.config.attestation.tee }) : undefined,
    log,
    bootstrap,
  });
  const server = Deno.serve({
    hostname: listen.slice(0, idx).replace(/^\[|\]$/g, ""),
    port: Number(listen.slice(idx + 1)),
    signal: opts.signal,
    onListen: (a) => log.info("endpoint listening", { address: `${a.hostname}:${a.port}` }),
  }, app.fetch);

  if (bootstrap) {
    log.info("role init: waiting for confidant init or recover", {});
    await notifier.notify({ READY: "1", STATUS: "waiting for confidant init" }).catch(() => {});
    await server.finished;
    return bootstrap.cluster !== undefined;
  }
  const deps: BootDeps = {
    loadConfig: () => readAgentConfig(opts.configPath, opts.cmdlinePath),
    hostname: () => hostname(),
    kms: (config) =>
      kmsClientAdapter({
        kmsUrl: joiningConfig(config).kms.url,
        fingerprint: joiningConfig(config).kms.fingerprint,
        tpm: tpm ?? new TpmAccess(config.tpm.device),
        tee: config.attestation.tee,
      }),
    disk: (config) => lazyStateDisk(config),
    mounter: new HostMounter(runner),
    runner,
    files: new HostFiles(),
    kube: (path) => Promise.resolve(kubeApiFromFile(path)),
    wireguard: new HostWireGuard(runner),
    clock: systemClock,
    notifier,
    logger: log,
    state,
    signal: opts.signal,
    kmsReplica: early
      ? {
        store: storeReplicaGrant,
        start: kmsReplicaStarter({
          config: early.config,
          log,
          signal: opts.signal,
          secrets: (p) => Promise.resolve(kubeSecretsApi(loadKubeConfig({ kubeconfig: p }))),
          clusterCaPem: (p) => clusterCaPem(loadKubeConfig({ kubeconfig: p })),
        }),
      }
      : undefined,
  };
  const ok = await runBoot(deps);
  if (!ok) {
    const f = state.snapshot().failure;
    await notifier.notify({ STATUS: `boot failed at ${f?.step}: ${f?.code}` }).catch(() => {});
  } else if (state.snapshot().phase === "ready") {
    const config = (await deps.loadConfig()).config;
    const nodeName = state.snapshot().node.name!;
    const recheck = async () => {
      try {
        const kube = kubeApiFromFile(config.cilium.nodeKubeconfig);
        const e = await checkNodeEncryption(kube, deps.wireguard, nodeName);
        if (!e.enabled) log.error("Cilium no longer reports WireGuard on this node", {});
        state.setEncryption(e);
      } catch (e) {
        log.warn("encryption re-check failed", { error: describeError(e).message });
      }
    };
    const timer = setInterval(recheck, (opts.recheckSeconds ?? 60) * 1000);
    opts.signal?.addEventListener("abort", () => clearInterval(timer), { once: true });
  }
  await server.finished;
  return ok;
}
