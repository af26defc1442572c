/**
 * Boot state machine against in-test fakes of every port (FakeDisk is an
 * in-memory disk; no device-mapper is involved). Time is virtual (FakeClock), so
 * backoff does not sleep.
 */
import assert from "node:assert/strict";
import { type BootDeps, runBoot } from "../../agent/machine.ts";
import { loadAgentConfig } from "../../agent/config.ts";
import { StateStore } from "../../agent/state.ts";
import { KmsRefusedError, KmsUnavailableError, type Release } from "../../agent/ports.ts";
import { setLogSink } from "../../lib/log.ts";
import {
  FakeClock,
  FakeDisk,
  FakeFiles,
  FakeKms,
  FakeKube,
  FakeMounter,
  FakeNotifier,
  FakeRunner,
  FakeWireGuard,
  hang,
  testLogger,
  WG_PUB,
} from "./_fakes.ts";

const FP = "cd".repeat(32);
const TOKEN = "abcdef.0123456789abcdef";
const CERT_KEY = "ee".repeat(32);
const CA_HASH = "sha256:" + "11".repeat(32);

function yamlFor(role: "worker" | "control-plane", extra = ""): string {
  return `kms:
  url: https://10.0.0.1:9443
  fingerprint: ${FP}
disk:
  device: /dev/vdb
role: ${role}
nodeName:
  source: config
  name: node-1
kubeadm:
  nodeIp: 10.0.0.5
${extra}`;
}

function release(withTicket = true, role: "worker" | "control-plane" = "worker"): Release {
  return {
    diskKey: new Uint8Array(32).fill(9),
    kmsIdentity: "kms-test",
    ...(withTicket
      ? {
        joinTicket: {
          apiServerEndpoint: "10.0.0.1:6443",
          token: TOKEN,
          caCertHashes: [CA_HASH],
          ...(role === "control-plane" ? { certificateKey: CERT_KEY } : {}),
        },
      }
      : {}),
  };
}

/** A world of fakes that survives an agent restart (disk, mounts, files, API). */
class World {
  clock = new FakeClock();
  disk = new FakeDisk();
  mounter = new FakeMounter();
  files = new FakeFiles();
  kube = new FakeKube();
  wg = new FakeWireGuard();
  notifier = new FakeNotifier();
  logs: Record<string, unknown>[] = [];
  kubeadmFailures = 0;
  kubeadmHang = false;
  runner = new FakeRunner(async (argv, signal) => {
    if (argv[1] === "reset") return { code: 0, lines: ["[reset] done"] };
    if (this.kubeadmHang) await hang(signal!);
    if (this.kubeadmFailures > 0) {
      this.kubeadmFailures--;
      return {
        code: 1,
        lines: [
          "[preflight] Running pre-flight checks",
          `error: token ${TOKEN} rejected`,
          "couldn't validate the identity of the API Server",
        ],
      };
    }
    // kubeadm writes kubelet.conf on success; Cilium later creates cilium_wg0.
    this.files.files.set("/etc/kubernetes/kubelet.conf", { data: "kubeconfig", mode: 0o600 });
    this.kube.nodes.set("node-1", { "network.cilium.io/wg-pub-key": WG_PUB });
    return { code: 0, lines: ["This node has joined the cluster"] };
  });
  constructor(public kms: FakeKms, public role: "worker" | "control-plane" = "worker") {
    setLogSink((l) => this.logs.push(JSON.parse(l)));
  }
  deps(state = new StateStore(() => this.clock.now()), extra: Partial<BootDeps> = {}): BootDeps {
    return {
      loadConfig: () => Promise.resolve(loadAgentConfig(yamlFor(this.role, extraYaml(this.role)))),
      hostname: () => "ignored",
      kms: () => this.kms,
      disk: () => this.disk,
      mounter: this.mounter,
      runner: this.runner,
      files: this.files,
      kube: () => Promise.resolve(this.kube),
      wireguard: this.wg,
      clock: this.clock,
      notifier: this.notifier,
      logger: testLogger(),
      state,
      random: () => 0.5,
      ...extra,
    };
  }
}

