import assert from "node:assert/strict";
import { createAgentApp } from "../../agent/http.ts";
import { StateStore } from "../../agent/state.ts";
import { ConfidantError } from "../../lib/errors.ts";
import { toHex } from "../../lib/bytes.ts";
import { WG_PUB } from "./_fakes.ts";

const SECRET_TOKEN = "abcdef.0123456789abcdef";

function readyState(): StateStore {
  const s = new StateStore(() => Date.parse("2026-11-25T12:00:00Z"));
  for (
    const name of ["config", "release", "disk", "mount", "wireguard", "join", "encryption"] as const
  ) {
    s.attemptStarted(name);
    s.finished(name, "done", { note: name });
  }
  s.attemptStarted("cilium-config");
  s.finished("cilium-config", "skipped", {});
  s.setEncryption({ enabled: true, evidence: ["node-annotation"], publicKey: WG_PUB });
  s.markReady();
  return s;
}

const attestor = {
  nonces: [] as string[],
  document(nonce: Uint8Array) {
    this.nonces.push(toHex(nonce));
    return Promise.resolve({ variant: "tpm", nonce: toHex(nonce) });
  },
};

Deno.test("createAgentApp() answers /healthz and /readyz by the state", async () => {
  const booting = createAgentApp({ state: new StateStore() });
  assert.equal((await booting.request("/healthz")).status, 200);
  const r = await booting.request("/readyz");
  assert.equal(r.status, 503);
  const body = await r.json();
  assert.equal(body.ready, false);
  assert.equal(body.pending.length, 8);
  const ready = createAgentApp({ state: readyState() });
  const r2 = await ready.request("/readyz");
  assert.equal(r2.status, 200);
  assert.deepEqual(await r2.json(), { ready: true, phase: "ready", encryption: true });
});

Deno.test("createAgentApp() /readyz is 503 when steps are done but encryption is off", async () => {
  const s = readyState();
  s.setEncryption({ enabled: false, evidence: [] });
  const r = await createAgentApp({ state: s }).request("/readyz");
  assert.equal(r.status, 503);
  assert.equal((await r.json()).encryption, false);
});

Deno.test("createAgentApp() /v1/state returns the state machine", async () => {
  const s = readyState();
  const body = await (await createAgentApp({ state: s }).request("/v1/state")).json();
  assert.deepEqual(body, JSON.parse(JSON.stringify(s.snapshot())));
  assert.equal(body.steps.length, 8);
});

Deno.test("createAgentApp() /v1/attestation binds the nonce and refuses bad input with 400", async () => {
  const app = createAgentApp({ state: new StateStore(), attestor });
  const nonce = "00112233445566778899aabbccddeeff";
  const ok = await app.request(`/v1/attestation?nonce=${nonce}`);
  assert.equal(ok.status, 200);
  assert.deepEqual(await ok.json(), { variant: "tpm", nonce });
  for (
    const q of [
      "",
      "?nonce=",
      "?nonce=zz00112233445566",
      "?nonce=0011223",
      "?nonce=0011",
      `?nonce=${"00".repeat(65)}`,
      `?nonce=${nonce}&nonce=${nonce}`,
      `?nonce=${nonce}&x=1`,
    ]
  ) {
    const r = await app.request(`/v1/attestation${q}`);
    assert.equal(r.status, 400, q);
    assert.equal(r.headers.get("content-type"), "application/json");
    assert.equal((await r.json()).error, "bad_request");
  }
  assert.deepEqual(attestor.nonces, [nonce]);
  const none = createAgentApp({ state: new StateStore() });
  assert.equal((await none.request(`/v1/attestation?nonce=${nonce}`)).status, 503);
});

Deno.test("createAgentApp() hides error messages of a failing attestor", async () => {
  const app = createAgentApp({
    state: new StateStore(),
    attestor: {
      document: () => Promise.reject(new ConfidantError("tpm.response", `token ${SECRET_TOKEN}`)),
    },
  });
  const r = await app.request(`/v1/attestation?nonce=${"00".repeat(16)}`);
  assert.equal(r.status, 502);
  const text = await r.text();
  assert.equal(text, JSON.stringify({ error: "tpm.response" }));
});

Deno.test("createAgentApp() /metrics is Prometheus text", async () => {
  const r = await createAgentApp({
    state: readyState(),
    now: () => Date.parse("2026-11-25T12:01:00Z"),
  })
    .request("/metrics");
  assert.equal(r.status, 200);
  assert.match(r.headers.get("content-type")!, /^text\/plain; version=0\.0\.4/);
  const text = await r.text();
  assert.match(text, /^confidant_agent_ready 1$/m);
  assert.match(text, /^confidant_agent_step_status\{step="join",status="done"\} 1$/m);
  assert.match(text, /^confidant_agent_step_attempts_total\{step="release"\} 1$/m);
  assert.match(text, /^confidant_agent_uptime_seconds 60$/m);
  for (const line of text.trim().split("\n")) {
    assert.match(line, /^(# (HELP|TYPE) \S+ .+|[a-z_]+(\{[^}]*\})? -?[0-9.e+]+)$/, line);
  }
});

Deno.test("createAgentApp() never returns a secret on any route, after a failed boot too", async () => {
  const s = new StateStore();
  s.attemptStarted("config");
  s.finished("config", "done", {});
  s.attemptStarted("join");
  // messages reaching the state come from scrubbed sources; check the app adds none
  s.failed("join", { code: "agent.kubeadm_failed", message: "kubeadm join exited with 1" });
  const app = createAgentApp({ state: s, attestor });
  for (
    const path of [
      "/healthz",
      "/readyz",
      "/v1/state",
      "/metrics",
      `/v1/attestation?nonce=${"ab".repeat(16)}`,
      "/nope",
    ]
  ) {
    const text = await (await app.request(path)).text();
    assert.ok(!text.includes("0123456789abcdef"), path);
    assert.ok(!/diskKey|certificateKey|"token"/.test(text), path);
  }
  assert.equal((await app.request("/nope")).status, 404);
});
