import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { AGENT_ENDPOINT_USER_DATA, qualifyingData } from "../../attestation/qualifying_data.ts";
import { concat, fromHex, toHex } from "../../lib/bytes.ts";
import { ConfidantError } from "../../lib/errors.ts";

Deno.test("qualifyingData() is SHA-256 of the v2 label and the length-framed nonce and userData", () => {
  const nonce = fromHex("0011");
  const user = fromHex("cafe");
  const want = createHash("sha256").update("confidant-attestation-v2")
    .update(fromHex("0002")).update(nonce).update(fromHex("0002")).update(user).digest("hex");
  assert.equal(toHex(qualifyingData(nonce, user)), want);
  // Pinned value so the definition cannot drift silently.
  assert.equal(
    toHex(qualifyingData(new Uint8Array(0), new Uint8Array(0))),
    createHash("sha256").update("confidant-attestation-v2").update(new Uint8Array(4)).digest(
      "hex",
    ),
  );
});

Deno.test("qualifyingData() gives a different value for every split of the same bytes", () => {
  // The reviewer's attack: one quote over nonce = kmsNonce ‖ SHA-256(key) with empty userData
  // must not verify for (kmsNonce, SHA-256(key)).
  const kmsNonce = crypto.getRandomValues(new Uint8Array(32));
  const ud = crypto.getRandomValues(new Uint8Array(32));
  const joined = toHex(qualifyingData(concat(kmsNonce, ud), new Uint8Array(0)));
  assert.notEqual(joined, toHex(qualifyingData(kmsNonce, ud)));
  const all = concat(kmsNonce, ud);
  const seen = new Set<string>();
  for (let i = 0; i <= all.length; i++) {
    seen.add(toHex(qualifyingData(all.subarray(0, i), all.subarray(i))));
  }
  assert.equal(seen.size, all.length + 1);
});

Deno.test("AGENT_ENDPOINT_USER_DATA is SHA-256 of its purpose label", () => {
  assert.equal(
    toHex(AGENT_ENDPOINT_USER_DATA),
    createHash("sha256").update("confidant-agent-endpoint-v1").digest("hex"),
  );
});

Deno.test("qualifyingData() refuses oversized inputs", () => {
  assert.throws(() => qualifyingData(new Uint8Array(65), new Uint8Array(0)), ConfidantError);
  assert.throws(() => qualifyingData(new Uint8Array(1), new Uint8Array(1025)), ConfidantError);
});
