/**
 * EkTrust with a real swtpm EK certificate and its local CA (issuer + root): a chain is
 * verified once per policy version and certificate set, served from the cache only inside the
 * chain's validity, and never cached when it fails; intermediates offered by the node count.
 */
import assert from "node:assert/strict";
import { toHex } from "../../lib/bytes.ts";
import { Tpm } from "../../attestation/tpm/client.ts";
import { loadAttestationKeys } from "../../attestation/tpm/keys.ts";
import { parseCertificate } from "../../attestation/ek_certificate.ts";
import { anchorSetDigest, EkTrust } from "../../kms/ek_trust.ts";
import { startSwtpm } from "../_support/swtpm.ts";

function pemBlocks(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n?/g) ?? [];
}

Deno.test("EkTrust verifies an EK chain once per policy version and only within its validity", async (t) => {
  const sw = await startSwtpm({ ekCert: true });
  try {
    const tpm = Tpm.open(sw.spec);
    const keys = await loadAttestationKeys(tpm, { ek: "rsa" });
    const nv = await tpm.nvRead(keys.ekCertIndex);
    await keys.flush();
    const leaf = parseCertificate(nv);
    const ek = new Uint8Array(leaf.rawData);
    const [issuerPem, rootPem] = pemBlocks(sw.ekCaPem!);
    assert.ok(issuerPem && rootPem, "swtpm's local CA has an issuer and a root");
    const issuerDer = new Uint8Array(parseCertificate(issuerPem).rawData);
    const now = new Date();

    await t.step("second verification of the same certificate comes from the cache", async () => {
      const trust = new EkTrust();
      const cas = [sw.ekCaPem!];
      const a = await trust.verify(ek, [], cas, now);
      const b = await trust.verify(ek, [], cas, now);
      assert.equal(a.cached, false);
      assert.equal(b.cached, true);
      assert.equal(toHex(a.identity), toHex(b.identity));
      assert.equal(toHex(a.certificateDigest), toHex(b.certificateDigest));
      // A reloaded policy (a new array, even with the same text) starts afresh.
      assert.equal((await trust.verify(ek, [], [sw.ekCaPem!], now)).cached, false);
      assert.equal(toHex(trust.anchorsDigest(cas)), toHex(anchorSetDigest([sw.ekCaPem!])));
      assert.notEqual(toHex(anchorSetDigest([rootPem])), toHex(anchorSetDigest(cas)));
    });

    await t.step("a root-only policy needs the node's intermediate, cached per set", async () => {
      const trust = new EkTrust();
      const cas = [rootPem];
      await assert.rejects(trust.verify(ek, [], cas, now), { code: "ek.certificate" });
      // The failure was not cached: still refused, and the intermediate makes it pass.
      await assert.rejects(trust.verify(ek, [], cas, now), { code: "ek.certificate" });
      const ok = await trust.verify(ek, [issuerDer], cas, now);
      assert.equal(ok.cached, false);
      assert.equal((await trust.verify(ek, [issuerDer], cas, now)).cached, true);
      // The cache entry is for this certificate set only.
      await assert.rejects(trust.verify(ek, [], cas, now), { code: "ek.certificate" });
    });

    await t.step("outside the chain's validity the cache is not used", async () => {
      const trust = new EkTrust();
      const cas = [sw.ekCaPem!];
      await trust.verify(ek, [], cas, now);
      const late = new Date(leaf.notAfter.getTime() + 1000);
      await assert.rejects(trust.verify(ek, [], cas, late), { code: "ek.certificate" });
      const early = new Date(leaf.notBefore.getTime() - 1000);
      await assert.rejects(trust.verify(ek, [], cas, early), { code: "ek.certificate" });
    });

    await t.step("another CA set refuses the certificate even after a success", async () => {
      const trust = new EkTrust();
      const other = await startSwtpm({ ekCert: true });
      try {
        await trust.verify(ek, [], [sw.ekCaPem!], now);
        await assert.rejects(trust.verify(ek, [], [other.ekCaPem!], now), {
          code: "ek.certificate",
        });
      } finally {
        await other.stop();
      }
    });

    await t.step("known() parses once and refuses garbage with a ParseError", () => {
      const trust = new EkTrust(2);
      assert.equal(trust.known(ek), trust.known(ek));
      assert.throws(() => trust.known(new Uint8Array([0x30, 0x82, 0xff])), { name: "ParseError" });
    });
  } finally {
    await sw.stop();
  }
});
