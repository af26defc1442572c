import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { qualifyingData } from "../../attestation/qualifying_data.ts";
import { fromHex, toHex } from "../../lib/bytes.ts";
import { ConfidantError } from "../../lib/errors.ts";

Deno.test("qualifyingData() is SHA-256 of the label, the nonce and the userData", () => {
  const nonce = fromHex("0011");
  const user = fromHex("cafe");
  const want = createHash("sha256").update("confidant-attestation-v1").update(nonce).update(user)
    .digest("hex");
  assert.equal(toHex(qualifyingData(nonce, user)), want);
  // Pinned value so the definition cannot drift silently.
  assert.equal(
    toHex(qualifyingData(new Uint8Array(0), new Uint8Array(0))),
    createHash("sha256").update("confidant-attestation-v1").digest("hex"),
  );
  assert.notEqual(
    toHex(qualifyingData(nonce, new Uint8Array(0))),
    toHex(qualifyingData(user, nonce)),
  );
});

Deno.test("qualifyingData() refuses oversized inputs", () => {
  assert.throws(() => qualifyingData(new Uint8Array(65), new Uint8Array(0)), ConfidantError);
  assert.throws(() => qualifyingData(new Uint8Array(1), new Uint8Array(1025)), ConfidantError);
});
