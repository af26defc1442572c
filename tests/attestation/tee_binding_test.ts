import assert from "node:assert/strict";
import { concat, toHex, utf8 } from "../../lib/bytes.ts";
import { TEE_BINDING_DOMAIN, teeReportData } from "../../attestation/tee_binding.ts";

function lp(b: Uint8Array): Uint8Array {
  const n = new Uint8Array(4);
  new DataView(n.buffer).setUint32(0, b.length);
  return concat(n, b);
}

Deno.test("teeReportData() is SHA-512 over the length-prefixed domain, nonce, user data and AK", async () => {
  const nonce = new Uint8Array(32).fill(1);
  const userData = utf8("hello");
  const akPublic = new Uint8Array([0, 3, 9, 9, 9]);
  const got = await teeReportData({ nonce, userData, akPublic });
  assert.equal(got.length, 64);
  const want = new Uint8Array(
    await crypto.subtle.digest(
      "SHA-512",
      concat(lp(utf8(TEE_BINDING_DOMAIN)), lp(nonce), lp(userData), lp(akPublic)) as BufferSource,
    ),
  );
  assert.equal(toHex(got), toHex(want));
});

Deno.test("teeReportData() separates fields: moving a byte between fields changes the result", async () => {
  const a = await teeReportData({ nonce: utf8("ab"), userData: utf8("c"), akPublic: utf8("") });
  const b = await teeReportData({ nonce: utf8("a"), userData: utf8("bc"), akPublic: utf8("") });
  const c = await teeReportData({ nonce: utf8("a"), userData: utf8("b"), akPublic: utf8("c") });
  assert.notEqual(toHex(a), toHex(b));
  assert.notEqual(toHex(b), toHex(c));
});

Deno.test("teeReportData() refuses oversized fields", async () => {
  await assert.rejects(
    teeReportData({
      nonce: new Uint8Array(70_000),
      userData: new Uint8Array(),
      akPublic: new Uint8Array(),
    }),
    /nonce/,
  );
});
