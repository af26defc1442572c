import assert from "node:assert/strict";
import { fromHex, toBase64 } from "../../../lib/bytes.ts";
import { parseTdxQuote } from "../../../attestation/tdx/quote.ts";
import { verifyTdxEvidence, verifyTdxQuote } from "../../../attestation/tdx/verify.ts";
import { TdxPolicySchema } from "../../../attestation/tdx/policy.ts";
import { teeReportData } from "../../../attestation/tee_binding.ts";
import { EXPECTED, INSIDE_ALL, insideLeaf, vector } from "./_vectors.ts";

const SPR = "go-tdx-guest/tdx_prod_quote_SPR_E4.dat";
const checks = (r: { failures: { check: string }[] }) => r.failures.map((f) => f.check);

Deno.test("verifyTdxQuote() accepts every real quote with its real PCK chain", async () => {
  for (const [name, e] of Object.entries(EXPECTED)) {
    for (const now of [INSIDE_ALL, insideLeaf(e)]) {
      const r = await verifyTdxQuote(vector(name), { now });
      assert.deepEqual(r.failures, [], `${name} at ${now.toISOString()}`);
      assert.equal(r.ok, true);
      assert.equal(r.quote?.mrTd, e.mrTd);
      assert.equal(r.quote?.reportData, e.reportData);
    }
  }
});

Deno.test("verifyTdxQuote() follows go-tdx-guest's clock cases", async () => {
  const ok = await verifyTdxQuote(vector(SPR), { now: new Date("2023-07-01T01:00:00Z") });
  assert.deepEqual(ok.failures, []);
  const v5 = await verifyTdxQuote(vector("go-tdx-guest/quote_v5_sample.dat"), {
    now: new Date("2026-02-03T01:00:00Z"),
  });
  assert.deepEqual(v5.failures, []);
  const late = await verifyTdxQuote(vector(SPR), { now: new Date("2053-07-01T01:00:00Z") });
  assert.equal(late.ok, false);
  assert.deepEqual([...new Set(checks(late))], ["pck.chain.validity"]);
  assert.match(late.failures[0].message, /2029-09-20T13:20:31/);
  // The v5 sample's PCK leaf is not yet valid at go-tdx-guest's usual clock.
  const early = await verifyTdxQuote(vector("go-tdx-guest/quote_v5_sample.dat"), {
    now: new Date("2023-07-01T01:00:00Z"),
  });
  assert.deepEqual([...new Set(checks(early))], ["pck.chain.validity"]);
});

Deno.test("verifyTdxQuote() refuses go-tdx-guest's byte mutations with the named check", async (t) => {
  const base = vector(SPR);
  const cases: [number, string][] = [
    [0x00, "quote.parse"],
    [0x278, "quote.parse"],
    [0x1343, "quote.parse"], // in the last PEM armour line: the chain no longer parses
    [0x1329, "pck.chain"], // root certificate
    [0xF5F, "pck.chain"], // intermediate certificate
    [0xB77, "pck.chain"], // PCK leaf certificate
    [0x1E, "quote.signature"],
    [0x3C, "quote.signature"],
  ];
  for (const [at, want] of cases) {
    await t.step(`byte 0x${at.toString(16)} = 0x32 → ${want}`, async () => {
      const b = base.slice();
      b[at] = at === 0 ? 3 : at === 0x278 ? 0x10 : 0x32;
      const r = await verifyTdxQuote(b, { now: INSIDE_ALL });
      assert.equal(r.ok, false);
      assert.ok(checks(r).some((c) => c.startsWith(want)), `${at}: ${JSON.stringify(r.failures)}`);
    });
  }
});

Deno.test("verifyTdxQuote() refuses the synthetic teekit quote signed by Intel's TEST PKI", async () => {
  const r = await verifyTdxQuote(vector("teekit/tdx-synthetic/quote.dat"), {
    now: new Date("2025-09-01T00:00:00Z"),
  });
  assert.equal(r.ok, false);
  assert.ok(checks(r).includes("pck.chain.root"), JSON.stringify(r.failures));
});

/** Offsets of quote fields (v4) for in-place mutation. */
const OFF = {
  teeTcbSvn: 48,
  mrSeam: 48 + 16,
  tdAttributes: 48 + 120,
  xfam: 48 + 128,
  mrTd: 48 + 136,
  rtmr0: 48 + 328,
  rtmr1: 48 + 376,
  rtmr2: 48 + 424,
  rtmr3: 48 + 472,
  reportData: 48 + 520,
  signature: 636,
  attestationKey: 636 + 64,
  qeReport: 636 + 128 + 6,
  qeReportSignature: 636 + 128 + 6 + 384,
};

