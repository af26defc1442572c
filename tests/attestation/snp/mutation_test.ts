import assert from "node:assert/strict";
import { verifySnpReport } from "../../../attestation/snp/mod.ts";
import type { SnpEvidenceBytes } from "../../../attestation/snp/mod.ts";
import { evidenceOf, VECTORS } from "./_vectors.ts";
import { makeCrl, makeFakeChain, makeSignedReport, subjectOf } from "./_fake_amd.ts";

/** Report fields as [name, offset, length]. */
const FIELDS: Array<[string, number, number]> = [
  ["version", 0x00, 4],
  ["guest_svn", 0x04, 4],
  ["policy", 0x08, 8],
  ["family_id", 0x10, 16],
  ["image_id", 0x20, 16],
  ["vmpl", 0x30, 4],
  ["signature_algo", 0x34, 4],
  ["current_tcb", 0x38, 8],
  ["platform_info", 0x40, 8],
  ["flags", 0x48, 4],
  ["report_data", 0x50, 64],
  ["measurement", 0x90, 48],
  ["host_data", 0xc0, 32],
  ["id_key_digest", 0xe0, 48],
  ["author_key_digest", 0x110, 48],
  ["report_id", 0x140, 32],
  ["report_id_ma", 0x160, 32],
  ["reported_tcb", 0x180, 8],
  ["chip_id", 0x1a0, 64],
  ["committed_tcb", 0x1e0, 8],
  ["current_version", 0x1e8, 3],
  ["committed_version", 0x1ec, 3],
  ["launch_tcb", 0x1f0, 8],
  ["signature_r", 0x2a0, 48],
  ["signature_s", 0x2e8, 48],
];

/** The checks a mutation of `field` must name (besides possibly others). */
function expected(field: string, ev: SnpEvidenceBytes): string[] {
  const role = ev.vlek ? "vlek" : "vcek";
  switch (field) {
    case "reported_tcb":
      return ["report.signature", `${role}.tcb`];
    case "chip_id":
      return ev.vcek ? ["report.signature", "vcek.hwid"] : ["report.signature"];
    case "report_data":
      return ["report.signature", "report_data"];
    default:
      return ["report.signature"];
  }
}

Deno.test("verifySnpReport() refuses every field of every real report when flipped", async (t) => {
  for (const v of VECTORS) {
    await t.step(v.name, async () => {
      const base = evidenceOf(v);
      const expectedReportData = base.report.slice(0x50, 0x90);
      for (const [field, off, len] of FIELDS) {
        const ev = { ...base, report: base.report.slice() };
        // Flip the low bit of the field's middle byte (of the microcode SPL for reported_tcb,
        // whose middle bytes are reserved: those are covered by report.tcb_reserved below).
        ev.report[off + (field === "reported_tcb" ? 7 : len >> 1)] ^= 0x01;
        const r = await verifySnpReport(ev, undefined, { now: new Date(v.at), expectedReportData });
        const names = r.failures.map((f) => f.check);
        assert.equal(r.ok, false, `${field} flip accepted`);
        for (const c of expected(field, ev)) {
          assert.ok(names.includes(c), `${field}: ${c} not in ${names}`);
        }
      }
      // The unused high bytes of R and S, and the rest of the signature area, must be zero.
      for (const off of [0x2a0 + 60, 0x2e8 + 60, 0x400]) {
        const ev = { ...base, report: base.report.slice() };
        ev.report[off] ^= 0x01;
        const r = await verifySnpReport(ev, undefined, { now: new Date(v.at) });
        assert.deepEqual(
          r.failures.map((f) => f.check),
          ["report.reserved"],
          `offset 0x${off.toString(16)}`,
        );
      }
    });
  }
});

Deno.test("verifySnpReport() refuses every certificate of the chain when a byte is changed", async (t) => {
  for (const v of [VECTORS[0], VECTORS[3], VECTORS[4], VECTORS[8]]) {
    await t.step(v.name, async () => {
      const base = evidenceOf(v);
      for (const role of ["vcek", "vlek", "ask", "asvk", "ark"] as const) {
        const der = base[role];
        if (!der) continue;
        // A byte in the middle of the signed part (TBS) and the last byte (signature value).
        for (const idx of [Math.floor(der.length / 3), der.length - 1]) {
          const ev = { ...base, [role]: der.slice() };
          ev[role]![idx] ^= 0x01;
          const r = await verifySnpReport(ev, undefined, { now: new Date(v.at) });
          const names = r.failures.map((f) => f.check);
          assert.equal(r.ok, false, `${role}[${idx}] accepted`);
          assert.ok(
            names.some((c) => c.startsWith(`${role}.`)),
            `${role}[${idx}]: ${JSON.stringify(r.failures)}`,
          );
        }
      }
    });
  }
});

const NOW = new Date("2025-01-01T00:00:00Z");
const TURIN_TCB = new Uint8Array([3, 4, 0, 5, 0, 0, 0, 9]); // fmc 3, bl 4, tee 0, snp 5, ucode 9

async function turinFixture() {
  const hwid = crypto.getRandomValues(new Uint8Array(8));
  const chain = await makeFakeChain("Turin", {
    fmc: 3,
    bootloader: 4,
    tee: 0,
    snp: 5,
    microcode: 9,
  }, hwid);
  const chipId = new Uint8Array(64);
  chipId.set(hwid);
  const report = await makeSignedReport(
    { tcb: TURIN_TCB, chipId, cpuid: [0x1a, 0x02, 0x01], reportData: new Uint8Array(64).fill(5) },
    chain.vcekKeys.privateKey,
  );
  return { chain, chipId, report };
}

