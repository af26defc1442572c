/**
 * The benchmark's software TPM against the production KMS (in process, app.request()): a
 * simulated node is admitted end to end, and what the production code checks still bites
 * (an uncertified EK, wrong PCRs, a credential for another node).
 */
import assert from "node:assert/strict";
import { toHex } from "../../lib/bytes.ts";
import { Logger } from "../../lib/log.ts";
import { MemoryAuditLog } from "../../kms/audit.ts";
import { FileStore } from "../../kms/file_store.ts";
import { parseKmsPolicy, PolicyHolder } from "../../kms/policy.ts";
import { buildKms, initKms } from "../../kms/server.ts";
import type { KmsTransport } from "../../kms/client.ts";
import { akPin, verifyDocument } from "../../attestation/verify.ts";
import {
  createSoftCa,
  createSoftNode,
  simulatedPcrs,
  softActivateCredential,
  softAdmit,
  softQuoteDocument,
  softRequest,
} from "../../bench/_soft_tpm.ts";
import { makeCredential } from "../../attestation/tpm/credential/mod.ts";
import { EK_TEMPLATE_ECC_P256, unmarshalTpm2bPublic } from "../../attestation/tpm/mod.ts";
import { ekPublicFromCertificate, parseCertificate } from "../../attestation/ek_certificate.ts";

const PCRS = [0, 4, 7];

function pcrPolicy(): Record<string, { expected: string[] }> {
  const v = simulatedPcrs();
  return Object.fromEntries(PCRS.map((p) => [String(p), { expected: [toHex(v[p])] }]));
}

async function kmsWith(policy: unknown) {
  const dir = await Deno.makeTempDir({ prefix: "confidant-soft-tpm-" });
  const kek = crypto.getRandomValues(new Uint8Array(32));
  const store = new FileStore(dir);
  await initKms(store, kek, "bench");
  const kms = await buildKms({
    store,
    kek,
    policy: PolicyHolder.fixed(parseKmsPolicy(JSON.stringify(policy))),
    tlsFingerprint: "cd".repeat(32),
    audit: new MemoryAuditLog(),
    log: new Logger("soft-tpm-test"),
  });
  const transport: KmsTransport = {
    async post(path, body) {
      const r = await kms.app.request(
        path,
        {
          method: "POST",
          body: JSON.stringify(body),
          headers: { "content-type": "application/json" },
        },
        { remoteAddr: { hostname: "127.0.0.1" } },
      );
      return { status: r.status, body: await r.json() };
    },
  };
  return { transport, cleanup: () => Deno.remove(dir, { recursive: true }) };
}

Deno.test("a soft TPM node is admitted end to end by the production KMS", async () => {
  const ca = await createSoftCa();
  const node = await createSoftNode(ca, 1);
  const { transport, cleanup } = await kmsWith({
    pcrs: pcrPolicy(),
    ak: { ekCaCertificates: [ca.certPem] },
  });
  try {
    const first = await softAdmit(node, transport, softRequest(1), PCRS);
    assert.ok(first.ok, JSON.stringify(first));
    assert.equal(first.diskKey.length, 32);
    assert.equal(first.release.enrolled, true);
    assert.equal(first.release.nodeName, "bench-node-1");
    const again = await softAdmit(node, transport, softRequest(1), PCRS);
    assert.ok(again.ok);
    assert.equal(toHex(again.diskKey), toHex(first.diskKey));
  } finally {
    await cleanup();
  }
});

Deno.test("the production KMS refuses soft nodes the policy does not admit", async (t) => {
  const ca = await createSoftCa();
  const other = await createSoftCa("CN=another software CA");
  const node = await createSoftNode(ca, 2);
  const stranger = await createSoftNode(other, 3);
  await t.step("an EK certified by another CA", async () => {
    const { transport, cleanup } = await kmsWith({
      pcrs: pcrPolicy(),
      ak: { ekCaCertificates: [ca.certPem] },
    });
    try {
      const r = await softAdmit(stranger, transport, softRequest(3), PCRS);
      assert.ok(!r.ok);
      assert.equal(r.step, "begin");
      assert.equal(r.status, 403);
      assert.match(r.error, /ek\.certificate/);
    } finally {
      await cleanup();
    }
  });
  await t.step("a PCR value other than the policy's", async () => {
    const { transport, cleanup } = await kmsWith({
      pcrs: { "7": { expected: ["11".repeat(32)] } },
      ak: { ekCaCertificates: [ca.certPem] },
    });
    try {
      const r = await softAdmit(node, transport, softRequest(2), PCRS);
      assert.ok(!r.ok);
      assert.equal(r.step, "finish");
      assert.equal(r.status, 403);
      assert.match(r.error, /pcr\.7/);
    } finally {
      await cleanup();
    }
  });
});

Deno.test("softActivateCredential() recovers the secret only for its own EK and AK", async () => {
  const ca = await createSoftCa();
  const a = await createSoftNode(ca, 4);
  const b = await createSoftNode(ca, 5);
  const ekA = ekPublicFromCertificate(parseCertificate(a.ekCertificate));
  assert.equal(ekA.type, EK_TEMPLATE_ECC_P256.type);
  const secret = crypto.getRandomValues(new Uint8Array(32));
  const cred = makeCredential(ekA, a.akName, secret);
  const got = softActivateCredential(a, cred.credentialBlob, cred.encryptedSecret);
  assert.equal(toHex(got), toHex(secret));
  assert.throws(
    () => softActivateCredential(b, cred.credentialBlob, cred.encryptedSecret),
    /integrity/,
  );
  const forB = makeCredential(ekA, b.akName, secret);
  assert.throws(() => softActivateCredential(a, forB.credentialBlob, forB.encryptedSecret));
  assert.throws(() => softActivateCredential(a, cred.credentialBlob, new Uint8Array(3)));
});

Deno.test("softQuoteDocument() passes verifyDocument and a changed byte fails it", async () => {
  const ca = await createSoftCa();
  const node = await createSoftNode(ca, 6);
  const nonce = crypto.getRandomValues(new Uint8Array(32));
  const userData = crypto.getRandomValues(new Uint8Array(32));
  const doc = softQuoteDocument(node, nonce, userData, PCRS);
  const policy = parseKmsPolicy(
    JSON.stringify({ pcrs: pcrPolicy(), ak: { pinned: [akPin(node.akPublic)] } }),
  );
  const ok = await verifyDocument(doc, policy, { nonce, userData });
  assert.ok(ok.ok, JSON.stringify(ok.failures));
  assert.equal(unmarshalTpm2bPublic(node.akPublic).public.type, 0x0023);
  const bad = structuredClone(doc);
  const q = atob(bad.tpm.quote);
  bad.tpm.quote = btoa(q.slice(0, -1) + String.fromCharCode(q.charCodeAt(q.length - 1) ^ 1));
  const r = await verifyDocument(bad, policy, { nonce, userData });
  assert.ok(!r.ok);
  assert.ok(r.failures.length > 0);
});