function extraYaml(role: string): string {
  return role === "control-plane"
    ? "cilium:\n  applyConfig: true\n  strictModeCidr: 10.244.0.0/16\n"
    : "";
}

Deno.test("runBoot() takes a blank disk through every step to ready", async () => {
  const w = new World(new FakeKms([() => Promise.resolve(release())]));
  const state = new StateStore(() => w.clock.now());
  assert.equal(await runBoot(w.deps(state)), true);
  const s = state.snapshot();
  assert.equal(s.phase, "ready");
  assert.ok(state.isReady());
  assert.deepEqual(
    s.steps.map((x) => [x.name, x.status]),
    [
      ["config", "done"],
      ["release", "done"],
      ["disk", "done"],
      ["mount", "done"],
      ["wireguard", "done"],
      ["join", "done"],
      ["cilium-config", "skipped"],
      ["encryption", "done"],
    ],
  );
  assert.equal(w.disk.formats, 1);
  assert.equal(w.kms.calls[0].diskUuid, w.disk.uuid);
  assert.deepEqual(w.mounter.mkfsCalls, ["/dev/mapper/fake-state"]);
  assert.ok(w.mounter.mounted.has("/var/lib/confidant"));
  const join = w.runner.calls.find((a) => a[1] === "join")!;
  assert.equal(join[2], "--config");
  assert.match(join[3], /^\/run\/confidant\/kubeadm-join-[0-9a-f]{12}\.yaml$/);
  assert.equal(w.files.files.has(join[3]), false, "config file removed after kubeadm");
  assert.equal(w.files.written[0].mode, 0o600);
  assert.deepEqual(w.notifier.sent, [{ READY: "1", STATUS: "node ready" }]);
  assert.deepEqual(s.encryption.evidence, ["node-annotation"]);
  const finished = w.logs.filter((l) => l.msg === "step finished");
  assert.equal(finished.length, 8);
  for (const l of finished) assert.equal(typeof l.durationMs, "number");
  assert.ok(!JSON.stringify(s).includes(TOKEN.split(".")[1]));
});

Deno.test("runBoot() waits for a KMS that is down, disk locked meanwhile, then completes", async () => {
  const seen: string[] = [];
  // deno-lint-ignore prefer-const
  let w!: World;
  // deno-lint-ignore prefer-const
  let state!: StateStore;
  const down = () => {
    seen.push(state.snapshot().steps[1].status);
    assert.equal(w.disk.unlocks, 0, "disk touched while the KMS is down");
    return Promise.reject(new KmsUnavailableError("connection refused"));
  };
  w = new World(new FakeKms([down, down, down, down, () => Promise.resolve(release())]));
  state = new StateStore(() => w.clock.now());
  assert.equal(await runBoot(w.deps(state)), true);
  assert.equal(w.kms.calls.length, 5);
  assert.deepEqual(seen, ["running", "running", "running", "running"]);
  // backoff 1s, 2s, 4s, 8s with 50% jitter at random()=0.5 → 75% of each
  assert.deepEqual(w.clock.sleeps, [750, 1500, 3000, 6000]);
  assert.equal(new Set(w.kms.calls.map((c) => c.diskUuid)).size, 1, "one UUID for the boot");
  assert.equal(w.disk.formats, 1);
  assert.equal(w.logs.filter((l) => l.outcome === "retry" && l.step === "release").length, 4);
});

Deno.test("runBoot() shows the waiting state while the KMS is down", async () => {
  const w = new World(new FakeKms([() => Promise.reject(new KmsUnavailableError("down"))]));
  const ctl = new AbortController();
  const state = new StateStore(() => w.clock.now());
  let snapshots = 0;
  const origSleep = w.clock.sleep.bind(w.clock);
  w.clock.sleep = (ms, signal) => {
    const s = state.snapshot().steps[1];
    assert.equal(s.status, "waiting");
    assert.equal(s.error?.code, "agent.kms_unavailable");
    assert.ok(s.nextAttemptAt);
    if (++snapshots === 20) ctl.abort();
    return origSleep(ms, signal);
  };
  assert.equal(await runBoot(w.deps(state, { signal: ctl.signal })), false);
  assert.equal(w.disk.unlocks, 0);
  assert.equal(w.disk.formats, 0);
  assert.ok(Math.max(...w.clock.sleeps) <= 60_000, "delay capped at 60 s");
});

