import assert from "node:assert/strict";
import { fromHex, toHex } from "../../../../lib/bytes.ts";
import { ParseError } from "../../../../lib/errors.ts";
import {
  marshalTpmlPcrSelection,
  TPM_ALG,
  unmarshalTpmlPcrSelection,
} from "../../../../attestation/tpm/mod.ts";

Deno.test("marshalTpmlPcrSelection() pins the bitmap encoding (sha256:0,4,7 + sha1:16,23)", () => {
  const sel = [{ hash: TPM_ALG.SHA256, pcrs: [0, 4, 7] }, { hash: TPM_ALG.SHA1, pcrs: [16, 23] }];
  const golden = "00000002" + "000b03910000" + "000403000081";
  assert.equal(toHex(marshalTpmlPcrSelection(sel)), golden);
  assert.deepEqual(unmarshalTpmlPcrSelection(fromHex(golden)), sel);
});

Deno.test("unmarshalTpmlPcrSelection() sorts PCRs and accepts an empty list", () => {
  assert.deepEqual(unmarshalTpmlPcrSelection(fromHex("00000000")), []);
  assert.deepEqual(unmarshalTpmlPcrSelection(fromHex("00000001000b03000000")), [
    { hash: TPM_ALG.SHA256, pcrs: [] },
  ]);
  // A selection written out of order comes back ascending.
  const b = marshalTpmlPcrSelection([{ hash: TPM_ALG.SHA256, pcrs: [23, 1, 9] }]);
  assert.deepEqual(unmarshalTpmlPcrSelection(b)[0].pcrs, [1, 9, 23]);
});

Deno.test("unmarshalTpmlPcrSelection() refuses huge counts, huge bitmaps and truncation", () => {
  assert.throws(() => unmarshalTpmlPcrSelection(fromHex("ffffffff")), /count/);
  assert.throws(() => unmarshalTpmlPcrSelection(fromHex("00000001000bff")), /sizeofSelect/);
  assert.throws(() => unmarshalTpmlPcrSelection(fromHex("00000001000b03ff")), ParseError);
  assert.throws(() => marshalTpmlPcrSelection([{ hash: 11, pcrs: [-1] }]), ParseError);
});
