import assert from "node:assert/strict";
import { kdfa, kdfe } from "../../../../attestation/tpm/credential/kdf.ts";
import { fromHex, toHex } from "../../../../lib/bytes.ts";
import { ConfidantError } from "../../../../lib/errors.ts";

// Self-test vector of the TPM reference implementation (KdfTestData.h in libtpms/ms-tpm-20-ref):
// key, label "KDFSELFTESTLABEL\0", contextU, contextV, 160 bits.
const KEY = fromHex("271fa08bbdc5060ec3dfa928ff9b73123a12da0c");
const CTX_U = fromHex("ce244f395dca7391");
const CTX_V = fromHex("da504031ddf12e83");

Deno.test("kdfa() matches the reference implementation's self-test vectors", async (t) => {
  const cases: [number, string, string][] = [
    [0x0004, "sha1", "55b5a7184aa07423c47dae766c26a2377d7cf851"],
    [0x000b, "sha256", "bb0259e1c8ba607e6a2cd704b69a902e9ade84c4"],
    [0x000c, "sha384", "1dce70c9113eb2dba47bd9cfc72bf46f45b09312"],
    [0x000d, "sha512", "8be2c1b85b78569b9fa759f5857c56d684810fd3"],
  ];
  for (const [alg, name, want] of cases) {
    await t.step(name, () => {
      assert.equal(toHex(kdfa(alg, KEY, "KDFSELFTESTLABEL", CTX_U, CTX_V, 160)), want);
    });
  }
});

Deno.test("kdfa() output changes with every input and is deterministic", () => {
  const base = toHex(kdfa(0x000b, KEY, "STORAGE", CTX_U, CTX_V, 128));
  assert.equal(toHex(kdfa(0x000b, KEY, "STORAGE", CTX_U, CTX_V, 128)), base);
  assert.notEqual(toHex(kdfa(0x000b, KEY, "INTEGRITY", CTX_U, CTX_V, 128)), base);
  assert.notEqual(toHex(kdfa(0x000b, KEY, "STORAGE", CTX_V, CTX_U, 128)), base);
  assert.notEqual(toHex(kdfa(0x000b, KEY.subarray(1), "STORAGE", CTX_U, CTX_V, 128)), base);
  // The requested size is hashed in, so a shorter output is not a prefix of a longer one.
  assert.notEqual(toHex(kdfa(0x000b, KEY, "STORAGE", CTX_U, CTX_V, 256)).slice(0, 32), base);
});

Deno.test("kdfa() spans several HMAC blocks and masks partial bytes", () => {
  const long = kdfa(0x000b, KEY, "X", CTX_U, CTX_V, 600);
  assert.equal(long.length, 75);
  const odd = kdfa(0x000b, KEY, "X", CTX_U, CTX_V, 12);
  assert.equal(odd.length, 2);
  assert.ok(odd[0] < 16);
});

Deno.test("kdfe() is a hash-counter KDF whose blocks extend with the size", () => {
  const z = fromHex("11".repeat(32));
  const a = kdfe(0x000b, z, "IDENTITY", CTX_U, CTX_V, 256);
  const b = kdfe(0x000b, z, "IDENTITY", CTX_U, CTX_V, 512);
  assert.equal(a.length, 32);
  assert.equal(toHex(b.subarray(0, 32)), toHex(a));
  assert.notEqual(toHex(kdfe(0x000b, z, "IDENTITY", CTX_V, CTX_U, 256)), toHex(a));
  assert.notEqual(toHex(kdfe(0x000c, z, "IDENTITY", CTX_U, CTX_V, 256)), toHex(a));
});

Deno.test("kdfa() and kdfe() refuse absurd sizes and unknown hashes", () => {
  assert.throws(() => kdfa(0x000b, KEY, "L", CTX_U, CTX_V, 0), ConfidantError);
  assert.throws(() => kdfa(0x000b, KEY, "L", CTX_U, CTX_V, 1 << 20), ConfidantError);
  assert.throws(() => kdfe(0x0099, KEY, "L", CTX_U, CTX_V, 128), ConfidantError);
});