Deno.test("runBoot() stops on a KMS refusal, logs every failed check, leaves the disk alone", async () => {
  const checks = ["pcr[7] mismatch", "image measurement not allowed"];
  const w = new World(
    new FakeKms([() => Promise.reject(new KmsRefusedError("release refused", checks))]),
  );
  const state = new StateStore(() => w.clock.now());
  assert.equal(await runBoot(w.deps(state)), false);
  assert.equal(w.kms.calls.length, 1, "a refusal is not retried");
  assert.equal(w.disk.unlocks, 0);
  assert.equal(w.disk.formats, 0);
  assert.equal(w.runner.calls.length, 0);
  assert.deepEqual(w.notifier.sent, []);
  const s = state.snapshot();
  assert.equal(s.phase, "failed");
  assert.deepEqual(s.failure, {
    step: "release",
    code: "agent.kms_refused",
    message: "release refused",
    checks,
  });
  assert.equal(s.steps[2].status, "pending");
  const logged = w.logs.filter((l) => l.msg === "failed check").map((l) => l.check);
  assert.deepEqual(logged, checks);
});

Deno.test("runBoot() retries a failing kubeadm join with a reset between attempts", async () => {
  const w = new World(new FakeKms([() => Promise.resolve(release())]));
  w.kubeadmFailures = 2;
  assert.equal(await runBoot(w.deps()), true);
  assert.deepEqual(w.runner.calls.map((a) => a[1]), ["join", "reset", "join", "reset", "join"]);
  assert.equal(w.files.files.size, 1, "only kubelet.conf remains; every config file removed");
});

