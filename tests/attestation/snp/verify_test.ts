import assert from "node:assert/strict";
import { fromHex, toHex } from "../../../lib/bytes.ts";
import { ParseError } from "../../../lib/errors.ts";
import {
  encodeSnpEvidence,
  parseSnpPolicy,
  type SnpEvidenceBytes,
  type SnpVerification,
  verifySnpEvidence,
  verifySnpReport,
} from "../../../attestation/snp/mod.ts";
import { certFile, evidenceOf, pemFile, testdata, VECTORS } from "./_vectors.ts";

const checks = (r: SnpVerification) => r.failures.map((f) => f.check);
const at = (s: string) => ({ now: new Date(s) });

Deno.test("verifySnpEvidence() accepts every real hardware report with its real chain", async (t) => {
  for (const v of VECTORS) {
    await t.step(v.name, async () => {
      const ev = encodeSnpEvidence(evidenceOf(v));
      const r = await verifySnpEvidence(ev, undefined, at(v.at));
      assert.deepEqual(r.failures, [], JSON.stringify(r.failures));
      assert.equal(r.ok, true);
      assert.equal(r.report.version, v.version);
      assert.equal(r.report.product, v.product);
      assert.equal(r.report.signingKey, v.vlek ? "vlek" : "vcek");
    });
  }
});

Deno.test("verifySnpReport() reports the fields upstream documents for the real vectors", async () => {
  const gsg = await verifySnpReport(evidenceOf(VECTORS[0]), undefined, at(VECTORS[0].at));
  assert.equal(
    gsg.report.measurement,
    "b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01",
  );
  assert.equal(gsg.report.reportData, "0102030405" + "00".repeat(59));
  assert.deepEqual(gsg.report.reportedTcb, {
    raw: "0200000000000544",
    bootloader: 2,
    tee: 0,
    snp: 5,
    microcode: 68,
  });
  assert.equal(gsg.report.policy.debug, true);
  assert.equal(gsg.report.policy.raw, "0xb0000");
  const vlek = await verifySnpReport(evidenceOf(VECTORS[3]), undefined, at(VECTORS[3].at));
  assert.equal(vlek.report.vmpl, 1);
  assert.deepEqual(vlek.report.cpuid, { family: 0x19, model: 1, stepping: 1 });
  assert.equal(vlek.report.signer?.cspId, "CN=cc-us-east-2.amazonaws.com");
  const gcp = await verifySnpReport(evidenceOf(VECTORS[8]), undefined, at(VECTORS[8].at));
  assert.ok(gcp.report.launchMitVector !== undefined, "v5 reports expose the mitigation vectors");
});

