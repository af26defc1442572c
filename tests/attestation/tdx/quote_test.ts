import assert from "node:assert/strict";
import { toHex } from "../../../lib/bytes.ts";
import { ParseError } from "../../../lib/errors.ts";
import { parseTdxQuote } from "../../../attestation/tdx/quote.ts";
import { EXPECTED, vector } from "./_vectors.ts";

Deno.test("parseTdxQuote() reads every real v4/v5 quote's fields and its own length", () => {
  assert.equal(Object.keys(EXPECTED).length, 16);
  for (const [name, e] of Object.entries(EXPECTED)) {
    const bytes = vector(name);
    assert.equal(bytes.length, e.fileLength, name);
    const q = parseTdxQuote(bytes);
    assert.equal(q.header.version, e.version, name);
    assert.equal(q.length, e.length, name);
    assert.equal(toHex(q.body.mrTd), e.mrTd, name);
    assert.equal(toHex(q.body.reportData), e.reportData, name);
    assert.equal(toHex(q.body.teeTcbSvn), e.teeTcbSvn, name);
    assert.equal(toHex(q.body.rtmrs[0]), e.rtmr0, name);
    assert.equal(toHex(q.body.rtmrs[3]), e.rtmr3, name);
    assert.equal(toHex(q.body.mrSeam), e.mrSeam, name);
    assert.equal(toHex(q.body.tdAttributes), e.tdAttributes, name);
    assert.equal(toHex(q.body.xfam), e.xfam, name);
    assert.equal(toHex(q.qeReport.mrSigner), e.qeMrSigner, name);
    assert.equal(q.qeReport.isvSvn, e.qeIsvSvn, name);
    assert.equal(q.pckChain.length, 3, name);
    assert.equal(q.pckChainEncoding, "pem", name);
    assert.equal(q.signedRegion.length, e.version === 5 ? 48 + 6 + 648 : 632, name);
  }
});

Deno.test("parseTdxQuote() reads the TDX 1.5 fields of v5 quotes", () => {
  const q = parseTdxQuote(vector("go-tdx-guest/quote_v5_sample.dat"));
  assert.equal(q.bodyType, 3);
  assert.equal(q.body.teeTcbSvn2?.length, 16);
  assert.equal(q.body.mrServiceTd?.length, 48);
});

Deno.test("parseTdxQuote() ignores trailing bytes (the SPR_E4 quote's ASCII trailer)", () => {
  const b = vector("go-tdx-guest/tdx_prod_quote_SPR_E4.dat");
  const q = parseTdxQuote(b);
  assert.equal(q.length, 4935);
  assert.equal(
    new TextDecoder().decode(b.subarray(q.length)),
    "\nextra bytes(only for testing purpose)\n",
  );
  assert.equal(parseTdxQuote(b.subarray(0, q.length)).length, 4935);
});

Deno.test("parseTdxQuote() refuses go-tdx-guest's structural mutations", async (t) => {
  const base = vector("go-tdx-guest/tdx_prod_quote_SPR_E4.dat");
  const cases: [number, number, RegExp][] = [
    [0x00, 3, /quote format not supported/],
    [0x278, 0x10, /size of certificate data is 0x[0-9a-f]+; expected 0x/],
  ];
  for (const [at, v, re] of cases) {
    await t.step(`byte 0x${at.toString(16)} = 0x${v.toString(16)}`, () => {
      const b = base.slice();
      b[at] = v;
      assert.throws(() => parseTdxQuote(b), (e) => e instanceof ParseError && re.test(e.message));
    });
  }
});

Deno.test("parseTdxQuote() refuses wrong key type, TEE type, body type and truncations", () => {
  const base = vector("go-tdx-guest/tdx_prod_quote_SPR_E4.dat");
  const set = (at: number, v: number) => {
    const b = base.slice();
    b[at] = v;
    return b;
  };
  assert.throws(() => parseTdxQuote(set(2, 3)), /attestation key type 3/);
  assert.throws(() => parseTdxQuote(set(4, 0)), /TEE type 0x0 is not TDX/);
  const v5 = vector("go-tdx-guest/quote_v5_sample.dat");
  const bad = v5.slice();
  bad[48] = 4;
  assert.throws(() => parseTdxQuote(bad), /v5 body type 4/);
  const size = v5.slice();
  size[50] = 0x48; // 584 with body type 3
  size[51] = 0x02;
  assert.throws(() => parseTdxQuote(size), /must be 648 bytes/);
  for (const n of [0, 1, 47, 48, 100, 632, 635, 636, 700, 1200, 4934]) {
    assert.throws(() => parseTdxQuote(base.subarray(0, n)), ParseError, `length ${n}`);
  }
});

Deno.test("parseTdxQuote() refuses a PCK chain with text outside certificates", () => {
  const b = vector("go-tdx-guest/tdx_prod_quote_SPR_E4.dat").slice();
  const text = new TextDecoder("latin1").decode(b); // one char per byte
  const at = text.indexOf("-----END CERTIFICATE-----") + "-----END CERTIFICATE-----".length;
  b[at] = "X".charCodeAt(0); // replaces the newline between two certificates
  assert.throws(() => parseTdxQuote(b), /outside certificates/);
});

/** xorshift32: a deterministic generator so a failing fuzz case can be replayed. */
function rng(seed: number) {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

Deno.test("parseTdxQuote() survives 100,000 fuzzed inputs with only ParseError", () => {
  const seeds = [
    vector("go-tdx-guest/tdx_prod_quote_SPR_E4.dat"),
    vector("go-tdx-guest/quote_v5_sample.dat"),
    vector("teekit/tdx-synthetic/quote.dat"),
  ];
  // Offsets where a change moves a length or a type: mutated far more often.
  const hot = [
    0,
    2,
    4,
    48,
    50,
    632,
    633,
    634,
    635,
    764,
    766,
    767,
    768,
    1216,
    1217,
    1218,
    1220,
    1221,
  ];
  const next = rng(0x7d5);
  let parsed = 0;
  let refused = 0;
  const N = 100_000;
  for (let i = 0; i < N; i++) {
    const seed = seeds[i % seeds.length];
    let b: Uint8Array;
    const mode = next() % 4;
    if (mode === 0) {
      b = seed.slice(0, next() % (seed.length + 1));
    } else if (mode === 3) {
      b = crypto.getRandomValues(new Uint8Array(next() % 2048));
      if (next() % 2) b.set(seed.subarray(0, Math.min(56, b.length)));
    } else {
      b = seed.slice();
      const flips = 1 + (next() % 4);
      for (let k = 0; k < flips; k++) {
        const at = mode === 1
          ? next() % b.length
          : Math.min(hot[next() % hot.length] + (next() % 3), b.length - 1);
        b[at] = next() & 0xff;
      }
    }
    try {
      parseTdxQuote(b);
      parsed++;
    } catch (e) {
      if (!(e instanceof ParseError)) {
        throw new Error(`input ${i} (mode ${mode}) crashed the parser: ${e}`, { cause: e });
      }
      refused++;
    }
  }
  assert.equal(parsed + refused, N);
  assert.ok(parsed > 1000 && refused > 1000, `parsed ${parsed}, refused ${refused}`);
});
