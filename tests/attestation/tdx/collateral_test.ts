import assert from "node:assert/strict";
import { toBase64 } from "../../../lib/bytes.ts";
import { ParseError } from "../../../lib/errors.ts";
import { parseQeIdentity, parseTcbInfo } from "../../../attestation/tdx/collateral.ts";
import { topLevelRawMembers } from "../../../attestation/tdx/_json_raw.ts";
import { type TdxCollateral } from "../../../attestation/tdx/evidence.ts";
import { verifyTdxQuote } from "../../../attestation/tdx/verify.ts";
import { vector, vectorText } from "./_vectors.ts";

const G = "go-tdx-guest/";
const SPR = G + "tdx_prod_quote_SPR_E4.dat";
const checks = (r: { failures: { check: string }[] }) => r.failures.map((f) => f.check);
const uniq = (xs: string[]) => [...new Set(xs)].sort();

function goCollateral(): TdxCollateral {
  return {
    tcbInfo: vectorText(G + "sample_tcbInfo_response"),
    qeIdentity: vectorText(G + "sample_qeIdentity_response"),
    tcbInfoIssuerChain: vectorText(G + "DERIVED_tcbInfoIssuerChain.pem"),
    qeIdentityIssuerChain: vectorText(G + "DERIVED_qeIdentityIssuerChain.pem"),
    pckCrl: toBase64(vector(G + "pckcrl")),
    rootCaCrl: toBase64(vector(G + "rootcrl.der")),
  };
}

Deno.test("topLevelRawMembers() returns the exact member text and refuses duplicates", () => {
  const m = topLevelRawMembers('{ "a" : {"x": [1, "}\\"]"] } , "b":"s","c":-1.5e3}', "doc");
  assert.equal(m.get("a"), '{"x": [1, "}\\"]"] }');
  assert.equal(m.get("b"), '"s"');
  assert.equal(m.get("c"), "-1.5e3");
  assert.throws(() => topLevelRawMembers('{"a":1,"a":2}', "doc"), ParseError);
  assert.throws(() => topLevelRawMembers('{"a":1', "doc"), ParseError);
  assert.throws(() => topLevelRawMembers("[1]", "doc"), ParseError);
});

Deno.test("parseTcbInfo()/parseQeIdentity() read Intel's documents and refuse malformed ones", () => {
  const t = parseTcbInfo(vectorText(G + "sample_tcbInfo_response"));
  assert.equal(t.body.fmspc, "50806f000000");
  assert.equal(t.signature.length, 64);
  const q = parseQeIdentity(vectorText(G + "sample_qeIdentity_response"));
  assert.equal(q.body.id, "TD_QE");
  assert.throws(() => parseTcbInfo('{"tcbInfo":{},"signature":"00"}'), ParseError);
  assert.throws(() => parseTcbInfo("{}"), ParseError);
  assert.throws(() => parseQeIdentity(vectorText(G + "sample_tcbInfo_response")), ParseError);
});

Deno.test("verifyTdxQuote() checks go-tdx-guest's collateral at 2023-07-01", async () => {
  const r = await verifyTdxQuote(vector(SPR), {
    now: new Date("2023-07-01T01:00:00Z"),
    collateral: goCollateral(),
  });
  // Every signature, chain, CRL and date holds; the unmodified TCB info has no level that the
  // quote's TEE_TCB_SVN (byte 2 = 4 < 5) reaches, as INDEX.md §5.1 computes.
  assert.deepEqual(checks(r), ["tcb.level"]);
  assert.equal(r.quote?.qeTcbStatus, "UpToDate");
  assert.equal(r.quote?.fmspc, "50806f000000");
});

Deno.test("verifyTdxQuote() refuses go-tdx-guest's collateral at 2053 by date", async () => {
  const r = await verifyTdxQuote(vector(SPR), {
    now: new Date("2053-07-01T01:00:00Z"),
    collateral: goCollateral(),
  });
  assert.deepEqual(uniq(checks(r)), [
    "pck.chain.validity",
    "pck_crl.freshness",
    "qe_identity.freshness",
    "qe_identity.issuer_chain.validity",
    "root_crl.freshness",
    "tcb.level",
    "tcb_info.freshness",
    "tcb_info.issuer_chain.validity",
  ]);
});

