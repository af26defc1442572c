/**
 * kms/rate_limit.ts AdmissionController with an injected clock: it admits while the estimated
 * wait (in flight × time between completions) is under the target, sheds with a jittered
 * hint above it, lets `finish` (weight 2) wait longer, and grows its hint under overload.
 */
import assert from "node:assert/strict";
import { type Admission, AdmissionController } from "../../kms/rate_limit.ts";

function controller(target = 20) {
  let now = 0;
  const c = new AdmissionController({
    targetWaitMs: target,
    minInFlight: 2,
    maxInFlight: 1000,
    clock: () => now,
    random: () => 0.5,
  });
  return { c, advance: (ms: number) => (now += ms) };
}

const admitted = (a: Admission) => {
  assert.ok(a.admitted, "admitted");
  return a.release;
};

Deno.test("AdmissionController sheds when in flight × service time exceeds the target", () => {
  const { c, advance } = controller(15);
  // Learn a service time of ~10 ms per completion while busy.
  for (let i = 0; i < 60; i++) {
    const r = admitted(c.enter());
    advance(10);
    r();
  }
  assert.ok(c.estimatedWaitMs === 0);
  const held = [admitted(c.enter()), admitted(c.enter())];
  // Two in flight × ~10 ms = ~20 ms: a third request would wait longer than 15 ms.
  const shed = c.enter();
  assert.equal(shed.admitted, false);
  if (!shed.admitted) {
    assert.ok(shed.retryAfterMs > 0);
    assert.ok(shed.retryAfterSeconds >= 1);
  }
  // A finish (weight 2) may wait up to 30 ms: admitted.
  held.push(admitted(c.enter(2)));
  for (const r of held) r();
  assert.equal(c.current, 0);
});

Deno.test("AdmissionController never sheds below minInFlight and always above maxInFlight", () => {
  let now = 0;
  const c = new AdmissionController({
    targetWaitMs: 1,
    minInFlight: 3,
    maxInFlight: 5,
    clock: () => now,
  });
  const r = admitted(c.enter());
  now += 1000; // a very slow request: gap 1 s
  r();
  const held = [admitted(c.enter()), admitted(c.enter()), admitted(c.enter())];
  assert.equal(c.enter().admitted, false, "estimated wait over target above minInFlight");
  for (const x of held) x();
  const big = new AdmissionController({ targetWaitMs: 1e9, maxInFlight: 2, clock: () => now });
  admitted(big.enter());
  admitted(big.enter());
  assert.equal(big.enter().admitted, false, "hard cap");
});

Deno.test("AdmissionController's retry hint grows while more are shed than served", () => {
  const { c, advance } = controller(1);
  for (let i = 0; i < 30; i++) {
    const r = admitted(c.enter());
    advance(5);
    r();
  }
  const held = [admitted(c.enter()), admitted(c.enter())];
  const before = c.retryHintMs;
  for (let w = 0; w < 4; w++) {
    for (let i = 0; i < 10; i++) assert.equal(c.enter().admitted, false);
    advance(300);
  }
  c.enter();
  assert.ok(c.retryHintMs > before, `${c.retryHintMs} > ${before}`);
  for (const r of held) r();
});
