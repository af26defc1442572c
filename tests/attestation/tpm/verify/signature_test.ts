import assert from "node:assert/strict";
import {
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
