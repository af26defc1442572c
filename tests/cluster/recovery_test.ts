import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { generateMasterSecret } from "../../kms/keys.ts";
import { deriveClusterId } from "../../cluster/cluster_id.ts";
import { openRecovery, parseRecoveryFile, sealRecovery } from "../../cluster/recovery.ts";
import { ConfidantError, ParseError } from "../../lib/errors.ts";

const pass = new TextEncoder().encode("a long enough passphrase");
const FAST = { N: 1 << 14, r: 8, p: 1 };

Deno.test("sealRecovery()/openRecovery() round-trip the master secret and cluster ID", async () => {
  const m = generateMasterSecret("prod");
  const id = await deriveClusterId(m);
  const text = await sealRecovery(m, id, pass, FAST);
  assert.ok(!text.includes(Buffer.from(m.secret).toString("base64")));
  const r = await openRecovery(text, pass);
  assert.deepEqual(r.master.secret, m.secret);
  assert.deepEqual(r.master.salt, m.salt);
  assert.equal(r.master.clusterId, "prod");
  assert.equal(r.clusterId, id);
  assert.equal(parseRecoveryFile(await sealRecovery(m, id, pass)).kdf.N, 1 << 17);
});

Deno.test("openRecovery() refuses a wrong passphrase, a swapped cluster ID and hostile KDF parameters", async () => {
  const m = generateMasterSecret("prod");
  const id = await deriveClusterId(m);
  const text = await sealRecovery(m, id, pass, FAST);
  await assert.rejects(
    openRecovery(text, new TextEncoder().encode("another passphrase!")),
    (e) => e instanceof ConfidantError && e.code === "cluster.recovery_open",
  );
  const swapped = JSON.parse(text);
  swapped.clusterId = "ab".repeat(32);
  await assert.rejects(
    openRecovery(JSON.stringify(swapped), pass),
    (e) => e instanceof ConfidantError && e.code === "cluster.recovery_open",
  );
  for (const N of [1 << 30, 3000, -1]) {
    const bad = JSON.parse(text);
    bad.kdf.N = N;
    await assert.rejects(openRecovery(JSON.stringify(bad), pass), ParseError);
  }
  // within each field's range, but together too much memory (4 GiB) or work
  for (
    const kdf of [{ N: 1 << 20, r: 32, p: 1 }, { N: 1 << 18, r: 16, p: 1 }, {
      N: 1 << 17,
      r: 8,
      p: 5,
    }, { N: 1 << 18, r: 8, p: 4 }]
  ) {
    const bad = JSON.parse(text);
    Object.assign(bad.kdf, kdf);
    assert.throws(() => parseRecoveryFile(JSON.stringify(bad)), ParseError, JSON.stringify(kdf));
  }
  const edge = JSON.parse(text);
  Object.assign(edge.kdf, { N: 1 << 18, r: 8, p: 2 }); // 256 MiB, twice the default's work
  assert.equal(parseRecoveryFile(JSON.stringify(edge)).kdf.N, 1 << 18);
  await assert.rejects(openRecovery("{", pass), ParseError);
  await assert.rejects(
    sealRecovery(m, id, new TextEncoder().encode("short"), FAST),
    (e) => e instanceof ConfidantError && e.code === "cluster.passphrase",
  );
});
