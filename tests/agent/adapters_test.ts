/**
 * The agent's TEE choice (config `attestation.tee`) reaches both places evidence leaves the
 * node: `/v1/attestation` (tpmAttestor) and the release request (kmsClientAdapter). TPM: a
 * real swtpm with an EK certificate; TEE: the fake configfs-tsm of the attestation tests
 * (tests/attestation/_fake_tsm.ts) standing in for an SEV-SNP guest's kernel.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startSwtpm } from "../_support/swtpm.ts";
import { fakeTsm } from "../attestation/_fake_tsm.ts";
import { makeFakeSnpPlatform } from "../attestation/_tee_fixtures.ts";
import { kmsClientAdapter, TpmAccess, tpmAttestor } from "../../agent/adapters.ts";
import { createAgentApp } from "../../agent/http.ts";
import { StateStore } from "../../agent/state.ts";
import { KmsRefusedError } from "../../agent/ports.ts";
import type { KmsTransport } from "../../kms/client.ts";
import { BEGIN_PATH } from "../../kms/protocol.ts";
import { ConfidantError } from "../../lib/errors.ts";
import { fromBase64, sha256, toHex } from "../../lib/bytes.ts";
import { testLogger } from "./_fakes.ts";

Deno.test("the agent's TEE choice reaches /v1/attestation and the KMS begin request", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "agent-tee-" });
  const sw = await startSwtpm({ ekCert: true });
  const tpm = new TpmAccess(sw.spec);
  try {
    const tsmRoot = join(dir, "tsm");
    await Deno.mkdir(tsmRoot);
    const kernel = fakeTsm({ kind: "sev_guest", platform: await makeFakeSnpPlatform() });
    const snpGuest = { tsmRoot, tsmFs: kernel.fs };
    const noTsm = { tsmRoot: join(dir, "no-such-dir") };
    const nonce = crypto.getRandomValues(new Uint8Array(32));
    const variant = async (a: ReturnType<typeof tpmAttestor>) =>
      ((await a.document(nonce)) as { variant: string }).variant;

    await t.step("tpmAttestor: auto (the default) on an SEV-SNP guest is sev-snp", async () => {
      assert.equal(await variant(tpmAttestor(tpm, { teeOptions: snpGuest })), "sev-snp");
      assert.equal(kernel.inblobs.length, 1, "one report requested from the kernel");
    });
    await t.step("tpmAttestor: auto without configfs-tsm is tpm; none is tpm", async () => {
      assert.equal(await variant(tpmAttestor(tpm, { tee: "auto", teeOptions: noTsm })), "tpm");
      assert.equal(await variant(tpmAttestor(tpm, { tee: "none", teeOptions: snpGuest })), "tpm");
    });
    await t.step(
      "tpmAttestor: sev-snp required but absent is an error, not a tpm document",
      async () => {
        await assert.rejects(
          tpmAttestor(tpm, { tee: "sev-snp", teeOptions: noTsm }).document(nonce),
          ConfidantError,
        );
      },
    );
    await t.step("GET /v1/attestation serves the configured variant", async () => {
      const app = createAgentApp({
        state: new StateStore(),
        attestor: tpmAttestor(tpm, { tee: "auto", teeOptions: snpGuest }),
        log: testLogger(),
      });
      const res = await app.request(`/v1/attestation?nonce=${"ab".repeat(32)}`);
      assert.equal(res.status, 200);
      assert.equal((await res.json()).variant, "sev-snp");
    });

    /** A KMS stand-in that records `begin` and refuses it. */
    const recording = () => {
      const begins: { variant?: string }[] = [];
      const transport: KmsTransport = {
        post(path, body) {
          begins.push(body as { variant?: string });
          assert.equal(path, BEGIN_PATH);
          return Promise.resolve({ status: 403, body: { error: "refused", checks: ["test"] } });
        },
      };
      return { begins, transport };
    };
    const ask = async (tee: Parameters<typeof kmsClientAdapter>[0]["tee"], teeOptions: object) => {
      const r = recording();
      const client = kmsClientAdapter({
        kmsUrl: "https://127.0.0.1:1",
        fingerprint: "ab".repeat(32),
        tpm,
        ...(tee ? { tee } : {}),
        teeOptions,
        extra: { transport: r.transport },
      });
      await assert.rejects(
        client.requestRelease(
          { role: "worker", nodeName: "n", diskUuid: crypto.randomUUID() },
          new AbortController().signal,
        ),
        KmsRefusedError,
      );
      return r.begins.map((b) => b.variant);
    };
    await t.step("kmsClientAdapter announces the same variant at begin", async () => {
      assert.deepEqual(await ask(undefined, snpGuest), ["sev-snp"], "default auto");
      assert.deepEqual(await ask("auto", noTsm), ["tpm"]);
      assert.deepEqual(await ask("none", snpGuest), ["tpm"]);
    });
  } finally {
    await tpm.with(() => Promise.resolve());
    await sw.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("kmsClientAdapter().identity() names the AK and EK certificate the begin request sends", async () => {
  const sw = await startSwtpm({ ekCert: true });
  const tpm = new TpmAccess(sw.spec);
  try {
    let begin: { ekCertificate: string; akPublic: string } | undefined;
    const client = kmsClientAdapter({
      kmsUrl: "https://127.0.0.1:1",
      fingerprint: "ab".repeat(32),
      tpm,
      tee: "none",
      extra: {
        transport: {
          post(_path, body) {
            begin = body as typeof begin;
            return Promise.resolve({ status: 403, body: { error: "refused", checks: ["test"] } });
          },
        },
      },
    });
    const id = await client.identity!(new AbortController().signal);
    await assert.rejects(
      client.requestRelease(
        { role: "worker", nodeName: "n", diskUuid: crypto.randomUUID() },
        new AbortController().signal,
      ),
      KmsRefusedError,
    );
    assert.ok(begin);
    const ekDer = fromBase64(begin.ekCertificate);
    assert.equal(id.ekCertificateSha256, toHex(await sha256(ekDer)));
    // TPM name of an SHA-256 key: TPM_ALG_SHA256 (000b) || SHA-256(TPMT_PUBLIC)
    const akTpmt = fromBase64(begin.akPublic).subarray(2);
    assert.equal(id.akName, "000b" + toHex(await sha256(akTpmt)));
    assert.match(id.ekIssuer, /CN=/);
  } finally {
    await sw.stop();
  }
});
