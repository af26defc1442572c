/**
 * Kubernetes paths against an in-test stand-in of the API server (tests/kms/_kube_standin.ts),
 * through @kubernetes/client-node: state in Secrets, enrolment races, reassignment with
 * resourceVersion conflicts, bootstrap-token Secrets, and two KMS instances on one state.
 */
import assert from "node:assert/strict";
import { fromBase64, toBase64, toHex } from "../../lib/bytes.ts";
import { Logger } from "../../lib/log.ts";
import { startKubeStandin } from "./_kube_standin.ts";
import { kubeSecretsApi } from "../../kms/kube.ts";
import { KubeStore } from "../../kms/k8s_store.ts";
import { kubeadmJoinIssuer } from "../../kms/join_ticket.ts";
import { MemoryAuditLog } from "../../kms/audit.ts";
import { parseKmsPolicy, PolicyHolder } from "../../kms/policy.ts";
import { buildKms, initKms } from "../../kms/server.ts";
import type { CredentialIssuer, EvidenceVerifier } from "../../kms/evidence.ts";
import { generateEphemeralKeyPair, openRelease, releaseBinding } from "../../kms/release.ts";
import type { DiskRecord } from "../../kms/store.ts";

const UUID = "11111111-2222-4333-8444-555555555555";
const rec = (identity: string): DiskRecord => ({
  version: 1,
  uuid: UUID,
  identity,
  nodeName: "n1",
  role: "worker",
  enrolledAt: new Date(0).toISOString(),
  previous: [],
});

Deno.test("KubeStore keeps master and disks in Secrets; racing enrolments have one winner", async () => {
  const k = startKubeStandin();
  try {
    const store = new KubeStore(kubeSecretsApi(k.kubeConfig()), "confidant-system");
    const kek = crypto.getRandomValues(new Uint8Array(32));
    await initKms(store, kek, "k1");
    await assert.rejects(initKms(store, kek, "k1"), { code: "kms.already_initialised" });
    assert.ok(k.secrets.has("confidant-system/confidant-kms-master"));
    const results = await Promise.all(
      ["aa", "bb", "cc"].map((c) => store.enrollDisk(rec(c.repeat(32)))),
    );
    assert.equal(results.filter((r) => r.created).length, 1);
    const winner = results.find((r) => r.created)!.record.identity;
    for (const r of results) assert.equal(r.record.identity, winner);
    assert.equal((await store.listDisks()).length, 1);
    const moved = await store.reassignDisk(UUID, "dd".repeat(32), new Date());
    assert.equal(moved.identity, "dd".repeat(32));
    assert.equal(moved.previous.at(-1)!.identity, winner);
    assert.equal((await store.getDisk(UUID))!.identity, "dd".repeat(32));
  } finally {
    await k.stop();
  }
});

Deno.test("reassignDisk() retries a resourceVersion conflict instead of overwriting", async () => {
  const k = startKubeStandin();
  try {
    const api = kubeSecretsApi(k.kubeConfig());
    const store = new KubeStore(api, "ns1");
    await store.enrollDisk(rec("aa".repeat(32)));
    let bumped = false;
    const racing = {
      ...api,
      async update(s: Parameters<typeof api.update>[0]) {
        if (!bumped) { // another writer changes the Secret between our read and our write
          bumped = true;
          const cur = (await api.get("ns1", s.name))!;
          assert.equal(await api.update({ ...cur }), true);
        }
        return api.update(s);
      },
    };
    const r = await new KubeStore(racing, "ns1").reassignDisk(UUID, "ee".repeat(32), new Date());
    assert.equal(r.identity, "ee".repeat(32));
    assert.ok(bumped);
    assert.equal(
      await api.update({
        ...(await api.get("ns1", "confidant-disk-" + UUID))!,
        resourceVersion: "1",
      }),
      false,
    );
  } finally {
    await k.stop();
  }
});

