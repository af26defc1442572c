/**
 * verifyEkCertificate()'s RFC 5280 / TCG rules beyond signatures and dates (the reviewer's
 * /tmp/rev/ekchain.ts: a chain openssl rejects — a CA:TRUE leaf under an intermediate whose
 * keyUsage is digitalSignature only — was accepted). Chains are made in the test with
 * @peculiar/x509 and P-256 keys.
 */
import assert from "node:assert/strict";
import * as x509 from "../../lib/x509.ts";
import { TCG_KP_EK_CERTIFICATE, verifyEkCertificate } from "../../attestation/ek_certificate.ts";
import { ConfidantError } from "../../lib/errors.ts";

const ALG = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
const newKeys = () => crypto.subtle.generateKey(ALG, true, ["sign", "verify"]);
const NOW = new Date();
const notBefore = new Date(NOW.getTime() - 86_400_000);
const notAfter = new Date(NOW.getTime() + 86_400_000);
let serial = 1;

interface Made {
  cert: x509.X509Certificate;
  keys: CryptoKeyPair;
}

async function make(
  name: string,
  issuer: Made | undefined,
  extensions: x509.Extension[],
): Promise<Made> {
  const keys = await newKeys();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: (serial++).toString(16).padStart(2, "0"),
    subject: `CN=${name}`,
    issuer: issuer ? issuer.cert.subject : `CN=${name}`,
    notBefore,
    notAfter,
    publicKey: keys.publicKey,
    signingKey: issuer ? issuer.keys.privateKey : keys.privateKey,
    signingAlgorithm: ALG,
    extensions,
  });
  return { cert, keys };
}

const ca = (pathLen?: number, usages = x509.KeyUsageFlags.keyCertSign) => [
  new x509.BasicConstraintsExtension(true, pathLen, true),
  new x509.KeyUsagesExtension(usages, true),
];
const ekLeaf = [new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyAgreement, true)];

async function check(leaf: Made, intermediates: Made[], root: Made): Promise<string | undefined> {
  try {
    await verifyEkCertificate(leaf.cert, {
      caCertificates: [root.cert.toString("pem")],
      intermediates: intermediates.map((i) => new Uint8Array(i.cert.rawData)),
      now: NOW,
    });
    return undefined;
  } catch (e) {
    assert.ok(e instanceof ConfidantError && e.code === "ek.certificate", String(e));
    return e.message;
  }
}

Deno.test("verifyEkCertificate() enforces CA key usage, path length and the EK leaf's shape", async (t) => {
  const root = await make("root", undefined, ca());
  const int = await make("int", root, ca());

  await t.step("a well-formed root → intermediate → EK chain verifies", async () => {
    assert.equal(await check(await make("ek", int, ekLeaf), [int], root), undefined);
  });
  await t.step("a CA:TRUE leaf is refused", async () => {
    const leaf = await make("ek", int, [new x509.BasicConstraintsExtension(true, undefined, true)]);
    assert.match((await check(leaf, [int], root))!, /CA certificate/);
  });
  await t.step(
    "an intermediate without keyCertSign is refused (the reviewer's chain)",
    async () => {
      const sigOnly = await make(
        "sig-only",
        root,
        ca(undefined, x509.KeyUsageFlags.digitalSignature),
      );
      const leaf = await make("ek", sigOnly, ekLeaf);
      assert.match((await check(leaf, [sigOnly], root))!, /keyCertSign/);
    },
  );
  await t.step("a trust anchor without keyCertSign is refused", async () => {
    const badRoot = await make("bad-root", undefined, ca(undefined, x509.KeyUsageFlags.cRLSign));
    const leaf = await make("ek", badRoot, ekLeaf);
    assert.match((await check(leaf, [], badRoot))!, /keyCertSign/);
  });
  await t.step("pathLenConstraint: a root with pathLen 0 signs no intermediate", async () => {
    const strictRoot = await make("root-0", undefined, ca(0));
    const mid = await make("mid", strictRoot, ca());
    assert.match((await check(await make("ek", mid, ekLeaf), [mid], strictRoot))!, /allows 0/);
    // the same root signing the EK directly is fine
    assert.equal(await check(await make("ek", strictRoot, ekLeaf), [], strictRoot), undefined);
    // pathLen 1 on the intermediate's issuer chain: two intermediates under a pathLen-1 root
    const root1 = await make("root-1", undefined, ca(1));
    const a = await make("a", root1, ca());
    const b = await make("b", a, ca());
    assert.match((await check(await make("ek", b, ekLeaf), [a, b], root1))!, /allows 1/);
    assert.equal(await check(await make("ek", a, ekLeaf), [a], root1), undefined);
  });
  await t.step("an EKU on the leaf must include tcg-kp-EKCertificate", async () => {
    const tls = await make("ek", int, [
      ...ekLeaf,
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
    ]);
    assert.match((await check(tls, [int], root))!, /tcg-kp-EKCertificate/);
    const tcg = await make("ek", int, [
      ...ekLeaf,
      new x509.ExtendedKeyUsageExtension([TCG_KP_EK_CERTIFICATE]),
    ]);
    assert.equal(await check(tcg, [int], root), undefined);
  });
});
