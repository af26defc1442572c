/**
 * Child process of bench/agent_boot.ts: the agent's boot (agent/machine.ts `runBoot`) with the
 * production config loader, TPM access (swtpm), KMS client and HTTP endpoint, but the state
 * disk on cryptsetup's IN-MEMORY backend and a mount that only records (this host kernel has no
 * device-mapper), no WireGuard module check and no systemd. It is how far the boot can run on
 * this host; the disk and mount steps are not representative of a node (the guest bench is).
 *
 * `deno run -A bench/_agent_host.ts CONFIG_YAML`. Log lines (JSON) on stdout as the agent
 * writes them, then `{"bench":"final","ok":BOOL,"phase":...}`; it then serves its endpoint until
 * SIGTERM, so the parent can read its resident memory in the final state.
 *
 * @module
 */
import { Logger, setLogSink } from "../lib/log.ts";
import { joiningConfig, loadAgentConfig } from "../agent/config.ts";
import { runBoot } from "../agent/machine.ts";
import { StateStore } from "../agent/state.ts";
import { createAgentApp } from "../agent/http.ts";
import { systemClock } from "../agent/clock.ts";
import { HostCommandRunner, HostFiles } from "../agent/host.ts";
import { kmsClientAdapter, StateDiskAdapter, TpmAccess, tpmAttestor } from "../agent/adapters.ts";
import type { Mounter, Notifier, WireGuardHost } from "../agent/ports.ts";
import { createMemoryStateDisk } from "../cryptsetup/state_disk.ts";
import { kubeApiFromFile } from "../agent/kube_api.ts";

/** A mount that records what it was asked (no kernel mount on this host). */
class RecordingMounter implements Mounter {
  #fs = new Set<string>();
  #mounted = new Set<string>();
  isMounted(mp: string) {
    return Promise.resolve(this.#mounted.has(mp));
  }
  hasFilesystem(device: string) {
    return Promise.resolve(this.#fs.has(device));
  }
  mkfs(device: string) {
    this.#fs.add(device);
    return Promise.resolve();
  }
  mount(_device: string, mp: string) {
    this.#mounted.add(mp);
    return Promise.resolve();
  }
}

const noWireGuard: WireGuardHost = {
  ensure: () => Promise.resolve(),
  interfaceExists: () => Promise.resolve(false),
};
const noSystemd: Notifier = { notify: () => Promise.resolve() };

const enc = new TextEncoder();
setLogSink((line) => Deno.stdout.writeSync(enc.encode(line + "\n")));
const yaml = await Deno.readTextFile(Deno.args[0]);
const early = loadAgentConfig(yaml, "");
const log = new Logger("agent");
const state = new StateStore();
const tpm = new TpmAccess(early.config.tpm.device);
const stop = new AbortController();
Deno.addSignalListener("SIGTERM", () => stop.abort());
const listen = early.config.listen;
const idx = listen.lastIndexOf(":");
const server = Deno.serve({
  hostname: listen.slice(0, idx),
  port: Number(listen.slice(idx + 1)),
  signal: stop.signal,
  onListen: () => {},
}, createAgentApp({ state, attestor: tpmAttestor(tpm), log }).fetch);
const disk = createMemoryStateDisk(64 * 1024 * 1024);
const ok = await runBoot({
  loadConfig: () => Promise.resolve(loadAgentConfig(yaml, "")),
  hostname: () => "bench-node",
  kms: (config) =>
    kmsClientAdapter({
      kmsUrl: joiningConfig(config).kms.url,
      fingerprint: joiningConfig(config).kms.fingerprint,
      tpm,
      tee: config.attestation.tee,
    }),
  disk: (config) =>
    new StateDiskAdapter({
      disk,
      cluster: config.disk.cluster,
      integrity: config.disk.integrity,
      mapperExists: () => Promise.resolve(false),
    }),
  mounter: new RecordingMounter(),
  runner: new HostCommandRunner(),
  files: new HostFiles(),
  kube: (path) => Promise.resolve(kubeApiFromFile(path)),
  wireguard: noWireGuard,
  clock: systemClock,
  notifier: noSystemd,
  logger: log,
  state,
  signal: stop.signal,
});
console.log(JSON.stringify({ bench: "final", ok, phase: state.snapshot().phase }));
await server.finished;