Deno.test("verifySnpReport() refuses the upstream negative cases", async (t) => {
  const byName = (n: string) => VECTORS.find((v) => v.name === n)!;
  await t.step("virtee: report byte 21 bit 0x80 flipped", async () => {
    const v = byName("virtee Milan v2");
    const ev = evidenceOf(v);
    ev.report[21] ^= 0x80;
    const r = await verifySnpReport(ev, undefined, at(v.at));
    assert.deepEqual(checks(r), ["report.signature"]);
  });
  await t.step("trustee: report byte 42 + 1", async () => {
    for (const name of ["trustee Milan v2", "trustee AWS Milan v3 VLEK"]) {
      const v = byName(name);
      const ev = evidenceOf(v);
      ev.report[42] = (ev.report[42] + 1) & 0xff;
      const r = await verifySnpReport(ev, undefined, at(v.at));
      assert.deepEqual(checks(r), ["report.signature"], name);
    }
  });
  await t.step("trustee: report byte 384 (reported TCB) + 1", async () => {
    for (
      const [name, role] of [["trustee Milan v2", "vcek"], ["trustee AWS Milan v3 VLEK", "vlek"]]
    ) {
      const v = byName(name);
      const ev = evidenceOf(v);
      ev.report[384] = (ev.report[384] + 1) & 0xff;
      const r = await verifySnpReport(ev, undefined, at(v.at));
      assert.ok(checks(r).includes(`${role}.tcb`), JSON.stringify(r.failures));
      assert.ok(checks(r).includes("report.signature"));
    }
  });
  await t.step("virtee: VCEK DER byte 40 ^= 0xFF; trustee: VCEK DER byte 42 + 1", async () => {
    for (
      const [name, idx, f] of [
        ["virtee Milan v2", 40, (x: number) => x ^ 0xff],
        ["trustee Milan v2", 42, (x: number) => (x + 1) & 0xff],
      ] as const
    ) {
      const v = byName(name);
      const ev = evidenceOf(v);
      ev.vcek = ev.vcek!.slice();
      ev.vcek[idx] = f(ev.vcek[idx]);
      const r = await verifySnpReport(ev, undefined, at(v.at));
      assert.equal(r.ok, false);
      assert.ok(checks(r).some((c) => c.startsWith("vcek.")), JSON.stringify(r.failures));
    }
  });
  await t.step("trustee: the invalid legacy and new VCEKs", async () => {
    const v = byName("trustee Milan v2");
    for (const bad of ["trustee_vcek_invalid_legacy.der", "trustee_vcek_invalid_new.der"]) {
      const ev = { ...evidenceOf(v), vcek: testdata(bad) };
      const r = await verifySnpReport(ev, undefined, at(v.at));
      assert.ok(checks(r).includes("vcek.signature"), `${bad}: ${JSON.stringify(r.failures)}`);
    }
  });
  await t.step("constellation: a VLEK report its VLEK did not sign", async () => {
    const [asvk, ark] = pemFile("ask_ark_milan_vlek.pem");
    const ev: SnpEvidenceBytes = {
      report: testdata("constellation_bad_vlek_report.DERIVED.bin"),
      vlek: certFile("constellation_bad_vlek.pem"),
      asvk,
      ark,
    };
    const r = await verifySnpReport(ev, undefined, at("2024-01-01T00:00:00Z"));
    assert.ok(checks(r).includes("report.signature"), JSON.stringify(r.failures));
  });
});

Deno.test("verifySnpReport() checks certificate validity against the given clock", async (t) => {
  const v = VECTORS[3]; // VLEK valid 2024-12-10T22:14:21Z .. 2025-12-10T22:14:21Z
  await t.step("inside the window", async () => {
    for (const s of ["2024-12-10T22:14:21Z", "2025-12-10T22:14:21Z"]) {
      assert.equal((await verifySnpReport(evidenceOf(v), undefined, at(s))).ok, true, s);
    }
  });
  await t.step("outside the window", async () => {
    for (const s of ["2024-12-10T22:14:20Z", "2025-12-10T22:14:22Z"]) {
      const r = await verifySnpReport(evidenceOf(v), undefined, at(s));
      assert.deepEqual(checks(r), ["vlek.validity"], s);
    }
  });
  await t.step("an ARK before its notBefore", async () => {
    const r = await verifySnpReport(evidenceOf(VECTORS[0]), undefined, at("2019-01-01T00:00:00Z"));
    for (const c of ["ark.validity", "ask.validity", "vcek.validity"]) {
      assert.ok(checks(r).includes(c), c);
    }
  });
});

