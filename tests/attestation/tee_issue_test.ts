/** TEE detection and the `tee` section issuer against a fake configfs-tsm kernel. */
import assert from "node:assert/strict";
import { ConfidantError } from "../../lib/errors.ts";
import { detectTee, issueTeeSection, resolveTee } from "../../attestation/tee_issue.ts";
import { teeReportData } from "../../attestation/tee_binding.ts";
import { verifySnpEvidence } from "../../attestation/snp/mod.ts";
import { verifyTdxEvidence } from "../../attestation/tdx/mod.ts";
import { makeFakePki, makeFakeSnpPlatform, makeSoftAk, SNP_NOW, TDX_NOW } from "./_tee_fixtures.ts";
import { fakeTsm, withTsmRoot } from "./_fake_tsm.ts";

const SNP = await makeFakeSnpPlatform();
const PKI = await makeFakePki();
const AK = await makeSoftAk();
const BINDING = {
  nonce: crypto.getRandomValues(new Uint8Array(32)),
  userData: new Uint8Array([1, 2, 3]),
  akPublic: AK.akPublic,
};

Deno.test("detectTee() tells SEV-SNP, TDX and no TEE apart and removes its probe", async (t) => {
  await t.step("no report directory: no TEE", async () => {
    await withTsmRoot(async (root) => {
      const k = fakeTsm({ kind: "sev_guest", platform: SNP });
      assert.equal(await detectTee({ tsmRoot: `${root}/absent`, tsmFs: k.fs }), undefined);
      assert.deepEqual(k.created, []);
    });
  });
  const cases = [
    ["sev_guest", { kind: "sev_guest", platform: SNP }, "sev-snp"],
    ["tdx_guest", { kind: "tdx_guest", pki: PKI }, "tdx"],
    ["unreadable provider (no TEE driver)", { kind: "none" }, undefined],
    ["another provider", { kind: "other", name: "arm_cca_guest" }, undefined],
  ] as const;
  for (const [name, provider, want] of cases) {
    await t.step(name, async () => {
      await withTsmRoot(async (root) => {
        const k = fakeTsm(provider);
        assert.equal(await detectTee({ tsmRoot: root, tsmFs: k.fs }), want);
        assert.equal(k.created.length, 1);
        assert.match(k.created[0], /\/confidant-probe-[0-9a-f]{16}$/);
        assert.deepEqual([...Deno.readDirSync(root)], [], "the probe entry is removed");
      });
    });
  }
  await t.step("a report directory that refuses entries is an error", async () => {
    await withTsmRoot(async (root) => {
      const k = fakeTsm({ kind: "sev_guest", platform: SNP }, true);
      await assert.rejects(
        detectTee({ tsmRoot: root, tsmFs: k.fs }),
        (e) => e instanceof ConfidantError && e.code === "attestation.tee_unavailable",
      );
    });
  });
});

Deno.test("resolveTee() detects only for auto", async () => {
  await withTsmRoot(async (root) => {
    const k = fakeTsm({ kind: "tdx_guest", pki: PKI });
    const opts = { tsmRoot: root, tsmFs: k.fs };
    assert.equal(await resolveTee("none", opts), undefined);
    assert.equal(await resolveTee("sev-snp", opts), "sev-snp");
    assert.equal(k.created.length, 0, "an explicit choice does not probe");
    assert.equal(await resolveTee("auto", opts), "tdx");
  });
});

Deno.test("issueTeeSection() writes teeReportData(binding) and returns verifiable evidence", async (t) => {
  const expected = await teeReportData(BINDING);
  await t.step("sev-snp with the host's certificate table", async () => {
    await withTsmRoot(async (root) => {
      const k = fakeTsm({ kind: "sev_guest", platform: SNP });
      const ev = await issueTeeSection("sev-snp", BINDING, { tsmRoot: root, tsmFs: k.fs });
      assert.deepEqual(k.inblobs, [expected]);
      const r = await verifySnpEvidence(ev, undefined, {
        now: SNP_NOW,
        expectedReportData: expected,
        roots: [SNP.chain.pin],
      });
      assert.deepEqual(r.failures, []);
    });
  });
  await t.step("tdx with the node's cached collateral", async () => {
    await withTsmRoot(async (root) => {
      const k = fakeTsm({ kind: "tdx_guest", pki: PKI });
      const tdxCollateral = { tcbInfoIssuerChain: PKI.tcbChainPem };
      const ev = await issueTeeSection("tdx", BINDING, {
        tsmRoot: root,
        tsmFs: k.fs,
        tdxCollateral,
      });
      assert.deepEqual(k.inblobs, [expected]);
      assert.deepEqual(ev.collateral, tdxCollateral);
      const r = await verifyTdxEvidence({ quote: ev.quote }, undefined, {
        now: TDX_NOW,
        expectedReportData: expected,
        rootDer: PKI.rootDer,
      });
      assert.deepEqual(r.failures, []);
    });
  });
});

Deno.test("issueTeeSection() fills the SNP chain from the node's cache, or says what is missing", async (t) => {
  await t.step("no auxblob, cached chain", async () => {
    await withTsmRoot(async (root) => {
      const k = fakeTsm({ kind: "sev_guest", platform: SNP, auxblob: false });
      const ev = await issueTeeSection("sev-snp", BINDING, {
        tsmRoot: root,
        tsmFs: k.fs,
        snpCertificates: { vcek: SNP.chain.vcek, ask: SNP.chain.ask, ark: SNP.chain.ark },
      });
      assert.deepEqual(Object.keys(ev.certificates).sort(), ["ark", "ask", "vcek"]);
      const r = await verifySnpEvidence(ev, undefined, {
        now: SNP_NOW,
        expectedReportData: await teeReportData(BINDING),
        roots: [SNP.chain.pin],
      });
      assert.deepEqual(r.failures, []);
    });
  });
  await t.step("no auxblob and no cache", async () => {
    await withTsmRoot(async (root) => {
      const k = fakeTsm({ kind: "sev_guest", platform: SNP, auxblob: false });
      await assert.rejects(
        issueTeeSection("sev-snp", BINDING, {
          tsmRoot: root,
          tsmFs: k.fs,
          snpCertificates: { ark: SNP.chain.ark },
        }),
        (e) =>
          e instanceof ConfidantError && e.code === "attestation.tee_chain" &&
          /VCEK or VLEK, the ASK or ASVK/.test(e.message) && !/the ARK/.test(e.message),
      );
      assert.deepEqual([...Deno.readDirSync(root)], [], "the entry is removed");
    });
  });
  await t.step("the wrong TEE: a tdx request on an SEV-SNP guest", async () => {
    await withTsmRoot(async (root) => {
      const k = fakeTsm({ kind: "sev_guest", platform: SNP });
      await assert.rejects(
        issueTeeSection("tdx", BINDING, { tsmRoot: root, tsmFs: k.fs }),
        (e) => e instanceof ConfidantError && e.code === "tsm.provider",
      );
    });
  });
});
