import assert from "node:assert/strict";
import { toHex } from "../../lib/bytes.ts";
import { diskKeyInfo, generateMasterSecret, KeyDeriver, sessionKeyInfo } from "../../kms/keys.ts";

const UUID = "0f8e2a4c-1b3d-4e5f-8a9b-0c1d2e3f4a5b";

Deno.test("diskKeyInfo() names purpose, cluster and lower-cased disk", () => {
  assert.equal(diskKeyInfo("prod-1", UUID.toUpperCase()), `confidant/v1/disk/prod-1/${UUID}`);
  assert.equal(sessionKeyInfo("prod-1"), "confidant/v1/session-token/prod-1");
  assert.throws(() => diskKeyInfo("prod-1", "not-a-uuid"), /UUID/);
  assert.throws(() => diskKeyInfo("Prod/1", UUID), /cluster id/);
});

Deno.test("KeyDeriver.diskKey() matches HKDF-SHA256 with the documented info string", async () => {
  const m = generateMasterSecret("c1");
  const d = await KeyDeriver.create(m);
  const k = await d.diskKey(UUID);
  assert.equal(k.length, 32);
  // Independent computation with node:crypto's HKDF.
  const { hkdfSync } = await import("node:crypto");
  const ref = new Uint8Array(
    hkdfSync("sha256", m.secret, m.salt, `confidant/v1/disk/c1/${UUID}`, 32),
  );
  assert.equal(toHex(k), toHex(ref));
  assert.equal(
    toHex(await d.diskKey(UUID.toUpperCase())),
    toHex(k),
    "case does not change the key",
  );
  const other = await d.diskKey("0f8e2a4c-1b3d-4e5f-8a9b-0c1d2e3f4a5c");
  assert.notEqual(toHex(other), toHex(k));
  const d2 = await KeyDeriver.create({ ...m, clusterId: "c2" });
  assert.notEqual(toHex(await d2.diskKey(UUID)), toHex(k), "the cluster id separates keys");
});

Deno.test("KeyDeriver.create() refuses a short secret", async () => {
  await assert.rejects(
    KeyDeriver.create({ clusterId: "c", secret: new Uint8Array(16), salt: new Uint8Array(32) }),
    /32 bytes/,
  );
});
