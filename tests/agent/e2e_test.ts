/**
 * The agent end to end on this host:
 * - TPM: a real swtpm with an EK certificate from its local CA;
 * - KMS: a real `confidant kms serve` PROCESS (file state, join tickets through a Kubernetes
 *   API STAND-IN from tests/kms/_kube_standin.ts, since no Kubernetes can be installed here);
 * - disk: cryptsetup's StateDisk over its IN-MEMORY backend (the host kernel has no
 *   device-mapper), so the mount step uses the in-test FakeMounter;
 * - kubeadm: a STAND-IN shell script that records its arguments and the --config file and
 *   writes the joined marker; the config is checked against the v1beta4 fields;
 * - Cilium: the in-test FakeKube/FakeWireGuard (cilium_wg0 appears once the node joined).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parse } from "yaml";
import { startSwtpm } from "../_support/swtpm.ts";
import { startKubeStandin } from "../kms/_kube_standin.ts";
import { Tpm } from "../../attestation/tpm/client.ts";
import { TPM_ALG } from "../../attestation/tpm/constants.ts";
import { toHex } from "../../lib/bytes.ts";
import { setLogSink } from "../../lib/log.ts";
import { createMemoryStateDisk, type StateDisk } from "../../cryptsetup/state_disk.ts";
import { loadAgentConfig } from "../../agent/config.ts";
import { type BootDeps, runBoot } from "../../agent/machine.ts";
import { StateStore } from "../../agent/state.ts";
import { systemClock } from "../../agent/clock.ts";
import { HostCommandRunner, HostFiles } from "../../agent/host.ts";
import { kmsClientAdapter, StateDiskAdapter, TpmAccess } from "../../agent/adapters.ts";
import type { CommandRunner } from "../../agent/ports.ts";
import { FakeKube, FakeMounter, FakeNotifier, FakeWireGuard, testLogger } from "./_fakes.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const CA_HASH = "sha256:" + "5a".repeat(32);

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const p = (l.addr as Deno.NetAddr).port;
  l.close();
  return p;
}

async function confidant(args: string[]) {
  const o = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "main.ts", ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    ok: o.success,
    out: new TextDecoder().decode(o.stdout),
    err: new TextDecoder().decode(o.stderr),
  };
}

/** `confidant kms serve` as a child process; resolves once it listens. */
async function startKms(a: { dir: string; port: number; policy: string; kubeconfig: string }) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "main.ts",
      "kms",
      "serve",
      "--state-dir",
      join(a.dir, "state"),
      "--kek-file",
      join(a.dir, "kek"),
      "--policy",
      a.policy,
      "--listen",
      `127.0.0.1:${a.port}`,
      "--join",
      "--kubeconfig",
      a.kubeconfig,
      "--json",
    ],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  while (!buf.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) {
      const err = await new Response(child.stderr).text();
      throw new Error(`kms serve exited: ${err}`);
    }
    buf += value;
  }
  const info = JSON.parse(buf.split("\n")[0]) as { fingerprint: string };
  // keep draining so the child never blocks on a full pipe
  (async () => {
    while (!(await reader.read()).done) { /* drain */ }
  })().catch(() => {});
  const errDrain = child.stderr.pipeTo(new WritableStream()).catch(() => {});
  return {
    fingerprint: info.fingerprint,
    async stop() {
      child.kill("SIGTERM");
      await child.status;
      await errDrain;
    },
  };
}

async function standInKubeadm(dir: string, marker: string): Promise<string> {
  const p = join(dir, "kubeadm");
  await Deno.writeTextFile(
    p,
    `#!/bin/sh
# STAND-IN for kubeadm (test only): records argv and the config, writes the joined marker.
echo "$@" >> "${dir}/kubeadm.argv"
if [ "$1" = join ]; then
  stat -c %a "$3" > "${dir}/kubeadm.mode"; cp "$3" "${dir}/kubeadm.config"
  mkdir -p "$(dirname "${marker}")"; echo joined > "${marker}"
  echo "This node has joined the cluster"
fi
exit 0
`,
  );
  await Deno.chmod(p, 0o755);
  return p;
}

