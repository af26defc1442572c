/**
 * KMS replicas and the cluster-ID PCR, end to end with real swtpm nodes:
 * - node 1's KMS (agent/kms_host.ts in-process, state in the Kubernetes API stand-in's
 *   Secrets) under a policy with `replicas.releaseKek` and `clusterIdPcr.required`;
 * - node 2 joins as control-plane through it with the agent's KMS adapter: its release carries
 *   the KEK and the policy, its PCR 15 is extended with the cluster ID, the grant is kept on
 *   its "state disk" (a temp dir) and its replica serves from the shared state;
 * - node 3 (worker) gets from the replica the same disk key node 1's KMS releases, its release
 *   carries no KEK, and a foreign PCR 15 or a quote without PCR 15 is refused.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startSwtpm } from "../_support/swtpm.ts";
import { startKubeStandin } from "../kms/_kube_standin.ts";
import { Tpm } from "../../attestation/tpm/client.ts";
import { TPM_ALG } from "../../attestation/tpm/constants.ts";
import { fromBase64, toHex } from "../../lib/bytes.ts";
import { issueDocument } from "../../attestation/issue.ts";
import { akPin, verifyDocument } from "../../attestation/verify.ts";
import { parsePolicy } from "../../attestation/policy.ts";
import { Logger, setLogSink } from "../../lib/log.ts";
import { ConfidantError } from "../../lib/errors.ts";
import { generateMasterSecret } from "../../kms/keys.ts";
import { initKms } from "../../kms/server.ts";
import { KmsRefusedError, requestRelease } from "../../kms/client.ts";
import { KubeStore } from "../../kms/k8s_store.ts";
import { kubeSecretsApi } from "../../kms/kube.ts";
import { parseKmsPolicy } from "../../kms/policy.ts";
import { loadAgentConfig } from "../../agent/config.ts";
import { kmsClientAdapter, TpmAccess } from "../../agent/adapters.ts";
import { KmsRefusedError as AgentRefused } from "../../agent/ports.ts";
import { KMS_NAMESPACE } from "../../agent/bootstrap.ts";
import { type InProcessKms, startInProcessKms } from "../../agent/kms_host.ts";
import { kmsReplicaStarter, loadReplicaGrant, storeReplicaGrant } from "../../agent/kms_replica.ts";
import { extendClusterIdPcr } from "../../agent/cluster_pcr.ts";
import {
  CLUSTER_ID_PCR,
  deriveClusterId,
  expectedClusterPcr,
  UNSET_PCR,
} from "../../cluster/cluster_id.ts";

const D2 = "2b2b2b2b-0000-4000-8000-000000000002";
const D3 = "3c3c3c3c-0000-4000-8000-000000000003";

async function pcr15(spec: string): Promise<string> {
  const tpm = Tpm.open(spec);
  try {
    const v = await tpm.pcrRead([{ hash: TPM_ALG.SHA256, pcrs: [CLUSTER_ID_PCR] }]);
    return toHex(v.get(TPM_ALG.SHA256)!.get(CLUSTER_ID_PCR)!);
  } finally {
    await tpm.close();
  }
}

Deno.test("a control-plane node gets the KEK in its release, extends PCR 15 and its replica serves a third node the same key", async () => {
  setLogSink(() => {});
  const log = new Logger("test");
  const dir = await Deno.makeTempDir({ prefix: "confidant-replica-" });
  const kube = startKubeStandin();
  const sws = await Promise.all([1, 2, 3].map(() => startSwtpm({ ekCert: true })));
  const [, sw2, sw3] = sws;
  const running: InProcessKms[] = [];
  try {
    const secrets = kubeSecretsApi(kube.kubeConfig());
    const store = new KubeStore(secrets, KMS_NAMESPACE);
    const master = generateMasterSecret("replicated");
    const clusterId = await deriveClusterId(master);
    const kek = crypto.getRandomValues(new Uint8Array(32));
    await initKms(store, kek, "replicated", master);
    const policy = parseKmsPolicy(JSON.stringify({
      pcrs: { "0": { expected: [UNSET_PCR] } },
      ak: { ekCaCertificates: sws.map((s) => s.ekCaPem!) },
      roles: ["worker", "control-plane"],
      replicas: { releaseKek: true },
      clusterIdPcr: { required: true },
    }));
    const first = await startInProcessKms({
      store,
      kek: kek.slice(),
      policy,
      stateDir: join(dir, "node1", "kms"),
      listen: "127.0.0.1:0",
      names: [],
      log,
    });
    running.push(first);
    const adapter = (kms: InProcessKms, spec: string) =>
      kmsClientAdapter({
        kmsUrl: `https://127.0.0.1:${kms.port}`,
        fingerprint: kms.fingerprint,
        tpm: new TpmAccess(spec),
        tee: "none",
      });
    const never = new AbortController().signal;

    // Node 2 joins as control-plane through node 1's KMS.
    assert.equal(await pcr15(sw2.spec), UNSET_PCR);
    const r2 = await adapter(first, sw2.spec).requestRelease(
      { role: "control-plane", nodeName: "cp-2", diskUuid: D2 },
      never,
    );
    assert.equal(r2.clusterIdentity, clusterId);
    assert.ok(r2.replica, "a control-plane release under replicas.releaseKek carries the KEK");
    assert.equal(toHex(r2.replica.kek), toHex(kek));
    assert.equal(await pcr15(sw2.spec), await expectedClusterPcr(clusterId));
    // A direct quote of node 2 shows it to a verifier that expects this cluster in PCR 15.
    const nonce = crypto.getRandomValues(new Uint8Array(32));
    const userData = new TextEncoder().encode("cluster check");
    const tpm2 = Tpm.open(sw2.spec);
    const doc = await issueDocument(tpm2, { nonce, userData, pcrs: [CLUSTER_ID_PCR], ekAlg: "rsa" })
      .finally(() => tpm2.close());
    const pin = akPin(fromBase64((doc as { tpm: { akPublic: string } }).tpm.akPublic));
    const verify15 = (value: string) =>
      verifyDocument(
        doc,
        parsePolicy({ pcrs: { "15": { expected: [value] } }, ak: { pinned: [pin] } }),
        { nonce, userData },
      );
    assert.deepEqual((await verify15(await expectedClusterPcr(clusterId))).failures, []);
    assert.deepEqual((await verify15(UNSET_PCR)).failures.map((f) => f.check), ["pcr.15"]);

    // Its grant on the state disk, then its replica on the shared state.
    const mp = join(dir, "node2");
    await storeReplicaGrant(mp, r2.replica);
    const kekStat = await Deno.stat(join(mp, "kms", "kek"));
    assert.equal(kekStat.mode! & 0o777, 0o600);
    assert.equal((await Deno.readTextFile(join(mp, "kms", "kek"))).trim(), toHex(kek));
    assert.deepEqual((await loadReplicaGrant(mp))!.policy, policy);
    const { config } = loadAgentConfig(
      [
        "role: control-plane",
        "kms: { url: https://127.0.0.1:1, fingerprint: " + first.fingerprint + " }",
        "disk: { device: /dev/vdb, mountPoint: " + mp + " }",
        "kmsServer: { listen: 127.0.0.1:0 }",
        "",
      ].join("\n"),
    );
    const replica = await kmsReplicaStarter({
      config,
      log,
      secrets: () => Promise.resolve(secrets),
    })();
    assert.notEqual(replica, "none");
    if (replica === "none") return;
    running.push(replica);
    assert.equal(replica.clusterId, "replicated");

    // Node 3 (worker) through the replica, and again (its agent restarted) through node 1.
    const viaReplica = await adapter(replica, sw3.spec).requestRelease(
      { role: "worker", nodeName: "w-3", diskUuid: D3 },
      never,
    );
    assert.equal(viaReplica.replica, undefined, "a worker release never carries the KEK");
    assert.equal(viaReplica.clusterIdentity, clusterId);
    const expected = await expectedClusterPcr(clusterId);
    assert.equal(await pcr15(sw3.spec), expected);
    const viaFirst = await adapter(first, sw3.spec).requestRelease(
      { role: "worker", nodeName: "w-3", diskUuid: D3 },
      never,
    );
    assert.equal(toHex(viaFirst.diskKey), toHex(viaReplica.diskKey));
    assert.equal(await pcr15(sw3.spec), expected, "a re-release does not extend again");

    // A quote without PCR 15 is refused under clusterIdPcr.required.
    const tpm3 = Tpm.open(sw3.spec);
    try {
      await assert.rejects(
        requestRelease({
          kmsUrl: `https://127.0.0.1:${replica.port}`,
          fingerprint: replica.fingerprint,
          tpm: tpm3,
          request: { role: "worker", nodeName: "w-3", disk: { uuid: D3 } },
        }),
        (e: unknown) => {
          assert.ok(e instanceof KmsRefusedError, String(e));
          assert.deepEqual(e.checks, ["cluster_pcr.not_quoted"]);
          return true;
        },
      );
      // Another value in PCR 15: the KMS refuses, and the agent would stop by name.
      await tpm3.pcrExtend(CLUSTER_ID_PCR, [{
        hashAlg: TPM_ALG.SHA256,
        digest: new Uint8Array(32).fill(1),
      }]);
      await assert.rejects(
        extendClusterIdPcr(tpm3, clusterId),
        (e: unknown) => e instanceof ConfidantError && e.code === "agent.cluster_pcr",
      );
    } finally {
      await tpm3.close();
    }
    await assert.rejects(
      adapter(first, sw3.spec).requestRelease(
        { role: "worker", nodeName: "w-3", diskUuid: D3 },
        never,
      ),
      (e: unknown) => {
        assert.ok(e instanceof AgentRefused, String(e));
        assert.deepEqual(e.checks, ["cluster_pcr.other_cluster"]);
        return true;
      },
    );
  } finally {
    for (const k of running) await k.stop();
    for (const s of sws) await s.stop();
    await kube.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
