import assert from "node:assert/strict";
import { join } from "node:path";
import { parse } from "yaml";
import { runCli } from "../../lib/run_cli.ts";
import { commands } from "../../agent/commands.ts";
import { createAgentApp } from "../../agent/http.ts";
import { StateStore } from "../../agent/state.ts";

async function cli(argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(commands, argv, { out: (t) => out.push(t), err: (t) => err.push(t) });
  return { code, out: out.join("\n"), err: err.join("\n") };
}

const CONFIG = `kms:
  url: https://10.0.0.1:9443
  fingerprint: ${"ab".repeat(32)}
disk:
  device: /dev/vdb
role: control-plane
nodeName:
  source: config
  name: cp-1
kubeadm:
  nodeIp: 10.0.0.7
`;

Deno.test("debug join-config prints the v1beta4 config with placeholders or a redacted ticket", async () => {
  const dir = await Deno.makeTempDir({ prefix: "agent-cli-" });
  try {
    const cfg = join(dir, "agent.yaml");
    const empty = join(dir, "cmdline");
    await Deno.writeTextFile(cfg, CONFIG);
    await Deno.writeTextFile(empty, "");
    const r = await cli(["debug", "join-config", "--config", cfg, "--cmdline", empty]);
    assert.equal(r.code, 0, r.err);
    const y = parse(r.out);
    assert.equal(y.apiVersion, "kubeadm.k8s.io/v1beta4");
    assert.equal(y.discovery.bootstrapToken.token, "<from the KMS release>");
    assert.deepEqual(y.controlPlane.localAPIEndpoint, {
      advertiseAddress: "10.0.0.7",
      bindPort: 6443,
    });
    assert.deepEqual(y.nodeRegistration.kubeletExtraArgs, [{ name: "node-ip", value: "10.0.0.7" }]);
    const ticket = join(dir, "ticket.json");
    await Deno.writeTextFile(
      ticket,
      JSON.stringify({
        apiServerEndpoint: "10.0.0.1:6443",
        token: "abcdef.0123456789abcdef",
        caCertHashes: ["sha256:" + "11".repeat(32)],
        certificateKey: "ee".repeat(32),
      }),
    );
    const r2 = await cli([
      "debug",
      "join-config",
      "--config",
      cfg,
      "--cmdline",
      empty,
      "--ticket",
      ticket,
    ]);
    assert.equal(r2.code, 0, r2.err);
    assert.ok(!r2.out.includes("0123456789abcdef"));
    assert.ok(!r2.out.includes("ee".repeat(32)));
    assert.equal(parse(r2.out).discovery.bootstrapToken.token, "abcdef.[redacted]");
    await Deno.writeTextFile(cfg, CONFIG + "bogus: 1\n");
    const r3 = await cli(["debug", "join-config", "--config", cfg, "--cmdline", empty]);
    assert.equal(r3.code, 1);
    assert.match(r3.err, /unknown key bogus/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("agent status reads the endpoint and exits 1 until the node is ready", async () => {
  const state = new StateStore();
  state.attemptStarted("config");
  state.finished("config", "done", { role: "worker" });
  state.attemptStarted("release");
  state.attemptFailed(
    "release",
    { code: "agent.kms_unavailable", message: "connection refused" },
    1000,
  );
  const app = createAgentApp({ state });
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, app.fetch);
  try {
    const url = `http://127.0.0.1:${server.addr.port}`;
    const r = await cli(["agent", "status", "--url", url]);
    assert.equal(r.code, 1);
    assert.match(r.out, /phase: booting/);
    assert.match(
      r.out,
      /release\s+waiting\s+attempts=1\s+agent\.kms_unavailable: connection refused/,
    );
    const j = await cli(["agent", "status", "--url", url, "--json"]);
    assert.equal(JSON.parse(j.out).ready, false);
  } finally {
    await server.shutdown();
  }
  const down = await cli(["agent", "status", "--url", "http://127.0.0.1:1"]);
  assert.equal(down.code, 1);
  assert.match(down.err, /agent\.unreachable/);
});

Deno.test("debug quote and debug kms-ping refuse bad input as usage errors", async () => {
  assert.equal((await cli(["debug", "quote", "--nonce", "xyz"])).code, 2);
  assert.equal((await cli(["debug", "quote", "--nonce", "00"])).code, 2);
  assert.equal((await cli(["debug", "kms-ping", "--kms", "http://x:1"])).code, 2);
});

Deno.test("debug kms-ping reports an unreachable KMS", async () => {
  const r = await cli(["debug", "kms-ping", "--kms", "https://127.0.0.1:1"]);
  assert.equal(r.code, 1);
  assert.match(r.err, /kms\.connect/);
});

Deno.test("debug quote prints a TPM document bound to the nonce (swtpm)", async () => {
  const { startSwtpm } = await import("../_support/swtpm.ts");
  const sw = await startSwtpm({ ekCert: true });
  try {
    const nonce = "00112233445566778899aabbccddeeff";
    const r = await cli(["debug", "quote", "--nonce", nonce, "--tpm", sw.spec, "--json"]);
    assert.equal(r.code, 0, r.err);
    const doc = JSON.parse(r.out);
    assert.equal(doc.variant, "tpm");
    assert.equal(
      doc.nonce,
      btoa(String.fromCharCode(...nonce.match(/../g)!.map((h) => parseInt(h, 16)))),
    );
    assert.ok(doc.tpm.quote.length > 0);
  } finally {
    await sw.stop();
  }
});
