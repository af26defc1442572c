import assert from "node:assert/strict";
import { aesCfbDecrypt, aesCfbEncrypt } from "../../../../attestation/tpm/credential/aes_cfb.ts";
import { fromHex, toHex } from "../../../../lib/bytes.ts";
import { ConfidantError } from "../../../../lib/errors.ts";

// NIST SP800-38A F.3.13 (CFB128-AES128.Encrypt), first two blocks.
const KEY = fromHex("2b7e151628aed2a6abf7158809cf4f3c");
const IV = fromHex("000102030405060708090a0b0c0d0e0f");
const PT = fromHex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51");
const CT = "3b3fd92eb72dad20333449f8e83cfb4ac8a64537a0b3a93fcde3cdad9f1ce58b";

Deno.test("aesCfbEncrypt() matches the SP800-38A CFB128-AES128 vector", () => {
  assert.equal(toHex(aesCfbEncrypt(KEY, IV, PT)), CT);
  assert.equal(toHex(aesCfbDecrypt(KEY, IV, fromHex(CT))), toHex(PT));
});

Deno.test("aesCfbEncrypt() handles a partial last block as a prefix of the full one", () => {
  assert.equal(toHex(aesCfbEncrypt(KEY, IV, PT.subarray(0, 21))), CT.slice(0, 42));
  assert.equal(toHex(aesCfbDecrypt(KEY, IV, fromHex(CT.slice(0, 42)))), toHex(PT.subarray(0, 21)));
  assert.equal(aesCfbEncrypt(KEY, IV, new Uint8Array(0)).length, 0);
});

Deno.test("aesCfbEncrypt() refuses bad key and IV sizes", () => {
  assert.throws(() => aesCfbEncrypt(new Uint8Array(15), IV, PT), ConfidantError);
  assert.throws(() => aesCfbEncrypt(KEY, new Uint8Array(8), PT), ConfidantError);
});
