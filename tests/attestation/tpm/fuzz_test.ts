/**
 * Fuzzing every unmarshaller with random and mutated inputs: only ParseError may escape.
 */
import assert from "node:assert/strict";
import { ParseError } from "../../../lib/errors.ts";
import {
  AK_TEMPLATE_ECC_P256,
  commands,
  EK_TEMPLATE_RSA2048,
  marshalTpm2bPublic,
  marshalTpmlPcrSelection,
  marshalTpmtPublic,
  marshalTpmtSignature,
  parseResponse,
  TPM_ALG,
  TpmError,
  unmarshalCredentialFile,
  unmarshalTpm2bPublic,
  unmarshalTpmlPcrSelection,
  unmarshalTpmsAttest,
  unmarshalTpmtPublic,
  unmarshalTpmtSignature,
} from "../../../attestation/tpm/mod.ts";

const data = (f: string) => Deno.readFileSync(new URL(`../../testdata/tpm/${f}`, import.meta.url));

/** Deterministic xorshift PRNG so failures reproduce. */
function rng(seed: number) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

function mutate(src: Uint8Array, next: () => number): Uint8Array {
  const kind = next() % 6;
  const b = src.slice();
  switch (kind) {
    case 0: { // bit flips
      const n = 1 + (next() % 4);
      for (let i = 0; i < n && b.length; i++) b[next() % b.length] ^= 1 << (next() % 8);
      return b;
    }
    case 1: // truncation
      return b.subarray(0, next() % (b.length + 1));
    case 2: { // length-field inflation: a big-endian u16 or u32 set large
      if (b.length < 2) return b;
      const i = next() % (b.length - 1);
      b[i] = 0xff;
      b[i + 1] = next() & 0xff;
      return b;
    }
    case 3: { // small size bump (off-by-a-few lies)
      if (b.length < 2) return b;
      const i = next() % (b.length - 1);
      b[i + 1] = (b[i + 1] + 1 + (next() % 3)) & 0xff;
      return b;
    }
    case 4: { // appended garbage
      const extra = new Uint8Array(1 + (next() % 8)).map(() => next() & 0xff);
      const out = new Uint8Array(b.length + extra.length);
      out.set(b);
      out.set(extra, b.length);
      return out;
    }
    default: { // splice a random run
      const i = next() % (b.length + 1);
      for (let j = i; j < Math.min(b.length, i + 1 + (next() % 6)); j++) b[j] = next() & 0xff;
      return b;
    }
  }
}

function rspFrom(body: Uint8Array, tag = 0x8001): Uint8Array {
  const out = new Uint8Array(10 + body.length);
  const v = new DataView(out.buffer);
  v.setUint16(0, tag);
  v.setUint32(2, out.length);
  out.set(body, 10);
  return out;
}

Deno.test("every unmarshaller throws only ParseError on 100,000+ random and mutated inputs", () => {
  const targets: [string, (b: Uint8Array) => unknown, Uint8Array[]][] = [
    ["TPMT_PUBLIC", unmarshalTpmtPublic, [
      data("gce_ak_pub.tpmt_public"),
      marshalTpmtPublic(EK_TEMPLATE_RSA2048),
      marshalTpmtPublic(AK_TEMPLATE_ECC_P256),
    ]],
    ["TPM2B_PUBLIC", unmarshalTpm2bPublic, [marshalTpm2bPublic(AK_TEMPLATE_ECC_P256)]],
    ["TPMS_ATTEST", unmarshalTpmsAttest, [
      data("gce_quote_sha256.tpms_attest"),
      data("azure_tpm_quote.tpms_attest"),
    ]],
    ["TPMT_SIGNATURE", unmarshalTpmtSignature, [
      data("gce_quote_sha256.tpmt_signature"),
      marshalTpmtSignature({
        sigAlg: TPM_ALG.ECDSA,
        hash: TPM_ALG.SHA256,
        r: new Uint8Array(32).fill(1),
        s: new Uint8Array(32).fill(2),
      }),
    ]],
    ["TPML_PCR_SELECTION", unmarshalTpmlPcrSelection, [
      marshalTpmlPcrSelection([{ hash: TPM_ALG.SHA256, pcrs: [0, 1, 7] }, {
        hash: TPM_ALG.SHA1,
        pcrs: [23],
      }]),
    ]],
    ["credential file", unmarshalCredentialFile, [
      new Uint8Array([0xba, 0xdc, 0xc0, 0xde, 0, 0, 0, 1, 0, 2, 1, 2, 0, 1, 9]),
    ]],
    ["ReadPublic response", (b) => parseResponse(commands.ReadPublic, b, 0), [
      rspFrom(new Uint8Array([...marshalTpm2bPublic(AK_TEMPLATE_ECC_P256), 0, 2, 0, 0x0b, 0, 0])),
    ]],
    ["Quote response", (b) => parseResponse(commands.Quote, b, 1), [
      (() => {
        const attest = data("gce_quote_sha256.tpms_attest");
        const sig = data("gce_quote_sha256.tpmt_signature");
        const params = new Uint8Array([
          attest.length >> 8,
          attest.length & 0xff,
          ...attest,
          ...sig,
        ]);
        const n = params.length;
        return rspFrom(
          new Uint8Array([
            n >>> 24,
            (n >> 16) & 0xff,
            (n >> 8) & 0xff,
            n & 0xff,
            ...params,
            0,
            0,
            1,
            0,
            0,
          ]),
          0x8002,
        );
      })(),
    ]],
    ["PCR_Read response", (b) => parseResponse(commands.PCR_Read, b, 0), [
      rspFrom(
        new Uint8Array([0, 0, 0, 5, 0, 0, 0, 1, 0, 0x0b, 3, 1, 0, 0, 0, 0, 0, 1, 0, 2, 7, 7]),
      ),
    ]],
  ];
  // Sanity: every seed parses, so mutations start from valid structures.
  for (const [name, f, seeds] of targets) {
    for (const s of seeds) assert.doesNotThrow(() => f(s), name);
  }

  const next = rng(0xc0ffee);
  let runs = 0;
  let rejected = 0;
  const perTarget = 12_000;
  for (const [name, f, seeds] of targets) {
    for (let i = 0; i < perTarget; i++) {
      let input: Uint8Array;
      if (i % 4 === 0) {
        input = new Uint8Array(next() % 300).map(() => next() & 0xff);
      } else {
        input = seeds[i % seeds.length];
        const rounds = 1 + (next() % 3);
        for (let k = 0; k < rounds; k++) input = mutate(input, next);
      }
      runs++;
      try {
        f(input);
      } catch (e) {
        rejected++;
        const tpmRc = name.endsWith("response") && e instanceof TpmError; // a well-formed error reply
        if (!(e instanceof ParseError) && !tpmRc) {
          throw new Error(
            `${name}: ${(e as Error)?.name} thrown for ${
              Array.from(input, (x) => x.toString(16).padStart(2, "0")).join("")
            }`,
            { cause: e },
          );
        }
      }
    }
  }
  assert.ok(runs >= 100_000, `only ${runs} runs`);
  assert.ok(rejected > runs / 2, "most mutated inputs must be refused");
});