Deno.test("kubeadmJoinIssuer() writes a standard bootstrap-token Secret with a 15-minute expiry", async () => {
  const k = startKubeStandin();
  try {
    const api = kubeSecretsApi(k.kubeConfig());
    const now = new Date("2030-01-01T00:00:00Z");
    const hash = "sha256:" + "ab".repeat(32);
    const issuer = kubeadmJoinIssuer(
      api,
      () => ({ apiServerEndpoint: "10.0.0.1:6443", caCertHashes: [hash] }),
    );
    const t = await issuer.issue({ role: "worker", nodeName: "n1" }, now);
    assert.ok(t.available);
    assert.match(t.token, /^[a-z0-9]{6}\.[a-z0-9]{16}$/);
    const [id, secret] = t.token.split(".");
    const s = k.secrets.get(`kube-system/bootstrap-token-${id}`)!.body as unknown as {
      type: string;
      data: Record<string, string>;
    };
    assert.equal(s.type, "bootstrap.kubernetes.io/token");
    const d = Object.fromEntries(
      Object.entries(s.data).map(([kk, v]) => [kk, new TextDecoder().decode(fromBase64(v))]),
    );
    assert.equal(d["token-id"], id);
    assert.equal(d["token-secret"], secret);
    assert.equal(d["expiration"], "2030-01-01T00:15:00Z");
    assert.equal(d["usage-bootstrap-authentication"], "true");
    assert.equal(d["usage-bootstrap-signing"], "true");
    assert.equal(d["auth-extra-groups"], "system:bootstrappers:kubeadm:default-node-token");
    // Control-plane: needs the certificate key Secret.
    const cp = await issuer.issue({ role: "control-plane", nodeName: "n2" }, now);
    assert.equal(cp.available, false);
    const withKey = kubeadmJoinIssuer(api, () => ({
      apiServerEndpoint: "10.0.0.1:6443",
      caCertHashes: [hash],
      certificateKeySecret: { namespace: "kube-system", name: "ck", key: "key" },
    }));
    await api.create({
      name: "ck",
      namespace: "kube-system",
      data: { key: toBase64(new TextEncoder().encode("0f".repeat(32))) },
    });
    const cp2 = await withKey.issue({ role: "control-plane", nodeName: "n2" }, now);
    assert.ok(cp2.available && cp2.certificateKey === "0f".repeat(32));
  } finally {
    await k.stop();
  }
});

// Attestation stand-ins for this test only: the TPM path is covered by e2e_swtpm_test.ts. These
// accept an EK "certificate" whose first 32 bytes are the identity, so the state logic is tested.
const fakeCredentials: CredentialIssuer = {
  begin(i) {
    return Promise.resolve({
      ok: true,
      identity: i.ekCertificate.slice(0, 32),
      akName: new Uint8Array([0, 11, ...new Uint8Array(32)]),
      endorsement: { trust: "pinned", ekCertificateDigest: new Uint8Array(32) },
      credential: { credentialBlob: i.secret.slice(), encryptedSecret: new Uint8Array([1]) },
    });
  },
};
const passEvidence: EvidenceVerifier = { verify: () => Promise.resolve({ checks: [] }) };

Deno.test("two KMS instances on one Kubernetes state serve the same node consistently", async () => {
  const k = startKubeStandin();
  try {
    const kek = crypto.getRandomValues(new Uint8Array(32));
    const mk = async () => {
      const store = new KubeStore(kubeSecretsApi(k.kubeConfig()), "confidant-system");
      return await buildKms({
        store,
        kek,
        policy: PolicyHolder.fixed(parseKmsPolicy('{"pcrs":{}}')),
        tlsFingerprint: "cd".repeat(32),
        audit: new MemoryAuditLog(),
        log: new Logger("t"),
        credentials: fakeCredentials,
        evidence: passEvidence,
      });
    };
    await initKms(new KubeStore(kubeSecretsApi(k.kubeConfig()), "confidant-system"), kek, "shared");
    const [a, b] = [await mk(), await mk()];
    const node = async (identityByte: number, beginOn: typeof a, finishOn: typeof a) => {
      const ek = new Uint8Array(64).fill(identityByte);
      const r1 = await beginOn.app.request("/v1/attest/begin", {
        method: "POST",
        body: JSON.stringify({
          ekCertificate: toBase64(ek),
          akPublic: toBase64(new Uint8Array(32)),
        }),
      });
      assert.equal(r1.status, 200);
      const begun = await r1.json();
      const kp = await generateEphemeralKeyPair();
      const request = { role: "worker" as const, disk: { uuid: UUID }, nodeName: "n1" };
      const r2 = await finishOn.app.request("/v1/attest/finish", {
        method: "POST",
        body: JSON.stringify({
          session: begun.session,
          activatedSecret: begun.credential.credentialBlob,
          evidence: { version: 1, variant: "tpm" },
          ephemeralPublicKey: toBase64(kp.publicKey),
          request,
        }),
      });
      if (r2.status !== 200) return { status: r2.status, body: await r2.json() };
      const { release } = await r2.json();
      const opened = await openRelease(
        release,
        kp,
        await releaseBinding(begun.session, request, kp.publicKey),
      );
      return { status: 200, key: toHex(fromBase64(opened.diskKey)), enrolled: opened.enrolled };
    };
    const first = await node(7, a, b); // begun on A, finished on B: the session is stateless
    assert.equal(first.status, 200);
    const second = await node(7, b, a);
    assert.equal(second.key, first.key);
    assert.equal(second.enrolled, false);
    const other = await node(8, a, a);
    assert.equal(other.status, 403);
    assert.deepEqual(other.body.checks, ["disk.identity_mismatch"]);
    // The policy admits nobody by default in the real verifier; here only the state is shared.
  } finally {
    await k.stop();
  }
});
