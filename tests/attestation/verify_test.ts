import assert from "node:assert/strict";
import { akPin, verifyDocument, type VerifyOptions } from "../../attestation/verify.ts";
import { parsePolicy, type Policy } from "../../attestation/policy.ts";
import type { TpmDocument } from "../../attestation/document.ts";
import { fromBase64, fromHex, toBase64 } from "../../lib/bytes.ts";
import {
  computeName,
  EK_TEMPLATE_ECC_P256,
  unmarshalTpm2bPublic,
} from "../../attestation/tpm/mod.ts";
import { makeSoftAk, SOFT_PCRS, softTpmDocument } from "./_tee_fixtures.ts";

const TD = new URL("../testdata/attestation/", import.meta.url);
const DOC: TpmDocument = JSON.parse(
  await Deno.readTextFile(new URL("swtpm_ecc_quote.json", TD)),
);
const POLICY: Policy = parsePolicy(
  JSON.parse(await Deno.readTextFile(new URL("swtpm_ecc_policy.json", TD))),
);
const NONCE = fromHex("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
const USER = new TextEncoder().encode("node-7 public key");
const OPTS: VerifyOptions = { nonce: NONCE, userData: USER };

function clone(): TpmDocument {
  return structuredClone(DOC);
}

function flipB64(s: string, offset: number, mask = 0x01): string {
  const b = fromBase64(s);
  const i = offset < 0 ? b.length + offset : offset;
  b[i] ^= mask;
  return toBase64(b);
}

function checks(r: { failures: { check: string }[] }): string[] {
  return r.failures.map((f) => f.check).sort();
}

Deno.test("verifyDocument() accepts the tpm2-tools quote under a pinned-AK policy", async () => {
  const r = await verifyDocument(DOC, POLICY, OPTS);
  assert.deepEqual(r.failures, []);
  assert.equal(r.ok, true);
  assert.equal(r.ak!.digest, akPin(fromBase64(DOC.tpm.akPublic)));
  assert.match(r.ak!.name, /^000b[0-9a-f]{64}$/);
  assert.equal(Object.keys(r.pcrs).length, 8);
  // JSON text works too.
  assert.equal((await verifyDocument(JSON.stringify(DOC), POLICY, OPTS)).ok, true);
});

// TPMS_ATTEST layout of this quote: magic(4) type(2) qualifiedSigner(2+34) extraData(2+32) ...
const EXTRA_DATA = 4 + 2 + 36 + 2;

Deno.test("verifyDocument() names the right checks for every tampered field", async (t) => {
  const cases: {
    name: string;
    edit: (d: TpmDocument) => void;
    opts?: Partial<VerifyOptions>;
    want: string[];
  }[] = [
    {
      name: "quote magic",
      edit: (d) => d.tpm.quote = flipB64(d.tpm.quote, 0),
      want: ["quote.magic", "quote.signature"],
    },
    {
      name: "quote type",
      edit: (d) => d.tpm.quote = flipB64(d.tpm.quote, 5, 0x04),
      want: ["quote.signature", "quote.type"],
    },
    {
      name: "quote extraData",
      edit: (d) => d.tpm.quote = flipB64(d.tpm.quote, EXTRA_DATA + 3),
      want: ["quote.qualifying_data", "quote.signature"],
    },
    {
      name: "quote pcrDigest",
      edit: (d) => d.tpm.quote = flipB64(d.tpm.quote, -1),
      want: ["quote.pcr_digest", "quote.signature"],
    },
    {
      name: "quote clock",
      edit: (d) => d.tpm.quote = flipB64(d.tpm.quote, EXTRA_DATA + 34 + 3),
      want: ["quote.signature"],
    },
    {
      name: "quote truncated",
      edit: (d) => d.tpm.quote = toBase64(fromBase64(d.tpm.quote).subarray(0, 50)),
      want: ["quote.parse", "quote.signature"],
    },
    {
      name: "signature r",
      edit: (d) => d.tpm.signature = flipB64(d.tpm.signature, 10),
      want: ["quote.signature"],
    },
    {
      name: "signature s",
      edit: (d) => d.tpm.signature = flipB64(d.tpm.signature, -1),
      want: ["quote.signature"],
    },
    {
      name: "signature algorithm",
      edit: (d) => d.tpm.signature = flipB64(d.tpm.signature, 1, 0x0c),
      want: ["quote.signature"],
    },
    {
      name: "one PCR value",
      edit: (d) => {
        const v = d.tpm.pcrs.sha256!["7"];
        d.tpm.pcrs.sha256!["7"] = (v[0] === "0" ? "1" : "0") + v.slice(1);
      },
      want: ["pcr.7", "quote.pcr_digest"],
    },
    {
      name: "PCR dropped from the document",
      edit: (d) => delete d.tpm.pcrs.sha256!["3"],
      want: ["pcr.3", "quote.pcr_digest", "quote.pcr_selection"],
    },
    {
      name: "PCR added to the document",
      edit: (d) => d.tpm.pcrs.sha256!["9"] = "00".repeat(32),
      want: ["quote.pcr_digest", "quote.pcr_selection"],
    },
    {
      name: "document nonce",
      edit: (d) => d.nonce = flipB64(d.nonce, 0),
      want: ["document.nonce"],
    },
    {
      name: "expected nonce differs (replay)",
      edit: () => {},
      opts: { nonce: NONCE.map((x, i) => i === 0 ? x ^ 1 : x) },
      want: ["document.nonce", "quote.qualifying_data"],
    },
    {
      name: "document userData",
      edit: (d) => d.userData = toBase64(new TextEncoder().encode("node-8 public key")),
      want: ["document.user_data"],
    },
    {
      name: "expected userData differs",
      edit: () => {},
      opts: { userData: new Uint8Array(0) },
      want: ["document.user_data", "quote.qualifying_data"],
    },
    {
      name: "AK public point",
      edit: (d) => d.tpm.akPublic = flipB64(d.tpm.akPublic, -1),
      want: ["ak.pinned", "quote.signature"],
    },
    {
      name: "AK attributes (restricted cleared)",
      edit: (d) => d.tpm.akPublic = flipB64(d.tpm.akPublic, 2 + 4 + 1, 0x01),
      want: ["ak.attributes", "ak.pinned"],
    },
    {
      name: "AK public garbage",
      edit: (d) => d.tpm.akPublic = toBase64(Uint8Array.of(0, 9, 1, 2, 3, 4)),
      want: ["ak.pinned", "ak.public", "quote.signature"],
    },
    {
      name: "schema: unknown field",
      edit: (d) => (d as unknown as Record<string, unknown>).extra = 1,
      want: ["document.schema"],
    },
  ];
  for (const c of cases) {
    await t.step(c.name, async () => {
      const d = clone();
      c.edit(d);
      const r = await verifyDocument(d, POLICY, { ...OPTS, ...c.opts });
      assert.equal(r.ok, false);
      assert.deepEqual(checks(r), [...c.want].sort());
    });
  }
});

Deno.test("verifyDocument() reports every failure at once, not only the first", async () => {
  const d = clone();
  d.nonce = flipB64(d.nonce, 0);
  d.tpm.signature = flipB64(d.tpm.signature, 10);
  d.tpm.pcrs.sha256!["0"] = "00".repeat(32);
  const r = await verifyDocument(d, POLICY, OPTS);
  assert.deepEqual(checks(r), ["document.nonce", "pcr.0", "quote.pcr_digest", "quote.signature"]);
});

Deno.test("verifyDocument() with warnOnly PCRs warns instead of failing", async () => {
  const p = parsePolicy({
    pcrs: { "7": { expected: ["ab".repeat(32)], warnOnly: true } },
    ak: POLICY.ak,
  });
  const r = await verifyDocument(DOC, p, OPTS);
  assert.equal(r.ok, true);
  assert.deepEqual(r.warnings.map((w) => w.check), ["pcr.7"]);
  const strict = parsePolicy({ pcrs: { "7": { expected: ["ab".repeat(32)] } }, ak: POLICY.ak });
  assert.deepEqual(checks(await verifyDocument(DOC, strict, OPTS)), ["pcr.7"]);
  const absent = parsePolicy({ pcrs: { "15": { expected: ["ab".repeat(32)] } }, ak: POLICY.ak });
  assert.deepEqual(checks(await verifyDocument(DOC, absent, OPTS)), ["pcr.15"]);
});

Deno.test("verifyDocument() admits nobody when the policy has no ak section", async () => {
  const r = await verifyDocument(DOC, parsePolicy({ pcrs: {} }), OPTS);
  assert.equal(r.ok, false);
  assert.deepEqual(checks(r), ["ak.trust"]);
  assert.match(r.failures[0].message, /trusts no attestation key/);
});

Deno.test("verifyDocument() in EK-CA mode cannot pass from a stored document", async () => {
  const ca = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----";
  const p = parsePolicy({ ak: { ekCaCertificates: [ca] } });
  const r = await verifyDocument(DOC, p, OPTS);
  assert.deepEqual(checks(r), ["ak.activation", "ek.certificate"]);
  assert.match(r.failures.find((f) => f.check === "ak.activation")!.message, /live/);
  // Claiming activation for another AK name is refused too.
  const r2 = await verifyDocument(DOC, p, {
    ...OPTS,
    akTrust: { activated: true, ekPublic: EK_TEMPLATE_ECC_P256, akName: new Uint8Array(34) },
  });
  assert.deepEqual(checks(r2), ["ak.activation", "ek.certificate"]);
  assert.match(r2.failures.find((f) => f.check === "ak.activation")!.message, /AK name/);
});

Deno.test("verifyDocument() reports non-documents as document.schema", async () => {
  for (const bad of [null, 1, "[]", "{", { version: 2 }, { version: 1, variant: "sgx" }, []]) {
    const r = await verifyDocument(bad, POLICY, OPTS);
    assert.deepEqual(checks(r), ["document.schema"]);
  }
});

Deno.test("verifyDocument() with akTrust ekChainVerified trusts the activated AK without an EK chain and says so", async (t) => {
  const caPem = await Deno.readTextFile(new URL("swtpm_localca_chain.pem", TD));
  const ak = await makeSoftAk();
  const other = await makeSoftAk();
  const nonce = crypto.getRandomValues(new Uint8Array(32));
  const userData = crypto.getRandomValues(new Uint8Array(32));
  const doc = await softTpmDocument(ak, nonce, userData);
  assert.equal(doc.tpm.ekCertificate, undefined, "no EK certificate to check");
  const akName = await computeName(unmarshalTpm2bPublic(ak.akPublic).tpmtBytes);
  const pcrs = { "7": { expected: [SOFT_PCRS["7"]] } };
  const ekCa = parsePolicy({ pcrs, ak: { ekCaCertificates: [caPem] } });
  const preverified = { activated: true as const, akName, ekChainVerified: true as const };
  const names = (r: { failures: { check: string }[] }) => r.failures.map((f) => f.check);

  await t.step("the activated AK passes, reported as ek-ca-verified+activation", async () => {
    const r = await verifyDocument(doc, ekCa, { nonce, userData, akTrust: preverified });
    assert.deepEqual(names(r), []);
    assert.equal(r.ok, true);
    assert.equal(r.akTrust, "ek-ca-verified+activation");
  });
  await t.step("another AK name is ak.activation, and nothing is reported trusted", async () => {
    const otherName = await computeName(unmarshalTpm2bPublic(other.akPublic).tpmtBytes);
    const r = await verifyDocument(doc, ekCa, {
      nonce,
      userData,
      akTrust: { ...preverified, akName: otherName },
    });
    assert.deepEqual(names(r), ["ak.activation"]);
    assert.equal(r.akTrust, undefined);
  });
  await t.step("without it the same document needs the EK chain and an activation", async () => {
    const r = await verifyDocument(doc, ekCa, { nonce, userData });
    assert.deepEqual(names(r).sort(), ["ak.activation", "ek.certificate"]);
    assert.equal(r.akTrust, undefined);
  });
  await t.step("the other checks still run (PCRs, nonce)", async () => {
    const strict = parsePolicy({
      pcrs: { "7": { expected: ["00".repeat(32)] } },
      ak: { ekCaCertificates: [caPem] },
    });
    const r = await verifyDocument(doc, strict, {
      nonce: new Uint8Array(32),
      userData,
      akTrust: preverified,
    });
    assert.deepEqual(names(r).sort(), ["document.nonce", "pcr.7", "quote.qualifying_data"]);
  });
  await t.step("under pinned AKs it is ignored: the pin decides", async () => {
    const pinned = parsePolicy({ pcrs, ak: { pinned: [ak.pin] } });
    const ok = await verifyDocument(doc, pinned, { nonce, userData, akTrust: preverified });
    assert.equal(ok.akTrust, "pinned");
    const notPinned = parsePolicy({ pcrs, ak: { pinned: [other.pin] } });
    const r = await verifyDocument(doc, notPinned, { nonce, userData, akTrust: preverified });
    assert.deepEqual(names(r), ["ak.pinned"]);
  });
});
