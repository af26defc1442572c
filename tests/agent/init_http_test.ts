/**
 * The init routes' body handling (the reviewer's PoC: a 200 MiB streamed body was buffered
 * whole, a Content-Length of "abc" was taken as 0) and their 500 answers (internal error
 * text went to the caller). The bootstrap is a stand-in recording what reached it.
 */
import assert from "node:assert/strict";
import { initRoutes } from "../../agent/init_http.ts";
import type { NodeBootstrap } from "../../agent/bootstrap.ts";
import { MAX_INIT_BODY_BYTES } from "../../cluster/protocol.ts";
import { Logger, setLogSink } from "../../lib/log.ts";

function standIn(fail?: Error) {
  const calls: string[] = [];
  const bootstrap = {
    begin: (purpose: string) => {
      calls.push(purpose);
      return fail ? Promise.reject(fail) : Promise.resolve({ session: "0".repeat(32) });
    },
  } as unknown as NodeBootstrap;
  return { calls, bootstrap };
}

Deno.test("init routes stop reading a streamed body past the cap (413) and never call the node", async () => {
  const { calls, bootstrap } = standIn();
  const app = initRoutes(bootstrap);
  let sent = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(c) {
      if (sent >= 64 * 1024 * 1024) return c.close();
      sent += 64 * 1024;
      c.enqueue(new Uint8Array(64 * 1024).fill(0x20));
    },
  });
  const r = await app.request("/v1/init/begin", {
    method: "POST",
    body,
    duplex: "half",
  } as RequestInit);
  assert.equal(r.status, 413);
  await r.body?.cancel();
  assert.ok(sent <= MAX_INIT_BODY_BYTES + 2 * 64 * 1024, `read ${sent} bytes`);
  assert.deepEqual(calls, []);
});

Deno.test("init routes refuse a non-numeric or oversized Content-Length with 400/413", async () => {
  const { calls, bootstrap } = standIn();
  const app = initRoutes(bootstrap);
  const req = (len: string) =>
    new Request("http://node/v1/init/begin", {
      method: "POST",
      body: '{"purpose":"init"}',
      headers: { "content-length": len },
    });
  const bad = await app.fetch(req("abc"));
  assert.equal(bad.status, 400);
  assert.equal((await bad.json()).error, "bad_request");
  const big = await app.fetch(req(String(MAX_INIT_BODY_BYTES + 1)));
  assert.equal(big.status, 413);
  await big.body?.cancel();
  assert.deepEqual(calls, []);
  // invalid UTF-8 is not JSON
  const r = await app.request("/v1/init/begin", {
    method: "POST",
    body: new Uint8Array([0xff, 0xfe]),
  });
  assert.equal(r.status, 400);
  await r.body?.cancel();
  const ok = await app.request("/v1/init/begin", { method: "POST", body: '{"purpose":"init"}' });
  assert.equal(ok.status, 200);
  assert.deepEqual(calls, ["init"]);
});

Deno.test("init routes give up on a body that does not arrive before the deadline (408)", async () => {
  const { calls, bootstrap } = standIn();
  const app = initRoutes(bootstrap, undefined, { bodyTimeoutMs: 50 });
  // a client that sends one byte and then nothing
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      c.enqueue(new Uint8Array([0x7b]));
    },
  });
  const r = await app.request("/v1/init/begin", {
    method: "POST",
    body,
    duplex: "half",
  } as RequestInit);
  assert.equal(r.status, 408);
  await r.body?.cancel();
  assert.deepEqual(calls, []);
});

Deno.test("an init route's 500 names no internal detail; the detail is logged", async () => {
  const logged: string[] = [];
  setLogSink((l) => logged.push(l));
  try {
    const { bootstrap } = standIn(new Error("open /dev/mapper/state: device busy (pid 4242)"));
    const app = initRoutes(bootstrap, new Logger("agent"));
    const r = await app.request("/v1/init/begin", { method: "POST", body: '{"purpose":"init"}' });
    assert.equal(r.status, 500);
    const text = await r.text();
    assert.ok(!text.includes("/dev/mapper"), text);
    assert.deepEqual(JSON.parse(text), {
      error: "failed",
      message: "the node could not complete the request",
    });
    assert.ok(logged.some((l) => l.includes("/dev/mapper/state")));
  } finally {
    setLogSink(() => {});
  }
});
