import assert from "node:assert/strict";
import { constants, generateKeyPairSync, sign } from "node:crypto";
import {
  type TpmtPublic,
  unmarshalTpmsAttest,
  unmarshalTpmtPublic,
  unmarshalTpmtSignature,
} from "../../../../attestation/tpm/mod.ts";
import { computePcrDigest, verifyTpmSignature } from "../../../../attestation/tpm/verify/mod.ts";
import { fromHex, toHex } from "../../../../lib/bytes.ts";

const DIR = new URL("../../../testdata/attestation/gce_nonce9009/", import.meta.url);
const read = (n: string) => Deno.readFile(new URL(n, DIR));
const BANKS = { sha1: 0x0004, sha256: 0x000b, sha384: 0x000c } as const;

interface QuoteInfo {
  bank: keyof typeof BANKS;
  pcrDigest: string;
  pcrs: Record<string, string>;
}

Deno.test("verifyTpmSignature() accepts real GCE vTPM RSASSA quotes and recomputes their PCR digests", async (t) => {
  const ak = unmarshalTpmtPublic(await read("ak_pub.tpmt_public"));
  const info = JSON.parse(new TextDecoder().decode(await read("quotes.json"))) as {
    quotes: QuoteInfo[];
  };
  for (const q of info.quotes) {
    await t.step(q.bank, async () => {
      const msg = await read(`quote_${q.bank}.tpms_attest`);
      const sig = unmarshalTpmtSignature(await read(`quote_${q.bank}.tpmt_signature`));
      assert.deepEqual(verifyTpmSignature(ak, msg, sig), { ok: true });
      const attest = unmarshalTpmsAttest(msg);
      assert.equal(toHex(attest.extraData), "9009");
      assert.ok(attest.attested.kind === "quote");
      const values = new Map([[
        BANKS[q.bank],
        new Map(Object.entries(q.pcrs).map(([k, v]) => [Number(k), fromHex(v)])),
      ]]);
      assert.ok(sig.sigAlg !== 0x0010);
      // The digest uses the signature's hash (SHA-256) even for the SHA-1/SHA-384 banks.
      const d = computePcrDigest(sig.hash, attest.attested.pcrSelect, values);
      assert.equal(toHex(d), q.pcrDigest);
      assert.equal(toHex(d), toHex(attest.attested.pcrDigest));

      const flipped = msg.slice();
      flipped[flipped.length - 1] ^= 1;
      assert.equal(verifyTpmSignature(ak, flipped, sig).ok, false);
    });
  }
});

Deno.test("verifyTpmSignature() refuses mismatched algorithms, SHA-1 and NULL signatures", async () => {
  const ak = unmarshalTpmtPublic(await read("ak_pub.tpmt_public"));
  const msg = await read("quote_sha256.tpms_attest");
  const sig = unmarshalTpmtSignature(await read("quote_sha256.tpmt_signature"));
  assert.ok(sig.sigAlg === 0x0014);
  assert.equal(verifyTpmSignature(ak, msg, { sigAlg: 0x0010 }).ok, false);
  assert.equal(verifyTpmSignature(ak, msg, { ...sig, hash: 0x0004 }).ok, false);
  // The AK's scheme is RSASSA/SHA-256: a PSS signature does not match it.
  assert.match(verifyTpmSignature(ak, msg, { ...sig, sigAlg: 0x0016 }).reason!, /scheme/);
  assert.equal(
    verifyTpmSignature(ak, msg, { sigAlg: 0x0018, hash: 0x000b, r: sig.sig, s: sig.sig }).ok,
    false,
  );
  assert.equal(verifyTpmSignature(ak, msg, { ...sig, sig: sig.sig.subarray(1) }).ok, false);
});

function b64u(s: string): Uint8Array {
  return Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
}

Deno.test("verifyTpmSignature() checks RSA-PSS and ECDSA P-256/P-384 signatures", async (t) => {
  const msg = new TextEncoder().encode("TPMS_ATTEST stand-in");
  await t.step("RSA-PSS SHA-256, key without a scheme", () => {
    const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const jwk = publicKey.export({ format: "jwk" });
    const pub: TpmtPublic = {
      type: 0x0001,
      nameAlg: 0x000b,
      objectAttributes: 0x00050072,
      authPolicy: new Uint8Array(0),
      parameters: {
        symmetric: { algorithm: 0x0010 },
        scheme: { scheme: 0x0010 },
        keyBits: 2048,
        exponent: 0,
      },
      unique: { n: b64u(jwk.n!) },
    };
    const sig = new Uint8Array(sign("sha256", msg, {
      key: privateKey,
      padding: constants.RSA_PKCS1_PSS_PADDING,
      saltLength: 32,
    }));
    assert.deepEqual(verifyTpmSignature(pub, msg, { sigAlg: 0x0016, hash: 0x000b, sig }), {
      ok: true,
    });
    const bad = sig.slice();
    bad[5] ^= 1;
    assert.equal(
      verifyTpmSignature(pub, msg, { sigAlg: 0x0016, hash: 0x000b, sig: bad }).ok,
      false,
    );
    // A PKCS#1 v1.5 check of a PSS signature fails.
    assert.equal(verifyTpmSignature(pub, msg, { sigAlg: 0x0014, hash: 0x000b, sig }).ok, false);
  });
  for (
    const [curve, curveId, hash, hashName, size] of [
      ["P-256", 0x0003, 0x000b, "sha256", 32],
      ["P-384", 0x0004, 0x000c, "sha384", 48],
    ] as const
  ) {
    await t.step(`ECDSA ${curve}`, () => {
      const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: curve });
      const jwk = publicKey.export({ format: "jwk" });
      const pub: TpmtPublic = {
        type: 0x0023,
        nameAlg: 0x000b,
        objectAttributes: 0x00050072,
        authPolicy: new Uint8Array(0),
        parameters: {
          symmetric: { algorithm: 0x0010 },
          scheme: { scheme: 0x0018, hashAlg: hash },
          curveId,
          kdf: { scheme: 0x0010 },
        },
        unique: { x: b64u(jwk.x!), y: b64u(jwk.y!) },
      };
      const raw = new Uint8Array(
        sign(hashName, msg, { key: privateKey, dsaEncoding: "ieee-p1363" }),
      );
      // TPMs may drop leading zero bytes of r and s; the verifier pads them back.
      const r = raw.subarray(0, size);
      const s = raw.subarray(size);
      assert.deepEqual(verifyTpmSignature(pub, msg, { sigAlg: 0x0018, hash, r, s }), { ok: true });
      const other = raw.slice();
      other[size + 3] ^= 1;
      const s2 = other.subarray(size);
      assert.equal(verifyTpmSignature(pub, msg, { sigAlg: 0x0018, hash, r, s: s2 }).ok, false);
      // Oversized components and the wrong hash are refused, not crashed on.
      const big = new Uint8Array(size + 1).fill(1);
      assert.equal(verifyTpmSignature(pub, msg, { sigAlg: 0x0018, hash, r: big, s }).ok, false);
      const wrongHash = hash === 0x000b ? 0x000c : 0x000b;
      assert.equal(
        verifyTpmSignature(pub, msg, { sigAlg: 0x0018, hash: wrongHash, r, s }).ok,
        false,
      );
      // An off-curve point is refused as a key problem.
      const off = { ...pub, unique: { x: pub.unique.x, y: pub.unique.x } } as TpmtPublic;
      assert.equal(verifyTpmSignature(off, msg, { sigAlg: 0x0018, hash, r, s }).ok, false);
    });
  }
});