Deno.test("verifyTdxQuote() refuses tampered or mismatched collateral with the named check", async (t) => {
  const now = new Date("2023-07-01T01:00:00Z");
  await t.step("a changed byte inside the signed tcbInfo", async () => {
    const c = goCollateral();
    c.tcbInfo = c.tcbInfo!.replace('"tcbEvaluationDataNumber":15', '"tcbEvaluationDataNumber":16');
    const r = await verifyTdxQuote(vector(SPR), { now, collateral: c });
    assert.ok(checks(r).includes("tcb_info.signature"), JSON.stringify(r.failures));
  });
  await t.step("a changed byte inside the signed enclaveIdentity", async () => {
    const c = goCollateral();
    c.qeIdentity = c.qeIdentity!.replace('"isvsvn":4', '"isvsvn":3');
    const r = await verifyTdxQuote(vector(SPR), { now, collateral: c });
    assert.deepEqual(uniq(checks(r)), ["qe_identity.signature", "tcb.level"]);
  });
  await t.step("re-serialized TCB info whitespace is not what Intel signed", async () => {
    const c = goCollateral();
    c.tcbInfo = c.tcbInfo!.replace('"id":"TDX"', '"id": "TDX"');
    const r = await verifyTdxQuote(vector(SPR), { now, collateral: c });
    assert.ok(checks(r).includes("tcb_info.signature"));
  });
  await t.step("the TCB info of another FMSPC", async () => {
    const c = goCollateral();
    c.tcbInfo = vectorText(G + "sample_tcbinfo_response_v5");
    const r = await verifyTdxQuote(vector(SPR), { now, collateral: c });
    assert.ok(checks(r).includes("tcb_info.fmspc"), JSON.stringify(r.failures));
  });
  await t.step("TCB info without its issuer chain", async () => {
    const c = goCollateral();
    delete c.tcbInfoIssuerChain;
    const r = await verifyTdxQuote(vector(SPR), { now, collateral: c });
    assert.ok(checks(r).includes("tcb_info.issuer_chain.missing"));
  });
  await t.step("an issuer chain that is the PCK CRL chain, not the TCB Signing chain", async () => {
    const c = goCollateral();
    c.tcbInfoIssuerChain = vectorText(G + "DERIVED_pckCrlIssuerChain.pem");
    const r = await verifyTdxQuote(vector(SPR), { now, collateral: c });
    assert.ok(checks(r).includes("tcb_info.signature"));
  });
  await t.step("a PCK CRL swapped for the root CRL", async () => {
    const c = goCollateral();
    c.pckCrl = c.rootCaCrl;
    const r = await verifyTdxQuote(vector(SPR), { now, collateral: c });
    assert.ok(checks(r).includes("pck_crl.signature"));
  });
  await t.step("the synthetic Intel TEST PKI collateral", async () => {
    const c = goCollateral();
    c.tcbInfo = vectorText("teekit/tdx-synthetic/tcbInfo.json");
    c.tcbInfoIssuerChain = vectorText("teekit/tdx-synthetic/tcbSignChain.pem");
    const r = await verifyTdxQuote(vector(SPR), { now, collateral: c });
    assert.ok(checks(r).includes("tcb_info.issuer_chain.root"), JSON.stringify(r.failures));
  });
});

Deno.test("verifyTdxQuote() evaluates the v5 sample against its TDX 1.5 TCB info", async () => {
  const r = await verifyTdxQuote(vector(G + "quote_v5_sample.dat"), {
    now: new Date("2026-02-03T01:00:00Z"),
    collateral: {
      tcbInfo: vectorText(G + "sample_tcbinfo_response_v5"),
      tcbInfoIssuerChain: vectorText(G + "DERIVED_tcbInfoIssuerChain.pem"),
    },
  });
  // The only TCB Signing certificate in the collection expired on 2025-05-21 (INDEX.md §1).
  assert.deepEqual(checks(r), ["tcb_info.issuer_chain.validity"]);
  assert.equal(r.quote?.tcbStatus, "UpToDate");
});

