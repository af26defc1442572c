import assert from "node:assert/strict";
import { fitPerGiB, stepsText } from "../../bench/guest_unlock.ts";
import { parseProcStatus, stepTimings } from "../../bench/agent_boot.ts";

const MiB = 1 << 20;

Deno.test("fitPerGiB() returns the slope per GiB and the fixed intercept", () => {
  const f = fitPerGiB([{ bytes: 256 * MiB, ms: 3000 + 10_000 / 4 }, {
    bytes: 512 * MiB,
    ms: 3000 + 10_000 / 2,
  }]);
  assert.ok(Math.abs(f.msPerGiB - 10_000) < 1e-6);
  assert.ok(Math.abs(f.fixedMs - 3000) < 1e-6);
});

Deno.test("fitPerGiB() refuses one size or two equal sizes", () => {
  assert.throws(() => fitPerGiB([{ bytes: MiB, ms: 1 }]), /at least two/);
  assert.throws(() => fitPerGiB([{ bytes: MiB, ms: 1 }, { bytes: MiB, ms: 2 }]), /different/);
});

Deno.test("stepsText() lists steps in order", () => {
  assert.equal(stepsText({ "format-header": 12, wipe: 340 }), "format-header 12, wipe 340");
  assert.equal(stepsText(undefined), "");
});

Deno.test("parseProcStatus() reads VmRSS and VmHWM and refuses a status without them", () => {
  const text = "Name:\tdeno\nVmHWM:\t  151000 kB\nVmRSS:\t  148000 kB\nThreads:\t9\n";
  assert.deepEqual(parseProcStatus(text), { rssKiB: 148000, hwmKiB: 151000 });
  assert.throws(() => parseProcStatus("Name:\tdeno\n"), /VmRSS/);
});

Deno.test("stepTimings() keeps finished and failed steps with their durations, nothing else", () => {
  const recs = [
    { msg: "agent starting" },
    { msg: "step started", step: "config", attempt: 1 },
    { msg: "step finished", step: "config", outcome: "done", durationMs: 3 },
    { msg: "step attempt failed, retrying", step: "release", outcome: "retry", durationMs: 9 },
    { msg: "step finished", step: "release", outcome: "done", durationMs: 250 },
    { msg: "step failed", step: "disk", outcome: "failed", durationMs: 90 },
    { msg: "node unlocked", step: "unlocked", outcome: "unlocked" },
  ];
  assert.deepEqual(stepTimings(recs), [
    { step: "config", outcome: "done", ms: 3 },
    { step: "release", outcome: "done", ms: 250 },
    { step: "disk", outcome: "failed", ms: 90 },
  ]);
});
