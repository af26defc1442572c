import assert from "node:assert/strict";
import { z } from "zod";
import { parsePolicy, parsePolicyJson, policyBaseSchema } from "../../attestation/policy.ts";
import { ParseError } from "../../lib/errors.ts";

const PIN = "sha256:" + "ab".repeat(32);

Deno.test("parsePolicy() accepts both AK modes and fills defaults", () => {
  const p = parsePolicy({ pcrs: { "7": { expected: ["00".repeat(32)] } }, ak: { pinned: [PIN] } });
  assert.equal(p.pcrs["7"].warnOnly, false);
  const q = parsePolicy({ ak: { ekCaCertificates: ["-----BEGIN CERTIFICATE-----\n..."] } });
  assert.deepEqual(q.pcrs, {});
  assert.equal(parsePolicy({}).ak, undefined);
});

Deno.test("parsePolicy() rejects unknown keys naming them, and malformed values", async (t) => {
  const cases: [string, unknown, RegExp][] = [
    ["top-level", { pcrz: {} }, /unknown key "pcrz"/],
    [
      "in a PCR rule",
      { pcrs: { "1": { expected: ["00".repeat(32)], warn: true } } },
      /unknown key "warn"/,
    ],
    ["in ak", { ak: { pinned: [PIN], extra: 1 } }, /unknown key "extra"/],
    ["bad pin", { ak: { pinned: ["ab".repeat(32)] } }, /sha256:/],
    ["bad PCR index", { pcrs: { "24": { expected: ["00".repeat(32)] } } }, /0\.\.23/],
    ["short PCR value", { pcrs: { "1": { expected: ["00"] } } }, /32 bytes/],
    ["empty expected", { pcrs: { "1": { expected: [] } } }, /at least one/],
    ["ak with both modes", { ak: { pinned: [PIN], ekCaCertificates: ["x"] } }, /unknown key/],
  ];
  for (const [name, value, re] of cases) {
    await t.step(name, () => {
      assert.throws(() => parsePolicy(value), (e) => e instanceof ParseError && re.test(e.message));
    });
  }
  assert.throws(() => parsePolicyJson("{"), ParseError);
});

Deno.test("policyBaseSchema can be extended by another consumer", () => {
  const kms = policyBaseSchema.extend({ kms: z.strictObject({ keyTtlSeconds: z.number() }) });
  const p = parsePolicy({ ak: { pinned: [PIN] }, kms: { keyTtlSeconds: 60 } }, kms);
  assert.equal(p.kms.keyTtlSeconds, 60);
  assert.throws(() => parsePolicy({ kms: { keyTtlSeconds: 60, x: 1 } }, kms), /unknown key "x"/);
});
