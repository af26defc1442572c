import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { computePcrDigest, selectedPcrValues } from "../../../../attestation/tpm/verify/mod.ts";
import { toHex } from "../../../../lib/bytes.ts";
import { ConfidantError } from "../../../../lib/errors.ts";

const v = (n: number, size: number) => new Uint8Array(size).fill(n);

Deno.test("computePcrDigest() hashes banks in selection order and indices ascending", () => {
  const values = new Map([
    [0x000b, new Map([[0, v(1, 32)], [7, v(7, 32)], [4, v(4, 32)]])],
    [0x0004, new Map([[2, v(2, 20)]])],
  ]);
  const sel = [{ hash: 0x0004, pcrs: [2] }, { hash: 0x000b, pcrs: [7, 0, 4] }];
  const want = createHash("sha256").update(v(2, 20)).update(v(1, 32)).update(v(4, 32))
    .update(v(7, 32)).digest("hex");
  assert.equal(toHex(computePcrDigest(0x000b, sel, values)), want);
  assert.equal(selectedPcrValues(sel, values).length, 4);
  // The signing hash decides the digest algorithm, not the bank.
  const want384 = createHash("sha384").update(v(2, 20)).digest("hex");
  assert.equal(toHex(computePcrDigest(0x000c, [sel[0]], values)), want384);
});

Deno.test("computePcrDigest() refuses missing or wrong-sized values", () => {
  const values = new Map([[0x000b, new Map([[0, v(1, 20)]])]]);
  assert.throws(
    () => computePcrDigest(0x000b, [{ hash: 0x000b, pcrs: [0] }], values),
    ConfidantError,
  );
  assert.throws(
    () => computePcrDigest(0x000b, [{ hash: 0x000b, pcrs: [1] }], values),
    ConfidantError,
  );
  assert.throws(
    () => computePcrDigest(0x000b, [{ hash: 0x0099, pcrs: [0] }], values),
    ConfidantError,
  );
});
