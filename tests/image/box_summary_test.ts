import assert from "node:assert/strict";
import { formatBoxSummary, nodeSucceeded, parseNodeConsole } from "../../image/box_summary.ts";

const P4 = "94062ADE251143E83F99D24AFB9DEA514E3282D91CD81A915D53A1301C2C583B";
const P11 = "E50D4E4EF605567B250290CDA0163955D362CC9019C2BDF854F573EBB1ABB261";
const P12 = "0".repeat(64);
const AK = "000b" + "69".repeat(32);
const line = (o: Record<string, unknown>) =>
  JSON.stringify({ time: "2026-11-25T14:18:46.861Z", level: "info", component: "agent", ...o });

const UNLOCKED = [
  "BdsDxe: starting Boot0001",
  `confidant-node: pcr-sha256 4 ${P4}`,
  `confidant-node: pcr-sha256 11 ${P11}\r`,
  `confidant-node: pcr-sha256 12 ${P12}`,
  line({
    msg: "step finished",
    step: "config",
    outcome: "done",
    attempt: 1,
    durationMs: 63,
    nodeName: "confidant-node-0",
  }),
  line({
    msg: "attestation identity",
    step: "release",
    akName: AK,
    ekCertificateSha256: "a7".repeat(32),
    ekIssuer: "CN=swtpm-localca",
  }),
  line({
    msg: "step attempt failed, retrying",
    step: "release",
    outcome: "retry",
    attempt: 1,
    code: "agent.kms_unavailable",
  }),
  line({
    msg: "step finished",
    step: "release",
    outcome: "done",
    attempt: 2,
    durationMs: 2400,
    diskUuid: "5d8e0f8e-2f7a-4c54-9d7e-0a1b2c3d4e5f",
    kms: "c-60cddf1877a8/cba27e2326c6817e",
  }),
  line({
    msg: "step finished",
    step: "disk",
    outcome: "done",
    attempt: 1,
    durationMs: 5100,
    diskUuid: "5d8e0f8e-2f7a-4c54-9d7e-0a1b2c3d4e5f",
    formatted: true,
  }),
  line({
    msg: "step finished",
    step: "mount",
    outcome: "done",
    attempt: 1,
    durationMs: 1200,
    mountPoint: "/var/lib/confidant",
  }),
  line({
    msg: "step finished",
    step: "join",
    outcome: "skipped",
    attempt: 1,
    durationMs: 0,
    reason: "no Kubernetes in this box (kubeadm.join: false)",
  }),
  line({ msg: "node unlocked", step: "unlocked", outcome: "unlocked" }),
].join("\n") + "\n";

Deno.test("parseNodeConsole() reads PCRs, identity, KMS release, disk and step times", () => {
  const r = parseNodeConsole(UNLOCKED);
  assert.deepEqual(r.pcrs, { "4": P4.toLowerCase(), "11": P11.toLowerCase(), "12": P12 });
  assert.equal(r.identity?.akName, AK);
  assert.equal(r.nodeName, "confidant-node-0");
  assert.equal(r.releaseRetries, 1);
  assert.deepEqual(r.kms, { decision: "released", by: "c-60cddf1877a8/cba27e2326c6817e" });
  assert.deepEqual(r.disk, {
    uuid: "5d8e0f8e-2f7a-4c54-9d7e-0a1b2c3d4e5f",
    formatted: true,
    mountPoint: "/var/lib/confidant",
  });
  assert.equal(r.final, "unlocked");
  assert.ok(nodeSucceeded(r));
  assert.deepEqual(r.steps.map((s) => [s.step, s.outcome, s.durationMs]), [
    ["config", "done", 63],
    ["release", "done", 2400],
    ["disk", "done", 5100],
    ["mount", "done", 1200],
    ["join", "skipped", 0],
  ]);
});

Deno.test("parseNodeConsole() reports a refusal with its checks and ignores hostile lines", () => {
  const text = [
    `confidant-node: pcr-sha256 11 ${P11}`,
    '{"time":"x","component":"agent","msg":"step failed"',
    line({ msg: "step failed", step: "release", code: 7, checks: "pcr.11" }),
    line({
      msg: "step failed",
      step: "release",
      outcome: "failed",
      attempt: 1,
      durationMs: 2526,
      code: "agent.kms_refused",
      error: "refused",
      checks: ["pcr.4", "pcr.11"],
    }),
    JSON.stringify({ time: "t", component: "kms", msg: "node unlocked" }),
    "{" + "x".repeat(70_000),
  ].join("\n");
  const r = parseNodeConsole(text);
  assert.equal(r.final, "failed");
  assert.deepEqual(r.kms, { decision: "refused", checks: ["pcr.4", "pcr.11"] });
  assert.equal(r.failure?.code, "agent.kms_refused");
  assert.equal(nodeSucceeded(r), false);
});

Deno.test("formatBoxSummary() names identity, PCRs against image measure, decision, disk, times", () => {
  const r = parseNodeConsole(UNLOCKED);
  const text = formatBoxSummary({
    kmsUrl: "https://127.0.0.1:18443",
    kmsFingerprint: "cb".repeat(32),
    uki: "/x/confidant-node.efi",
    ukiSha256: "31".repeat(32),
    ukiCached: true,
    expected: { "4": P4.toLowerCase(), "11": "ff".repeat(32), "12": P12 },
    hostTimes: [["kms start", 760]],
    nodes: [{ label: "node0", report: r, hostTimes: [["boot to agent", 43_100]] }],
    totalMs: 74_300,
  });
  assert.match(text, /1 of 1 node\(s\) unlocked/);
  assert.match(text, /node0 \(confidant-node-0\): UNLOCKED/);
  assert.match(text, new RegExp(`AK name ${AK}`));
  assert.match(text, new RegExp(`PCR 4 +${P4.toLowerCase()}  = image measure`));
  assert.match(text, /PCR 11 +e50d\S+ {2}≠ image measure ffff/);
  assert.match(text, /released the disk key .* after 1 retries/);
  assert.match(
    text,
    /formatted \(first boot\), LUKS2 5d8e0f8e-\S+, mounted at \/var\/lib\/confidant/,
  );
  assert.match(text, /skipped +join: no Kubernetes in this box/);
  assert.match(text, /time +boot to agent 43\.1 s · config 0\.06 s · release 2\.40 s/);
});
