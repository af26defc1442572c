import assert from "node:assert/strict";
import { bytesEqual, fromBase64 } from "../../../lib/bytes.ts";
import { ParseError } from "../../../lib/errors.ts";
import { X509Certificate } from "../../../lib/x509.ts";
import {
  INTEL_SGX_ROOT_CA_DER,
  INTEL_SGX_ROOT_CA_SPKI_SHA256,
  spkiSha256,
} from "../../../attestation/tdx/intel_pki.ts";
import { parseSgxExtension } from "../../../attestation/tdx/pck_extensions.ts";
import { sgxExtension } from "./_fake_tdx.ts";
import { vectorText } from "./_vectors.ts";

Deno.test("the pinned Intel SGX Root CA is go-tdx-guest's trusted_root.pem", async () => {
  const pem = vectorText("go-tdx-guest/trusted_root.pem");
  const der = fromBase64(pem.replace(/-----[A-Z ]+-----/g, "").replace(/\s+/g, ""));
  assert.ok(bytesEqual(der, INTEL_SGX_ROOT_CA_DER));
  const cert = new X509Certificate(INTEL_SGX_ROOT_CA_DER as BufferSource);
  assert.equal(await spkiSha256(cert), INTEL_SGX_ROOT_CA_SPKI_SHA256);
  assert.match(cert.subject, /CN=Intel SGX Root CA/);
});

Deno.test("parseSgxExtension() reads FMSPC, PCE id and TCB, and refuses malformed DER", () => {
  const comps = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];
  const der = sgxExtension({ fmspc: "00806f050000", pceId: "0000", comps, pceSvn: 13 });
  const p = parseSgxExtension(der);
  assert.equal(p.fmspc, "00806f050000");
  assert.equal(p.pceId, "0000");
  assert.deepEqual(p.cpuSvnComponents, comps);
  assert.equal(p.pceSvn, 13);
  for (let n = 0; n < der.length; n += 7) {
    assert.throws(() => parseSgxExtension(der.subarray(0, n)), ParseError, `truncated at ${n}`);
  }
  for (let i = 0; i < der.length; i++) {
    const b = der.slice();
    b[i] ^= 0xff;
    try {
      parseSgxExtension(b);
    } catch (e) {
      assert.ok(e instanceof ParseError, `byte ${i}: ${e}`);
    }
  }
});