Deno.test("verifySnpReport() refuses a report whose chain ends at a non-AMD root", async () => {
  const { chain, report } = await turinFixture();
  const r = await verifySnpReport(
    { report, vcek: chain.vcek, ask: chain.ask, ark: chain.ark },
    undefined,
    { now: NOW },
  );
  assert.deepEqual(r.failures.map((f) => f.check), ["ark.pin"]);
  // Claiming the real Turin ARK with the fake ASK breaks the chain instead.
  const { pemFile } = await import("./_vectors.ts");
  const [, realArk] = pemFile("ask_ark_turin_vcek.pem");
  const r2 = await verifySnpReport(
    { report, vcek: chain.vcek, ask: chain.ask, ark: realArk },
    undefined,
    { now: NOW },
  );
  assert.ok(r2.failures.some((f) => f.check === "ask.signature"), JSON.stringify(r2.failures));
});

Deno.test("verifySnpReport() decodes the Turin TCB layout (FMC, 8-byte hwid) per product", async (t) => {
  const { chain, chipId, report } = await turinFixture();
  const ev = { report, vcek: chain.vcek, ask: chain.ask, ark: chain.ark };
  const opts = { now: NOW, roots: [chain.pin] };
  await t.step("accepted under a root the caller trusts", async () => {
    const r = await verifySnpReport(ev, undefined, opts);
    assert.deepEqual(r.failures, []);
    assert.equal(r.report.product, "Turin");
    assert.deepEqual(r.report.reportedTcb, {
      raw: "0304000500000009",
      fmc: 3,
      bootloader: 4,
      tee: 0,
      snp: 5,
      microcode: 9,
    });
  });
  await t.step("a report TCB the VCEK does not certify is refused (fmc)", async () => {
    const tcb = TURIN_TCB.slice();
    tcb[0] = 2;
    const bad = await makeSignedReport(
      { tcb, chipId, cpuid: [0x1a, 0x02, 0x01] },
      chain.vcekKeys.privateKey,
    );
    const r = await verifySnpReport({ ...ev, report: bad }, undefined, opts);
    assert.deepEqual(r.failures.map((f) => f.check), ["vcek.tcb"]);
  });
  await t.step("a chip id the VCEK was not issued for is refused", async () => {
    const other = chipId.slice();
    other[0] ^= 1;
    const bad = await makeSignedReport(
      { tcb: TURIN_TCB, chipId: other, cpuid: [0x1a, 0x02, 0x01] },
      chain.vcekKeys.privateKey,
    );
    const r = await verifySnpReport({ ...ev, report: bad }, undefined, opts);
    assert.deepEqual(r.failures.map((f) => f.check), ["vcek.hwid"]);
  });
  await t.step("a CPUID of another product is refused", async () => {
    const bad = await makeSignedReport(
      { tcb: TURIN_TCB, chipId, cpuid: [0x19, 0x01, 0x01] },
      chain.vcekKeys.privateKey,
    );
    const r = await verifySnpReport({ ...ev, report: bad }, undefined, opts);
    assert.deepEqual(r.failures.map((f) => f.check), ["product.mismatch"]);
  });
  await t.step("policy minimum FMC applies on Turin", async () => {
    const { parseSnpPolicy } = await import("../../../attestation/snp/mod.ts");
    const r = await verifySnpReport(ev, parseSnpPolicy({ minTcb: { fmc: 4 } }), opts);
    assert.deepEqual(r.failures.map((f) => f.check), ["policy.min_tcb"]);
  });
});

Deno.test("verifySnpReport() checks the CRL: signature, issuer, freshness and revoked serials", async (t) => {
  const { chain, report } = await turinFixture();
  const ev = { report, vcek: chain.vcek, ask: chain.ask, ark: chain.ark };
  const opts = { now: NOW, roots: [chain.pin] };
  const arkName = subjectOf(chain.ark);
  const from = new Date("2024-12-01T00:00:00Z");
  const to = new Date("2025-02-01T00:00:00Z");
  const run = async (crl: Uint8Array) =>
    (await verifySnpReport({ ...ev, crl }, undefined, opts)).failures.map((f) => f.check);
  await t.step("a fresh CRL revoking nothing of ours", async () => {
    assert.deepEqual(
      await run(await makeCrl(arkName, chain.arkKeys.privateKey, ["0bad"], from, to)),
      [],
    );
  });
  await t.step("a revoked ASK", async () => {
    assert.deepEqual(
      await run(await makeCrl(arkName, chain.arkKeys.privateKey, [chain.askSerial], from, to)),
      ["ask.revoked"],
    );
  });
  await t.step("a CRL signed by another key", async () => {
    assert.deepEqual(await run(await makeCrl(arkName, chain.askKeys.privateKey, [], from, to)), [
      "crl.signature",
    ]);
  });
  await t.step("a stale CRL", async () => {
    const old = await makeCrl(
      arkName,
      chain.arkKeys.privateKey,
      [],
      new Date("2024-01-01T00:00:00Z"),
      new Date("2024-02-01T00:00:00Z"),
    );
    assert.deepEqual(await run(old), ["crl.freshness"]);
  });
  await t.step("a CRL from another issuer", async () => {
    const crl = await makeCrl("CN=someone else", chain.arkKeys.privateKey, [], from, to);
    assert.deepEqual(await run(crl), ["crl.issuer"]);
  });
  await t.step("a malformed CRL", async () => {
    assert.deepEqual(await run(new Uint8Array([0x30, 0x03, 1, 2, 3])), ["crl.parse"]);
  });
});