Deno.test("verifyTdxQuote() computes trustee tdx_quote_6 as OutOfDate (pcesvn 11 < 13)", async () => {
  const r = await verifyTdxQuote(vector("trustee/tdx_quote_6.dat"), {
    now: new Date("2025-11-01T00:00:00Z"),
    collateral: {
      tcbInfo: vectorText("trustee/tcbInfo.json"),
      tcbInfoIssuerChain: vectorText(G + "DERIVED_tcbInfoIssuerChain.pem"),
      qeIdentity: vectorText("trustee/enclaveIdentity.json"),
      qeIdentityIssuerChain: vectorText(G + "DERIVED_qeIdentityIssuerChain.pem"),
    },
  });
  assert.equal(r.quote?.tcbStatus, "OutOfDate");
  assert.deepEqual(uniq(checks(r)), [
    "qe_identity.issuer_chain.validity",
    "tcb_info.issuer_chain.validity",
  ]);
});

/**
 * teekit tcb.test.ts at 2025-09-29T23:00Z (INDEX.md §5.2). Six quotes get teekit's status with
 * Intel's algorithm. Three differ because teekit compares all 16 TEE_TCB_SVN bytes with the
 * header's PCE SVN and never reads the PCK certificate's SGX TCB; Intel's TCB info v3 rules
 * compare the PCK certificate's CPU SVN components and PCE SVN, and skip TEE_TCB_SVN bytes 0-1
 * (judged by tdxModuleIdentities) when byte 1 is set:
 *  - tdx-v5-trustee: PCK components 1,1,..,3 are below every level's 2,2,..,5: no level.
 *  - tdx-v4-moemahhouk: PCK component 8 is 3, every level needs 5: no level.
 *  - tdx-v4-azure: PCK and TEE_TCB_SVN[2..] reach level 0 (UpToDate) and module SVN 4 is
 *    TDX_01 UpToDate; teekit's OutOfDate comes from comparing module SVN 4 with level byte 0 (5).
 */
const TEEKIT_TABLE: [string, string | undefined][] = [
  ["teekit/DERIVED_tdx-v4-gcp.bin", "UpToDate"],
  ["teekit/DERIVED_tdx-v4-gcp-no-nonce.bin", "UpToDate"],
  ["teekit/tdx-v4-phala.dat", "UpToDate"],
  ["teekit/tdx-v4-edgeless.dat", "OutOfDate"],
  ["trustee/tdx_quote_4.dat", "OutOfDate"],
  ["teekit/tdx-v4-zkdcap.dat", "OutOfDate"],
  ["trustee/tdx_quote_5.dat", undefined],
  ["teekit/tdx-v4-moemahhouk.dat", undefined],
  ["teekit/DERIVED_tdx-v4-azure.bin", "UpToDate"],
];

Deno.test("verifyTdxQuote() computes the TCB status of teekit's quotes at 2025-09-29T23:00Z", async (t) => {
  const now = new Date("2025-09-29T23:00:00Z");
  for (const [name, want] of TEEKIT_TABLE) {
    await t.step(`${name} → ${want ?? "no TCB level"}`, async () => {
      const fmspc = (await verifyTdxQuote(vector(name), { now })).quote!.fmspc!;
      const r = await verifyTdxQuote(vector(name), {
        now,
        collateral: {
          tcbInfo: vectorText(`teekit/tcbinfos/tcbInfo-tdx-${fmspc}.json`),
          tcbInfoIssuerChain: vectorText(G + "DERIVED_tcbInfoIssuerChain.pem"),
        },
      });
      assert.equal(r.quote?.tcbStatus, want);
      const expected = ["tcb_info.issuer_chain.validity"];
      if (!want) expected.push("tcb.level");
      assert.deepEqual(checks(r), expected);
    });
  }
});