Deno.test("verifySnpReport() establishes the product from the chain, never one fixed generation", async (t) => {
  await t.step("a v2 Milan report with the Genoa chain is refused", async () => {
    const [ask, ark] = pemFile("ask_ark_genoa.pem");
    const r = await verifySnpReport(
      { ...evidenceOf(VECTORS[0]), ask, ark },
      undefined,
      at(VECTORS[0].at),
    );
    assert.ok(checks(r).includes("vcek.signature"));
    assert.ok(checks(r).includes("product.mismatch"), JSON.stringify(r.failures));
  });
  await t.step("a v3 Genoa report with the Milan chain is refused", async () => {
    const v = VECTORS[4];
    const [ask, ark] = pemFile("ask_ark_milan.pem");
    const r = await verifySnpReport({ ...evidenceOf(v), ask, ark }, undefined, at(v.at));
    assert.ok(checks(r).includes("product.mismatch"));
  });
  await t.step("the Turin VCEK chains to the Turin ARK", async () => {
    // There is no real Turin report; check the chain half through a Milan report's failure
    // list: only report-level checks fail, the VCEK→ASK→ARK signatures hold.
    const [ask, ark] = pemFile("ask_ark_turin_vcek.pem");
    const r = await verifySnpReport(
      {
        report: testdata("gsg_milan_v2_report.bin"),
        vcek: testdata("virtee_turin_vcek.der"),
        ask,
        ark,
      },
      undefined,
      at("2025-01-01T00:00:00Z"),
    );
    assert.ok(
      !checks(r).some((c) => /^(ark|ask|vcek)\.(signature|issuer|validity|pin)$/.test(c)),
      JSON.stringify(r.failures),
    );
    assert.ok(checks(r).includes("report.signature"));
    assert.equal(r.report.product, "Turin");
  });
  await t.step("an ASK used where the ASVK belongs is refused", async () => {
    const v = VECTORS[3];
    const [ask, ark] = pemFile("ask_ark_milan.pem");
    const r = await verifySnpReport({ ...evidenceOf(v), asvk: ask, ark }, undefined, at(v.at));
    assert.ok(checks(r).includes("asvk.kind"));
    assert.ok(checks(r).includes("vlek.signature"));
  });
});

Deno.test("verifySnpReport() enforces the report-data binding", async () => {
  const v = VECTORS.find((x) => x.report === "teekit_gcp_v5_x25519_report.bin")!;
  const txt = new TextDecoder().decode(testdata("teekit_gcp_x25519_bound.txt"));
  const nonce = fromHex(txt.match(/NONCE=([0-9a-f]+)/)![1]);
  const key = fromHex(txt.match(/X25519_KEY=([0-9a-f]+)/)![1]);
  const expected = new Uint8Array(
    await crypto.subtle.digest("SHA-512", new Uint8Array([...nonce, ...key])),
  );
  const ok = await verifySnpReport(evidenceOf(v), undefined, {
    ...at(v.at),
    expectedReportData: expected,
  });
  assert.deepEqual(ok.failures, []);
  expected[0] ^= 1;
  const bad = await verifySnpReport(evidenceOf(v), undefined, {
    ...at(v.at),
    expectedReportData: expected,
  });
  assert.deepEqual(checks(bad), ["report_data"]);
});