Deno.test("runBoot() reports a kubeadm that keeps failing with its last lines, secrets scrubbed", async () => {
  const w = new World(new FakeKms([() => Promise.resolve(release())]));
  w.kubeadmFailures = 100;
  const state = new StateStore(() => w.clock.now());
  assert.equal(await runBoot(w.deps(state)), false);
  assert.equal(w.runner.calls.filter((a) => a[1] === "join").length, 3);
  const f = state.snapshot().failure!;
  assert.equal(f.step, "join");
  assert.equal(f.code, "agent.kubeadm_failed");
  assert.match(f.message, /exited with 1/);
  assert.match(f.message, /couldn't validate the identity of the API Server/);
  assert.match(f.message, /after 3 attempts/);
  assert.ok(!f.message.includes(TOKEN), "token in failure message");
  const all = w.logs.map((l) => JSON.stringify(l)).join("\n");
  assert.ok(!all.includes("0123456789abcdef"), "token secret in logs");
  assert.ok(all.includes("[redacted]"));
});

Deno.test("runBoot() killed during join and run again completes without a second format", async () => {
  const w = new World(new FakeKms([() => Promise.resolve(release())]));
  w.kubeadmHang = true;
  const ctl = new AbortController();
  const first = runBoot(w.deps(new StateStore(), { signal: ctl.signal }));
  while (!w.runner.calls.some((a) => a[1] === "join")) await new Promise((r) => setTimeout(r, 1));
  ctl.abort();
  assert.equal(await first, false);
  assert.equal(w.disk.formats, 1);
  assert.equal(w.files.files.size, 0, "config file removed after the kill");
  w.kubeadmHang = false;
  const state = new StateStore(() => w.clock.now());
  assert.equal(await runBoot(w.deps(state)), true);
  assert.equal(w.disk.formats, 1, "formatted only once");
  assert.equal(w.disk.unlocks, 1, "an open disk is not unlocked again");
  assert.equal(w.mounter.mkfsCalls.length, 1);
  const st = Object.fromEntries(state.snapshot().steps.map((s) => [s.name, s.status]));
  assert.equal(st.disk, "skipped");
  assert.equal(st.mount, "skipped");
  assert.equal(st.join, "done");
  // A third run (node rebooted: disk closed, nothing mounted) unlocks and skips join.
  w.disk.opened = false;
  w.mounter.mounted.clear();
  const third = new StateStore(() => w.clock.now());
  assert.equal(await runBoot(w.deps(third)), true);
  assert.equal(w.disk.formats, 1);
  assert.equal(w.mounter.mkfsCalls.length, 1, "existing file system kept");
  assert.equal(third.snapshot().steps.find((s) => s.name === "join")!.status, "skipped");
  assert.equal(w.runner.calls.filter((a) => a[1] === "join").length, 2);
});

Deno.test("runBoot() treats a hung KMS attempt as a timeout and retries", async () => {
  // deno-lint-ignore prefer-const
  let w!: World;
  const w0 = new FakeKms([
    (_r, signal) => {
      w.clock.advance(61_000);
      return hang(signal);
    },
    () => Promise.resolve(release()),
  ]);
  w = new World(w0);
  const state = new StateStore(() => w.clock.now());
  assert.equal(await runBoot(w.deps(state)), true);
  const retry = w.logs.find((l) => l.outcome === "retry")!;
  assert.equal(retry.code, "agent.step_timeout");
  assert.equal(state.snapshot().steps[1].attempts, 2);
});

Deno.test("runBoot() on the first control-plane node applies cilium-config", async () => {
  const w = new World(
    new FakeKms([() => Promise.resolve(release(true, "control-plane"))]),
    "control-plane",
  );
  const state = new StateStore(() => w.clock.now());
  assert.equal(await runBoot(w.deps(state)), true);
  assert.deepEqual(w.kube.configMaps.get("kube-system/cilium-config"), {
    "enable-wireguard": "true",
    "encrypt-node": "true",
    "enable-encryption-strict-mode-egress": "true",
    "encryption-strict-egress-cidr": "10.244.0.0/16",
    "encryption-strict-egress-allow-remote-node-identities": "true",
  });
  assert.equal(state.snapshot().steps[6].status, "done");
});

Deno.test("runBoot() is not ready until Cilium reports WireGuard, and fails after the deadline", async (t) => {
  await t.step("reported on the third check via cilium_wg0", async () => {
    const w = new World(new FakeKms([() => Promise.resolve(release())]));
    w.runner.handler = (argv) => {
      w.files.files.set("/etc/kubernetes/kubelet.conf", { data: "", mode: 0o600 });
      return Promise.resolve({ code: 0, lines: [argv.join(" ")] });
    };
    let checks = 0;
    w.wg.interfaceExists = () => Promise.resolve(++checks >= 3);
    const state = new StateStore(() => w.clock.now());
    assert.equal(await runBoot(w.deps(state)), true);
    assert.deepEqual(state.snapshot().encryption.evidence, ["interface"]);
    assert.equal(state.snapshot().steps[7].attempts, 3);
  });
  await t.step("never reported: failed, no READY", async () => {
    const w = new World(new FakeKms([() => Promise.resolve(release())]));
    w.runner.handler = () => {
      w.files.files.set("/etc/kubernetes/kubelet.conf", { data: "", mode: 0o600 });
      return Promise.resolve({ code: 0, lines: [] });
    };
    w.kube.nodes.set("node-1", { "network.cilium.io/wg-pub-key": "not-a-key" });
    const state = new StateStore(() => w.clock.now());
    assert.equal(await runBoot(w.deps(state)), false);
    assert.equal(state.snapshot().failure!.code, "agent.encryption_not_reported");
    assert.match(state.snapshot().failure!.message, /gave up/);
    assert.equal(state.isReady(), false);
    assert.deepEqual(w.notifier.sent, []);
  });
});

Deno.test("runBoot() fails the join for good when the release has no join ticket", async () => {
  const w = new World(new FakeKms([() => Promise.resolve(release(false))]));
  const state = new StateStore(() => w.clock.now());
  assert.equal(await runBoot(w.deps(state)), false);
  assert.equal(state.snapshot().failure!.code, "agent.no_join_ticket");
  assert.equal(w.runner.calls.length, 0);
});

Deno.test("runBoot() fails at config with the config error and touches nothing", async () => {
  const w = new World(new FakeKms([() => Promise.resolve(release())]));
  const state = new StateStore(() => w.clock.now());
  const ok = await runBoot(
    w.deps(state, { loadConfig: () => Promise.resolve(loadAgentConfig("role: worker\nx: 1\n")) }),
  );
  assert.equal(ok, false);
  assert.equal(state.snapshot().failure!.step, "config");
  assert.match(state.snapshot().failure!.message, /unknown key x/);
  assert.equal(w.kms.calls.length, 0);
  assert.equal(w.disk.inspections, 0);
});

Deno.test("runBoot() with kubeadm.join false ends unlocked, join and Cilium skipped", async () => {
  const w = new World(new FakeKms([() => Promise.resolve(release(false))]));
  const state = new StateStore(() => w.clock.now());
  const deps = w.deps(state, {
    loadConfig: () =>
      Promise.resolve(loadAgentConfig(yamlFor("worker"), "quiet confidant.join=false")),
  });
  assert.equal(await runBoot(deps), true);
  const s = state.snapshot();
  assert.equal(s.phase, "unlocked");
  assert.equal(state.isReady(), false, "unlocked is not cluster-ready");
  assert.deepEqual(
    s.steps.map((x) => [x.name, x.status]),
    [
      ["config", "done"],
      ["release", "done"],
      ["disk", "done"],
      ["mount", "done"],
      ["wireguard", "done"],
      ["join", "skipped"],
      ["cilium-config", "skipped"],
      ["encryption", "skipped"],
    ],
  );
  for (const st of s.steps.slice(5)) assert.match(String(st.detail.reason), /no Kubernetes/);
  assert.equal(w.disk.formats, 1);
  assert.ok(w.mounter.mounted.has("/var/lib/confidant"));
  assert.equal(w.runner.calls.length, 0, "kubeadm never runs");
  assert.ok(w.logs.some((l) => l.msg === "node unlocked" && l.outcome === "unlocked"));
  assert.deepEqual(w.notifier.sent, [{ READY: "1", STATUS: "node unlocked (no cluster to join)" }]);
});

Deno.test("runBoot() logs the TPM's attestation identity once and keeps it in the release", async () => {
  const kms = new FakeKms([() => Promise.resolve(release())]);
  let asked = 0;
  kms.identity = () => {
    asked++;
    return Promise.resolve({
      akName: "000b" + "aa".repeat(32),
      ekCertificateSha256: "bb".repeat(32),
      ekIssuer: "CN=test CA",
    });
  };
  const w = new World(kms);
  const state = new StateStore(() => w.clock.now());
  assert.equal(await runBoot(w.deps(state)), true);
  assert.equal(asked, 1);
  const line = w.logs.find((l) => l.msg === "attestation identity")!;
  assert.equal(line.ekIssuer, "CN=test CA");
  assert.equal(line.ekCertificateSha256, "bb".repeat(32));
  const rel = state.snapshot().steps.find((x) => x.name === "release")!;
  assert.equal(rel.detail.akName, "000b" + "aa".repeat(32));
});

Deno.test("runBoot() keeps a replica grant after the mount, starts the replica after the join and wipes the KEK", async () => {
  for (const role of ["control-plane", "worker"] as const) {
    const kek = new Uint8Array(32).fill(5);
    const w = new World(
      new FakeKms([
        () => Promise.resolve({ ...release(true, role), replica: { kek, policy: { pcrs: {} } } }),
      ]),
      role,
    );
    const order: string[] = [];
    const stored: string[] = [];
    const state = new StateStore(() => w.clock.now());
    const ok = await runBoot(w.deps(state, {
      kmsReplica: {
        store: (mp, g) => {
          order.push(`store mounted=${w.mounter.mounted.has(mp)}`);
          stored.push(Array.from(g.kek).join(","));
          return Promise.resolve();
        },
        start: () => {
          order.push(`start joined=${w.files.files.has("/etc/kubernetes/kubelet.conf")}`);
          return Promise.resolve({ port: 9444, fingerprint: "ab".repeat(32) });
        },
      },
    }));
    assert.equal(ok, true);
    if (role === "control-plane") {
      assert.deepEqual(order, ["store mounted=true", "start joined=true"]);
      assert.deepEqual(stored, [new Array(32).fill(5).join(",")]);
    } else {
      assert.deepEqual(order, [], "a worker keeps no grant and runs no replica");
    }
    assert.ok(kek.every((b) => b === 0), "the KEK is wiped from memory");
  }
});
