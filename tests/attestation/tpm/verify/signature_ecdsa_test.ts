/**
 * The ECDSA branch of verifyTpmSignature() runs on lib/crypto (libcrypto): its verdicts and
 * reasons must be those of node:crypto on the same inputs, valid or damaged.
 */
import assert from "node:assert/strict";
import { createPublicKey, generateKeyPairSync, sign, verify } from "node:crypto";
import type { TpmtPublic } from "../../../../attestation/tpm/mod.ts";
import { verifyTpmSignature } from "../../../../attestation/tpm/verify/mod.ts";
import { fromBase64Url, toBase64Url } from "../../../../lib/bytes.ts";

function eccPub(curveId: number, hash: number, x: Uint8Array, y: Uint8Array): TpmtPublic {
  return {
    type: 0x0023,
    nameAlg: 0x000b,
    objectAttributes: 0x00050072,
    authPolicy: new Uint8Array(0),
    parameters: {
      symmetric: { algorithm: 0x0010 },
      scheme: { scheme: 0x0018, hashAlg: hash },
      curveId,
      kdf: { scheme: 0x0010 },
    },
    unique: { x, y },
  };
}

/** node:crypto's verdict on the same (padded) inputs, as the verifier gave it before. */
function nodeVerdict(
  curve: string,
  hashName: string,
  size: number,
  pub: TpmtPublic,
  msg: Uint8Array,
  r: Uint8Array,
  s: Uint8Array,
): boolean {
  const p = pub as Extract<TpmtPublic, { type: 0x0023 }>;
  const pad = (b: Uint8Array) => {
    const out = new Uint8Array(size);
    out.set(b, size - b.length);
    return out;
  };
  let key;
  try {
    key = createPublicKey({
      key: {
        kty: "EC",
        crv: curve,
        x: toBase64Url(pad(p.unique.x)),
        y: toBase64Url(pad(p.unique.y)),
      },
      format: "jwk",
    });
  } catch {
    return false;
  }
  const raw = new Uint8Array(2 * size);
  raw.set(pad(r));
  raw.set(pad(s), size);
  return verify(hashName, msg, { key, dsaEncoding: "ieee-p1363" }, raw);
}

Deno.test("verifyTpmSignature() gives node:crypto's ECDSA verdicts on valid and damaged inputs", async (t) => {
  for (
    const [curve, curveId, hash, hashName, size] of [
      ["P-256", 0x0003, 0x000b, "sha256", 32],
      ["P-384", 0x0004, 0x000c, "sha384", 48],
    ] as const
  ) {
    await t.step(curve, () => {
      for (let i = 0; i < 40; i++) {
        const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: curve });
        const jwk = publicKey.export({ format: "jwk" });
        const x = fromBase64Url(jwk.x!);
        const y = fromBase64Url(jwk.y!);
        const msg = crypto.getRandomValues(new Uint8Array(100 + i));
        const raw = new Uint8Array(
          sign(hashName, msg, { key: privateKey, dsaEncoding: "ieee-p1363" }),
        );
        const cases: [Uint8Array, Uint8Array, Uint8Array, Uint8Array][] = [
          [x, y, raw.subarray(0, size), raw.subarray(size)],
        ];
        const flip = (b: Uint8Array, at: number) => {
          const c = b.slice();
          c[at % c.length] ^= 1 << (i % 8);
          return c;
        };
        cases.push([x, y, flip(raw.subarray(0, size), i), raw.subarray(size)]);
        cases.push([x, y, raw.subarray(0, size), flip(raw.subarray(size), i + 7)]);
        cases.push([flip(x, i), y, raw.subarray(0, size), raw.subarray(size)]); // off the curve
        cases.push([x, y, new Uint8Array(size).fill(0xff), raw.subarray(size)]); // r >= n
        for (const [cx, cy, r, s] of cases) {
          const pub = eccPub(curveId, hash, cx, cy);
          const got = verifyTpmSignature(pub, msg, { sigAlg: 0x0018, hash, r, s });
          assert.equal(got.ok, nodeVerdict(curve, hashName, size, pub, msg, r, s));
        }
      }
    });
  }
});

Deno.test("verifyTpmSignature() names an off-curve ECC key and a bad ECDSA signature as before", () => {
  const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const jwk = publicKey.export({ format: "jwk" });
  const x = fromBase64Url(jwk.x!);
  const y = fromBase64Url(jwk.y!);
  const msg = new Uint8Array(64);
  const raw = new Uint8Array(sign("sha256", msg, { key: privateKey, dsaEncoding: "ieee-p1363" }));
  const r = raw.subarray(0, 32);
  const s = raw.subarray(32);
  const offCurve = y.slice();
  offCurve[31] ^= 1;
  assert.deepEqual(
    verifyTpmSignature(eccPub(3, 0x000b, x, offCurve), msg, { sigAlg: 0x0018, hash: 0x000b, r, s }),
    { ok: false, reason: "the public key is not valid" },
  );
  assert.deepEqual(
    verifyTpmSignature(eccPub(3, 0x000b, x, y), new Uint8Array(65), {
      sigAlg: 0x0018,
      hash: 0x000b,
      r,
      s,
    }),
    { ok: false, reason: "the ECDSA signature does not verify" },
  );
  assert.deepEqual(
    verifyTpmSignature(eccPub(3, 0x000b, x, offCurve), msg, {
      sigAlg: 0x0018,
      hash: 0x000b,
      r: new Uint8Array(33).fill(1),
      s,
    }),
    { ok: false, reason: "the public key is not valid" },
  );
  assert.deepEqual(
    verifyTpmSignature(eccPub(3, 0x000b, x, y), msg, {
      sigAlg: 0x0018,
      hash: 0x000b,
      r: new Uint8Array(0),
      s,
    }),
    { ok: false, reason: "the ECDSA signature values are out of range" },
  );
});