Deno.test("verifyTdxQuote() refuses each flipped field of a real quote with the right check", async (t) => {
  const base = vector(SPR);
  const cases: [keyof typeof OFF, string][] = [
    ["teeTcbSvn", "quote.signature"],
    ["mrSeam", "quote.signature"],
    ["tdAttributes", "quote.signature"],
    ["xfam", "quote.signature"],
    ["mrTd", "quote.signature"],
    ["rtmr0", "quote.signature"],
    ["rtmr1", "quote.signature"],
    ["rtmr2", "quote.signature"],
    ["rtmr3", "quote.signature"],
    ["reportData", "quote.signature"],
    ["signature", "quote.signature"],
    ["attestationKey", "qe_report.binding"],
    ["qeReport", "qe_report.signature"],
    ["qeReportSignature", "qe_report.signature"],
  ];
  for (const [field, want] of cases) {
    await t.step(`${field} → ${want}`, async () => {
      const b = base.slice();
      b[OFF[field] + 5] ^= 0x01;
      const r = await verifyTdxQuote(b, { now: INSIDE_ALL });
      assert.equal(r.ok, false);
      assert.ok(checks(r).includes(want), JSON.stringify(r.failures));
      if (field !== "attestationKey") {
        assert.deepEqual(checks(r), [want], `${field} names only ${want}`);
      }
    });
  }
  await t.step("attestation key also breaks the quote signature", async () => {
    const b = base.slice();
    b[OFF.attestationKey + 5] ^= 0x01;
    const r = await verifyTdxQuote(b, { now: INSIDE_ALL });
    assert.ok(checks(r).includes("quote.signature"));
  });
});

Deno.test("verifyTdxQuote() refuses a flipped signature in each certificate of the PCK chain", async (t) => {
  const base = vector(SPR);
  const text = new TextDecoder("latin1").decode(base);
  const ends: number[] = [];
  for (
    let i = text.indexOf("-----END CERTIFICATE-----");
    i >= 0;
    i = text.indexOf("-----END CERTIFICATE-----", i + 1)
  ) {
    ends.push(i);
  }
  assert.equal(ends.length, 3);
  const names = ["PCK leaf", "PCK Platform CA", "root"];
  for (let k = 0; k < 3; k++) {
    await t.step(names[k], async () => {
      const b = base.slice();
      // A base64 character a few places before the armour encodes the signature's last bytes.
      let at = ends[k] - 6;
      while (!/[A-Za-z0-9+/]/.test(text[at])) at--;
      b[at] = text[at] === "A" ? 0x42 : 0x41;
      const r = await verifyTdxQuote(b, { now: INSIDE_ALL });
      assert.equal(r.ok, false);
      assert.ok(
        r.failures.some((f) =>
          f.check === "pck.chain.signature" && f.message.includes(`certificate ${k}`)
        ),
        JSON.stringify(r.failures),
      );
    });
  }
});

Deno.test("verifyTdxQuote() checks the expected report data", async () => {
  const e = EXPECTED[SPR];
  const good = await verifyTdxQuote(vector(SPR), {
    now: INSIDE_ALL,
    expectedReportData: fromHex(e.reportData),
  });
  assert.equal(good.ok, true);
  const wrong = fromHex(e.reportData);
  wrong[63] ^= 1;
  const bad = await verifyTdxQuote(vector(SPR), { now: INSIDE_ALL, expectedReportData: wrong });
  assert.deepEqual(checks(bad), ["report_data"]);
});

Deno.test("verifyTdxQuote() with a policy judges measurements of a real quote", async () => {
  const e = EXPECTED[SPR];
  const policy = TdxPolicySchema.parse({
    mrTd: [e.mrTd],
    rtmr0: [e.rtmr0],
    rtmr3: [e.rtmr3],
    mrSeam: [e.mrSeam],
    xfam: [e.xfam],
    tdAttributes: [e.tdAttributes],
    minTeeTcbSvn: e.teeTcbSvn,
    requireCollateral: false,
  });
  const ok = await verifyTdxQuote(vector(SPR), { now: INSIDE_ALL, policy });
  assert.deepEqual(ok.failures, []);
  const strict = TdxPolicySchema.parse({ mrTd: ["00".repeat(48)], minTeeTcbSvn: "ff".repeat(16) });
  const bad = await verifyTdxQuote(vector(SPR), { now: INSIDE_ALL, policy: strict });
  assert.deepEqual(checks(bad).sort(), [
    "policy.min_tee_tcb_svn",
    "policy.mr_td",
    "policy.tcb_status",
  ]);
});

Deno.test("verifyTdxEvidence() validates the evidence section and binds the TEE report data", async () => {
  const bad = await verifyTdxEvidence({ quote: "not base64!" }, undefined, { now: INSIDE_ALL });
  assert.deepEqual(checks(bad), ["evidence.schema"]);
  const extra = await verifyTdxEvidence({ quote: "", foo: 1 }, undefined, { now: INSIDE_ALL });
  assert.deepEqual(checks(extra), ["evidence.schema"]);
  const quote = toBase64(vector(SPR));
  const ok = await verifyTdxEvidence({ quote }, undefined, { now: INSIDE_ALL });
  assert.equal(ok.ok, true);
  const binding = await teeReportData({
    nonce: new Uint8Array(32),
    userData: new Uint8Array(),
    akPublic: new Uint8Array([1, 2, 3]),
  });
  const unbound = await verifyTdxEvidence({ quote }, undefined, {
    now: INSIDE_ALL,
    expectedReportData: binding,
  });
  assert.deepEqual(checks(unbound), ["report_data"]);
});

Deno.test("verifyTdxQuote() reports malformed input as quote.parse, never throws", async () => {
  for (const b of [new Uint8Array(), new Uint8Array(10), vector(SPR).subarray(0, 700)]) {
    const r = await verifyTdxQuote(b, { now: INSIDE_ALL });
    assert.deepEqual(checks(r), ["quote.parse"]);
    assert.equal(r.quote, undefined);
  }
  assert.equal(parseTdxQuote(vector(SPR)).length, 4935);
});