Deno.test("verifySnpReport() applies the policy and names each rule that fails", async (t) => {
  const gsg = VECTORS[0]; // policy 0xb0000: debug + SMT allowed; TCB bl 2 tee 0 snp 5 ucode 68
  const trustee = VECTORS[2]; // policy 0x3001f, guest SVN 4, an ID key digest
  const run = async (v: typeof gsg, p: unknown) =>
    checks(await verifySnpReport(evidenceOf(v), parseSnpPolicy(p), at(v.at)));
  await t.step("debug is refused by default", async () => {
    assert.deepEqual(await run(gsg, {}), ["policy.debug"]);
    assert.deepEqual(await run(gsg, { allowDebug: true }), []);
  });
  await t.step("measurement allowlist", async () => {
    const m =
      "b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01";
    assert.deepEqual(await run(gsg, { allowDebug: true, measurements: [m.toUpperCase()] }), []);
    assert.deepEqual(await run(gsg, { allowDebug: true, measurements: ["00".repeat(48)] }), [
      "policy.measurement",
    ]);
  });
  await t.step("minimum TCB per field", async () => {
    const p = { allowDebug: true, minTcb: { bootloader: 2, tee: 0, snp: 5, microcode: 68 } };
    assert.deepEqual(await run(gsg, p), []);
    for (const k of ["bootloader", "tee", "snp", "microcode"] as const) {
      const low = { ...p, minTcb: { ...p.minTcb, [k]: p.minTcb[k] + 1 } };
      assert.deepEqual(await run(gsg, low), ["policy.min_tcb"], k);
    }
  });
  await t.step("SMT, migration agent, single socket, VMPL, ABI, guest SVN", async () => {
    assert.deepEqual(await run(gsg, { allowDebug: true, allowSmt: false }), ["policy.smt"]);
    assert.deepEqual(await run(gsg, { allowDebug: true, requireSingleSocket: true }), [
      "policy.single_socket",
    ]);
    assert.deepEqual(await run(gsg, { allowDebug: true, allowedVmpls: [1, 2] }), ["policy.vmpl"]);
    assert.deepEqual(await run(trustee, { minAbi: { major: 0, minor: 0x1f } }), []);
    assert.deepEqual(await run(trustee, { minAbi: { major: 0, minor: 0x20 } }), ["policy.abi"]);
    assert.deepEqual(await run(trustee, { minGuestSvn: 4 }), []);
    assert.deepEqual(await run(trustee, { minGuestSvn: 5 }), ["policy.guest_svn"]);
  });
  await t.step("host data, ID key digest, signing key, product, report version, CRL", async () => {
    const idk =
      "0356215882a825279a85b300b0b742931d113bf7e32dde2e50ffde7ec743ca491ecdd7f336dc28a6e0b2bb57af7a44a3";
    assert.deepEqual(await run(trustee, { idKeyDigests: [idk] }), []);
    assert.deepEqual(await run(trustee, { idKeyDigests: ["11".repeat(48)] }), [
      "policy.id_key_digest",
    ]);
    assert.deepEqual(await run(trustee, { hostData: "00".repeat(32) }), []);
    assert.deepEqual(await run(trustee, { hostData: "01".repeat(32) }), ["policy.host_data"]);
    assert.deepEqual(await run(trustee, { signingKeys: ["vlek"] }), ["policy.signing_key"]);
    assert.deepEqual(await run(trustee, { products: ["Genoa", "Turin"] }), ["policy.product"]);
    assert.deepEqual(await run(trustee, { minReportVersion: 3 }), ["policy.report_version"]);
    assert.deepEqual(await run(trustee, { requireCrl: true }), ["crl.missing"]);
  });
  await t.step("several failures are all named", async () => {
    assert.deepEqual(await run(gsg, { allowSmt: false, allowedVmpls: [3] }), [
      "policy.debug",
      "policy.smt",
      "policy.vmpl",
    ]);
  });
  await t.step("a malformed policy is refused", () => {
    assert.throws(() => parseSnpPolicy({ measurements: ["zz"] }), /snp.policy|measurements/);
    assert.throws(() => parseSnpPolicy({ unknown: 1 }));
  });
});

Deno.test("verifySnpEvidence() throws ParseError for malformed evidence documents", async () => {
  const ev = encodeSnpEvidence(evidenceOf(VECTORS[0]));
  await assert.rejects(
    verifySnpEvidence({ ...ev, report: ev.report.slice(4) }, undefined, at(VECTORS[0].at)),
    ParseError,
  );
  await assert.rejects(
    verifySnpEvidence({ ...ev, extra: 1 }, undefined, at(VECTORS[0].at)),
    ParseError,
  );
  await assert.rejects(
    verifySnpEvidence({ ...ev, certificates: { vcek: "!!" } }, undefined, at(VECTORS[0].at)),
    ParseError,
  );
  await assert.rejects(verifySnpEvidence(null, undefined, at(VECTORS[0].at)), ParseError);
  await assert.rejects(
    verifySnpReport({ report: new Uint8Array(1183) }, undefined, at(VECTORS[0].at)),
    ParseError,
  );
});

Deno.test("verifySnpReport() names missing certificates instead of throwing", async () => {
  const ev = evidenceOf(VECTORS[0]);
  const r = await verifySnpReport({ report: ev.report }, undefined, at(VECTORS[0].at));
  assert.deepEqual(checks(r).sort(), [
    "ark.missing",
    "ask.missing",
    "product.unknown",
    "vcek.missing",
  ]);
  assert.equal(toHex(ev.report.subarray(0x90, 0xc0)), r.report.measurement);
});
