import assert from "node:assert/strict";
import {
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
  sign as nodeSign,
  verify as nodeVerify,
} from "node:crypto";
import {
  createEcdsaVerifier,
  type EcdsaCurve,
  type EcdsaHash,
  type EcdsaVerifyInput,
  libcryptoAvailable,
  verifyEcdsa,
  verifyEcdsaAsync,
} from "../../../lib/crypto/mod.ts";
import { openLibcrypto } from "../../../lib/crypto/_libcrypto.ts";
import { ConfidantError } from "../../../lib/errors.ts";
import { fromHex } from "../../../lib/bytes.ts";

const SIZE: Record<EcdsaCurve, number> = { "P-256": 32, "P-384": 48 };
const ORDER: Record<EcdsaCurve, bigint> = {
  "P-256": 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n,
  "P-384":
    0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973n,
};
const PRIME: Record<EcdsaCurve, bigint> = {
  "P-256": 0xffffffff00000001000000000000000000000000ffffffffffffffffffffffffn,
  "P-384":
    0xfffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000ffffffffn,
};
const HASHES: EcdsaHash[] = ["SHA-256", "SHA-384", "SHA-512"];
const NODE_HASH: Record<EcdsaHash, string> = {
  "SHA-256": "sha256",
  "SHA-384": "sha384",
  "SHA-512": "sha512",
};

function toBig(b: Uint8Array): bigint {
  let v = 0n;
  for (const x of b) v = (v << 8n) | BigInt(x);
  return v;
}

