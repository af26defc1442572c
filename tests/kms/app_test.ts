/**
 * Hostile input on every endpoint of the HTTP app (in process, with app.request()): truncated,
 * oversized, wrong-type and random bodies get a 4xx JSON answer, floods get 429, and the app
 * keeps answering afterwards.
 */
import assert from "node:assert/strict";
import { toBase64 } from "../../lib/bytes.ts";
import { Logger, setLogSink } from "../../lib/log.ts";
import { MemoryAuditLog } from "../../kms/audit.ts";
import { FileStore } from "../../kms/file_store.ts";
import { parseKmsPolicy, PolicyHolder } from "../../kms/policy.ts";
import { buildKms, initKms } from "../../kms/server.ts";
import { MAX_BODY_BYTES, MAX_FINISH_BODY_BYTES } from "../../kms/protocol.ts";

async function makeApp(rate = { ratePerSecond: 1000, burst: 100000 }) {
  const dir = await Deno.makeTempDir({ prefix: "confidant-kms-app-" });
  const kek = crypto.getRandomValues(new Uint8Array(32));
  const store = new FileStore(dir);
  await initKms(store, kek, "app");
  const kms = await buildKms({
    store,
    kek,
    policy: PolicyHolder.fixed(parseKmsPolicy('{"pcrs":{}}')),
    tlsFingerprint: "ab".repeat(32),
    audit: new MemoryAuditLog(),
    log: new Logger("t"),
    rateLimit: rate,
  });
  return { kms, cleanup: () => Deno.remove(dir, { recursive: true }) };
}

const env = { remoteAddr: { hostname: "10.0.0.9" } };

Deno.test("every endpoint answers hostile bodies with 4xx JSON and stays up", async () => {
  const logs: string[] = [];
  setLogSink((l) => logs.push(l));
  const { kms, cleanup } = await makeApp();
  try {
    const rnd = (n: number) => crypto.getRandomValues(new Uint8Array(n));
    const bodies: (BodyInit | null)[] = [
      null,
      "",
      "{",
      '{"session":',
      "[]",
      "null",
      "42",
      '"x"',
      "{}",
      '{"akPublic":5}',
      JSON.stringify({ ekCertificate: "!!!", akPublic: "AAAA" }),
      JSON.stringify({
        session: 1,
        activatedSecret: [],
        evidence: "x",
        ephemeralPublicKey: {},
        request: 3,
      }),
      JSON.stringify({ ekCertificate: toBase64(rnd(500)), akPublic: toBase64(rnd(100)), extra: 1 }),
      rnd(3000),
      new Uint8Array([0xff, 0xfe, 0x7b]),
    ];
    for (const path of ["/v1/attest/begin", "/v1/attest/finish"]) {
      for (const body of bodies) {
        const r = await kms.app.request(path, { method: "POST", body }, env);
        assert.ok(
          r.status >= 400 && r.status < 500,
          `${path} ${String(body).slice(0, 30)} -> ${r.status}`,
        );
        const j = await r.json();
        assert.equal(typeof j.error, "string");
      }
      // begin stays small; finish takes a document of up to MAX_DOCUMENT_BYTES.
      const limit = path.endsWith("/begin") ? MAX_BODY_BYTES : MAX_FINISH_BODY_BYTES;
      const big = new Uint8Array(limit + 1).fill(0x20);
      const r413 = await kms.app.request(path, { method: "POST", body: big }, env);
      assert.equal(r413.status, 413);
      await r413.json();
      // 100 KiB (a TDX document with collateral is that large) is read at finish only.
      const mid = await kms.app.request(path, {
        method: "POST",
        body: new Uint8Array(100 * 1024).fill(0x20),
      }, env);
      assert.equal(mid.status, path.endsWith("/begin") ? 413 : 400);
      await mid.json();
      // A streamed body without content-length is cut off while reading.
      const stream = new ReadableStream({
        pull(c) {
          c.enqueue(new Uint8Array(16 * 1024));
        },
      });
      const rs = await kms.app.request(
        path,
        { method: "POST", body: stream, duplex: "half" } as RequestInit,
        env,
      );
      assert.equal(rs.status, 413);
      const get = await kms.app.request(path, {}, env);
      assert.equal(get.status, 405);
    }
    // A well-formed finish with a random session is a 403 naming the check.
    const fin = await kms.app.request("/v1/attest/finish", {
      method: "POST",
      body: JSON.stringify({
        session: "AAAA",
        activatedSecret: "AAAA",
        evidence: { version: 1, variant: "tpm" },
        ephemeralPublicKey: toBase64(rnd(32)),
        request: {
          role: "worker",
          disk: { uuid: "11111111-2222-4333-8444-555555555555" },
          nodeName: "n",
        },
      }),
    }, env);
    assert.equal(fin.status, 403);
    assert.deepEqual((await fin.json()).checks, ["session.malformed"]);
    // `{"pcrs":{}}` trusts no AK: begin is refused, naming it.
    const beg = await kms.app.request("/v1/attest/begin", {
      method: "POST",
      body: JSON.stringify({ ekCertificate: toBase64(rnd(300)), akPublic: toBase64(rnd(60)) }),
    }, env);
    assert.equal(beg.status, 403);
    assert.deepEqual((await beg.json()).checks, ["ak.untrusted"]);
    assert.equal((await kms.app.request("/nope", {}, env)).status, 404);
    assert.equal((await kms.app.request("/healthz", {}, env)).status, 200);
    assert.equal((await kms.app.request("/readyz", {}, env)).status, 200);
    const m = await kms.app.request("/metrics", {}, env);
    assert.match(
      await m.text(),
      /confidant_kms_requests_total\{endpoint="\/v1\/attest\/begin",status="400"\}/,
    );
    assert.ok(!logs.some((l) => l.includes('"level":"error"')), logs.join("\n"));
  } finally {
    await cleanup();
  }
});

