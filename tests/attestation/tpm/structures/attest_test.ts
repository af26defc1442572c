import assert from "node:assert/strict";
import { fromHex, toHex } from "../../../../lib/bytes.ts";
import { ParseError } from "../../../../lib/errors.ts";
import {
  marshalTpmsAttest,
  TPM_ALG,
  TPM_GENERATED_VALUE,
  TPM_ST,
  type TpmsAttest,
  unmarshalTpmsAttest,
} from "../../../../attestation/tpm/mod.ts";

const data = (f: string) =>
  Deno.readFileSync(new URL(`../../../testdata/tpm/${f}`, import.meta.url));

Deno.test("unmarshalTpmsAttest() parses a real GCE vTPM quote into the recorded fields", () => {
  const json = JSON.parse(new TextDecoder().decode(data("gce_quotes.json")));
  for (
    const [file, q] of [["gce_quote_sha1.tpms_attest", json.quotes[0]], [
      "gce_quote_sha256.tpms_attest",
      json.quotes[1],
    ]]
  ) {
    const b = data(file);
    const a = unmarshalTpmsAttest(b);
    assert.equal(a.magic, TPM_GENERATED_VALUE);
    assert.equal(a.type, TPM_ST.ATTEST_QUOTE);
    assert.equal(toHex(a.extraData), q.extraData_hex);
    assert.equal(toHex(a.qualifiedSigner), q.qualifiedSigner);
    assert.equal(a.clockInfo.clock, BigInt(q.clock));
    assert.equal(a.clockInfo.resetCount, q.resetCount);
    assert.equal(a.clockInfo.restartCount, q.restartCount);
    assert.equal(a.firmwareVersion, BigInt(q.firmwareVersion));
    assert.equal(a.attested.kind, "quote");
    if (a.attested.kind !== "quote") return;
    assert.equal(toHex(a.attested.pcrDigest), q.pcrDigest);
    assert.deepEqual(a.attested.pcrSelect[0].pcrs, q.pcr_select);
    assert.deepEqual(marshalTpmsAttest(a), b, "re-encoding gives the original bytes");
  }
});

Deno.test("unmarshalTpmsAttest() parses the Azure vTPM quote with a 48-byte nonce", () => {
  const b = data("azure_tpm_quote.tpms_attest");
  const a = unmarshalTpmsAttest(b);
  assert.equal(
    toHex(a.extraData),
    "982f5c6e45df0ed3f10b6f60b02f0c8390e281300f3805e2279c16168cd6ae9aa398f647caa2338748cd0fd9f5f819ef",
  );
  assert.equal(a.attested.kind, "quote");
  if (a.attested.kind === "quote") {
    assert.equal(a.attested.pcrSelect[0].hash, TPM_ALG.SHA256);
    assert.deepEqual(a.attested.pcrSelect[0].pcrs, Array.from({ length: 24 }, (_, i) => i));
  }
  assert.deepEqual(marshalTpmsAttest(a), b);
});

Deno.test("marshalTpmsAttest() pins the certify and other encodings", () => {
  const base = {
    magic: TPM_GENERATED_VALUE,
    qualifiedSigner: fromHex("000b" + "11".repeat(32)),
    extraData: fromHex("abcd"),
    clockInfo: { clock: 0x0102030405060708n, resetCount: 2, restartCount: 3, safe: true },
    firmwareVersion: 0x20170619n,
  };
  const certify: TpmsAttest = {
    ...base,
    type: TPM_ST.ATTEST_CERTIFY,
    attested: {
      kind: "certify",
      name: fromHex("000b" + "22".repeat(32)),
      qualifiedName: fromHex("000b" + "33".repeat(32)),
    },
  };
  const golden = "ff5443478017" + "0022000b" + "11".repeat(32) + "0002abcd" +
    "0102030405060708" + "00000002" + "00000003" + "01" + "0000000020170619" +
    "0022000b" + "22".repeat(32) + "0022000b" + "33".repeat(32);
  assert.equal(toHex(marshalTpmsAttest(certify)), golden);
  assert.deepEqual(unmarshalTpmsAttest(fromHex(golden)), certify);
  const other: TpmsAttest = {
    ...base,
    type: TPM_ST.ATTEST_TIME,
    attested: { kind: "other", raw: fromHex("0102") },
  };
  assert.deepEqual(unmarshalTpmsAttest(marshalTpmsAttest(other)), other);
});

Deno.test("unmarshalTpmsAttest() refuses truncations, a bad safe flag and trailing bytes", () => {
  const b = data("gce_quote_sha256.tpms_attest");
  for (let i = 0; i < b.length; i++) {
    assert.throws(() => unmarshalTpmsAttest(b.subarray(0, i)), ParseError);
  }
  const extra = new Uint8Array(b.length + 1);
  extra.set(b);
  assert.throws(() => unmarshalTpmsAttest(extra), /trailing/);
  const badSafe = b.slice();
  // magic(4) type(2) signer(2+34) extra(2+2) clock(8) reset(4) restart(4) -> safe at 62
  badSafe[62] = 2;
  assert.throws(() => unmarshalTpmsAttest(badSafe), /safe/);
});
