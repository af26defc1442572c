import assert from "node:assert/strict";
import { issueDocument } from "../../attestation/issue.ts";
import { akPin, verifyDocument } from "../../attestation/verify.ts";
import { parsePolicy } from "../../attestation/policy.ts";
import { verifyEkCertificate } from "../../attestation/ek_certificate.ts";
import { makeCredential } from "../../attestation/tpm/credential/mod.ts";
import {
  computeName,
  loadAttestationKeys,
  Tpm,
  TPM_ALG,
  type TpmlPcrSelection,
  unmarshalTpm2bPublic,
} from "../../attestation/tpm/mod.ts";
import { ConfidantError } from "../../lib/errors.ts";
import { fromBase64, toHex } from "../../lib/bytes.ts";
import { startTestTpm } from "./tpm/credential/_tpm2.ts";
import * as x509 from "../../lib/x509.ts";
import { teeReportData } from "../../attestation/tee_binding.ts";
import {
  fakeTdxCollateral,
  fakeTrust,
  makeFakePki,
  makeFakeSnpPlatform,
  SNP_NOW,
  TDX_NOW,
} from "./_tee_fixtures.ts";
import { fakeTsm, withTsmRoot } from "./_fake_tsm.ts";

/** A client that extends PCR 7 right after each of its first `n` PCR reads. */
class RacingTpm extends Tpm {
  races: number;
  constructor(spec: string, n: number) {
    super(Tpm.open(spec).transport);
    this.races = n;
  }
  override async pcrRead(selection: TpmlPcrSelection) {
    const v = await super.pcrRead(selection);
    if (this.races > 0) {
      this.races--;
      await this.pcrExtend(7, [{ hashAlg: TPM_ALG.SHA256, digest: new Uint8Array(32).fill(9) }]);
    }
    return v;
  }
}

Deno.test("issueDocument() retries once when a PCR changes between read and quote", async (t) => {
  const sw = await startTestTpm();
  try {
    const nonce = crypto.getRandomValues(new Uint8Array(16));
    await t.step("one race: the retry produces a valid document", async () => {
      const tpm = new RacingTpm(sw.spec, 1);
      try {
        const doc = await issueDocument(tpm, { nonce, pcrs: [0, 7] });
        assert.equal(tpm.races, 0);
        const policy = parsePolicy({ ak: { pinned: [akPin(fromBase64(doc.tpm.akPublic))] } });
        const r = await verifyDocument(doc, policy, { nonce, userData: new Uint8Array(0) });
        assert.deepEqual(r.failures, []);
      } finally {
        await tpm.close();
      }
    });
    await t.step("two races: a clear error instead of an inconsistent document", async () => {
      const tpm = new RacingTpm(sw.spec, 2);
      try {
        await assert.rejects(
          issueDocument(tpm, { nonce, pcrs: [0, 7] }),
          (e) => e instanceof ConfidantError && e.code === "attestation.pcr_race",
        );
      } finally {
        await tpm.close();
      }
    });
  } finally {
    await sw.stop();
  }
});

Deno.test("EK-CA flow: certificate, MakeCredential, activation, then verifyDocument passes", async () => {
  const sw = await startTestTpm({ ekCert: true });
  const tpm = Tpm.open(sw.spec);
  try {
    const nonce = crypto.getRandomValues(new Uint8Array(32));
    const userData = new TextEncoder().encode("node key");
    const doc = await issueDocument(tpm, { nonce, userData, ekAlg: "rsa" });
    assert.ok(doc.tpm.ekCertificate, "swtpm_setup provisions an RSA EK certificate");
    const policy = parsePolicy({ ak: { ekCaCertificates: sw.caPem } });

    // Offline, the document alone cannot pass.
    const offline = await verifyDocument(doc, policy, { nonce, userData });
    assert.deepEqual(offline.failures.map((f) => f.check), ["ak.activation"]);

    // The KMS side: verify the certificate, make a credential for the document's AK.
    const { ekPublic } = await verifyEkCertificate(fromBase64(doc.tpm.ekCertificate!), {
      caCertificates: sw.caPem!,
      now: new Date(),
    });
    const akName = await computeName(unmarshalTpm2bPublic(fromBase64(doc.tpm.akPublic)).tpmtBytes);
    const secret = crypto.getRandomValues(new Uint8Array(32));
    const cred = makeCredential(ekPublic, akName, secret);

    // The node side: activate with the same (deterministic primary) EK and AK.
    const keys = await loadAttestationKeys(tpm, { ek: "rsa" });
    let got: Uint8Array;
    try {
      assert.equal(toHex(keys.ak.name), toHex(akName));
      got = await tpm.activateCredential(
        keys.ak.handle,
        keys.ek.handle,
        cred.credentialBlob,
        cred.encryptedSecret,
      );
    } finally {
      await keys.flush();
    }
    assert.equal(toHex(got), toHex(secret));

    const live = await verifyDocument(doc, policy, {
      nonce,
      userData,
      akTrust: { activated: true, ekPublic, akName },
    });
    assert.deepEqual(live.failures, []);
    assert.equal(live.ok, true);

    // A wrong CA: the certificate check fails even with activation.
    const other = parsePolicy({ ak: { ekCaCertificates: [sw.caPem![1]] } });
    const keys2 = await crypto.subtle.generateKey(
      { name: "ECDSA", namedCurve: "P-256" },
      true,
      ["sign", "verify"],
    );
    const strangerCa = await x509.X509CertificateGenerator.createSelfSigned({
      name: "CN=unrelated CA",
      keys: keys2,
      signingAlgorithm: { name: "ECDSA", hash: "SHA-256" },
      extensions: [new x509.BasicConstraintsExtension(true, undefined, true)],
    });
    const wrongCa = await verifyDocument(
      doc,
      parsePolicy({ ak: { ekCaCertificates: [strangerCa.toString("pem")] } }),
      { nonce, userData, akTrust: { activated: true, ekPublic, akName } },
    );
    assert.deepEqual(wrongCa.failures.map((f) => f.check), ["ek.certificate"]);
    // The root alone without the intermediate cannot build the chain.
    const rootOnly = await verifyDocument(doc, other, {
      nonce,
      userData,
      akTrust: { activated: true, ekPublic, akName },
    });
    assert.deepEqual(rootOnly.failures.map((f) => f.check), ["ek.certificate"]);
  } finally {
    await tpm.close();
    await sw.stop();
  }
});