Deno.test("a flood from one source gets 429 with Retry-After; another source is still served", async () => {
  const { kms, cleanup } = await makeApp({ ratePerSecond: 1, burst: 3 });
  try {
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) {
      const r = await kms.app.request("/v1/attest/begin", { method: "POST", body: "{}" }, env);
      statuses.push(r.status);
      if (r.status === 429) assert.ok(Number(r.headers.get("retry-after")) >= 1);
      await r.body?.cancel();
    }
    assert.deepEqual(statuses.slice(0, 3), [400, 400, 400]);
    assert.ok(statuses.slice(3).every((s) => s === 429), statuses.join(","));
    const other = await kms.app.request("/v1/attest/begin", { method: "POST", body: "{}" }, {
      remoteAddr: { hostname: "10.0.0.10" },
    });
    assert.equal(other.status, 400);
  } finally {
    await cleanup();
  }
});

Deno.test("PolicyHolder keeps the previous policy when a reload does not validate", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const p = `${dir}/policy.yaml`;
    await Deno.writeTextFile(p, "pcrs: {}\nroles: [worker]\n");
    const reasons: string[] = [];
    const h = await PolicyHolder.open(p, { rejected: (r) => reasons.push(r) });
    assert.deepEqual(h.current.policy.roles, ["worker"]);
    assert.equal(h.current.policy.join, undefined);
    await Deno.writeTextFile(p, "pcrs: {}\nroles: [admin]\n");
    assert.equal(await h.check(), "rejected");
    assert.match(reasons[0], /roles/);
    assert.deepEqual(h.current.policy.roles, ["worker"]);
    await Deno.writeTextFile(p, "pcrs: {}\nroles: [worker, control-plane]\nextra: 1\n");
    assert.equal(await h.check(), "rejected");
    assert.match(reasons[1], /unknown key "extra"/);
    await Deno.writeTextFile(p, '{"pcrs":{},"roles":["worker","control-plane"]}');
    assert.equal(await h.check(), "reloaded");
    assert.deepEqual(h.current.policy.roles, ["worker", "control-plane"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
