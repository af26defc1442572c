/**
 * End to end with swtpm over TLS, one test per AK trust mode: an EK CA policy that needs the
 * intermediate the node supplies, pinned AKs (`ak.pinned`), and the empty policy
 * `{"pcrs":{}}`, which admits nobody.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { toHex } from "../../lib/bytes.ts";
import { Logger } from "../../lib/log.ts";
import { Tpm } from "../../attestation/tpm/client.ts";
import { loadAttestationKeys } from "../../attestation/tpm/keys.ts";
import { marshalTpm2bPublic } from "../../attestation/tpm/structures/mod.ts";
import { parseCertificate } from "../../attestation/ek_certificate.ts";
import { akPin } from "../../attestation/verify.ts";
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

const REQ: ReleaseRequest = {
  role: "worker",
  disk: { uuid: "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d" },
  nodeName: "node-a",
};

interface Kms {
  url: string;
  fingerprint: string;
  policy: PolicyHolder;
  setPolicy(p: unknown): Promise<void>;
  stop(): Promise<void>;
}

/** A KMS on a TLS socket with a policy file; `setPolicy` writes it and reloads. */
async function startKms(dir: string, first: unknown): Promise<Kms> {
  const kek = crypto.getRandomValues(new Uint8Array(32));
  const store = new FileStore(join(dir, "state"));
  await initKms(store, kek, "modes");
  const policyPath = join(dir, "policy.json");
  await Deno.writeTextFile(policyPath, JSON.stringify(first));
  const policy = await PolicyHolder.open(policyPath);
  const tlsId = await loadOrCreateTlsIdentity(join(dir, "state"), kek, ["127.0.0.1"]);
  const kms = await buildKms({
    store,
    kek,
    policy,
    tlsFingerprint: tlsId.fingerprint,
    audit: new MemoryAuditLog(),
    log: new Logger("kms-test"),
  });
  const server = serveKms(kms.app, {
    hostname: "127.0.0.1",
    port: 0,
    certPem: tlsId.certPem,
    keyPem: tlsId.keyPem,
  });
  return {
    url: `https://127.0.0.1:${server.addr.port}`,
    fingerprint: tlsId.fingerprint,
    policy,
    async setPolicy(p) {
      // Replace the file (a new inode), so the change is seen even within one mtime tick.
      await Deno.writeTextFile(policyPath + ".new", JSON.stringify(p));
      await Deno.rename(policyPath + ".new", policyPath);
      assert.equal(await policy.check(), "reloaded");
    },
    stop: () => server.shutdown(),
  };
}

async function pcr0And7Policy(tpm: Tpm): Promise<Record<string, { expected: string[] }>> {
  const v = (await tpm.pcrRead([{ hash: 0x000b, pcrs: [0, 7] }])).get(0x000b)!;
  return { "0": { expected: [toHex(v.get(0)!)] }, "7": { expected: [toHex(v.get(7)!)] } };
}

async function refusedWith(p: Promise<unknown>, check: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof KmsRefusedError, String(e));
    assert.ok(e.checks.includes(check), `expected ${check} in ${e.checks.join(",")}`);
    return true;
  });
}

function pemBlocks(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n?/g) ?? [];
}

Deno.test("KMS trust modes end to end: supplied intermediates, pinned AKs, empty policy", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "confidant-kms-modes-" });
  const swA: Swtpm = await startSwtpm({ ekCert: true });
  const swB: Swtpm = await startSwtpm({ ekCert: true });
  let kms: Kms | undefined;
  try {
    const tpmA = Tpm.open(swA.spec);
    const tpmB = Tpm.open(swB.spec);
    const pcrs = await pcr0And7Policy(tpmA);
    const [issuerA, rootA] = pemBlocks(swA.ekCaPem!);
    const issuerDer = new Uint8Array(parseCertificate(issuerA).rawData);
    kms = await startKms(dir, { pcrs: {} });
    const k = kms;
    const run = (tpm: Tpm, o: { ekIntermediates?: Uint8Array[]; transport?: KmsTransport } = {}) =>
      requestRelease({
        kmsUrl: k.url,
        fingerprint: k.fingerprint,
        tpm,
        request: REQ,
        pcrs: [0, 7],
        ...o,
      });

    await t.step('{"pcrs":{}} admits nobody', async () => {
      await refusedWith(run(tpmA), "ak.untrusted");
      await refusedWith(run(tpmA, { ekIntermediates: [issuerDer] }), "ak.untrusted");
    });

    let key = "";
    await t.step(
      "a root-only EK CA policy admits a node that supplies its intermediate",
      async () => {
        await k.setPolicy({ pcrs, ak: { ekCaCertificates: [rootA] } });
        await refusedWith(run(tpmA), "ek.certificate");
        const r = await run(tpmA, { ekIntermediates: [issuerDer] });
        assert.equal(r.release.enrolled, true);
        key = toHex(r.diskKey);
        // The cached chain is for that certificate set: without the intermediate, still refused.
        await refusedWith(run(tpmA), "ek.certificate");
      },
    );

    const keysA = await loadAttestationKeys(tpmA, { ek: "rsa", ak: "ecc" });
    const pinA = akPin(marshalTpm2bPublic(keysA.ak.public));
    await keysA.flush();

    await t.step("pinned AK: the node's identity is its AK pin; others are refused", async () => {
      await k.setPolicy({ pcrs, ak: { pinned: [pinA] } });
      // The EK certificate is not chained in pinned mode (any caller can send any key), so the
      // identity is the pin, not the EK: the disk enrolled under EK-CA trust is not released.
      await refusedWith(run(tpmA), "disk.identity_mismatch");
      assert.notEqual(key, "");
      const uuid = crypto.randomUUID();
      const r = await requestRelease({
        kmsUrl: k.url,
        fingerprint: k.fingerprint,
        tpm: tpmA,
        request: { ...REQ, disk: { uuid } },
        pcrs: [0, 7],
      });
      assert.equal(r.release.enrolled, true);
      const record = await new FileStore(join(dir, "state")).getDisk(uuid);
      assert.equal(record?.identity, pinA.slice("sha256:".length));
      await refusedWith(run(tpmB), "ak.not_pinned");
    });

    await t.step("pinned AK: a pin withdrawn between begin and finish is honoured", async () => {
      const base = pinnedHttpsTransport(k.url, k.fingerprint);
      const withdraw: KmsTransport = {
        post: async (path, body) => {
          if (path.endsWith("finish")) {
            await k.setPolicy({ pcrs, ak: { pinned: ["sha256:" + "00".repeat(32)] } });
          }
          return base.post(path, body);
        },
      };
      await refusedWith(run(tpmA, { transport: withdraw }), "ak.pinned");
    });

    await t.step("pinned AK: wrong PCRs are refused with the PCR named", async () => {
      await k.setPolicy({ pcrs: { "7": { expected: ["22".repeat(32)] } }, ak: { pinned: [pinA] } });
      await refusedWith(run(tpmA), "pcr.7");
    });

    await t.step("a pinned-mode session is not finished under an EK CA policy", async () => {
      await k.setPolicy({ pcrs, ak: { pinned: [pinA] } });
      const base = pinnedHttpsTransport(k.url, k.fingerprint);
      const switchMode: KmsTransport = {
        post: async (path, body) => {
          if (path.endsWith("finish")) {
            await k.setPolicy({ pcrs, ak: { ekCaCertificates: [swA.ekCaPem!] } });
          }
          return base.post(path, body);
        },
      };
      await refusedWith(run(tpmA, { transport: switchMode }), "ek.policy_changed");
    });
  } finally {
    await kms?.stop();
    await swA.stop();
    await swB.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
