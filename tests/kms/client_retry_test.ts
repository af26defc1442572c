/**
 * kms/client.ts postRetryingOverload(): a 429 is waited out with the KMS's hint (or
 * Retry-After seconds with jitter) and retried; other answers are returned at once; the
 * deadline returns the last 429.
 */
import assert from "node:assert/strict";
import { type KmsHttpResponse, postRetryingOverload } from "../../kms/client.ts";

function scripted(answers: KmsHttpResponse[]) {
  const calls: string[] = [];
  return {
    calls,
    transport: {
      post(path: string) {
        calls.push(path);
        return Promise.resolve(answers.shift()!);
      },
    },
  };
}

Deno.test("postRetryingOverload() waits the KMS's retryAfterMs and retries until 200", async () => {
  const waits: number[] = [];
  const s = scripted([
    { status: 429, body: { error: "overloaded", retryAfterMs: 150 }, retryAfterMs: 150 },
    { status: 429, body: { error: "overloaded", retryAfterMs: 320 }, retryAfterMs: 320 },
    { status: 200, body: { ok: true } },
  ]);
  const r = await postRetryingOverload(s.transport, "/x", {}, {
    sleep: (ms) => (waits.push(ms), Promise.resolve()),
  });
  assert.equal(r.status, 200);
  assert.deepEqual(waits, [150, 320]);
  assert.equal(s.calls.length, 3);
});

Deno.test("postRetryingOverload() jitters Retry-After seconds and returns a 403 at once", async () => {
  const waits: number[] = [];
  const s = scripted([
    { status: 429, body: { error: "too many" }, retryAfterMs: 2000 },
    { status: 403, body: { error: "refused", checks: ["pcr.7"] } },
  ]);
  const r = await postRetryingOverload(s.transport, "/x", {}, {
    sleep: (ms) => (waits.push(ms), Promise.resolve()),
    random: () => 0.25,
  });
  assert.equal(r.status, 403);
  assert.deepEqual(waits, [2000 * 0.75]);
});

Deno.test("postRetryingOverload() gives the last 429 back when the deadline would pass", async () => {
  const s = scripted([
    { status: 429, body: { error: "overloaded", retryAfterMs: 5000 }, retryAfterMs: 5000 },
  ]);
  const r = await postRetryingOverload(s.transport, "/x", {}, {
    deadlineMs: 1000,
    sleep: () => Promise.reject(new Error("must not wait")),
  });
  assert.equal(r.status, 429);
});
