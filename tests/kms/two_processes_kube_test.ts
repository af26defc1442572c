/**
 * Two `confidant kms serve --kubernetes` SUBPROCESSES on one state: the in-test Kubernetes
 * stand-in (tests/kms/_kube_standin.ts) on a free port with a kubeconfig file pointing at it,
 * one shared TLS certificate, and real swtpm nodes. A session begun on one process finishes on
 * the other, both release the same key, and another identity is refused by either.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { toBase64, toHex } from "../../lib/bytes.ts";
import { Tpm } from "../../attestation/tpm/client.ts";
import { startSwtpm } from "../_support/swtpm.ts";
import { startKubeStandin } from "./_kube_standin.ts";
import { kubeSecretsApi } from "../../kms/kube.ts";
import { KubeStore } from "../../kms/k8s_store.ts";
import { initKms } from "../../kms/server.ts";
import { loadOrCreateTlsIdentity } from "../../kms/tls.ts";
import {
  KmsRefusedError,
  type KmsTransport,
  pinnedHttpsTransport,
  requestRelease,
} from "../../kms/client.ts";
import type { ReleaseRequest } from "../../kms/protocol.ts";
import { type ServedKms, serveKmsProcess } from "./_served_kms.ts";

const NS = "confidant-system";
const DISK = "3c1d2e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f";
const REQ: ReleaseRequest = { role: "worker", disk: { uuid: DISK }, nodeName: "node-1" };

Deno.test("two kms serve processes on one Kubernetes state serve the same node consistently", async () => {
  const dir = await Deno.makeTempDir({ prefix: "confidant-kms-two-" });
  const apiKek = crypto.getRandomValues(new Uint8Array(32));
  const apiTls = await loadOrCreateTlsIdentity(dir, apiKek, ["127.0.0.1"]);
  await Deno.remove(join(dir, "tls.json"));
  const kube = startKubeStandin(apiTls); // HTTPS, its certificate named in the kubeconfig
  const swA = await startSwtpm({ ekCert: true });
  const swB = await startSwtpm({ ekCert: true });
  const procs: ServedKms[] = [];
  try {
    // The state: master secret in the stand-in, KEK in a file, one certificate for both.
    const kek = crypto.getRandomValues(new Uint8Array(32));
    const kekFile = join(dir, "kek");
    await Deno.writeTextFile(kekFile, toBase64(kek) + "\n", { mode: 0o600 });
    await initKms(new KubeStore(kubeSecretsApi(kube.kubeConfig()), NS), kek, "two");
    const kubeconfig = join(dir, "kubeconfig.yaml");
    await Deno.writeTextFile(
      kubeconfig,
      [
        "apiVersion: v1",
        "kind: Config",
        "clusters:",
        `- name: standin\n  cluster:\n    server: ${kube.url}`,
        `    certificate-authority-data: ${toBase64(new TextEncoder().encode(apiTls.certPem))}`,
        "users:",
        "- name: kms\n  user:\n    token: standin-token",
        "contexts:",
        "- name: standin\n  context:\n    cluster: standin\n    user: kms",
        "current-context: standin",
        "",
      ].join("\n"),
    );
    const tlsId = await loadOrCreateTlsIdentity(dir, kek, ["127.0.0.1"]);
    await Deno.writeTextFile(join(dir, "cert.pem"), tlsId.certPem);
    await Deno.writeTextFile(join(dir, "key.pem"), tlsId.keyPem, { mode: 0o600 });
    const tpmA = Tpm.open(swA.spec);
    const tpmB = Tpm.open(swB.spec);
    const pcr = (await tpmA.pcrRead([{ hash: 0x000b, pcrs: [0] }])).get(0x000b)!.get(0)!;
    await Deno.writeTextFile(
      join(dir, "policy.json"),
      JSON.stringify({
        pcrs: { "0": { expected: [toHex(pcr)] } },
        ak: { ekCaCertificates: [swA.ekCaPem!, swB.ekCaPem!] },
      }),
    );
    for (const name of ["a", "b"]) {
      procs.push(
        await serveKmsProcess([
          "--kubernetes",
          "--kubeconfig",
          kubeconfig,
          "--namespace",
          NS,
          "--kek-file",
          kekFile,
          "--policy",
          join(dir, "policy.json"),
          "--tls-cert",
          join(dir, "cert.pem"),
          "--tls-key",
          join(dir, "key.pem"),
          "--audit-log",
          join(dir, `audit-${name}.jsonl`),
        ]),
      );
    }
    const [a, b] = procs;
    const fp = tlsId.fingerprint;
    const to = (s: ServedKms) => pinnedHttpsTransport(s.url, fp);
    const split = (begin: ServedKms, finish: ServedKms): KmsTransport => ({
      post: (path, body) => (path.endsWith("/begin") ? to(begin) : to(finish)).post(path, body),
    });
    const run = (tpm: Tpm, transport: KmsTransport) =>
      requestRelease({ kmsUrl: a.url, fingerprint: fp, tpm, request: REQ, pcrs: [0], transport });

    const first = await run(tpmA, split(a, b)); // begun on A, finished on B
    assert.equal(first.release.enrolled, true);
    const secret = kube.secrets.get(`${NS}/confidant-disk-${DISK}`);
    assert.ok(secret, "the enrolment is a Secret in the shared state");
    const second = await run(tpmA, split(b, a)); // and the other way round
    assert.equal(second.release.enrolled, false);
    assert.equal(toHex(second.diskKey), toHex(first.diskKey));
    assert.equal(second.release.identity, first.release.identity);
    const onA = await run(tpmA, split(a, a));
    assert.equal(toHex(onA.diskKey), toHex(first.diskKey));

    for (const [begin, finish] of [[a, b], [b, a]]) {
      await assert.rejects(run(tpmB, split(begin, finish)), (e: unknown) => {
        assert.ok(e instanceof KmsRefusedError, String(e));
        assert.deepEqual(e.checks, ["disk.identity_mismatch"]);
        return true;
      });
    }
    for (const p of procs) assert.ok(p.alive(), "both processes still serve");
  } finally {
    for (const p of procs) await p.stop();
    await swA.stop();
    await swB.stop();
    await kube.stop();
    await Deno.remove(dir, { recursive: true });
  }
  for (const p of procs) {
    assert.ok(!/\n\s+at /.test(p.stderr()), `no stack trace in stderr: ${p.stderr()}`);
  }
});