Deno.test("agent end to end: swtpm, a real KMS process (down, then up), in-memory disk, stand-in kubeadm; refusal leaves the disk blank", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "agent-e2e-" });
  const run = await Deno.makeTempDir({ dir: "/dev/shm", prefix: "agent-e2e-run-" });
  const sw = await startSwtpm({ ekCert: true });
  const kube = startKubeStandin();
  const logs: string[] = [];
  setLogSink((l) => logs.push(l));
  let kms: Awaited<ReturnType<typeof startKms>> | undefined;
  try {
    // KMS state, policy and kubeconfig of the API stand-in
    const init = await confidant([
      "kms",
      "init",
      "--state-dir",
      join(dir, "state"),
      "--kek-file",
      join(dir, "kek"),
      "--cluster-id",
      "e2e",
    ]);
    assert.ok(init.ok, init.err);
    const tpm = Tpm.open(sw.spec);
    const pcr0 = toHex(
      (await tpm.pcrRead([{ hash: TPM_ALG.SHA256, pcrs: [0] }])).get(TPM_ALG.SHA256)!.get(0)!,
    );
    await tpm.close();
    const policy = join(dir, "policy.json");
    const writePolicy = (pcr: string) =>
      Deno.writeTextFile(
        policy,
        JSON.stringify({
          pcrs: { "0": { expected: [pcr] } },
          ak: { ekCaCertificates: [sw.ekCaPem!] },
          join: { apiServerEndpoint: "10.0.0.1:6443", caCertHashes: [CA_HASH] },
        }),
      );
    await writePolicy(pcr0);
    const kubeconfig = join(dir, "kubeconfig");
    await Deno.writeTextFile(kubeconfig, kube.kubeConfig().exportConfig());
    const port = freePort();
    kms = await startKms({ dir, port, policy, kubeconfig });
    const fingerprint = kms.fingerprint;
    await kms.stop();
    kms = undefined;

    const marker = join(dir, "etc-kubernetes", "kubelet.conf");
    const kubeadm = await standInKubeadm(dir, marker);
    const yaml = `kms:
  url: https://127.0.0.1:${port}
  fingerprint: ${fingerprint}
tpm:
  device: ${sw.spec}
disk:
  device: /dev/memory-disk
  cluster: e2e
role: worker
nodeName:
  source: config
  name: node-e2e
kubeadm:
  runtimeDir: ${run}
  joinedMarker: ${marker}
  nodeIp: 10.0.0.9
`;
    const host = new HostCommandRunner();
    const runner: CommandRunner = {
      run: (argv, o) => host.run(argv[0] === "kubeadm" ? [kubeadm, ...argv.slice(1)] : argv, o),
    };
    const wg = new FakeWireGuard();
    wg.interfaceExists = async () => await Deno.stat(marker).then(() => true, () => false);
    const tpmAccess = new TpmAccess(sw.spec);
    const kmsClient = kmsClientAdapter({
      kmsUrl: `https://127.0.0.1:${port}`,
      fingerprint,
      tpm: tpmAccess,
    });
    const deps = (
      disk: StateDisk,
      state: StateStore,
      extra: Partial<BootDeps> = {},
      mapperActive = false,
    ): BootDeps => ({
      loadConfig: () => Promise.resolve(loadAgentConfig(yaml)),
      hostname: () => "unused",
      kms: () => kmsClient,
      disk: () =>
        new StateDiskAdapter({
          disk,
          cluster: "e2e",
          integrity: false,
          mapperExists: () => Promise.resolve(mapperActive),
        }),
      mounter: new FakeMounter(),
      runner,
      files: new HostFiles(),
      kube: () => Promise.resolve(new FakeKube()),
      wireguard: wg,
      clock: systemClock,
      notifier: new FakeNotifier(),
      logger: testLogger(),
      state,
      policies: { release: { initialDelayMs: 100, maxDelayMs: 300, jitter: 0 } },
      ...extra,
    });

    /** The disks the KMS enrolled (one record file per disk in its state directory). */
    const enrolled = async () => {
      const out: string[] = [];
      for await (const e of Deno.readDir(join(dir, "state", "disks"))) {
        if (e.name.endsWith(".json")) out.push(e.name.slice(0, -".json".length));
      }
      return out.sort();
    };
    const disk = createMemoryStateDisk(32 * 1024 * 1024);
    await t.step(
      "KMS down: the agent waits with the disk blank, then completes when it is up",
      async () => {
        const state = new StateStore();
        const boot = runBoot(deps(disk, state));
        while (state.snapshot().steps[1].attempts < 3) await new Promise((r) => setTimeout(r, 50));
        assert.equal(state.snapshot().steps[1].error?.code, "agent.kms_unavailable");
        assert.equal((await disk.status()).luks, "none", "disk untouched while the KMS is down");
        kms = await startKms({ dir, port, policy, kubeconfig });
        assert.equal(await boot, true, JSON.stringify(state.snapshot().failure));
        const s = state.snapshot();
        assert.equal(s.phase, "ready");
        const d = s.steps.find((x) => x.name === "disk")!;
        assert.equal(d.detail.formatted, true);
        const st = await disk.status({ cluster: "e2e", integrity: false });
        assert.equal(st.luks, "luks2");
        assert.equal(st.token?.state, "keyed");
        // the UUID asked for is the UUID formatted, and the KMS enrolled exactly that disk
        const rel = s.steps.find((x) => x.name === "release")!;
        assert.equal(rel.detail.diskUuid, st.uuid);
        assert.deepEqual(await enrolled(), [st.uuid]);
        // kubeadm stand-in: argv, file mode, v1beta4 fields from the KMS's join ticket
        const argv = (await Deno.readTextFile(join(dir, "kubeadm.argv"))).trim().split("\n");
        assert.equal(argv.length, 1);
        assert.match(
          argv[0],
          new RegExp(`^join --config ${run}/kubeadm-join-[0-9a-f]{12}\\.yaml$`),
        );
        assert.equal((await Deno.readTextFile(join(dir, "kubeadm.mode"))).trim(), "600");
        const cfg = parse(await Deno.readTextFile(join(dir, "kubeadm.config")));
        assert.equal(cfg.apiVersion, "kubeadm.k8s.io/v1beta4");
        assert.equal(cfg.kind, "JoinConfiguration");
        assert.equal(cfg.discovery.bootstrapToken.apiServerEndpoint, "10.0.0.1:6443");
        assert.match(cfg.discovery.bootstrapToken.token, /^[a-z0-9]{6}\.[a-z0-9]{16}$/);
        assert.deepEqual(cfg.discovery.bootstrapToken.caCertHashes, [CA_HASH]);
        assert.equal(cfg.nodeRegistration.name, "node-e2e");
        assert.equal(cfg.nodeRegistration.criSocket, "unix:///run/containerd/containerd.sock");
        assert.deepEqual(cfg.nodeRegistration.kubeletExtraArgs, [{
          name: "node-ip",
          value: "10.0.0.9",
        }]);
        assert.equal(cfg.controlPlane, undefined);
        assert.deepEqual([...Deno.readDirSync(run)], [], "config removed from the tmpfs");
        const token = cfg.discovery.bootstrapToken.token as string;
        assert.ok(!logs.some((l) => l.includes(token.split(".")[1])), "token secret in the logs");
        assert.ok(
          [...kube.secrets.keys()].some((k) => k.startsWith("kube-system/bootstrap-token-")),
        );
      },
    );

    await t.step(
      "agent restarted with the disk still open: no unlock, no format, no second join",
      async () => {
        const state = new StateStore();
        assert.equal(
          await runBoot(deps(disk, state, {}, true)),
          true,
          JSON.stringify(state.snapshot().failure),
        );
        const steps = Object.fromEntries(state.snapshot().steps.map((s) => [s.name, s]));
        assert.equal(steps.disk.status, "skipped");
        assert.equal(steps.disk.detail.alreadyOpen, true);
        assert.equal(steps.join.status, "skipped");
      },
    );

    await t.step(
      "after a reboot (disk closed): opens with the KMS key, no format, no second join",
      async () => {
        await disk.backend.deactivate("state");
        const state = new StateStore();
        assert.equal(
          await runBoot(deps(disk, state)),
          true,
          JSON.stringify(state.snapshot().failure),
        );
        const steps = Object.fromEntries(state.snapshot().steps.map((s) => [s.name, s]));
        assert.equal(steps.disk.status, "done");
        assert.equal(steps.disk.detail.formatted, false);
        assert.equal(steps.join.status, "skipped");
        const argv = (await Deno.readTextFile(join(dir, "kubeadm.argv"))).trim().split("\n");
        assert.equal(argv.length, 1, "kubeadm ran once in all");
      },
    );

    await t.step(
      "power cuts during the first format: every next boot reuses the UUID, one enrollment",
      async () => {
        const before = await enrolled();
        const cut = createMemoryStateDisk(32 * 1024 * 1024);
        const uuids: string[] = [];
        // the first boot is cut right after the first header write, the second after mkfs
        for (const crashAfter of ["format-header", "mkfs"] as const) {
          const state = new StateStore();
          const crashing: StateDisk = {
            status: (c) => cut.status(c),
            unlockOrFormat: (o) => cut.unlockOrFormat({ ...o, crashAfter }),
            rekey: (c, a, b) => cut.rekey(c, a, b),
            reset: (c) => cut.reset(c),
            close: () => cut.close(),
          };
          assert.equal(await runBoot(deps(crashing, state)), false);
          const f = state.snapshot().failure!;
          assert.equal(f.step, "disk");
          assert.equal(f.code, "test.crash");
          const rel = state.snapshot().steps.find((x) => x.name === "release")!;
          uuids.push(rel.detail.diskUuid as string);
          await cut.backend.deactivate("state"); // the power cut
          const st = await cut.status({ cluster: "e2e", integrity: false });
          assert.equal(st.luks, "luks2");
          assert.equal(st.uuid, uuids[0], "the header carries the UUID asked for");
        }
        const state = new StateStore();
        assert.equal(
          await runBoot(deps(cut, state)),
          true,
          JSON.stringify(state.snapshot().failure),
        );
        const d = state.snapshot().steps.find((x) => x.name === "disk")!;
        assert.equal(d.detail.formatted, true);
        uuids.push(d.detail.diskUuid as string);
        assert.deepEqual(uuids, [uuids[0], uuids[0], uuids[0]]);
        const st = await cut.status({ cluster: "e2e", integrity: false });
        assert.equal(st.token?.state, "keyed");
        assert.equal(st.uuid, uuids[0]);
        assert.deepEqual(await enrolled(), [...before, uuids[0]].sort());
      },
    );

    await t.step(
      "a refusal (wrong PCR in the policy) stops the boot with the check named; a blank disk stays blank",
      async () => {
        await kms!.stop();
        await writePolicy("11".repeat(32));
        kms = await startKms({ dir, port, policy, kubeconfig });
        const blank = createMemoryStateDisk(32 * 1024 * 1024);
        const state = new StateStore();
        assert.equal(await runBoot(deps(blank, state)), false);
        const f = state.snapshot().failure!;
        assert.equal(f.step, "release");
        assert.equal(f.code, "agent.kms_refused");
        assert.ok(f.checks!.includes("pcr.0"), f.checks!.join(","));
        assert.equal(state.snapshot().steps[1].attempts, 1);
        assert.equal((await blank.status()).luks, "none");
        assert.ok(logs.some((l) => l.includes('"failed check"') && l.includes("pcr.0")));
      },
    );
    await tpmAccess.with(() => Promise.resolve());
  } finally {
    setLogSink(() => {});
    await kms?.stop();
    await kube.stop();
    await sw.stop();
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(run, { recursive: true });
  }
});
