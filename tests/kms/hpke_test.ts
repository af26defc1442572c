/**
 * kms/hpke.ts against RFC 9180 appendix A.1.1 (DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
 * AES-128-GCM, base mode: the RFC has no X25519 vector with AES-256-GCM, and the KEM and key
 * schedule are the same but for Nk) and against @hpke/core, which opens what it seals with
 * the release suite (AES-256-GCM).
 */
import assert from "node:assert/strict";
import { fromHex, toHex, utf8 } from "../../lib/bytes.ts";
import { hpkeSealBase, x25519PrivateKey } from "../../kms/hpke.ts";
import { releaseSuite } from "../../kms/release.ts";
import { Aes128Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from "@hpke/core";

// RFC 9180, A.1.1 Base Setup Information and its first encryption (sequence number 0).
const A11 = {
  info: "4f6465206f6e2061204772656369616e2055726e",
  skEm: "52c4a758a802cd8b936eceea314432798d5baf2d7e9235dc084ab1b9cfa2f736",
  pkEm: "37fda3567bdbd628e88668c3c8d7e97d1d1253b6d4ea6d44c150f741f1bf4431",
  skRm: "4612c550263fc8ad58375df3f557aac531d26850903e55a9f23f21d8534e8ac8",
  pkRm: "3948cfe0ad1ddb695d780e59077195da6c56506b027329794ab02bca80815c4d",
  aad: "436f756e742d30",
  pt: "4265617574792069732074727574682c20747275746820626561757479",
  ct: "f938558b5d72f1a23810b4be2ab4f84331acc02fc97babc53a52ae8218a355a96d8770ac83d07bea87e13c512a",
};

Deno.test("hpkeSealBase() reproduces RFC 9180 A.1.1 (X25519, HKDF-SHA256, AES-128-GCM)", () => {
  const r = hpkeSealBase(fromHex(A11.pkRm), fromHex(A11.info), fromHex(A11.aad), fromHex(A11.pt), {
    aead: "aes-128-gcm",
    ephemeralPrivateKey: x25519PrivateKey(fromHex(A11.skEm)),
  });
  assert.equal(toHex(r.enc), A11.pkEm);
  assert.equal(toHex(r.ciphertext), A11.ct);
});

Deno.test("hpkeSealBase() output of A.1.1 opens with @hpke/core and the RFC's recipient key", async () => {
  const suite = new CipherSuite({
    kem: new DhkemX25519HkdfSha256(),
    kdf: new HkdfSha256(),
    aead: new Aes128Gcm(),
  });
  const kp = await suite.kem.importKey("raw", fromHex(A11.skRm).buffer as ArrayBuffer, false);
  const r = hpkeSealBase(fromHex(A11.pkRm), fromHex(A11.info), fromHex(A11.aad), fromHex(A11.pt), {
    aead: "aes-128-gcm",
  });
  const pt = await suite.open(
    { recipientKey: kp, enc: r.enc.buffer as ArrayBuffer, info: fromHex(A11.info) },
    r.ciphertext,
    fromHex(A11.aad),
  );
  assert.equal(toHex(new Uint8Array(pt)), A11.pt);
});

Deno.test("hpkeSealBase() with the release suite opens with @hpke/core; a flipped byte does not", async () => {
  const suite = releaseSuite();
  const kp = await suite.kem.generateKeyPair();
  const pub = new Uint8Array(await suite.kem.serializePublicKey(kp.publicKey));
  const aad = utf8("binding");
  const msg = utf8(JSON.stringify({ hello: "world", n: 42 }));
  const r = hpkeSealBase(pub, utf8("confidant/v1/release"), aad, msg);
  assert.equal(r.enc.length, 32);
  const pt = await suite.open(
    { recipientKey: kp.privateKey, enc: r.enc.slice().buffer, info: utf8("confidant/v1/release") },
    r.ciphertext,
    aad,
  );
  assert.deepEqual(new Uint8Array(pt), msg);
  const bad = r.ciphertext.slice();
  bad[3] ^= 1;
  await assert.rejects(() =>
    suite.open(
      {
        recipientKey: kp.privateKey,
        enc: r.enc.slice().buffer,
        info: utf8("confidant/v1/release"),
      },
      bad,
      aad,
    )
  );
  // Two seals to the same key use fresh ephemeral keys.
  const again = hpkeSealBase(pub, utf8("confidant/v1/release"), aad, msg);
  assert.notEqual(toHex(again.enc), toHex(r.enc));
});

Deno.test("hpkeSealBase() refuses a key of the wrong size and a small-order point", () => {
  assert.throws(
    () => hpkeSealBase(new Uint8Array(31), new Uint8Array(0), new Uint8Array(0), new Uint8Array(1)),
    (e: Error & { code?: string }) => e.code === "kms.ephemeral_key",
  );
  // The all-zero u-coordinate is of small order: the agreement is all zeros.
  assert.throws(
    () => hpkeSealBase(new Uint8Array(32), new Uint8Array(0), new Uint8Array(0), new Uint8Array(1)),
    (e: Error & { code?: string }) => e.code === "kms.ephemeral_key",
  );
});
