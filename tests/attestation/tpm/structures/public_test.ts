import assert from "node:assert/strict";
import { fromHex, toHex } from "../../../../lib/bytes.ts";
import { ParseError } from "../../../../lib/errors.ts";
import {
  AK_TEMPLATE_ECC_P256,
  computeName,
  EK_TEMPLATE_ECC_P256,
  EK_TEMPLATE_RSA2048,
  marshalTpm2bPublic,
  marshalTpmtPublic,
  TPM_ALG,
  type TpmtPublic,
  unmarshalTpm2bPublic,
  unmarshalTpmtPublic,
} from "../../../../attestation/tpm/mod.ts";

const POLICY = "837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa";
const data = (f: string) =>
  Deno.readFileSync(new URL(`../../../testdata/tpm/${f}`, import.meta.url));

Deno.test("marshalTpmtPublic() encodes the TCG EK template L-2 (ECC P-256) byte for byte", () => {
  const golden = "0023000b000300b20020" + POLICY + "0006008000430010" + "0003" + "0010" +
    "0020" + "00".repeat(32) + "0020" + "00".repeat(32);
  assert.equal(toHex(marshalTpmtPublic(EK_TEMPLATE_ECC_P256)), golden);
  assert.deepEqual(unmarshalTpmtPublic(fromHex(golden)), EK_TEMPLATE_ECC_P256);
});

Deno.test("marshalTpmtPublic() encodes the TCG EK template L-1 (RSA 2048) byte for byte", () => {
  const golden = "0001000b000300b20020" + POLICY + "00060080004300100800" + "00000000" + "0100" +
    "00".repeat(256);
  assert.equal(toHex(marshalTpmtPublic(EK_TEMPLATE_RSA2048)), golden);
  assert.deepEqual(unmarshalTpmtPublic(fromHex(golden)), EK_TEMPLATE_RSA2048);
});

Deno.test("marshalTpmtPublic() encodes the ECC AK template (restricted ECDSA/SHA-256 signer)", () => {
  const golden = "0023000b00050072000000100018000b000300100000" + "0000";
  assert.equal(toHex(marshalTpmtPublic(AK_TEMPLATE_ECC_P256)), golden);
  assert.deepEqual(unmarshalTpmtPublic(fromHex(golden)), AK_TEMPLATE_ECC_P256);
});

Deno.test("unmarshalTpmtPublic() parses a real GCE vTPM RSA AK and its name matches", async () => {
  const b = data("gce_ak_pub.tpmt_public");
  const p = unmarshalTpmtPublic(b);
  assert.equal(p.type, TPM_ALG.RSA);
  if (p.type !== TPM_ALG.RSA) return;
  assert.equal(p.nameAlg, TPM_ALG.SHA256);
  assert.equal(p.parameters.keyBits, 2048);
  assert.equal(p.unique.n.length, 256);
  assert.deepEqual(p.parameters.symmetric, { algorithm: TPM_ALG.NULL });
  assert.deepEqual(marshalTpmtPublic(p), b);
  const json = JSON.parse(new TextDecoder().decode(data("gce_quotes.json")));
  assert.equal(toHex(await computeName(p)), json.ak_name);
  assert.equal(toHex(await computeName(b)), json.ak_name);
});

Deno.test("TPM2B_PUBLIC wraps TPMT_PUBLIC with a u16 size and returns the inner bytes", () => {
  const b = marshalTpm2bPublic(EK_TEMPLATE_ECC_P256);
  const inner = marshalTpmtPublic(EK_TEMPLATE_ECC_P256);
  assert.equal(toHex(b.subarray(0, 2)), inner.length.toString(16).padStart(4, "0"));
  const { public: p, tpmtBytes } = unmarshalTpm2bPublic(b);
  assert.deepEqual(p, EK_TEMPLATE_ECC_P256);
  assert.deepEqual(tpmtBytes, inner);
});

Deno.test("KEYEDHASH and SYMCIPHER public areas round-trip", () => {
  const kh: TpmtPublic = {
    type: TPM_ALG.KEYEDHASH,
    nameAlg: TPM_ALG.SHA256,
    objectAttributes: 0x00040072,
    authPolicy: new Uint8Array(0),
    parameters: { scheme: { scheme: TPM_ALG.HMAC, hashAlg: TPM_ALG.SHA256 } },
    unique: { digest: new Uint8Array(32).fill(7) },
  };
  const b = marshalTpmtPublic(kh);
  assert.equal(toHex(b.subarray(0, 16)), "0008000b0004007200000005000b0020");
  assert.deepEqual(unmarshalTpmtPublic(b), kh);
  const sc: TpmtPublic = {
    type: TPM_ALG.SYMCIPHER,
    nameAlg: TPM_ALG.SHA256,
    objectAttributes: 0x00030072,
    authPolicy: new Uint8Array(0),
    parameters: { symmetric: { algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB } },
    unique: { digest: new Uint8Array(0) },
  };
  assert.equal(toHex(marshalTpmtPublic(sc)), "0025000b000300720000000600800043" + "0000");
  assert.deepEqual(unmarshalTpmtPublic(marshalTpmtPublic(sc)), sc);
});

Deno.test("unmarshalTpmtPublic() refuses truncation, trailing bytes and unknown types", async (t) => {
  const b = marshalTpmtPublic(EK_TEMPLATE_ECC_P256);
  await t.step("every truncation", () => {
    for (let i = 0; i < b.length; i++) {
      assert.throws(() => unmarshalTpmtPublic(b.subarray(0, i)), ParseError);
    }
  });
  await t.step("trailing byte", () => {
    const x = new Uint8Array(b.length + 1);
    x.set(b);
    assert.throws(() => unmarshalTpmtPublic(x), /trailing/);
  });
  await t.step("unknown type", () => {
    const x = b.slice();
    x[1] = 0x99;
    assert.throws(() => unmarshalTpmtPublic(x), /unsupported TPMT_PUBLIC type 0x0099/);
  });
  await t.step("inflated authPolicy size", () => {
    const x = b.slice();
    x[8] = 0xff;
    assert.throws(() => unmarshalTpmtPublic(x), ParseError);
  });
  await t.step("TPM2B_PUBLIC whose size lies", () => {
    const w = marshalTpm2bPublic(EK_TEMPLATE_ECC_P256);
    w[1] -= 1;
    assert.throws(() => unmarshalTpm2bPublic(w), ParseError);
  });
});
