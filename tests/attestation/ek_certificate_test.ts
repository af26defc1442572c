import assert from "node:assert/strict";
import { join } from "node:path";
import {
  ekPublicFromCertificate,
  EkTrustAnchors,
  parseCertificate,
  parsePemBundle,
  verifyEkCertificate,
} from "../../attestation/ek_certificate.ts";
import { makeCredential } from "../../attestation/tpm/credential/mod.ts";
import {
  computeName,
  marshalCredentialFile,
  unmarshalTpm2bPublic,
} from "../../attestation/tpm/mod.ts";
import { ConfidantError, ParseError } from "../../lib/errors.ts";
import { toHex } from "../../lib/bytes.ts";
import {
  activateWithTools,
  createAkWithTools,
  startTestTpm,
  type TestTpm,
} from "./tpm/credential/_tpm2.ts";

const EKS: {
  label: string;
  nv: string;
  handle: string;
  policyHash: "sha256" | "password";
}[] = [
  { label: "RSA 2048", nv: "0x1c00002", handle: "0x81010001", policyHash: "sha256" },
  { label: "ECC P-384", nv: "0x1c00016", handle: "0x81010016", policyHash: "password" },
];

async function nvCert(tpm: TestTpm, index: string): Promise<Uint8Array> {
  const out = join(tpm.dir, `cert-${index}.der`);
  await tpm.tpm2(["tpm2_nvread", index, "-o", out]);
  return await Deno.readFile(out);
}

Deno.test("EK certificates made by swtpm_setup verify and target the TPM's EK", async (t) => {
  const tpm = await startTestTpm({ ekCert: true });
  try {
    const [issuer, root] = tpm.caPem!;
    for (const ek of EKS) {
      await t.step(`${ek.label}: chain, clock and derived public area`, async () => {
        const der = await nvCert(tpm, ek.nv);
        const ok = await verifyEkCertificate(der, {
          caCertificates: [root],
          intermediates: [issuer],
          now: new Date(),
        });
        assert.equal(ok.chain.length, 3);
        // The derived TPMT_PUBLIC is byte-for-byte the TPM's EK: same name.
        const pubFile = join(tpm.dir, "ek.pub");
        await tpm.tpm2(["tpm2_readpublic", "-c", ek.handle, "-o", pubFile]);
        const tpmEk = unmarshalTpm2bPublic(await Deno.readFile(pubFile)).public;
        assert.equal(toHex(await computeName(ok.ekPublic)), toHex(await computeName(tpmEk)));
        assert.equal(
          toHex(await computeName(ekPublicFromCertificate(der))),
          toHex(await computeName(tpmEk)),
        );

        // The issuing CA as anchor also works; the root alone does not (intermediate missing).
        await verifyEkCertificate(der, { caCertificates: [issuer], now: new Date() });
        await assert.rejects(
          verifyEkCertificate(der, { caCertificates: [root], now: new Date() }),
          (e) => e instanceof ConfidantError && e.code === "ek.certificate",
        );
        // Not yet valid in the past.
        await assert.rejects(
          verifyEkCertificate(der, {
            caCertificates: [root],
            intermediates: [issuer],
            now: new Date("2001-01-01T00:00:00Z"),
          }),
          /not valid/,
        );
      });

      await t.step(`${ek.label}: a credential made from the certificate activates`, async () => {
        const der = await nvCert(tpm, ek.nv);
        const ekPublic = ekPublicFromCertificate(der);
        const akName = await createAkWithTools(tpm, ek.handle);
        const secret = crypto.getRandomValues(new Uint8Array(32));
        const cred = makeCredential(ekPublic, akName, secret);
        const got = await activateWithTools(
          tpm,
          marshalCredentialFile(cred),
          ek.handle,
          ek.policyHash,
        );
        assert.equal(toHex(got), toHex(secret));
      });
    }
  } finally {
    await tpm.stop();
  }
});

Deno.test("parseCertificate() turns garbage into ParseError", () => {
  for (
    const bad of [
      new Uint8Array(0),
      Uint8Array.of(0x30),
      Uint8Array.of(0x30, 0x84, 1, 2, 3, 4),
      Uint8Array.of(0x30, 0x03, 1, 2, 3),
      "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----",
      "no pem here",
    ]
  ) {
    assert.throws(() => parseCertificate(bad), ParseError);
  }
});

