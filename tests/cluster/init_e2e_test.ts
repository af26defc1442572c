/**
 * `confidant init` / `recover` / `cluster verify` end to end on this host:
 * - TPM: a real swtpm with an EK certificate from its local CA (power-cycled with swtpm_ioctl
 *   for the "reboot" before recover, which resets PCR 15);
 * - node: the agent's NodeBootstrap served by createAgentApp on a real HTTP port, with
 *   cryptsetup's IN-MEMORY StateDisk (no device-mapper here), the in-test FakeMounter/FakeKube
 *   (Cilium ConfigMap) and the Kubernetes API STAND-IN of tests/kms/_kube_standin.ts for the
 *   master-secret Secret;
 * - kubeadm: a STAND-IN shell script that records its argv and --config file and writes an
 *   admin.conf (the stand-in API server's kubeconfig);
 * - operator: cluster/operator.ts over a real HTTP transport;
 * - KMS: the node's in-process KMS (agent/kms_host.ts, state in the API stand-in's Secrets)
 *   asked by a second swtpm "joining node" with kms/client.ts requestRelease.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { startSwtpm } from "../_support/swtpm.ts";
import { startKubeStandin } from "../kms/_kube_standin.ts";
import { Tpm } from "../../attestation/tpm/client.ts";
import { TPM_ALG } from "../../attestation/tpm/constants.ts";
import { parsePolicy } from "../../attestation/policy.ts";
import { fromBase64, toBase64, toHex } from "../../lib/bytes.ts";
import { verifyEkCertificate } from "../../attestation/ek_certificate.ts";
import { makeCredential } from "../../attestation/tpm/credential/mod.ts";
import { computeName, unmarshalTpm2bPublic } from "../../attestation/tpm/mod.ts";
import { activationProof } from "../../cluster/protocol.ts";
import { setLogSink } from "../../lib/log.ts";
import { createMemoryStateDisk } from "../../cryptsetup/state_disk.ts";
import { generateMasterSecret, KeyDeriver } from "../../kms/keys.ts";
import { KmsRefusedError, requestRelease } from "../../kms/client.ts";
import { KubeStore } from "../../kms/k8s_store.ts";
import { kubeSecretsApi, loadKubeConfig } from "../../kms/kube.ts";
import { loadAgentConfig } from "../../agent/config.ts";
import { StateStore } from "../../agent/state.ts";
import { HostCommandRunner, HostFiles } from "../../agent/host.ts";
import { StateDiskAdapter, TpmAccess } from "../../agent/adapters.ts";
import { KMS_NAMESPACE, NodeBootstrap } from "../../agent/bootstrap.ts";
import { type InProcessKms, inProcessKmsStarter } from "../../agent/kms_host.ts";
import { createAgentApp } from "../../agent/http.ts";
import type { CommandRunner } from "../../agent/ports.ts";
import { initNode, NodeRefusedError, verifyCluster } from "../../cluster/operator.ts";
import { nodeTransport } from "../../cluster/node_transport.ts";
import { expectedClusterPcr } from "../../cluster/cluster_id.ts";
import { openRecovery, sealRecovery } from "../../cluster/recovery.ts";
import { FakeKube, FakeMounter, testLogger } from "../agent/_fakes.ts";

const K8S = { kubernetesVersion: "v1.33.1", podSubnet: "10.244.0.0/16" };

async function sh(cmd: string, env: Record<string, string> = {}): Promise<void> {
  const o = await new Deno.Command("sh", { args: ["-c", cmd], env, stderr: "piped" }).output();
  if (!o.success) throw new Error(`${cmd}: ${new TextDecoder().decode(o.stderr)}`);
}

async function readPcr(spec: string, index: number): Promise<string> {
  const tpm = Tpm.open(spec);
  try {
    return toHex(
      (await tpm.pcrRead([{ hash: TPM_ALG.SHA256, pcrs: [index] }])).get(TPM_ALG.SHA256)!
        .get(index)!,
    );
  } finally {
    await tpm.close();
  }
}

Deno.test("confidant init/recover/verify end to end: swtpm, stand-in kubeadm, API stand-in", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "cluster-e2e-" });
  const run = await Deno.makeTempDir({ dir: "/dev/shm", prefix: "cluster-e2e-run-" });
  const sw = await startSwtpm({ ekCert: true });
  // a second machine that joins through the first node's in-process KMS
  const joiner = await startSwtpm({ ekCert: true });
  const kmsServers: InProcessKms[] = [];
  const kube = startKubeStandin();
  setLogSink(() => {});
  const servers: Deno.HttpServer[] = [];
  try {
    const kubeconfigText = kube.kubeConfig().exportConfig();
    const admin = join(dir, "etc-kubernetes", "admin.conf");
    const kubeadm = join(dir, "kubeadm");
    await Deno.writeTextFile(join(dir, "admin.template"), kubeconfigText);
    await Deno.writeTextFile(
      kubeadm,
      `#!/bin/sh
# STAND-IN for kubeadm (test only): records argv and the config, writes admin.conf.
echo "$@" >> "${dir}/kubeadm.argv"
if [ "$1" = init ]; then
  stat -c %a "$3" > "${dir}/kubeadm.mode"; cp "$3" "${dir}/kubeadm.config"
  mkdir -p "$(dirname "${admin}")"; cp "${dir}/admin.template" "${admin}"
  echo "Your Kubernetes control-plane has initialized successfully!"
fi
exit 0
`,
    );
    await Deno.chmod(kubeadm, 0o755);
    const { config } = loadAgentConfig(`tpm: { device: ${sw.spec} }
disk: { device: /dev/memory-disk, cluster: e2e, mountPoint: ${dir}/state }
role: init
nodeName: { source: config, name: cp-0 }
kubeadm: { runtimeDir: ${run}, nodeIp: 10.0.0.5 }
cilium: { adminKubeconfig: ${admin}, strictModeCidr: 10.244.0.0/16 }
kmsServer: { listen: "127.0.0.1:0" }
`);
    const host = new HostCommandRunner();
    const runner: CommandRunner = {
      run: (argv, o) => host.run(argv[0] === "kubeadm" ? [kubeadm, ...argv.slice(1)] : argv, o),
    };
    const disk = createMemoryStateDisk(32 * 1024 * 1024);
    const fakeKube = new FakeKube();
    const paths: string[] = [];
    const stateDisk = () =>
      new StateDiskAdapter({
        disk,
        cluster: "e2e",
        integrity: false,
        mapperExists: () => Promise.resolve(false),
      });
    /** A fresh node process: new bootstrap, new endpoint (memory state gone). */
    const startNode = () => {
      const bootstrap = new NodeBootstrap({
        config,
        nodeName: "cp-0",
        tpm: new TpmAccess(sw.spec),
        disk: stateDisk,
        mounter: new FakeMounter(),
        runner,
        files: new HostFiles(),
        readText: (p) => Deno.readTextFile(p),
        kube: () => Promise.resolve(fakeKube),
        secrets: (p) => Promise.resolve(kubeSecretsApi(loadKubeConfig({ kubeconfig: p }))),
        startKms: inProcessKmsStarter({
          config,
          log: testLogger(),
          onStarted: (k) => kmsServers.push(k),
        }),
        logger: testLogger(),
      });
      const app = createAgentApp({ state: new StateStore(), bootstrap });
      const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
        paths.push(new URL(req.url).pathname);
        return app.fetch(req);
      });
      servers.push(server);
      return { bootstrap, url: `http://127.0.0.1:${server.addr.port}` };
    };
    const pcr0 = await readPcr(sw.spec, 0);
    const policyWith = (pcr: string) =>
      parsePolicy({
        pcrs: { "0": { expected: [pcr] } },
        ak: { ekCaCertificates: [sw.ekCaPem!, joiner.ekCaPem!] },
      });
    let node = startNode();
    const master = generateMasterSecret("e2e");
    const keep = { ...master, secret: master.secret.slice(), salt: master.salt.slice() };
    let clusterId = "";
    let kmsPin = "";
    let initDiskUuid = "";

    await t.step(
      "init is refused for a node with the wrong PCRs; the node receives nothing",
      async () => {
        const out = await initNode({
          transport: nodeTransport(node.url),
          policy: policyWith("11".repeat(32)),
          purpose: "init",
          master,
          kubernetes: {
            ...K8S,
            serviceSubnet: "10.96.0.0/12",
            dnsDomain: "cluster.local",
            certSANs: [],
          },
        });
        assert.equal(out.result, undefined);
        assert.deepEqual(out.attestation.failures.map((f) => f.check), ["pcr.0"]);
        assert.ok(!paths.includes("/v1/init/finish"), "no finish request was sent");
        assert.equal(node.bootstrap.cluster, undefined);
        assert.equal((await disk.status()).luks, "none");
        assert.equal(
          await Deno.stat(join(dir, "kubeadm.argv")).then(() => true, () => false),
          false,
        );
      },
    );

    await t.step(
      "init succeeds with the right PCRs: disk, kubeadm v1beta4, Secret, PCR 15",
      async () => {
        const out = await initNode({
          transport: nodeTransport(node.url),
          policy: policyWith(pcr0),
          purpose: "init",
          master,
          kubernetes: {
            ...K8S,
            serviceSubnet: "10.96.0.0/12",
            dnsDomain: "cluster.local",
            certSANs: ["api.e2e.example"],
          },
        });
        assert.deepEqual(out.attestation.failures, []);
        assert.equal(out.attestation.akTrust, "ek-ca+activation");
        const r = out.result!;
        clusterId = out.clusterId;
        assert.match(clusterId, /^[0-9a-f]{64}$/);
        assert.equal(r.disk, "formatted");
        assert.equal(r.kubeadm, "ran");
        assert.equal(r.masterStored, true);
        assert.equal(r.adminKubeconfig, kubeconfigText);
        assert.equal((await disk.status({ cluster: "e2e", integrity: false })).luks, "luks2");
        const argv = (await Deno.readTextFile(join(dir, "kubeadm.argv"))).trim().split("\n");
        assert.equal(argv.length, 1);
        assert.match(
          argv[0],
          new RegExp(`^init --config ${run}/kubeadm-init-[0-9a-f]{12}\\.yaml --upload-certs$`),
        );
        assert.equal((await Deno.readTextFile(join(dir, "kubeadm.mode"))).trim(), "600");
        const [cc, ic] = parseAllDocuments(await Deno.readTextFile(join(dir, "kubeadm.config")))
          .map((d) => d.toJS());
        assert.equal(cc.apiVersion, "kubeadm.k8s.io/v1beta4");
        assert.equal(cc.kind, "ClusterConfiguration");
        assert.equal(cc.clusterName, "e2e");
        assert.equal(cc.kubernetesVersion, "v1.33.1");
        assert.equal(cc.controlPlaneEndpoint, "10.0.0.5:6443");
        assert.deepEqual(cc.networking, {
          podSubnet: "10.244.0.0/16",
          serviceSubnet: "10.96.0.0/12",
          dnsDomain: "cluster.local",
        });
        assert.deepEqual(cc.apiServer.certSANs, ["10.0.0.5", "api.e2e.example"]);
        assert.equal(ic.apiVersion, "kubeadm.k8s.io/v1beta4");
        assert.equal(ic.kind, "InitConfiguration");
        assert.equal(ic.nodeRegistration.name, "cp-0");
        assert.deepEqual(ic.nodeRegistration.kubeletExtraArgs, [{
          name: "node-ip",
          value: "10.0.0.5",
        }]);
        assert.deepEqual(ic.localAPIEndpoint, { advertiseAddress: "10.0.0.5", bindPort: 6443 });
        assert.match(ic.certificateKey, /^[0-9a-f]{64}$/);
        // our own short-lived bootstrap token, not kubeadm's 24 h default
        assert.equal(ic.bootstrapTokens.length, 1);
        assert.match(ic.bootstrapTokens[0].token, /^[a-z0-9]{6}\.[a-z0-9]{16}$/);
        assert.equal(ic.bootstrapTokens[0].ttl, "15m0s");
        initDiskUuid = (await stateDisk().inspect()).uuid!;
        assert.match(initDiskUuid, /^[0-9a-f-]{36}$/);
        assert.deepEqual([...Deno.readDirSync(run)], [], "config removed from the tmpfs");
        assert.ok(kube.secrets.has("confidant-system/confidant-kms-master"));
        assert.ok(kube.secrets.has("kube-system/confidant-certificate-key"));
        assert.equal(
          fakeKube.configMaps.get("kube-system/cilium-config")?.["enable-wireguard"],
          "true",
        );
        assert.equal(await readPcr(sw.spec, 15), await expectedClusterPcr(clusterId));
        // the in-process KMS: started once, its fingerprint and URL reported to the operator
        assert.equal(kmsServers.length, 1);
        assert.deepEqual(r.kms, {
          url: `https://10.0.0.5:${kmsServers[0].port}`,
          fingerprint: kmsServers[0].fingerprint,
        });
        kmsPin = r.kms!.fingerprint;
      },
    );

    await t.step(
      "the node's in-process KMS admits a joining node with the right PCRs, refuses wrong PCRs",
      async () => {
        const kmsUrl = `https://127.0.0.1:${kmsServers[0].port}`;
        const tpm = Tpm.open(joiner.spec);
        const ask = (role: "worker" | "control-plane", uuid: string) =>
          requestRelease({
            kmsUrl,
            fingerprint: kmsPin,
            tpm,
            request: { role, disk: { uuid }, nodeName: "worker-1" },
          });
        try {
          const uuid = crypto.randomUUID();
          const got = await ask("worker", uuid);
          assert.equal(got.release.kms.clusterId, "e2e");
          assert.equal(got.release.disk.uuid, uuid);
          // the key is the cluster's derivation from the master secret the operator made
          const want = await (await KeyDeriver.create({
            ...keep,
            secret: keep.secret.slice(),
            salt: keep.salt.slice(),
          })).diskKey(uuid);
          assert.equal(toHex(got.diskKey), toHex(want));
          // the enrollment is in the cluster's Secrets, where every KMS replica sees it
          const store = new KubeStore(
            kubeSecretsApi(loadKubeConfig({ kubeconfig: admin })),
            KMS_NAMESPACE,
          );
          assert.equal((await store.getDisk(uuid))?.nodeName, "worker-1");
          // default policy: workers only
          await assert.rejects(
            ask("control-plane", crypto.randomUUID()),
            (e) => e instanceof KmsRefusedError && e.status === 403,
          );
          // the first node's own disk is enrolled to it: an admitted node cannot have its key
          const own = (await store.listDisks()).filter((d) => d.nodeName === "cp-0");
          assert.equal(own.length, 1);
          assert.equal(own[0].role, "control-plane");
          assert.equal(own[0].uuid, initDiskUuid);
          await assert.rejects(
            ask("worker", initDiskUuid),
            (e) => e instanceof KmsRefusedError && e.checks.includes("disk.identity_mismatch"),
          );
          // another boot chain: PCR 0 differs
          await tpm.pcrExtend(0, [{ hashAlg: TPM_ALG.SHA256, digest: new Uint8Array(32) }]);
          await assert.rejects(
            ask("worker", crypto.randomUUID()),
            (e) => e instanceof KmsRefusedError && e.checks.includes("pcr.0"),
          );
        } finally {
          await tpm.close();
        }
      },
    );

    await t.step("a second init to the initialised node is refused", async () => {
      const finishes = paths.filter((p) => p === "/v1/init/finish").length;
      await assert.rejects(
        initNode({
          transport: nodeTransport(node.url),
          policy: policyWith(pcr0),
          purpose: "init",
          master: generateMasterSecret("e2e"),
          kubernetes: {
            ...K8S,
            serviceSubnet: "10.96.0.0/12",
            dnsDomain: "cluster.local",
            certSANs: [],
          },
        }),
        (e) =>
          e instanceof NodeRefusedError && e.status === 409 && e.error === "already_initialised",
      );
      assert.equal(paths.filter((p) => p === "/v1/init/finish").length, finishes);
    });

    await t.step(
      "the init endpoint never returns an activated secret, only a MAC bound to the exchange",
      async () => {
        const post = async (path: string, body: unknown) => {
          const r = await fetch(`${node.url}${path}`, {
            method: "POST",
            body: JSON.stringify(body),
          });
          return await r.json();
        };
        const begun = await post("/v1/init/begin", { purpose: "verify" });
        const ekCert = await verifyEkCertificate(fromBase64(begun.ekCertificate), {
          caCertificates: [sw.ekCaPem!],
          now: new Date(),
        });
        const akName = await computeName(
          unmarshalTpm2bPublic(fromBase64(begun.akPublic)).tpmtBytes,
        );
        // A credential someone else made for this node (as the KMS does), secret known here.
        const secret = crypto.getRandomValues(new Uint8Array(32));
        const c = makeCredential(ekCert.ekPublic, akName, secret);
        const nonce = crypto.getRandomValues(new Uint8Array(32));
        const att = await post("/v1/init/attest", {
          session: begun.session,
          nonce: toBase64(nonce),
          credential: {
            credentialBlob: toBase64(c.credentialBlob),
            encryptedSecret: toBase64(c.encryptedSecret),
          },
        });
        assert.equal(att.activatedSecret, undefined);
        assert.ok(!JSON.stringify(att).includes(toBase64(secret)), "the raw secret came back");
        assert.equal(
          att.activationProof,
          toBase64(activationProof(secret, {
            purpose: "verify",
            session: begun.session,
            nonce,
            nodeKey: fromBase64(att.ephemeralPublicKey),
            akName,
          })),
        );
      },
    );

    await t.step("cluster verify reports the cluster ID the init produced", async () => {
      const rep = await verifyCluster(nodeTransport(node.url), policyWith(pcr0));
      assert.deepEqual(rep.failures, []);
      assert.equal(rep.ok, true);
      assert.equal(rep.clusterId, clusterId);
      assert.equal(rep.clusterName, "e2e");
      // the name is attested too: a node (or a path) that renames the cluster is caught
      const real = nodeTransport(node.url);
      const renaming = {
        async post(path: string, body: unknown) {
          const r = await real.post(path, body);
          const b = r.body as { cluster?: { name: string } };
          if (path === "/v1/init/attest" && b.cluster) b.cluster.name = "prod";
          return r;
        },
      };
      const lied = await verifyCluster(renaming, policyWith(pcr0));
      assert.equal(lied.ok, false);
      assert.equal(lied.clusterName, undefined);
      assert.ok(lied.failures.some((f) => f.check === "document.user_data"));
    });

    await t.step(
      "recover works after a reboot wiped the node's memory (PCR 15 reset, disk closed)",
      async () => {
        const passphrase = new TextEncoder().encode("correct horse battery staple");
        const file = await sealRecovery(keep, clusterId, passphrase);
        await servers.pop()!.shutdown();
        await kmsServers[0].stop();
        await disk.backend.deactivate("state");
        await sh(`swtpm_ioctl --tcp 127.0.0.1:${sw.port + 1} -i && tpm2_startup -c`, sw.env);
        assert.equal(await readPcr(sw.spec, 15), "0".repeat(64));
        node = startNode();
        // the node never attested for this cluster: verify finds no claim
        const before = await verifyCluster(nodeTransport(node.url), policyWith(pcr0));
        assert.deepEqual(before.failures.map((f) => f.check), ["cluster.claim"]);
        const opened = await openRecovery(file, passphrase);
        const out = await initNode({
          transport: nodeTransport(node.url),
          policy: policyWith(pcr0),
          purpose: "recover",
          master: opened.master,
        });
        assert.deepEqual(out.attestation.failures, []);
        assert.equal(out.clusterId, clusterId);
        assert.equal(out.result!.disk, "opened");
        assert.equal(out.result!.kubeadm, "skipped");
        assert.equal(out.result!.masterStored, false);
        // the first node's disk enrolment is kept as it was
        const store = new KubeStore(
          kubeSecretsApi(loadKubeConfig({ kubeconfig: admin })),
          KMS_NAMESPACE,
        );
        const own = (await store.listDisks()).filter((d) => d.nodeName === "cp-0");
        assert.deepEqual(own.map((d) => d.uuid), [initDiskUuid]);
        const after = await verifyCluster(nodeTransport(node.url), policyWith(pcr0));
        assert.equal(after.clusterId, clusterId);
        const argv = (await Deno.readTextFile(join(dir, "kubeadm.argv"))).trim().split("\n");
        assert.equal(argv.length, 1, "kubeadm init ran once in all");
        // the KMS is back with the same TLS identity (kept on the state disk): pins still hold
        assert.equal(kmsServers.length, 2);
        assert.equal(out.result!.kms?.fingerprint, kmsPin);
      },
    );
  } finally {
    setLogSink(() => {});
    for (const k of kmsServers) await k.stop();
    for (const s of servers) await s.shutdown();
    await kube.stop();
    await sw.stop();
    await joiner.stop();
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(run, { recursive: true });
  }
});