function fromBig(v: bigint, len: number): Uint8Array {
  const out = new Uint8Array(len);
  for (let i = len - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

function b64u(s: string): Uint8Array {
  return Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
}

function b64uOf(b: Uint8Array): string {
  return btoa(String.fromCharCode(...b)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

interface Signed {
  input: EcdsaVerifyInput;
  privateKey: KeyObject;
}

function signedCase(curve: EcdsaCurve): Signed {
  const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: curve });
  const jwk = publicKey.export({ format: "jwk" });
  const hash = HASHES[Math.floor(Math.random() * HASHES.length)];
  const message = new Uint8Array(randomBytes(Math.floor(Math.random() * 300)));
  const sig = nodeSign(NODE_HASH[hash], message, { key: privateKey, dsaEncoding: "ieee-p1363" });
  const n = SIZE[curve];
  return {
    privateKey,
    input: {
      curve,
      hash,
      publicKey: { x: b64u(jwk.x!), y: b64u(jwk.y!) },
      r: new Uint8Array(sig.subarray(0, n)),
      s: new Uint8Array(sig.subarray(n)),
      message,
    },
  };
}

/**
 * The verdict of node:crypto and of Web Crypto called directly on the input (no checks of
 * ours): values that do not fit the curve size are invalid by definition, everything else
 * is left to the libraries. Both must agree, and give the expected verdict.
 */
async function reference(i: EcdsaVerifyInput): Promise<boolean> {
  const n = SIZE[i.curve];
  const fit = [i.publicKey.x, i.publicKey.y, i.r, i.s].map((v) => toBig(v));
  if (fit.some((v) => v >= 1n << BigInt(8 * n))) return false;
  const [x, y, r, s] = fit.map((v) => fromBig(v, n));
  const sig = new Uint8Array([...r, ...s]);
  let viaNode: boolean;
  try {
    const key = createPublicKey({
      key: { kty: "EC", crv: i.curve, x: b64uOf(x), y: b64uOf(y) },
      format: "jwk",
    });
    viaNode = nodeVerify(NODE_HASH[i.hash], i.message, { key, dsaEncoding: "ieee-p1363" }, sig);
  } catch {
    viaNode = false;
  }
  let viaWeb: boolean;
  try {
    const key = await crypto.subtle.importKey(
      "raw",
      new Uint8Array([4, ...x, ...y]),
      { name: "ECDSA", namedCurve: i.curve },
      false,
      ["verify"],
    );
    viaWeb = await crypto.subtle.verify(
      { name: "ECDSA", hash: i.hash },
      key,
      sig,
      i.message as Uint8Array<ArrayBuffer>,
    );
  } catch {
    viaWeb = false;
  }
  assert.equal(viaNode, viaWeb, "node:crypto and Web Crypto disagree on a raw input");
  return viaNode;
}

type Mutation = [
  name: string,
  expect: boolean | null,
  f: (i: EcdsaVerifyInput) => EcdsaVerifyInput,
];

/** Mutations of a valid signature; `expect` null = decided by the reference only. */
function mutations(curve: EcdsaCurve): Mutation[] {
  const n = SIZE[curve];
  const q = ORDER[curve];
  const p = PRIME[curve];
  const other = signedCase(curve).input;
  return [
    ["valid", true, (i) => i],
    ["high-S (n - s) is a valid ECDSA signature", true, (i) => ({
      ...i,
      s: fromBig(q - toBig(i.s), n),
    })],
    ["leading zero bytes are ignored", true, (i) => ({
      ...i,
      r: new Uint8Array([0, 0, ...i.r]),
      publicKey: { x: new Uint8Array([0, ...i.publicKey.x]), y: i.publicKey.y },
    })],
    ["flipped message bit", false, (i) => {
      const m = new Uint8Array([...i.message, 0]);
      m[0] ^= 1;
      return { ...i, message: m };
    }],
    ["other hash", false, (i) => ({
      ...i,
      hash: HASHES[(HASHES.indexOf(i.hash) + 1) % HASHES.length],
    })],
    ["r = 0", false, (i) => ({ ...i, r: new Uint8Array(n) })],
    ["s = 0", false, (i) => ({ ...i, s: new Uint8Array(0) })],
    ["r = n", false, (i) => ({ ...i, r: fromBig(q, n) })],
    ["s = n", false, (i) => ({ ...i, s: fromBig(q, n) })],
    ["r = r + n (fits the size)", false, (i) => ({ ...i, r: fromBig(toBig(i.r) + q, n + 1) })],
    ["s one byte too long", false, (i) => ({ ...i, s: new Uint8Array([1, ...i.s]) })],
    ["r and s swapped", false, (i) => ({ ...i, r: i.s, s: i.r })],
    ["off-curve point (y + 1)", false, (i) => ({
      ...i,
      publicKey: { x: i.publicKey.x, y: fromBig((toBig(i.publicKey.y) + 1n) % p, n) },
    })],
    ["x = x + p", false, (i) => ({
      ...i,
      publicKey: { x: fromBig(toBig(i.publicKey.x) + p, n + 1), y: i.publicKey.y },
    })],
    ["x short by its last byte", false, (i) => ({
      ...i,
      publicKey: { x: i.publicKey.x.subarray(0, n - 1), y: i.publicKey.y },
    })],
    [
      "zero point",
      false,
      (i) => ({ ...i, publicKey: { x: new Uint8Array(n), y: new Uint8Array(n) } }),
    ],
    ["another key", false, (i) => ({ ...i, publicKey: other.publicKey })],
    ["random r", null, (i) => ({ ...i, r: new Uint8Array(randomBytes(n)) })],
  ];
}

const libcryptoSync = createEcdsaVerifier({ backend: "libcrypto", offload: false });
const libcryptoPool = createEcdsaVerifier({ backend: "libcrypto" });
const webcrypto = createEcdsaVerifier({ backend: "webcrypto" });
const node = createEcdsaVerifier({ backend: "node" });

async function crossCheck(curve: EcdsaCurve, keys: number): Promise<number> {
  const muts = mutations(curve);
  let cases = 0;
  for (let k = 0; k < keys; k++) {
    const base = signedCase(curve).input;
    for (const [name, expect, f] of muts) {
      const input = f(base);
      const ref = await reference(input);
      if (expect !== null) assert.equal(ref, expect, `reference on ${curve} ${name}`);
      const got = {
        verifyEcdsa: verifyEcdsa(input),
        verifyEcdsaAsync: await verifyEcdsaAsync(input),
        webcrypto: await webcrypto.verify(input),
        node: node.verifySync(input),
      };
      for (const [engine, v] of Object.entries(got)) {
        assert.equal(v, ref, `${engine} on ${curve} ${input.hash} ${name}`);
      }
      cases++;
    }
  }
  return cases;
}

Deno.test("libcrypto opens on this machine (install libssl3 if this fails)", () => {
  assert.equal(libcryptoAvailable(), true);
  assert.equal(createEcdsaVerifier().backend, "libcrypto");
});

Deno.test("verifyEcdsa() agrees with node:crypto and Web Crypto on P-256 (valid and hostile)", async () => {
  const cases = await crossCheck("P-256", 150);
  assert.ok(cases >= 2500, `ran ${cases} cases`);
});

Deno.test("verifyEcdsa() agrees with node:crypto and Web Crypto on P-384 (valid and hostile)", async () => {
  const cases = await crossCheck("P-384", 30);
  assert.ok(cases >= 500, `ran ${cases} cases`);
});

Deno.test("verifyEcdsa() leaves no error on the OpenSSL error queue", async () => {
  const opened = openLibcrypto();
  assert.ok(opened.ok);
  const lib = opened.lib;
  lib.ERR_clear_error();
  const base = signedCase("P-256").input;
  for (const [name, , f] of mutations("P-256")) {
    verifyEcdsa(f(base));
    await libcryptoPool.verify(f(base));
    assert.equal(lib.ERR_peek_error(), 0n, `error left after ${name}`);
  }
});

Deno.test("verifyEcdsaAsync() runs many verifications at once with correct verdicts", async () => {
  const items = Array.from({ length: 64 }, (_, i) => {
    const c = signedCase(i % 2 ? "P-384" : "P-256").input;
    return i % 3 === 0 ? { ...c, message: new Uint8Array([...c.message, 1]) } : c;
  });
  const got = await Promise.all(items.map((i) => verifyEcdsaAsync(i)));
  assert.deepEqual(got, items.map((_, i) => i % 3 !== 0));
});

// RFC 6979 A.2.5 (P-256, SHA-256, message "sample") and A.2.6 (P-384, SHA-384, "sample").
const RFC6979: {
  curve: EcdsaCurve;
  hash: EcdsaHash;
  x: string;
  y: string;
  r: string;
  s: string;
}[] = [
  {
    curve: "P-256",
    hash: "SHA-256",
    x: "60fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb6",
    y: "7903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299",
    r: "efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716",
    s: "f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8",
  },
];

Deno.test("verifyEcdsa() accepts the RFC 6979 vectors and refuses them altered", async () => {
  for (const v of RFC6979) {
    const input: EcdsaVerifyInput = {
      curve: v.curve,
      hash: v.hash,
      publicKey: { x: fromHex(v.x), y: fromHex(v.y) },
      r: fromHex(v.r),
      s: fromHex(v.s),
      message: new TextEncoder().encode("sample"),
    };
    for (const e of [libcryptoSync, libcryptoPool, webcrypto, node]) {
      assert.equal(await e.verify(input), true, e.backend);
      assert.equal(
        await e.verify({ ...input, message: new TextEncoder().encode("samplf") }),
        false,
        e.backend,
      );
    }
  }
});

/** r and s of a DER ECDSA-Sig-Value (SEQUENCE of two INTEGERs, short lengths only). */
function derSig(der: Uint8Array): { r: Uint8Array; s: Uint8Array } {
  assert.equal(der[0], 0x30);
  let o = der[1] & 0x80 ? 2 + (der[1] & 0x7f) : 2;
  const int = () => {
    assert.equal(der[o], 0x02);
    const len = der[o + 1];
    const v = der.subarray(o + 2, o + 2 + len);
    o += 2 + len;
    return v;
  };
  return { r: int(), s: int() };
}

async function openssl(args: string[], stdin?: Uint8Array): Promise<Uint8Array> {
  let out;
  try {
    const child = new Deno.Command("openssl", {
      args,
      stdin: stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    if (stdin) {
      const w = child.stdin.getWriter();
      await w.write(stdin);
      await w.close();
    }
    out = await child.output();
  } catch (e) {
    throw new Error("install openssl (Debian package openssl)", { cause: e });
  }
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return out.stdout;
}

Deno.test("verifyEcdsa() accepts signatures made by `openssl dgst -sign`", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const combos: [string, EcdsaCurve, EcdsaHash][] = [
      ["prime256v1", "P-256", "SHA-256"],
      ["prime256v1", "P-256", "SHA-512"],
      ["secp384r1", "P-384", "SHA-384"],
      ["secp384r1", "P-384", "SHA-256"],
    ];
    for (const [name, curve, hash] of combos) {
      const keyPath = `${dir}/${name}.pem`;
      await openssl(["ecparam", "-name", name, "-genkey", "-noout", "-out", keyPath]);
      const spki = await openssl(["ec", "-in", keyPath, "-pubout", "-outform", "DER"]);
      const n = SIZE[curve];
      const point = spki.subarray(spki.length - (1 + 2 * n));
      assert.equal(point[0], 4);
      for (let m = 0; m < 5; m++) {
        const message = new Uint8Array(randomBytes(50 + m * 40));
        const digestFlag = `-${hash.replace("-", "").toLowerCase()}`;
        const der = await openssl(["dgst", digestFlag, "-sign", keyPath], message);
        const { r, s } = derSig(der);
        const input: EcdsaVerifyInput = {
          curve,
          hash,
          publicKey: { x: point.subarray(1, 1 + n), y: point.subarray(1 + n) },
          r,
          s,
          message,
        };
        for (const e of [libcryptoSync, libcryptoPool, webcrypto, node]) {
          assert.equal(await e.verify(input), true, `${e.backend} ${curve} ${hash}`);
        }
        message[0] ^= 0x80;
        assert.equal(verifyEcdsa(input), false);
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("verifyEcdsa() throws typed errors for calls wrong in kind, never for bytes", async () => {
  const base = signedCase("P-256").input;
  const bad = [
    { ...base, curve: "P-521" },
    { ...base, hash: "SHA-1" },
    { ...base, r: [1, 2, 3] },
    { ...base, publicKey: { x: base.publicKey.x } },
    { ...base, message: "hello" },
  ] as unknown as EcdsaVerifyInput[];
  for (const input of bad) {
    assert.throws(() => verifyEcdsa(input), ConfidantError);
    await assert.rejects(verifyEcdsaAsync(input), ConfidantError);
    await assert.rejects(webcrypto.verify(input), ConfidantError);
  }
  assert.throws(
    () => webcrypto.verifySync(base),
    (e) => (e as ConfidantError).code === "crypto.no_sync",
  );
  const huge = { ...base, r: new Uint8Array(1 << 20).fill(0xff) };
  assert.equal(verifyEcdsa(huge), false);
});

Deno.test("openLibcrypto() reports a missing library instead of throwing", () => {
  const o = openLibcrypto("libconfidant-does-not-exist.so.9");
  assert.equal(o.ok, false);
  assert.match((o as { reason: string }).reason, /cannot open/);
});

Deno.test("without FFI permission the verifier falls back to Web Crypto and says so once", async () => {
  const { privateKey, input } = signedCase("P-256");
  void privateKey;
  const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  const script = `
    import { createEcdsaVerifier, verifyEcdsa, verifyEcdsaAsync, libcryptoAvailable } from
      ${JSON.stringify(new URL("../../../lib/crypto/mod.ts", import.meta.url).href)};
    const h = (s) => Uint8Array.from(s.match(/../g) ?? [], (x) => parseInt(x, 16));
    const input = { curve: "P-256", hash: "${input.hash}",
      publicKey: { x: h("${hex(input.publicKey.x)}"), y: h("${hex(input.publicKey.y)}") },
      r: h("${hex(input.r)}"), s: h("${hex(input.s)}"), message: h("${hex(input.message)}") };
    const bad = { ...input, message: new Uint8Array([...input.message, 7]) };
    const out = [libcryptoAvailable(), createEcdsaVerifier().backend,
      verifyEcdsa(input), await verifyEcdsaAsync(input), verifyEcdsa(bad), await verifyEcdsaAsync(bad)];
    console.log(JSON.stringify(out));
  `;
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/fallback.ts`;
    await Deno.writeTextFile(file, script);
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-lock", "--allow-read", "--allow-env", file],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, stderr);
    assert.deepEqual(JSON.parse(new TextDecoder().decode(out.stdout)), [
      false,
      "webcrypto",
      true,
      true,
      false,
      false,
    ]);
    const warnings = stderr.split("\n").filter((l) => l.includes("libcrypto unavailable"));
    assert.equal(warnings.length, 1, stderr);
    assert.equal(JSON.parse(warnings[0]).level, "warn");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
