/**
 * Wire schemas of kms/protocol.ts: base64 fields are bounded by their decoded length exactly
 * (finding: a 31- or 33-byte ephemeral key shares a 32-byte key's 44-character encoding, passed
 * the schema and made the KMS answer 500).
 */
import assert from "node:assert/strict";
import { b64, finishRequestSchema } from "../../kms/protocol.ts";
import { toBase64 } from "../../lib/bytes.ts";

Deno.test("b64(32, 32) takes exactly 32 decoded bytes", () => {
  const s = b64(32, 32);
  assert.equal(s.safeParse(toBase64(new Uint8Array(32))).success, true);
  for (const n of [0, 1, 30, 31, 33, 34]) {
    assert.equal(s.safeParse(toBase64(new Uint8Array(n))).success, false, `${n} bytes`);
  }
  assert.equal(b64(64, 16).safeParse(toBase64(new Uint8Array(16))).success, true);
  assert.equal(b64(64, 16).safeParse(toBase64(new Uint8Array(15))).success, false);
  assert.equal(b64(64, 16).safeParse(toBase64(new Uint8Array(65))).success, false);
});

Deno.test("finishRequestSchema refuses a 31- or 33-byte ephemeral key", () => {
  const req = (n: number) => ({
    session: "s",
    activatedSecret: toBase64(new Uint8Array(32)),
    evidence: {},
    ephemeralPublicKey: toBase64(new Uint8Array(n)),
    request: {
      role: "worker",
      disk: { uuid: "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d" },
      nodeName: "n",
    },
  });
  assert.equal(finishRequestSchema.safeParse(req(32)).success, true);
  assert.equal(finishRequestSchema.safeParse(req(31)).success, false);
  assert.equal(finishRequestSchema.safeParse(req(33)).success, false);
});
