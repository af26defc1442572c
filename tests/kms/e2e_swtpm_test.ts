/**
 * End to end with swtpm: a KMS on a TLS socket (state directory backend) and the node-side
 * client driving a real TPM simulator with an EK certificate from swtpm's local CA.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fromBase64, toBase64, toHex } from "../../lib/bytes.ts";
import { Logger } from "../../lib/log.ts";
import { Tpm } from "../../attestation/tpm/client.ts";
import { TPM_ALG } from "../../attestation/tpm/constants.ts";
import { startSwtpm, type Swtpm } from "../_support/swtpm.ts";
import { MemoryAuditLog } from "../../kms/audit.ts";
import { FileStore } from "../../kms/file_store.ts";
import { PolicyHolder } from "../../kms/policy.ts";
import { buildKms, initKms, serveKms } from "../../kms/server.ts";
import { loadOrCreateTlsIdentity } from "../../kms/tls.ts";
import {
  KmsRefusedError,
  type KmsTransport,
  pinnedHttpsTransport,
  requestRelease,
} from "../../kms/client.ts";
import type { ReleaseRequest } from "../../kms/protocol.ts";

const DISK = "6b1f0c2e-8d4a-4b3c-9e2f-1a2b3c4d5e6f";
const REQ: ReleaseRequest = { role: "worker", disk: { uuid: DISK }, nodeName: "node-a" };

async function pcr0(spec: string): Promise<string> {
  const tpm = Tpm.open(spec);
  const v = await tpm.pcrRead([{ hash: TPM_ALG.SHA256, pcrs: [0] }]);
  return toHex(v.get(TPM_ALG.SHA256)!.get(0)!);
}

Deno.test("KMS end to end with swtpm: releases, refusals and tamper detection", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "confidant-kms-e2e-" });
  const swA: Swtpm = await startSwtpm({ ekCert: true });
  const swB: Swtpm = await startSwtpm({ ekCert: true });
  let server: Deno.HttpServer<Deno.NetAddr> | undefined;
  try {
    const kek = crypto.getRandomValues(new Uint8Array(32));
    const store = new FileStore(join(dir, "state"));
    await initKms(store, kek, "e2e");
    const good = await pcr0(swA.spec);
    const policyPath = join(dir, "policy.yaml");
    const writePolicy = (pcr: string, cas = [swA.ekCaPem!, swB.ekCaPem!]) =>
      Deno.writeTextFile(
        policyPath,
        JSON.stringify({ pcrs: { "0": { expected: [pcr] } }, ak: { ekCaCertificates: cas } }),
      );
    await writePolicy(good);
    const policy = await PolicyHolder.open(policyPath);
    const tlsId = await loadOrCreateTlsIdentity(join(dir, "state"), kek, [
      "127.0.0.1",
      "localhost",
    ]);
    let clock = Date.now();
    const audit = new MemoryAuditLog();
    const kms = await buildKms({
      store,
      kek,
      policy,
      tlsFingerprint: tlsId.fingerprint,
      audit,
      log: new Logger("kms-test"),
      now: () => clock,
    });
    server = serveKms(kms.app, {
      hostname: "127.0.0.1",
      port: 0,
      certPem: tlsId.certPem,
      keyPem: tlsId.keyPem,
    });
    const url = `https://127.0.0.1:${server.addr.port}`;
    const fp = tlsId.fingerprint;
    const tpmA = Tpm.open(swA.spec);
    const tpmB = Tpm.open(swB.spec);
    const base = pinnedHttpsTransport(url, fp);
    const run = (
      o: { tpm?: Tpm; transport?: KmsTransport; onFinishResponse?: (b: unknown) => unknown } = {},
    ) =>
      requestRelease({
        kmsUrl: url,
        fingerprint: fp,
        tpm: o.tpm ?? tpmA,
        request: REQ,
        pcrs: [0, 7],
        transport: o.transport,
        onFinishResponse: o.onFinishResponse,
      });
    const refusedWith = async (p: Promise<unknown>, check: string) => {
      await assert.rejects(p, (e: unknown) => {
        assert.ok(e instanceof KmsRefusedError, String(e));
        assert.ok(e.checks.includes(check), `expected ${check} in ${e.checks.join(",")}`);
        return true;
      });
    };

    let firstKey = "";
    await t.step("a node with the right PCRs gets its key, and enrols the disk", async () => {
      const r = await run();
      assert.equal(r.diskKey.length, 32);
      assert.equal(r.release.enrolled, true);
      assert.equal(r.release.kms.tlsFingerprint, fp);
      assert.equal(r.release.join.available, false);
      firstKey = toHex(r.diskKey);
    });
    await t.step("the same node asking again gets the same key", async () => {
      const r = await run();
      assert.equal(toHex(r.diskKey), firstKey);
      assert.equal(r.release.enrolled, false);
    });
    await t.step("a forged credential answer is refused", async () => {
      const forge: KmsTransport = {
        post: (path, body) =>
          base.post(
            path,
            path.endsWith("finish")
              ? {
                ...(body as object),
                activatedSecret: toBase64(crypto.getRandomValues(new Uint8Array(32))),
              }
              : body,
          ),
      };
      await refusedWith(run({ transport: forge }), "credential.mismatch");
    });
    await t.step("a replayed session is refused", async () => {
      let saved: unknown;
      const rec: KmsTransport = {
        post: (path, body) => {
          if (path.endsWith("finish")) saved = body;
          return base.post(path, body);
        },
      };
      await run({ transport: rec });
      const again = await base.post("/v1/attest/finish", saved);
      assert.equal(again.status, 403);
      assert.deepEqual((again.body as { checks: string[] }).checks, ["session.replayed"]);
    });
    await t.step("an expired session is refused", async () => {
      const late: KmsTransport = {
        post: (path, body) => {
          if (path.endsWith("finish")) clock += 61_000;
          return base.post(path, body);
        },
      };
      await refusedWith(run({ transport: late }), "session.expired");
    });
    await t.step("a tampered sealed response is detected by the node", async () => {
      await assert.rejects(
        run({
          onFinishResponse: (b) => {
            const r = structuredClone(b) as { release: { ciphertext: string } };
            const ct = fromBase64(r.release.ciphertext);
            ct[ct.length - 1] ^= 1;
            r.release.ciphertext = toBase64(ct);
            return r;
          },
        }),
        { code: "kms.release_tampered" },
      );
    });
    await t.step(
      "a different TPM asking for the enrolled disk is refused and audited",
      async () => {
        await refusedWith(run({ tpm: tpmB }), "disk.identity_mismatch");
        const last = audit.entries.at(-1)!;
        assert.equal(last.decision, "refused");
        assert.deepEqual(last.checks, ["disk.identity_mismatch"]);
        // The operator moves the disk explicitly; then the new TPM gets the same disk's key.
        await store.reassignDisk(DISK, last.identity!, new Date());
        const r = await run({ tpm: tpmB });
        assert.equal(toHex(r.diskKey), firstKey);
        await refusedWith(run(), "disk.identity_mismatch");
      },
    );
    await t.step(
      "a session begun under another EK CA set is refused at finish (chain not rechecked)",
      async () => {
        const reload: KmsTransport = {
          post: async (path, body) => {
            if (path.endsWith("finish")) {
              await writePolicy(good, [swB.ekCaPem!]); // node B's CA only, still trusts B
              assert.equal(await policy.check(), "reloaded");
            }
            return base.post(path, body);
          },
        };
        await refusedWith(run({ tpm: tpmB, transport: reload }), "ek.policy_changed");
        // Under the new set, a fresh session of the same node is released.
        const r = await run({ tpm: tpmB });
        assert.equal(toHex(r.diskKey), firstKey);
      },
    );
    await t.step(
      "a control-plane release carries the cluster ID but no KEK unless replicas.releaseKek",
      async () => {
        const cas = [swA.ekCaPem!, swB.ekCaPem!];
        const cp = {
          ...REQ,
          role: "control-plane" as const,
          disk: { uuid: "7c2a0d3f-9e5b-4c4d-8f30-2b3c4d5e6f70" },
        };
        const ask = (request: ReleaseRequest) =>
          requestRelease({ kmsUrl: url, fingerprint: fp, tpm: tpmB, request, pcrs: [0] });
        for (const extra of [{}, { replicas: { releaseKek: false } }]) {
          await Deno.writeTextFile(
            policyPath,
            JSON.stringify({
              pcrs: { "0": { expected: [good] } },
              ak: { ekCaCertificates: cas },
              roles: ["worker", "control-plane"],
              ...extra,
            }),
          );
          assert.equal(await policy.check(), "reloaded");
          const r = await ask(cp);
          assert.equal(r.release.replica, undefined);
          assert.equal(r.release.clusterIdentity, kms.clusterIdentity);
          assert.match(r.release.clusterIdentity!, /^[0-9a-f]{64}$/);
        }
        await Deno.writeTextFile(
          policyPath,
          JSON.stringify({
            pcrs: { "0": { expected: [good] } },
            ak: { ekCaCertificates: cas },
            roles: ["worker", "control-plane"],
            replicas: { releaseKek: true },
          }),
        );
        assert.equal(await policy.check(), "reloaded");
        assert.equal((await ask(cp)).release.replica?.kek, toBase64(kek));
        const w = await ask({ ...cp, role: "worker", disk: { uuid: DISK } });
        assert.equal(w.release.replica, undefined, "a worker release never carries the KEK");
        for (const e of audit.entries) {
          assert.ok(!JSON.stringify(e).includes(toBase64(kek)), "no KEK in the audit");
        }
      },
    );
    await t.step(
      "wrong PCRs are refused with the PCR named (policy reloaded from file)",
      async () => {
        await writePolicy("11".repeat(32));
        assert.equal(await policy.check(), "reloaded");
        await refusedWith(run({ tpm: tpmB }), "pcr.0");
      },
    );
    await t.step("a wrong pinned fingerprint stops the node before it sends anything", async () => {
      await assert.rejects(
        requestRelease({ kmsUrl: url, fingerprint: "00".repeat(32), tpm: tpmA, request: REQ }),
        { code: "kms.fingerprint_mismatch" },
      );
    });
    const text = kms.metrics.render();
    assert.match(text, /confidant_kms_releases_total [1-9]/);
    assert.match(text, /confidant_kms_refusals_total\{check="session.replayed"\} 1/);
    for (const e of audit.entries) {
      assert.ok(!JSON.stringify(e).includes(firstKey), "no key in audit");
    }
  } finally {
    await server?.shutdown();
    await swA.stop();
    await swB.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