Deno.test("issueDocument() with tee adds a TEE report bound to the document's own AK", async (t) => {
  const sw = await startTestTpm();
  const tpm = Tpm.open(sw.spec);
  const snp = await makeFakeSnpPlatform();
  const pki = await makeFakePki();
  const nonce = crypto.getRandomValues(new Uint8Array(32));
  const userData = new TextEncoder().encode("node key");
  try {
    await t.step("auto on an SEV-SNP guest: a sev-snp document that verifies", async () => {
      await withTsmRoot(async (root) => {
        const k = fakeTsm({ kind: "sev_guest", platform: snp });
        const doc = await issueDocument(tpm, {
          nonce,
          userData,
          pcrs: [0, 7],
          tee: "auto",
          teeOptions: { tsmRoot: root, tsmFs: k.fs },
        });
        assert.equal(doc.variant, "sev-snp");
        const akPublic = fromBase64(doc.tpm.akPublic);
        assert.deepEqual(k.inblobs.at(-1), await teeReportData({ nonce, userData, akPublic }));
        const policy = parsePolicy({
          ak: { pinned: [akPin(akPublic)] },
          variants: ["sev-snp"],
          snp: {},
        });
        const r = await verifyDocument(doc, policy, {
          nonce,
          userData,
          now: SNP_NOW,
          teeTrust: fakeTrust(snp),
        });
        assert.deepEqual(r.failures, []);
      });
    });
    await t.step("tdx on a TDX guest: a tdx document that verifies", async () => {
      await withTsmRoot(async (root) => {
        const k = fakeTsm({ kind: "tdx_guest", pki });
        const doc = await issueDocument(tpm, {
          nonce,
          userData,
          pcrs: [0, 7],
          tee: "tdx",
          teeOptions: { tsmRoot: root, tsmFs: k.fs, tdxCollateral: await fakeTdxCollateral(pki) },
        });
        assert.equal(doc.variant, "tdx");
        const policy = parsePolicy({
          ak: { pinned: [akPin(fromBase64(doc.tpm.akPublic))] },
          variants: ["tdx"],
          tdx: {},
        });
        const r = await verifyDocument(doc, policy, {
          nonce,
          userData,
          now: TDX_NOW,
          teeTrust: fakeTrust(undefined, pki),
        });
        assert.deepEqual(r.failures, []);
      });
    });
    await t.step("auto without configfs-tsm: a tpm document", async () => {
      const doc = await issueDocument(tpm, {
        nonce,
        pcrs: [0],
        tee: "auto",
        teeOptions: { tsmRoot: "/nonexistent/tsm/report" },
      });
      assert.equal(doc.variant, "tpm");
      assert.equal("tee" in doc, false);
    });
    await t.step("an unusable configfs-tsm is an error, not a silent tpm document", async () => {
      await withTsmRoot(async (root) => {
        const k = fakeTsm({ kind: "sev_guest", platform: snp }, true);
        await assert.rejects(
          issueDocument(tpm, { nonce, tee: "auto", teeOptions: { tsmRoot: root, tsmFs: k.fs } }),
          (e) => e instanceof ConfidantError && e.code === "attestation.tee_unavailable",
        );
      });
    });
  } finally {
    await tpm.close();
    await sw.stop();
  }
});
