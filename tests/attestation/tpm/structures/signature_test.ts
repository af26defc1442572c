import assert from "node:assert/strict";
import { fromHex, toHex } from "../../../../lib/bytes.ts";
import { ParseError } from "../../../../lib/errors.ts";
import {
  marshalTpmtSignature,
  TPM_ALG,
  type TpmtSignature,
  unmarshalTpmtSignature,
} from "../../../../attestation/tpm/mod.ts";

const data = (f: string) =>
  Deno.readFileSync(new URL(`../../../testdata/tpm/${f}`, import.meta.url));

Deno.test("unmarshalTpmtSignature() parses a real GCE RSASSA/SHA-256 quote signature", () => {
  const b = data("gce_quote_sha256.tpmt_signature");
  const s = unmarshalTpmtSignature(b);
  assert.equal(s.sigAlg, TPM_ALG.RSASSA);
  if (s.sigAlg !== TPM_ALG.RSASSA) return;
  assert.equal(s.hash, TPM_ALG.SHA256);
  assert.equal(s.sig.length, 256);
  assert.deepEqual(marshalTpmtSignature(s), b);
});

Deno.test("marshalTpmtSignature() pins ECDSA, RSAPSS and NULL encodings", () => {
  const ecdsa: TpmtSignature = {
    sigAlg: TPM_ALG.ECDSA,
    hash: TPM_ALG.SHA256,
    r: fromHex("0102"),
    s: fromHex("030405"),
  };
  assert.equal(toHex(marshalTpmtSignature(ecdsa)), "0018000b00020102" + "0003030405");
  assert.deepEqual(unmarshalTpmtSignature(fromHex("0018000b000201020003030405")), ecdsa);
  const pss: TpmtSignature = { sigAlg: TPM_ALG.RSAPSS, hash: TPM_ALG.SHA384, sig: fromHex("aa") };
  assert.equal(toHex(marshalTpmtSignature(pss)), "0016000c0001aa");
  assert.deepEqual(unmarshalTpmtSignature(fromHex("0016000c0001aa")), pss);
  assert.equal(toHex(marshalTpmtSignature({ sigAlg: TPM_ALG.NULL })), "0010");
  assert.deepEqual(unmarshalTpmtSignature(fromHex("0010")), { sigAlg: TPM_ALG.NULL });
});

Deno.test("unmarshalTpmtSignature() refuses unknown schemes, truncation and trailing bytes", () => {
  assert.throws(() => unmarshalTpmtSignature(fromHex("001a000b00000000")), /unsupported signature/);
  assert.throws(() => unmarshalTpmtSignature(fromHex("0018000b0002")), ParseError);
  assert.throws(() => unmarshalTpmtSignature(fromHex("001000")), /trailing/);
  assert.throws(() => unmarshalTpmtSignature(fromHex("0014000bffff00")), ParseError);
});
