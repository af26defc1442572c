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

Deno.test("parsePolicy() takes variants with their snp/tdx sections (default tpm only)", () => {
  assert.deepEqual(parsePolicy({ ak: { pinned: [PIN] } }).variants, ["tpm"]);
  const snp = parsePolicy({
    ak: { pinned: [PIN] },
    variants: ["sev-snp"],
    snp: { measurements: ["AB".repeat(48)], products: ["Genoa"] },
  });
  assert.equal(snp.snp?.allowDebug, false, "the SNP section gets its own defaults");
  assert.deepEqual(snp.snp?.measurements, ["ab".repeat(48)]);
  const tdx = parsePolicy({ variants: ["tpm", "tdx"], tdx: {} });
  assert.deepEqual(tdx.tdx?.acceptedTcbStatuses, ["UpToDate"]);
  assert.equal(tdx.tdx?.requireCollateral, true);
});

Deno.test("parsePolicy() refuses a TEE variant without its section and the reverse", async (t) => {
  const cases: [string, unknown, RegExp][] = [
    ["sev-snp without snp", { variants: ["sev-snp"] }, /snp: variants accepts "sev-snp"/],
    ["tdx without tdx", { variants: ["tpm", "tdx"] }, /tdx: variants accepts "tdx"/],
    ["snp without sev-snp", { snp: {} }, /snp section is set but "sev-snp" is not accepted/],
    ["tdx without tdx variant", { variants: ["sev-snp"], snp: {}, tdx: {} }, /"tdx" is not/],
    ["a fixed TDX REPORTDATA", {
      variants: ["tdx"],
      tdx: { reportData: "00".repeat(64) },
    }, /tdx\.reportData/],
    ["unknown variant", { variants: ["sgx"] }, /variants/],
    ["empty variants", { variants: [] }, /at least one variant/],
    ["unknown key inside snp", { variants: ["sev-snp"], snp: { measurement: [] } }, /snp/],
    ["unknown key inside tdx", { variants: ["tdx"], tdx: { mrtd: [] } }, /tdx/],
  ];
  for (const [name, value, re] of cases) {
    await t.step(name, () => {
      assert.throws(() => parsePolicy(value), (e) => e instanceof ParseError && re.test(e.message));
    });
  }
  await t.step("an extended schema gets the same rule", () => {
    const kms = policyBaseSchema.extend({ roles: z.array(z.string()).default([]) });
    assert.throws(() => parsePolicy({ variants: ["sev-snp"] }, kms), /no snp section/);
  });
});
