/**
 * The reviewer's quote-oracle attack, as a regression test: an attacker who can reach a node's
 * public `GET /v1/attestation?nonce=` asks for nonce = kmsNonce ‖ SHA-256(its own key),
 * re-splits the document's unsigned `nonce`/`userData` fields into (kmsNonce,
 * SHA-256(key)) and hands it to the KMS. The credential is activated with the node's TPM here,
 * standing in for any activation oracle. The KMS must refuse: the endpoint binds a fixed
 * userData and the qualifying data frames both fields' lengths.
 *
 * TPM: a real swtpm with an EK certificate from its local CA.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startSwtpm } from "../_support/swtpm.ts";
import { concat, fromBase64, sha256, toBase64, toHex } from "../../lib/bytes.ts";
import { Logger, setLogSink } from "../../lib/log.ts";
import { Tpm } from "../../attestation/tpm/client.ts";
import { TPM_ALG } from "../../attestation/tpm/constants.ts";
import { loadAttestationKeys } from "../../attestation/tpm/keys.ts";
import { parsePolicy } from "../../attestation/policy.ts";
import { verifyDocument } from "../../attestation/verify.ts";
import { AGENT_ENDPOINT_USER_DATA } from "../../attestation/qualifying_data.ts";
import { MemoryAuditLog } from "../../kms/audit.ts";
import { FileStore } from "../../kms/file_store.ts";
import { parseKmsPolicy, PolicyHolder } from "../../kms/policy.ts";
import { buildKms, initKms } from "../../kms/server.ts";
import { generateEphemeralKeyPair } from "../../kms/release.ts";
import { TpmAccess, tpmAttestor } from "../../agent/adapters.ts";

Deno.test("a /v1/attestation document re-split as (kmsNonce, SHA-256(key)) is refused by the KMS", async (t) => {
  setLogSink(() => {});
  const dir = await Deno.makeTempDir({ prefix: "endpoint-replay-" });
  const sw = await startSwtpm({ ekCert: true });
  const tpm = Tpm.open(sw.spec);
  const access = new TpmAccess(sw.spec);
  try {
    const pcr0 = toHex(
      (await tpm.pcrRead([{ hash: TPM_ALG.SHA256, pcrs: [0] }])).get(TPM_ALG.SHA256)!.get(0)!,
    );
    const kek = crypto.getRandomValues(new Uint8Array(32));
    const store = new FileStore(join(dir, "s"));
    await initKms(store, kek, "replay");
    const kmsPolicy = {
      pcrs: { "0": { expected: [pcr0] } },
      ak: { ekCaCertificates: [sw.ekCaPem] },
    };
    const kms = await buildKms({
      store,
      kek,
      policy: PolicyHolder.fixed(parseKmsPolicy(JSON.stringify(kmsPolicy))),
      tlsFingerprint: "ab".repeat(32),
      audit: new MemoryAuditLog(),
      log: new Logger("kms"),
    });
    const env = { remoteAddr: { hostname: "203.0.113.7" } };
    const post = async (p: string, b: unknown) => {
      const r = await kms.app.request(p, { method: "POST", body: JSON.stringify(b) }, env);
      return { status: r.status, body: await r.json() };
    };
    const attestor = tpmAttestor(access, { tee: "none" });

    await t.step("the endpoint's documents bind the fixed endpoint userData", async () => {
      const nonce = crypto.getRandomValues(new Uint8Array(16));
      const doc = await attestor.document(nonce) as { userData: string };
      assert.equal(toHex(fromBase64(doc.userData)), toHex(AGENT_ENDPOINT_USER_DATA));
      const r = await verifyDocument(doc, parsePolicy({ pcrs: { "0": { expected: [pcr0] } } }), {
        nonce,
        userData: AGENT_ENDPOINT_USER_DATA,
      });
      // the policy trusts no AK (not this test's point): the binding checks all pass
      assert.deepEqual(r.failures.map((f) => f.check), ["ak.trust"]);
    });

    await t.step("the re-split document gets no release", async () => {
      const probe = await attestor.document(new Uint8Array(8)) as { tpm: { akPublic: string } };
      const keys = await loadAttestationKeys(tpm, { ek: "rsa", ak: "ecc" });
      const ekCert = await tpm.nvRead(keys.ekCertIndex);
      await keys.flush();
      const certLen = 4 + ((ekCert[2] << 8) | ekCert[3]);
      const begun = await post("/v1/attest/begin", {
        ekCertificate: toBase64(ekCert.subarray(0, certLen)),
        akPublic: probe.tpm.akPublic,
      });
      assert.equal(begun.status, 200, JSON.stringify(begun.body));
      const k2 = await loadAttestationKeys(tpm, { ek: "rsa", ak: "ecc" });
      const secret = await tpm.activateCredential(
        k2.ak.handle,
        k2.ek.handle,
        fromBase64(begun.body.credential.credentialBlob),
        fromBase64(begun.body.credential.encryptedSecret),
      );
      await k2.flush();
      const eph = await generateEphemeralKeyPair();
      const kmsNonce = fromBase64(begun.body.nonce);
      const ud = await sha256(eph.publicKey);
      const doc = await attestor.document(concat(kmsNonce, ud)) as Record<string, unknown>;
      doc.nonce = toBase64(kmsNonce);
      doc.userData = toBase64(ud);
      const fin = await post("/v1/attest/finish", {
        session: begun.body.session,
        activatedSecret: toBase64(secret),
        evidence: doc,
        ephemeralPublicKey: toBase64(eph.publicKey),
        request: {
          role: "worker",
          disk: { uuid: "11111111-2222-4333-8444-555555555555" },
          nodeName: "attacker",
        },
      });
      assert.notEqual(fin.status, 200, "the KMS released a key for a replayed quote");
      assert.equal(fin.status, 403, JSON.stringify(fin.body));
      assert.ok(fin.body.checks.includes("quote.qualifying_data"), JSON.stringify(fin.body));
      assert.equal(await store.getDisk("11111111-2222-4333-8444-555555555555"), undefined);
    });
  } finally {
    await tpm.close();
    await access.with(() => Promise.resolve());
    await sw.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
