import assert from "node:assert/strict";
import { fromHex, toBase64 } from "../../../lib/bytes.ts";
import { X509CrlGenerator } from "../../../lib/x509.ts";
import { verifyTdxQuote } from "../../../attestation/tdx/verify.ts";
import { type TdxPolicyInput, TdxPolicySchema } from "../../../attestation/tdx/policy.ts";
import type { TdxCollateral } from "../../../attestation/tdx/evidence.ts";
import {
  FAKE_BODY,
  FAKE_NOW,
  type FakePki,
  fakeQeIdentity,
  fakeTcbInfo,
  makeFakePki,
  makeFakeQuote,
  signCollateral,
} from "./_fake_tdx.ts";

const checks = (r: { failures: { check: string }[] }) => r.failures.map((f) => f.check);

const pki: FakePki = await makeFakePki();

async function collateral(tcb = fakeTcbInfo()): Promise<TdxCollateral> {
  return {
    tcbInfo: await signCollateral(pki, "tcbInfo", tcb),
    tcbInfoIssuerChain: pki.tcbChainPem,
    qeIdentity: await signCollateral(pki, "enclaveIdentity", fakeQeIdentity()),
    qeIdentityIssuerChain: pki.tcbChainPem,
  };
}

const fullPolicy: TdxPolicyInput = {
  mrTd: [FAKE_BODY.mrTd],
  rtmr0: [FAKE_BODY.rtmrs[0]],
  rtmr1: [FAKE_BODY.rtmrs[1]],
  rtmr2: [FAKE_BODY.rtmrs[2]],
  rtmr3: [FAKE_BODY.rtmrs[3]],
  mrSeam: [FAKE_BODY.mrSeam],
  tdAttributes: [FAKE_BODY.tdAttributes],
  xfam: [FAKE_BODY.xfam],
  minTeeTcbSvn: FAKE_BODY.teeTcbSvn,
};

Deno.test("a quote whose PCK chains to a non-Intel root is refused by the pinned root", async () => {
  const q = await makeFakeQuote(pki);
  const r = await verifyTdxQuote(q, { now: FAKE_NOW });
  assert.equal(r.ok, false);
  assert.ok(checks(r).includes("pck.chain.root"), JSON.stringify(r.failures));
  // The same quote is sound under its own root: the refusal is the trust anchor alone.
  const own = await verifyTdxQuote(q, { now: FAKE_NOW, rootDer: pki.rootDer });
  assert.deepEqual(own.failures, []);
});

Deno.test("fake PKI: full evidence with collateral and policy holds", async () => {
  const r = await verifyTdxQuote(await makeFakeQuote(pki), {
    now: FAKE_NOW,
    rootDer: pki.rootDer,
    collateral: await collateral(),
    policy: TdxPolicySchema.parse(fullPolicy),
    expectedReportData: fromHex(FAKE_BODY.reportData),
  });
  assert.deepEqual(r.failures, []);
  assert.equal(r.quote?.tcbStatus, "UpToDate");
  assert.equal(r.quote?.qeTcbStatus, "UpToDate");
});

