import assert from "node:assert/strict";
import {
  constantTimeEqual,
  fromBase64,
  fromBase64Url,
  fromHex,
  toBase64,
  toBase64Url,
  toHex,
} from "../../lib/bytes.ts";
import { ParseError } from "../../lib/errors.ts";

Deno.test("hex and base64 codecs round-trip every byte value", () => {
  const all = Uint8Array.from({ length: 256 }, (_, i) => i);
  assert.deepEqual(fromHex(toHex(all)), all);
  assert.deepEqual(fromBase64(toBase64(all)), all);
  assert.deepEqual(fromBase64Url(toBase64Url(all)), all);
  for (let n = 0; n < 5; n++) {
    const b = all.subarray(0, n);
    assert.deepEqual(fromBase64(toBase64(b)), b);
    assert.deepEqual(fromBase64Url(toBase64Url(b)), b);
  }
});

Deno.test("codecs refuse malformed input with a ParseError", () => {
  for (const bad of ["abc", "zz", "0x00"]) assert.throws(() => fromHex(bad), ParseError);
  for (const bad of ["abc", "a===", "ab!=", "YQ"]) assert.throws(() => fromBase64(bad), ParseError);
  for (const bad of ["a", "a+b/", "a=="]) assert.throws(() => fromBase64Url(bad), ParseError);
});

Deno.test("constantTimeEqual() compares content and length", () => {
  assert.equal(constantTimeEqual(fromHex("0102"), fromHex("0102")), true);
  assert.equal(constantTimeEqual(fromHex("0102"), fromHex("0103")), false);
  assert.equal(constantTimeEqual(fromHex("0102"), fromHex("010203")), false);
});
