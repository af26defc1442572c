import assert from "node:assert/strict";
import { AMD_ARK_PINS, productFromCpuid, spkiSha256 } from "../../../attestation/snp/mod.ts";
import { parseCertificate } from "../../../attestation/tee_common/mod.ts";
import { pemFile } from "./_vectors.ts";

Deno.test("AMD_ARK_PINS are the SPKI SHA-256 of the real ARKs of Milan, Genoa and Turin", async () => {
  for (
    const [file, product] of [
      ["ask_ark_milan.pem", "Milan"],
      ["ask_ark_milan_vlek.pem", "Milan"],
      ["ask_ark_genoa.pem", "Genoa"],
      ["ask_ark_genoa_vlek.pem", "Genoa"],
      ["ask_ark_turin_vcek.pem", "Turin"],
      ["ask_ark_turin_vlek.pem", "Turin"],
    ] as const
  ) {
    const ark = parseCertificate(pemFile(file)[1], "ark");
    assert.equal(ark.subjectCn, `ARK-${product}`);
    const pin = AMD_ARK_PINS.find((p) => p.product === product)!;
    assert.equal(await spkiSha256(ark.spki), pin.spkiSha256, file);
  }
});

Deno.test("productFromCpuid() maps family/model to the product line", () => {
  assert.equal(productFromCpuid(0x19, 0x01), "Milan");
  assert.equal(productFromCpuid(0x19, 0x11), "Genoa");
  assert.equal(productFromCpuid(0x19, 0xa0), "Genoa");
  assert.equal(productFromCpuid(0x1a, 0x02), "Turin");
  assert.equal(productFromCpuid(0x17, 0x31), undefined);
  assert.equal(productFromCpuid(0, 0), undefined);
});
