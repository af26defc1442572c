/**
 * `kubeadm join` through the real process runner and file adapter. The `kubeadm` here is
 * a STAND-IN shell script written by the test (no Kubernetes binaries can be installed):
 * it records its arguments, the config file's mode and content, and exits as told.
 * The config lives in a temp dir under /dev/shm (a tmpfs on Linux).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parse, parseAllDocuments } from "yaml";
import {
  ensureTmpfsDir,
  KubeadmError,
  runKubeadmInit,
  runKubeadmJoin,
  runKubeadmReset,
  scrub,
} from "../../agent/kubeadm.ts";
import {
  BOOTSTRAP_TOKEN_RE,
  BOOTSTRAP_TOKEN_TTL,
  buildInitConfiguration,
  initConfigurationYaml,
  newBootstrapToken,
} from "../../agent/init_config.ts";
import {
  buildJoinConfiguration,
  redactJoinConfiguration,
  ticketSecrets,
} from "../../agent/join_config.ts";
import { HostCommandRunner, HostFiles } from "../../agent/host.ts";
import { Logger, setLogSink } from "../../lib/log.ts";
import { ConfidantError } from "../../lib/errors.ts";

const TICKET = {
  apiServerEndpoint: "10.0.0.1:6443",
  token: "abcdef.0123456789abcdef",
  caCertHashes: ["sha256:" + "11".repeat(32)],
  certificateKey: "ee".repeat(32),
};
const SETTINGS = {
  nodeName: "cp-2",
  criSocket: "unix:///run/containerd/containerd.sock",
  nodeIp: "10.0.0.6",
  bindPort: 6443,
  kubeletExtraArgs: [{ name: "max-pods", value: "50" }],
};

async function standIn(dir: string, exitCode: number): Promise<string> {
  const script = join(dir, "kubeadm");
  await Deno.writeTextFile(
    script,
    `#!/bin/sh
# STAND-IN for kubeadm (test only): records argv and the --config file.
echo "$@" >> "${dir}/argv"
if [ "$1" = join ]; then
  stat -c %a "$3" > "${dir}/mode"
  cp "$3" "${dir}/config.yaml"
  echo "[preflight] Running pre-flight checks"
  echo "using token ${TICKET.token}" >&2
fi
if [ ${exitCode} -ne 0 ]; then
  i=1; while [ $i -le 30 ]; do echo "line $i" >&2; i=$((i+1)); done
  echo "error execution phase preflight: unable to fetch the kubeadm-config ConfigMap" >&2
fi
exit ${exitCode}
`,
  );
  await Deno.chmod(script, 0o755);
  return script;
}

async function withDirs(fn: (dirs: { work: string; run: string }) => Promise<void>) {
  const work = await Deno.makeTempDir({ prefix: "agent-kubeadm-" });
  const run = await Deno.makeTempDir({ dir: "/dev/shm", prefix: "agent-run-" });
  const lines: string[] = [];
  setLogSink((l) => lines.push(l));
  try {
    await fn({ work, run });
  } finally {
    setLogSink(() => {});
    await Deno.remove(work, { recursive: true });
    await Deno.remove(run, { recursive: true });
  }
}

Deno.test("runKubeadmJoin() runs the stand-in kubeadm with a v1beta4 config in a 0600 tmpfs file, then removes it", async () => {
  await withDirs(async ({ work, run }) => {
    const kubeadm = await standIn(work, 0);
    const config = buildJoinConfiguration(TICKET, { ...SETTINGS, role: "control-plane" });
    const r = await runKubeadmJoin({
      runner: new HostCommandRunner(),
      files: new HostFiles(),
      runtimeDir: run,
      config,
      secrets: ticketSecrets(TICKET),
      logger: new Logger("agent"),
      signal: new AbortController().signal,
      kubeadm,
    });
    const argv = (await Deno.readTextFile(join(work, "argv"))).trim().split(" ");
    assert.equal(argv[0], "join");
    assert.equal(argv[1], "--config");
    assert.ok(argv[2].startsWith(run + "/kubeadm-join-"));
    assert.equal((await Deno.readTextFile(join(work, "mode"))).trim(), "600");
    assert.deepEqual([...Deno.readDirSync(run)], [], "config file removed");
    assert.ok(r.lines.some((l) => l.includes("using token [redacted]")));
    const cfg = parse(await Deno.readTextFile(join(work, "config.yaml")));
    assert.deepEqual(cfg, {
      apiVersion: "kubeadm.k8s.io/v1beta4",
      kind: "JoinConfiguration",
      discovery: {
        bootstrapToken: {
          apiServerEndpoint: "10.0.0.1:6443",
          token: TICKET.token,
          caCertHashes: TICKET.caCertHashes,
        },
      },
      nodeRegistration: {
        name: "cp-2",
        criSocket: "unix:///run/containerd/containerd.sock",
        kubeletExtraArgs: [{ name: "node-ip", value: "10.0.0.6" }, {
          name: "max-pods",
          value: "50",
        }],
      },
      controlPlane: {
        localAPIEndpoint: { advertiseAddress: "10.0.0.6", bindPort: 6443 },
        certificateKey: TICKET.certificateKey,
      },
    });
  });
});

Deno.test("runKubeadmJoin() reports a failing kubeadm with its last 20 lines, secrets scrubbed", async () => {
  await withDirs(async ({ work, run }) => {
    const kubeadm = await standIn(work, 3);
    const config = buildJoinConfiguration(TICKET, { ...SETTINGS, role: "worker" });
    const err = await runKubeadmJoin({
      runner: new HostCommandRunner(),
      files: new HostFiles(),
      runtimeDir: run,
      config,
      secrets: ticketSecrets(TICKET),
      logger: new Logger("agent"),
      signal: new AbortController().signal,
      kubeadm,
    }).then(() => undefined, (e) => e);
    assert.ok(err instanceof KubeadmError);
    assert.equal(err.tail.length, 20);
    assert.ok(err.tail.some((l) => l.includes("unable to fetch the kubeadm-config ConfigMap")));
    assert.match(err.message, /kubeadm join exited with 3/);
    assert.ok(!err.message.includes("0123456789abcdef"));
    assert.deepEqual([...Deno.readDirSync(run)], [], "config file removed after a failure");
    const worker = parse(await Deno.readTextFile(join(work, "config.yaml")));
    assert.equal(worker.controlPlane, undefined);
    await runKubeadmReset(
      new HostCommandRunner(),
      new Logger("agent"),
      new AbortController().signal,
      kubeadm,
    )
      .then(
        () => assert.fail("reset should fail too"),
        (e) => assert.ok(e instanceof KubeadmError),
      );
    assert.match(await Deno.readTextFile(join(work, "argv")), /^reset --force$/m);
  });
});

Deno.test("ensureTmpfsDir() refuses a directory that is not on a tmpfs", async () => {
  const dir = await Deno.makeTempDir({ prefix: "agent-mi-" });
  try {
    const mi = join(dir, "mountinfo");
    await Deno.writeTextFile(
      mi,
      `22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n` +
        `25 22 0:23 / ${dir}/shm rw shared:2 - tmpfs tmpfs rw\n`,
    );
    await Deno.mkdir(join(dir, "shm"));
    const files = new HostFiles(mi);
    await ensureTmpfsDir(files, join(dir, "shm", "confidant"));
    await assert.rejects(
      () => ensureTmpfsDir(files, join(dir, "disk")),
      (e) => e instanceof ConfidantError && e.code === "agent.not_tmpfs" && /ext4/.test(e.message),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("buildJoinConfiguration() refuses malformed tickets and incomplete control-plane joins", () => {
  const bad = (t: object, role: "worker" | "control-plane" = "worker") =>
    assert.throws(
      () => buildJoinConfiguration({ ...TICKET, ...t }, { ...SETTINGS, role }),
      (e) => e instanceof ConfidantError,
    );
  bad({ token: "short.token" });
  bad({ caCertHashes: [] });
  bad({ caCertHashes: ["md5:abc"] });
  bad({ apiServerEndpoint: "no-port" });
  bad({ certificateKey: undefined }, "control-plane");
  assert.throws(
    () => buildJoinConfiguration(TICKET, { ...SETTINGS, nodeIp: undefined, role: "control-plane" }),
    /advertiseAddress/,
  );
  const red = redactJoinConfiguration(
    buildJoinConfiguration(TICKET, { ...SETTINGS, role: "control-plane" }),
  );
  assert.equal(red.discovery.bootstrapToken.token, "abcdef.[redacted]");
  assert.equal(red.controlPlane!.certificateKey, "[redacted]");
});

Deno.test("runKubeadmInit() logs kubeadm's output with every token and certificate key scrubbed", async () => {
  await withDirs(async ({ work, run }) => {
    const lines: string[] = [];
    setLogSink((l) => lines.push(l));
    const token = newBootstrapToken();
    const certificateKey = "ab".repeat(32);
    // A token kubeadm made itself (not one we know) and a certificate key in its join hints.
    const other = "q1w2e3.r4t5y6u7i8o9p0a1";
    const script = join(work, "kubeadm");
    await Deno.writeTextFile(
      script,
      `#!/bin/sh
# STAND-IN for kubeadm init (test only): prints kubeadm's join hints.
cp "$3" "${work}/init.yaml"
echo "[bootstrap-token] Using token: ${token}"
echo "  kubeadm join 10.0.0.5:6443 --token ${other} \\"
echo "\t--discovery-token-ca-cert-hash sha256:${"11".repeat(32)} \\"
echo "\t--control-plane --certificate-key ${"cd".repeat(32)}"
echo "[upload-certs] Using certificate key:" >&2
echo "${certificateKey}" >&2
exit 0
`,
    );
    await Deno.chmod(script, 0o755);
    const docs = buildInitConfiguration({
      kubernetesVersion: "v1.33.1",
      podSubnet: "10.244.0.0/16",
      serviceSubnet: "10.96.0.0/12",
      dnsDomain: "cluster.local",
      certSANs: [],
    }, {
      clusterName: "c",
      nodeName: "cp-0",
      criSocket: "unix:///run/containerd/containerd.sock",
      nodeIp: "10.0.0.5",
      bindPort: 6443,
      kubeletExtraArgs: [],
      certificateKey,
      bootstrapToken: token,
    });
    const r = await runKubeadmInit({
      runner: new HostCommandRunner(),
      files: new HostFiles(),
      runtimeDir: run,
      configYaml: initConfigurationYaml(docs),
      secrets: [certificateKey, token],
      logger: new Logger("agent"),
      signal: new AbortController().signal,
      kubeadm: script,
    });
    setLogSink(() => {});
    const all = [...lines, ...r.lines].join("\n");
    for (const secret of [token, other, certificateKey, "cd".repeat(32)]) {
      assert.ok(!all.includes(secret), `${secret} reached the log`);
    }
    assert.ok(r.lines.some((l) => l.includes("--certificate-key [redacted]")));
    assert.ok(all.includes("sha256:" + "11".repeat(32)), "the CA hash is not a secret");
    // the InitConfiguration asks for our short-lived token, not kubeadm's 24 h default
    const init = parseAllDocuments(await Deno.readTextFile(join(work, "init.yaml")))[1].toJS();
    assert.deepEqual(init.bootstrapTokens, [{
      token,
      description: "confidant: kubeadm init's own token (joining nodes get KMS tickets)",
      ttl: BOOTSTRAP_TOKEN_TTL,
      usages: ["signing", "authentication"],
      groups: ["system:bootstrappers:kubeadm:default-node-token"],
    }]);
    assert.equal(BOOTSTRAP_TOKEN_TTL, "15m0s");
  });
});

Deno.test("newBootstrapToken() makes distinct kubeadm-shaped tokens; scrub() catches unknown ones", () => {
  const seen = new Set<string>();
  for (let i = 0; i < 50; i++) {
    const t = newBootstrapToken();
    assert.match(t, BOOTSTRAP_TOKEN_RE);
    seen.add(t);
  }
  assert.equal(seen.size, 50);
  assert.equal(scrub("--token abcdef.0123456789abcdef x", []), "--token [redacted] x");
  assert.equal(
    scrub(`--certificate-key=${"0f".repeat(32)}`, []),
    "--certificate-key=[redacted]",
  );
  assert.equal(scrub("node cp-0.example.com ready", []), "node cp-0.example.com ready");
});
