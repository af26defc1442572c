import assert from "node:assert/strict";
import { fromBase64, toBase64 } from "../../lib/bytes.ts";
import {
  generateEphemeralKeyPair,
  openRelease,
  releaseBinding,
  type ReleasePayload,
  sealRelease,
} from "../../kms/release.ts";
import type { ReleaseRequest } from "../../kms/protocol.ts";

const REQ: ReleaseRequest = {
  role: "worker",
  disk: { uuid: "0f8e2a4c-1b3d-4e5f-8a9b-0c1d2e3f4a5b" },
  nodeName: "node-1",
};

function payload(): ReleasePayload {
  return {
    version: 1,
    diskKey: toBase64(crypto.getRandomValues(new Uint8Array(32))),
    disk: REQ.disk,
    role: "worker",
    nodeName: "node-1",
    identity: "ab".repeat(32),
    enrolled: true,
    join: { available: false, reason: "none" },
    kms: { clusterId: "c1", tlsFingerprint: "cd".repeat(32) },
    issuedAt: new Date(0).toISOString(),
  };
}

Deno.test("a sealed release opens only with its key and binding", async (t) => {
  const kp = await generateEphemeralKeyPair();
  const aad = await releaseBinding("sess", REQ, kp.publicKey);
  const p = payload();
  const sealed = await sealRelease(p, kp.publicKey, aad);
  await t.step("opens", async () => {
    assert.deepEqual(await openRelease(sealed, kp, aad), p);
  });
  await t.step("a flipped ciphertext byte is detected", async () => {
    const ct = fromBase64(sealed.ciphertext);
    ct[5] ^= 0x80;
    await assert.rejects(openRelease({ ...sealed, ciphertext: toBase64(ct) }, kp, aad), {
      code: "kms.release_tampered",
    });
  });
  await t.step("another session's binding is refused", async () => {
    const aad2 = await releaseBinding("sess2", REQ, kp.publicKey);
    await assert.rejects(openRelease(sealed, kp, aad2), { code: "kms.release_tampered" });
    const aad3 = await releaseBinding("sess", { ...REQ, nodeName: "node-2" }, kp.publicKey);
    await assert.rejects(openRelease(sealed, kp, aad3), { code: "kms.release_tampered" });
  });
  await t.step("another key cannot open it", async () => {
    const other = await generateEphemeralKeyPair();
    await assert.rejects(openRelease(sealed, other, aad), { code: "kms.release_tampered" });
  });
});

Deno.test("sealRelease() refuses a public key that is not 32 bytes", async () => {
  await assert.rejects(sealRelease(payload(), new Uint8Array(31), new Uint8Array(32)), {
    code: "kms.ephemeral_key",
  });
});