Deno.test("verifyEkCertificate() checks stored swtpm certificates offline at a fixed clock", async () => {
  const td = new URL("../testdata/attestation/", import.meta.url);
  const chain = await Deno.readTextFile(new URL("swtpm_localca_chain.pem", td));
  const [issuer, root] = chain.match(
    /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g,
  )!;
  const now = new Date("2030-01-01T00:00:00Z");
  for (
    const [file, type] of [["swtpm_ek_rsa2048.der", 0x0001], ["swtpm_ek_p384.der", 0x0023]] as const
  ) {
    const der = await Deno.readFile(new URL(file, td));
    const ok = await verifyEkCertificate(der, { caCertificates: [chain], now });
    assert.equal(ok.ekPublic.type, type);
    await verifyEkCertificate(der, { caCertificates: [root], intermediates: [issuer], now });
    await assert.rejects(verifyEkCertificate(der, { caCertificates: [root], now }), ConfidantError);
    // A flipped bit in the signed part breaks the signature check.
    const bad = der.slice();
    bad[300] ^= 1;
    await assert.rejects(
      (async () => await verifyEkCertificate(bad, { caCertificates: [chain], now }))(),
      ConfidantError,
    );
  }
});

Deno.test("verifyEkCertificate() with prepared anchors decides as with PEMs and gives the chain's window", async () => {
  const td = new URL("../testdata/attestation/", import.meta.url);
  const chain = await Deno.readTextFile(new URL("swtpm_localca_chain.pem", td));
  const [issuerPem, rootPem] = chain.match(
    /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g,
  )!;
  const now = new Date("2030-01-01T00:00:00Z");
  const der = await Deno.readFile(new URL("swtpm_ek_rsa2048.der", td));
  const leaf = parseCertificate(der);
  const [issuer, root] = [parseCertificate(issuerPem), parseCertificate(rootPem)];
  const all = EkTrustAnchors.fromPem([chain]);
  assert.equal(all.certificates.length, 2);
  const rootOnly = EkTrustAnchors.of(parsePemBundle(rootPem));

  const viaPem = await verifyEkCertificate(der, { caCertificates: [chain], now });
  const viaHandle = await verifyEkCertificate(der, { anchors: all, now });
  const viaArray = await verifyEkCertificate(der, { anchors: [issuer, root], now });
  for (const r of [viaHandle, viaArray]) {
    assert.deepEqual(r.chain, viaPem.chain);
    assert.equal(toHex(await computeName(r.ekPublic)), toHex(await computeName(viaPem.ekPublic)));
  }
  // Through the intermediate to the root: the window is the intersection of all three.
  const r = await verifyEkCertificate(der, {
    anchors: rootOnly,
    intermediates: [der, issuerPem],
    now,
  });
  assert.equal(r.chain.length, 3);
  const from = Math.max(...[leaf, issuer, root].map((c) => c.notBefore.getTime()));
  const until = Math.min(...[leaf, issuer, root].map((c) => c.notAfter.getTime()));
  assert.equal(r.validFrom.getTime(), from);
  assert.equal(r.validUntil.getTime(), until);
  // The same refusals as with PEMs.
  await assert.rejects(
    verifyEkCertificate(der, { anchors: rootOnly, now }),
    (e) => e instanceof ConfidantError && e.code === "ek.certificate",
  );
  await assert.rejects(
    verifyEkCertificate(der, { anchors: EkTrustAnchors.of([]), now }),
    /no EK CA certificates/,
  );
  await assert.rejects(
    verifyEkCertificate(der, { anchors: all, now: new Date(until + 1000) }),
    /not valid/,
  );
  // Exactly one source of anchors.
  await assert.rejects(
    verifyEkCertificate(der, { anchors: all, caCertificates: [chain], now }),
    (e) => e instanceof ConfidantError && e.code === "ek.options",
  );
  await assert.rejects(
    verifyEkCertificate(der, { now }),
    (e) => e instanceof ConfidantError && e.code === "ek.options",
  );
  // A CA PEM that does not parse is refused when the anchors are prepared.
  assert.throws(
    () => EkTrustAnchors.fromPem(["-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"]),
    ParseError,
  );
});
