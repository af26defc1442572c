import assert from "node:assert/strict";
import { fromBase64Url, toBase64Url, toHex } from "../../lib/bytes.ts";
import { generateMasterSecret, KeyDeriver } from "../../kms/keys.ts";
import { openSessionToken, sealSessionToken, type SessionClaims } from "../../kms/session_token.ts";
import { ReplayCache } from "../../kms/replay_cache.ts";

const rnd = (n: number) => crypto.getRandomValues(new Uint8Array(n));
const NOW = 1_800_000_000_000;

function claims(exp = NOW + 60_000): SessionClaims {
  return {
    sid: rnd(16),
    nonce: rnd(32),
    secretDigest: rnd(32),
    akName: rnd(34),
    identity: rnd(32),
    endorsement: { trust: "ek-ca", ekCertificateDigest: rnd(32), anchors: rnd(32) },
    variant: "sev-snp",
    expiresAt: exp,
  };
}

Deno.test("session tokens round-trip and are refused when expired, forged or malformed", async (t) => {
  const key = await (await KeyDeriver.create(generateMasterSecret("c1"))).sessionKey();
  const c = claims();
  const tok = await sealSessionToken(key, c, NOW);
  await t.step("round trip", async () => {
    const r = await openSessionToken(key, tok, NOW + 1000);
    assert.ok(r.ok);
    assert.equal(toHex(r.claims.nonce), toHex(c.nonce));
    assert.equal(toHex(r.claims.akName), toHex(c.akName));
    assert.equal(r.claims.endorsement.trust, "ek-ca");
    assert.equal(
      toHex(r.claims.endorsement.ekCertificateDigest),
      toHex(c.endorsement.ekCertificateDigest),
    );
    assert.equal(toHex(r.claims.endorsement.anchors!), toHex(c.endorsement.anchors!));
    assert.equal(r.claims.variant, "sev-snp");
    assert.equal(r.claims.expiresAt, c.expiresAt);
  });
  await t.step("expired", async () => {
    assert.deepEqual(await openSessionToken(key, tok, NOW + 60_000), {
      ok: false,
      failure: "session.expired",
    });
  });
  await t.step("flipped byte is forged", async () => {
    const raw = fromBase64Url(tok);
    raw[20] ^= 1;
    assert.deepEqual(await openSessionToken(key, toBase64Url(raw), NOW), {
      ok: false,
      failure: "session.forged",
    });
  });
  await t.step("another cluster's key is forged", async () => {
    const other = await (await KeyDeriver.create(generateMasterSecret("c1"))).sessionKey();
    assert.deepEqual(await openSessionToken(other, tok, NOW), {
      ok: false,
      failure: "session.forged",
    });
  });
  await t.step("garbage", async () => {
    for (const g of ["", "!!!", "a".repeat(5000), toBase64Url(new Uint8Array(10))]) {
      assert.deepEqual(await openSessionToken(key, g, NOW), {
        ok: false,
        failure: "session.malformed",
      });
    }
    const raw = fromBase64Url(tok);
    for (const version of [2, 9]) {
      raw[0] = version;
      assert.deepEqual(await openSessionToken(key, toBase64Url(raw), NOW), {
        ok: false,
        failure: "session.version",
      });
    }
  });
  await t.step("a lifetime over 60 s is refused at sealing", async () => {
    await assert.rejects(sealSessionToken(key, claims(NOW + 60_001), NOW), /60 s/);
  });
});

Deno.test("ReplayCache refuses a second claim until expiry and fails closed when full", () => {
  const c = new ReplayCache(2);
  const a = rnd(16), b = rnd(16), d = rnd(16);
  assert.equal(c.claim(a, NOW + 10, NOW), "fresh");
  assert.equal(c.claim(a, NOW + 10, NOW + 5), "replayed");
  assert.equal(c.claim(b, NOW + 10, NOW), "fresh");
  assert.equal(c.claim(d, NOW + 10, NOW + 1), "full");
  assert.equal(c.claim(d, NOW + 20, NOW + 11), "fresh", "expired ids are purged");
});

Deno.test("a session token sealed with the KeyObject key opens with the Web Crypto key of the same derivation, and back", async () => {
  const d = await KeyDeriver.create(generateMasterSecret("c1"));
  const web = await d.sessionKey();
  const node = d.sessionKeyObject();
  const now = 1_000_000;
  const claims = {
    sid: new Uint8Array(16).fill(1),
    nonce: new Uint8Array(32).fill(2),
    secretDigest: new Uint8Array(32).fill(3),
    akName: new Uint8Array(34).fill(4),
    identity: new Uint8Array(32).fill(5),
    endorsement: { trust: "pinned" as const, ekCertificateDigest: new Uint8Array(32).fill(6) },
    variant: "tpm" as const,
    expiresAt: now + 30_000,
  };
  const a = await openSessionToken(web, await sealSessionToken(node, claims, now), now);
  const b = await openSessionToken(node, await sealSessionToken(web, claims, now), now);
  assert.ok(a.ok && b.ok);
  assert.deepEqual(a.claims.nonce, claims.nonce);
  const other = (await KeyDeriver.create(generateMasterSecret("c1"))).sessionKeyObject();
  const forged = await openSessionToken(other, await sealSessionToken(node, claims, now), now);
  assert.deepEqual(forged, { ok: false, failure: "session.forged" });
});