Deno.test("fake PKI: each re-signed field outside the policy is refused with its check", async (t) => {
  const policy = TdxPolicySchema.parse(fullPolicy);
  const coll = await collateral();
  const cases: [string, Record<string, unknown>, string][] = [
    ["MRTD", { mrTd: "12".repeat(48) }, "policy.mr_td"],
    ["RTMR0", { rtmrs: ["99".repeat(48), ...FAKE_BODY.rtmrs.slice(1)] }, "policy.rtmr0"],
    [
      "RTMR1",
      { rtmrs: [FAKE_BODY.rtmrs[0], "99".repeat(48), ...FAKE_BODY.rtmrs.slice(2)] },
      "policy.rtmr1",
    ],
    [
      "RTMR2",
      { rtmrs: [...FAKE_BODY.rtmrs.slice(0, 2), "99".repeat(48), FAKE_BODY.rtmrs[3]] },
      "policy.rtmr2",
    ],
    ["RTMR3", { rtmrs: [...FAKE_BODY.rtmrs.slice(0, 3), "99".repeat(48)] }, "policy.rtmr3"],
    ["MRSEAM", { mrSeam: "ab".repeat(48) }, "policy.mr_seam"],
    ["XFAM", { xfam: "e718060000000000" }, "policy.xfam"],
    ["REPORTDATA", { reportData: "34".repeat(64) }, "report_data"],
  ];
  for (const [name, over, want] of cases) {
    await t.step(`${name} → ${want}`, async () => {
      const r = await verifyTdxQuote(await makeFakeQuote(pki, over), {
        now: FAKE_NOW,
        rootDer: pki.rootDer,
        collateral: coll,
        policy,
        expectedReportData: fromHex(FAKE_BODY.reportData),
      });
      assert.deepEqual(checks(r), [want]);
    });
  }
  await t.step("debug TD → policy.td_attributes.debug (and the allowlist)", async () => {
    const r = await verifyTdxQuote(await makeFakeQuote(pki, { tdAttributes: "0100001000000000" }), {
      now: FAKE_NOW,
      rootDer: pki.rootDer,
      collateral: coll,
      policy,
    });
    assert.deepEqual(checks(r).sort(), ["policy.td_attributes", "policy.td_attributes.debug"]);
    const loose = TdxPolicySchema.parse({ ...fullPolicy, tdAttributes: undefined });
    const r2 = await verifyTdxQuote(
      await makeFakeQuote(pki, { tdAttributes: "0100001000000000" }),
      {
        now: FAKE_NOW,
        rootDer: pki.rootDer,
        collateral: coll,
        policy: loose,
      },
    );
    assert.deepEqual(checks(r2), ["policy.td_attributes.debug"]);
  });
  await t.step(
    "TEE_TCB_SVN below the minimum → policy.min_tee_tcb_svn and TCB OutOfDate",
    async () => {
      const r = await verifyTdxQuote(
        await makeFakeQuote(pki, { teeTcbSvn: "04010600000000000000000000000000" }),
        { now: FAKE_NOW, rootDer: pki.rootDer, collateral: coll, policy },
      );
      assert.equal(r.quote?.tcbStatus, "OutOfDate");
      assert.deepEqual(checks(r).sort(), ["policy.min_tee_tcb_svn", "policy.tcb_status"]);
    },
  );
  await t.step("TDX module SVN below TDX_01's UpToDate level → OutOfDate", async () => {
    const r = await verifyTdxQuote(
      await makeFakeQuote(pki, { teeTcbSvn: "03010700000000000000000000000000" }),
      { now: FAKE_NOW, rootDer: pki.rootDer, collateral: coll },
    );
    assert.equal(r.quote?.tcbStatus, "OutOfDate");
    assert.deepEqual(r.failures, []); // without a policy the status is reported, not judged
  });
});

Deno.test("fake PKI: accepted TCB statuses come from the policy", async () => {
  const coll = await collateral(fakeTcbInfo({ upToDateStatus: "SWHardeningNeeded" }));
  const q = await makeFakeQuote(pki);
  const base = { now: FAKE_NOW, rootDer: pki.rootDer, collateral: coll };
  const strict = await verifyTdxQuote(q, { ...base, policy: TdxPolicySchema.parse({}) });
  assert.equal(strict.quote?.tcbStatus, "SWHardeningNeeded");
  assert.deepEqual(checks(strict), ["policy.tcb_status"]);
  const lenient = await verifyTdxQuote(q, {
    ...base,
    policy: TdxPolicySchema.parse({ acceptedTcbStatuses: ["UpToDate", "SWHardeningNeeded"] }),
  });
  assert.deepEqual(lenient.failures, []);
  const missing = await verifyTdxQuote(q, {
    now: FAKE_NOW,
    rootDer: pki.rootDer,
    policy: TdxPolicySchema.parse({}),
  });
  assert.deepEqual(checks(missing), ["policy.tcb_status"]);
});

