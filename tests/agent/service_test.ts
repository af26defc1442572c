/**
 * `confidant agent run` as a process (TPM: swtpm): with the KMS unreachable it serves its state (release
 * waiting, disk untouched) and stops on SIGTERM. The state disk is a blank file (libcryptsetup
 * only reads it here; nothing is opened through device-mapper).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { classifyKmsError } from "../../agent/adapters.ts";
import { KmsRefusedError as ClientRefused } from "../../kms/client.ts";
import { KmsRefusedError, KmsUnavailableError } from "../../agent/ports.ts";
import { ConfidantError } from "../../lib/errors.ts";
import { startSwtpm } from "../_support/swtpm.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const p = (l.addr as Deno.NetAddr).port;
  l.close();
  return p;
}

Deno.test("classifyKmsError() waits on transport errors and 5xx, stops on refusals", () => {
  assert.ok(
    classifyKmsError(new ConfidantError("kms.connect", "refused")) instanceof KmsUnavailableError,
  );
  assert.ok(
    classifyKmsError(new ConfidantError("kms.timeout", "slow")) instanceof KmsUnavailableError,
  );
  assert.ok(classifyKmsError(new ClientRefused(503, "busy", [])) instanceof KmsUnavailableError);
  assert.ok(classifyKmsError(new ClientRefused(429, "rate", [])) instanceof KmsUnavailableError);
  const r = classifyKmsError(new ClientRefused(403, "refused", ["pcr.7", "ak.untrusted"]));
  assert.ok(r instanceof KmsRefusedError);
  assert.deepEqual(r.checks, ["pcr.7", "ak.untrusted"]);
  const m = classifyKmsError(new ConfidantError("kms.release_mismatch", "a; b"));
  assert.ok(m instanceof KmsRefusedError);
  assert.deepEqual(m.checks, ["a", "b"]);
  const other = new ConfidantError("tpm.response", "x");
  assert.equal(classifyKmsError(other), other);
});

Deno.test("agent run serves its state while the KMS is down and stops on SIGTERM", async () => {
  const dir = await Deno.makeTempDir({ prefix: "agent-svc-" });
  const sw = await startSwtpm({ ekCert: true });
  try {
    const disk = join(dir, "disk.img");
    await Deno.writeFile(disk, new Uint8Array(40 * 1024 * 1024));
    const port = freePort();
    const kmsPort = freePort();
    await Deno.writeTextFile(join(dir, "cmdline"), "quiet confidant.node_name=svc-node");
    await Deno.writeTextFile(
      join(dir, "agent.yaml"),
      `kms:\n  url: https://127.0.0.1:${kmsPort}\n  fingerprint: ${"ab".repeat(32)}\n` +
        `tpm:\n  device: ${sw.spec}\ndisk:\n  device: ${disk}\nrole: worker\n` +
        `listen: 127.0.0.1:${port}\n`,
    );
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "main.ts",
        "agent",
        "run",
        "--config",
        join(dir, "agent.yaml"),
        "--cmdline",
        join(dir, "cmdline"),
      ],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
      env: { NOTIFY_SOCKET: "" },
    }).spawn();
    const out = child.stdout.pipeThrough(new TextDecoderStream());
    const lines: string[] = [];
    const collecting = (async () => {
      for await (const chunk of out) lines.push(...chunk.split("\n").filter((l) => l));
    })();
    const errText = new Response(child.stderr).text();
    const base = `http://127.0.0.1:${port}`;
    let state: {
      steps: { name: string; status: string; attempts: number; error?: { code: string } }[];
    } | undefined;
    for (let i = 0; i < 200; i++) {
      try {
        const r = await fetch(`${base}/v1/state`);
        state = await r.json();
        if (state!.steps[1].attempts >= 2) break;
      } catch { /* not listening yet */ }
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(state, "agent endpoint never answered");
    assert.equal(state.steps[0].status, "done");
    assert.ok(["running", "waiting"].includes(state.steps[1].status));
    assert.equal(state.steps[1].error?.code, "agent.kms_unavailable");
    assert.equal(state.steps[2].status, "pending");
    const rz = await fetch(`${base}/readyz`);
    assert.equal(rz.status, 503);
    await rz.body?.cancel();
    const hz = await fetch(`${base}/healthz`);
    assert.equal(hz.status, 200);
    await hz.body?.cancel();
    child.kill("SIGTERM");
    const status = await child.status;
    await collecting;
    const stderr = await errText;
    assert.notEqual(status.code, 0, "a stopped boot is not a success");
    const recs = lines.map((l) => JSON.parse(l));
    assert.ok(recs.some((r) => r.step === "release" && r.outcome === "retry"), stderr);
    assert.ok(
      recs.some((r) => r.step === "config" && r.outcome === "done" && r.nodeName === "svc-node"),
    );
    const img = await Deno.readFile(disk);
    assert.ok(img.every((b) => b === 0), "disk untouched");
  } finally {
    await sw.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
