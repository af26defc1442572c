/**
 * End to end with TEE variants: a swtpm node whose guest "kernel" is a fake configfs-tsm with
 * an SEV-SNP provider signing reports with the fake AMD chain, admitted (or not) by an
 * in-process KMS whose test-only TEE roots come through `buildKms({ teeTrust })`. Shows which
 * half of a `sev-snp` document failed, and that variants cannot be mixed.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { toHex } from "../../lib/bytes.ts";
import { Logger } from "../../lib/log.ts";
import { Tpm } from "../../attestation/tpm/client.ts";
import { startSwtpm, type Swtpm } from "../_support/swtpm.ts";
import { MemoryAuditLog } from "../../kms/audit.ts";
import { FileStore } from "../../kms/file_store.ts";
import { PolicyHolder } from "../../kms/policy.ts";
import { buildKms, initKms } from "../../kms/server.ts";
import {
  KmsRefusedError,
  type KmsTransport,
  requestRelease,
  type RequestReleaseOptions,
} from "../../kms/client.ts";
import type { ReleaseRequest } from "../../kms/protocol.ts";
import { fakeTrust, makeFakeSnpPlatform, SNP_MEASUREMENT } from "../attestation/_tee_fixtures.ts";
import { fakeTsm } from "../attestation/_fake_tsm.ts";

const REQ: ReleaseRequest = {
  role: "worker",
  disk: { uuid: "5a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d" },
  nodeName: "snp-node",
};
const FINGERPRINT = "ab".repeat(32);

async function refusedWith(p: Promise<unknown>, check: string): Promise<string[]> {
  let checks: string[] = [];
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof KmsRefusedError, String(e));
    assert.ok(e.checks.includes(check), `expected ${check} in ${e.checks.join(",")}`);
    checks = e.checks;
    return true;
  });
  return checks;
}

Deno.test("KMS admits a sev-snp node only when both halves hold, and names the half that failed", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "confidant-kms-tee-" });
  const tsmRoot = join(dir, "tsm");
  await Deno.mkdir(tsmRoot);
  const sw: Swtpm = await startSwtpm({ ekCert: true });
  try {
    const tpm = Tpm.open(sw.spec);
    const bank = (await tpm.pcrRead([{ hash: 0x000b, pcrs: [0, 7] }])).get(0x000b)!;
    const pcrs = {
      "0": { expected: [toHex(bank.get(0)!)] },
      "7": { expected: [toHex(bank.get(7)!)] },
    };
    const platform = await makeFakeSnpPlatform();
    const kernel = fakeTsm({ kind: "sev_guest", platform });

    const kek = crypto.getRandomValues(new Uint8Array(32));
    const store = new FileStore(join(dir, "state"));
    await initKms(store, kek, "tee");
    const policyPath = join(dir, "policy.json");
    const snpPolicy = (snp: unknown, p: unknown = pcrs) => ({
      variants: ["sev-snp"],
      pcrs: p,
      ak: { ekCaCertificates: [sw.ekCaPem!] },
      snp,
    });
    await Deno.writeTextFile(policyPath, JSON.stringify(snpPolicy({})));
    const policy = await PolicyHolder.open(policyPath);
    const setPolicy = async (p: unknown) => {
      await Deno.writeTextFile(policyPath + ".new", JSON.stringify(p));
      await Deno.rename(policyPath + ".new", policyPath);
      assert.equal(await policy.check(), "reloaded");
    };
    const audit = new MemoryAuditLog();
    const kms = await buildKms({
      store,
      kek,
      policy,
      tlsFingerprint: FINGERPRINT,
      audit,
      log: new Logger("kms-tee-test"),
      teeTrust: fakeTrust(platform),
    });
    const inProcess: KmsTransport = {
      async post(path, body) {
        const r = await kms.app.request(path, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(body),
        }, { remoteAddr: { hostname: "127.0.0.1" } });
        return { status: r.status, body: await r.json() };
      },
    };
    const run = (o: Partial<RequestReleaseOptions> = {}) =>
      requestRelease({
        kmsUrl: "https://kms.invalid",
        fingerprint: FINGERPRINT,
        tpm,
        request: REQ,
        pcrs: [0, 7],
        tee: "auto",
        teeOptions: { tsmRoot, tsmFs: kernel.fs },
        transport: inProcess,
        ...o,
      });

    await t.step("a sev-snp policy admits the node with both halves good", async () => {
      await setPolicy(snpPolicy({ measurements: [SNP_MEASUREMENT] }));
      const before = kernel.inblobs.length;
      const r = await run();
      assert.equal(r.release.enrolled, true);
      assert.equal(r.diskKey.length, 32);
      assert.equal(kernel.inblobs.length, before + 1, "one TEE report was requested");
    });

    await t.step(
      "a measurement outside the allowlist is refused as tee.*, not as TPM",
      async () => {
        await setPolicy(snpPolicy({ measurements: ["cd".repeat(48)] }));
        const checks = await refusedWith(run(), "tee.policy.measurement");
        assert.ok(checks.every((c) => c.startsWith("tee.")), checks.join(","));
      },
    );

    await t.step("a PCR outside the policy is refused as pcr.N, not as tee.*", async () => {
      await setPolicy(
        snpPolicy({ measurements: [SNP_MEASUREMENT] }, {
          ...pcrs,
          "7": { expected: ["77".repeat(32)] },
        }),
      );
      const checks = await refusedWith(run(), "pcr.7");
      assert.deepEqual(checks, ["pcr.7"]);
    });

    await t.step(
      "a tpm document against a sev-snp policy is refused: document.variant",
      async () => {
        await setPolicy(snpPolicy({}));
        const checks = await refusedWith(run({ tee: "none" }), "document.variant");
        assert.deepEqual(checks, ["document.variant"]);
      },
    );

    await t.step("a node that began as sev-snp cannot finish with a tpm document", async () => {
      await setPolicy({ ...snpPolicy({}), variants: ["tpm", "sev-snp"] });
      const downgrade: KmsTransport = {
        post(path, body) {
          if (!path.endsWith("/finish")) return inProcess.post(path, body);
          const b = body as { evidence: Record<string, unknown> };
          const { tee: _tee, ...rest } = b.evidence;
          return inProcess.post(path, { ...b, evidence: { ...rest, variant: "tpm" } });
        },
      };
      const checks = await refusedWith(run({ transport: downgrade }), "evidence.variant");
      assert.deepEqual(checks, ["evidence.variant"]);
      // Both variants accepted: a plain tpm node is admitted, and gets the same disk key.
      const a = await run();
      const b = await run({ tee: "none" });
      assert.equal(toHex(a.diskKey), toHex(b.diskKey));
    });

    await t.step("releases and refusals are audited", () => {
      // Releases say the variant and how the AK was trusted (chain at begin + activation).
      const released = audit.entries.filter((r) => r.decision === "released");
      assert.ok(released.some((r) => r.detail?.includes("sev-snp; ak ek-ca-verified+activation")));
      const refused = audit.entries.filter((r) => r.decision === "refused");
      assert.ok(refused.some((r) => r.checks?.includes("tee.policy.measurement")));
      assert.ok(refused.some((r) => r.event === "begin" && r.checks?.includes("document.variant")));
    });
  } finally {
    await sw.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