Deno.test("fake PKI: TCB info and QE identity mismatches are named", async (t) => {
  const q = await makeFakeQuote(pki);
  const opts = { now: FAKE_NOW, rootDer: pki.rootDer };
  await t.step("FMSPC", async () => {
    const r = await verifyTdxQuote(q, {
      ...opts,
      collateral: await collateral(fakeTcbInfo({ fmspc: "90c06f000000" })),
    });
    assert.deepEqual(checks(r), ["tcb_info.fmspc"]);
  });
  await t.step("PCK TCB below every level", async () => {
    const tcb = fakeTcbInfo({ sgx: [9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9] }).replace(
      /"sgxtcbcomponents":\[(\{"svn":0\},?){16}\],"pcesvn":0/,
      '"sgxtcbcomponents":[' + Array(16).fill('{"svn":8}').join(",") + '],"pcesvn":0',
    );
    const r = await verifyTdxQuote(q, { ...opts, collateral: await collateral(tcb) });
    assert.deepEqual(checks(r), ["tcb.level"]);
  });
  await t.step("QE identity of another signer", async () => {
    const c = await collateral();
    c.qeIdentity = await signCollateral(
      pki,
      "enclaveIdentity",
      fakeQeIdentity().replace("DC9E", "DC9F"),
    );
    const r = await verifyTdxQuote(q, { ...opts, collateral: c });
    assert.deepEqual(checks(r), ["qe_identity.mrsigner"]);
  });
  await t.step("collateral signed by the wrong key", async () => {
    const c = await collateral();
    const other = await makeFakePki();
    c.tcbInfo = await signCollateral(other, "tcbInfo", fakeTcbInfo());
    const r = await verifyTdxQuote(q, { ...opts, collateral: c });
    assert.deepEqual(checks(r), ["tcb_info.signature"]);
  });
  await t.step("collateral past nextUpdate", async () => {
    const r = await verifyTdxQuote(q, {
      now: new Date("2025-07-02T00:00:00Z"),
      rootDer: pki.rootDer,
      collateral: await collateral(),
    });
    assert.deepEqual(checks(r).sort(), ["qe_identity.freshness", "tcb_info.freshness"]);
  });
});

Deno.test("fake PKI: a PCK certificate on the CRL is refused as pck.revoked", async () => {
  const crl = await X509CrlGenerator.create({
    issuer: pki.platformCa.subject,
    thisUpdate: new Date("2025-01-01T00:00:00Z"),
    nextUpdate: new Date("2026-01-01T00:00:00Z"),
    entries: [{
      serialNumber: pki.leaf.serialNumber,
      revocationDate: new Date("2025-02-01T00:00:00Z"),
    }],
    signingAlgorithm: { name: "ECDSA", hash: "SHA-256" },
    signingKey: pki.caKey.privateKey,
  });
  const q = await makeFakeQuote(pki);
  const r = await verifyTdxQuote(q, {
    now: FAKE_NOW,
    rootDer: pki.rootDer,
    collateral: { pckCrl: toBase64(new Uint8Array(crl.rawData)) },
  });
  assert.deepEqual(checks(r), ["pck.revoked"]);
  const empty = await X509CrlGenerator.create({
    issuer: pki.platformCa.subject,
    thisUpdate: new Date("2025-01-01T00:00:00Z"),
    nextUpdate: new Date("2026-01-01T00:00:00Z"),
    signingAlgorithm: { name: "ECDSA", hash: "SHA-256" },
    signingKey: pki.caKey.privateKey,
  });
  const ok = await verifyTdxQuote(q, {
    now: FAKE_NOW,
    rootDer: pki.rootDer,
    collateral: { pckCrl: toBase64(new Uint8Array(empty.rawData)) },
  });
  assert.deepEqual(ok.failures, []);
});
