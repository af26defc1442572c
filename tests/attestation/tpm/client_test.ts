/**
 * The Tpm client against a real swtpm, cross-checked with tpm2-tools.
 */
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { concat, fromHex, sha256, toHex } from "../../../lib/bytes.ts";
import {
  computeName,
  EK_CERT_NV_INDEX,
  EK_TEMPLATE_ECC_P256,
  EK_TEMPLATE_RSA2048,
  loadAttestationKeys,
  marshalCredentialFile,
  marshalTpm2bPublic,
  Tpm,
  TPM_ALG,
  TPM_GENERATED_VALUE,
  TPM_RH,
  TPM_ST,
  TpmError,
  unmarshalTpm2bPublic,
  unmarshalTpmsAttest,
  unmarshalTpmtPublic,
  unmarshalTpmtSignature,
  withFlush,
} from "../../../attestation/tpm/mod.ts";
import { startSwtpm } from "../../_support/swtpm.ts";

async function tool(env: Record<string, string>, cwd: string, ...args: string[]): Promise<string> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(args[0], {
      args: args.slice(1),
      env,
      cwd,
      stdout: "piped",
      stderr: "piped",
    })
      .output();
  } catch (e) {
    throw new Error(`${args[0]} not runnable: install tpm2-tools (${(e as Error).message})`);
  }
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(`${args.join(" ")} failed: ${text}${new TextDecoder().decode(out.stderr)}`);
  }
  return text;
}

/** Parses `tpm2_pcrread` YAML: bank -> pcr -> hex. */
function parsePcrread(text: string): Map<string, Map<number, string>> {
  const out = new Map<string, Map<number, string>>();
  let bank: Map<number, string> | undefined;
  for (const line of text.split("\n")) {
    const b = /^\s{2}(sha\d+):\s*$/.exec(line);
    if (b) out.set(b[1], bank = new Map());
    const v = /^\s+(\d+)\s*:\s*0x([0-9A-Fa-f]+)\s*$/.exec(line);
    if (v && bank) bank.set(Number(v[1]), v[2].toLowerCase());
  }
  return out;
}

const ALL = Array.from({ length: 24 }, (_, i) => i);

Deno.test("Tpm client against swtpm agrees with tpm2-tools", async (t) => {
  const sw = await startSwtpm({ ekCert: true });
  const work = await Deno.makeTempDir({ prefix: "confidant-tpm-client-" });
  const env = sw.env;
  const run = (...a: string[]) => tool(env, work, ...a);
  const tpm = Tpm.open(sw.spec);
  try {
    await t.step("getRandom() returns the requested number of bytes, not constant", async () => {
      const a = await tpm.getRandom(100);
      const b = await tpm.getRandom(100);
      assert.equal(a.length, 100);
      assert.notDeepEqual(a, b);
    });

    await t.step("pcrRead() of 48 PCRs over two banks equals tpm2_pcrread", async () => {
      await tpm.pcrExtend(3, [{ hashAlg: TPM_ALG.SHA256, digest: new Uint8Array(32).fill(1) }]);
      const ours = await tpm.pcrRead([
        { hash: TPM_ALG.SHA1, pcrs: ALL },
        { hash: TPM_ALG.SHA256, pcrs: ALL },
      ]);
      const theirs = parsePcrread(await run("tpm2_pcrread", "sha1:all+sha256:all"));
      for (const [name, alg] of [["sha1", TPM_ALG.SHA1], ["sha256", TPM_ALG.SHA256]] as const) {
        for (const i of ALL) {
          assert.equal(toHex(ours.get(alg)!.get(i)!), theirs.get(name)!.get(i), `${name}:${i}`);
        }
      }
    });

    await t.step("pcrExtend() sets PCR to SHA-256(old || digest)", async () => {
      const before = (await tpm.pcrRead([{ hash: TPM_ALG.SHA256, pcrs: [16] }])).get(
        TPM_ALG.SHA256,
      )!
        .get(16)!;
      const digest = new Uint8Array(32).map((_, i) => i);
      await tpm.pcrExtend(16, [{ hashAlg: TPM_ALG.SHA256, digest }]);
      const after = (await tpm.pcrRead([{ hash: TPM_ALG.SHA256, pcrs: [16] }])).get(TPM_ALG.SHA256)!
        .get(16)!;
      const expect = await sha256(concat(before, digest));
      assert.deepEqual(after, expect);
    });

    for (
      const [alg, template] of [["ecc", EK_TEMPLATE_ECC_P256], [
        "rsa",
        EK_TEMPLATE_RSA2048,
      ]] as const
    ) {
      await t.step(`createPrimary(EK ${alg}) name equals tpm2_createek -G ${alg}`, async () => {
        const ek = await tpm.createPrimary(TPM_RH.ENDORSEMENT, template);
        await withFlush(tpm, ek.handle, async () => {
          assert.deepEqual(await computeName(ek.public), ek.name);
          assert.deepEqual(await computeName(ek.tpmtBytes), ek.name);
          const rp = await tpm.readPublic(ek.handle);
          assert.deepEqual(rp.name, ek.name);
          assert.deepEqual(rp.tpmtBytes, ek.tpmtBytes);
        });
        await run("tpm2_createek", "-c", `ek_${alg}.ctx`, "-G", alg, "-u", `ek_${alg}.pub`);
        await run("tpm2_readpublic", "-c", `ek_${alg}.ctx`, "-n", `ek_${alg}.name`);
        await run("tpm2_flushcontext", "-t");
        assert.equal(toHex(await Deno.readFile(`${work}/ek_${alg}.name`)), toHex(ek.name));
        const theirs = unmarshalTpm2bPublic(await Deno.readFile(`${work}/ek_${alg}.pub`));
        assert.deepEqual(theirs.tpmtBytes, ek.tpmtBytes);
      });
    }

    await t.step("nvRead() returns the RSA EK certificate (DER) certifying the EK", async () => {
      const der = await tpm.nvRead(EK_CERT_NV_INDEX.RSA2048);
      const cert = new X509Certificate(der);
      const ek = await tpm.createPrimary(TPM_RH.ENDORSEMENT, EK_TEMPLATE_RSA2048);
      await withFlush(tpm, ek.handle, () => Promise.resolve());
      const jwk = cert.publicKey.export({ format: "jwk" });
      assert.equal(ek.public.type, TPM_ALG.RSA);
      if (ek.public.type === TPM_ALG.RSA) {
        assert.equal(Buffer.from(jwk.n!, "base64url").toString("hex"), toHex(ek.public.unique.n));
      }
      assert.ok(
        cert.verify(
          new X509Certificate(sw.ekCaPem!.split(/(?<=-----END CERTIFICATE-----)/)[0]).publicKey,
        ),
      );
      // The chunked read equals what tpm2_nvread returns.
      await run("tpm2_nvread", "0x01c00002", "-C", "o", "-o", "ekcert.der");
      assert.deepEqual(await Deno.readFile(`${work}/ekcert.der`), der);
    });

    await t.step(
      "quote() output is accepted by tpm2_checkquote and its PCR digest is right",
      async () => {
        const keys = await loadAttestationKeys(tpm);
        try {
          const nonce = fromHex("00112233445566778899aabbccddeeff");
          const sel = [{ hash: TPM_ALG.SHA256, pcrs: [0, 3, 7, 16] }];
          const q = await tpm.quote(keys.ak.handle, nonce, sel);
          await Deno.writeFile(
            `${work}/ak.pub`,
            concat(
              new Uint8Array([keys.ak.tpmtBytes.length >> 8, keys.ak.tpmtBytes.length & 0xff]),
              keys.ak.tpmtBytes,
            ),
          );
          await Deno.writeFile(`${work}/q.msg`, q.attest);
          await Deno.writeFile(`${work}/q.sig`, q.signature);
          await run(
            "tpm2_checkquote",
            "-u",
            "ak.pub",
            "-m",
            "q.msg",
            "-s",
            "q.sig",
            "-g",
            "sha256",
            "-q",
            toHex(nonce),
          );
          const attest = unmarshalTpmsAttest(q.attest);
          assert.equal(attest.magic, TPM_GENERATED_VALUE);
          assert.equal(attest.type, TPM_ST.ATTEST_QUOTE);
          assert.deepEqual(attest.extraData, nonce);
          assert.equal(attest.attested.kind, "quote");
          const vals = (await tpm.pcrRead(sel)).get(TPM_ALG.SHA256)!;
          const digest = await sha256(concat(...[0, 3, 7, 16].map((i) => vals.get(i)!)));
          if (attest.attested.kind === "quote") {
            assert.deepEqual(attest.attested.pcrSelect, sel);
            assert.deepEqual(attest.attested.pcrDigest, digest);
          }
          const sig = unmarshalTpmtSignature(q.signature);
          assert.equal(sig.sigAlg, TPM_ALG.ECDSA);
          // A flipped nonce must be refused by tpm2_checkquote (the check can fail).
          await assert.rejects(
            run(
              "tpm2_checkquote",
              "-u",
              "ak.pub",
              "-m",
              "q.msg",
              "-s",
              "q.sig",
              "-g",
              "sha256",
              "-q",
              "00",
            ),
          );
        } finally {
          await keys.flush();
        }
        // Primaries from the EPS are deterministic: the same AK comes back.
        const again = await loadAttestationKeys(tpm);
        await again.flush();
        assert.deepEqual(again.ak.name, keys.ak.name);
        assert.deepEqual(again.ek.name, keys.ek.name);
      },
    );

    await t.step("a tpm2_createak + tpm2_quote quote parses with the unmarshallers", async () => {
      await run("tpm2_createek", "-c", "ek2.ctx", "-G", "ecc");
      await run(
        "tpm2_createak",
        "-C",
        "ek2.ctx",
        "-c",
        "ak2.ctx",
        "-G",
        "ecc",
        "-g",
        "sha256",
        "-s",
        "ecdsa",
        "-u",
        "ak2.pub",
        "-n",
        "ak2.name",
      );
      await run("tpm2_flushcontext", "-t");
      await run(
        "tpm2_quote",
        "-c",
        "ak2.ctx",
        "-l",
        "sha256:0,4,7",
        "-q",
        "cafe",
        "-m",
        "q2.msg",
        "-s",
        "q2.sig",
        "-g",
        "sha256",
      );
      await run("tpm2_flushcontext", "-t");
      const pub = unmarshalTpm2bPublic(await Deno.readFile(`${work}/ak2.pub`));
      assert.equal(
        toHex(await computeName(pub.tpmtBytes)),
        toHex(await Deno.readFile(`${work}/ak2.name`)),
      );
      assert.equal(pub.public.type, TPM_ALG.ECC);
      const a = unmarshalTpmsAttest(await Deno.readFile(`${work}/q2.msg`));
      assert.equal(toHex(a.extraData), "cafe");
      assert.equal(a.attested.kind, "quote");
      if (a.attested.kind === "quote") {
        assert.deepEqual(a.attested.pcrSelect, [{ hash: TPM_ALG.SHA256, pcrs: [0, 4, 7] }]);
      }
      const s = unmarshalTpmtSignature(await Deno.readFile(`${work}/q2.sig`));
      assert.equal(s.sigAlg, TPM_ALG.ECDSA);
    });

    for (const ekKind of ["ecc", "rsa"] as const) {
      await t.step(
        `activateCredential() recovers a tpm2_makecredential secret (${ekKind} EK)`,
        async () => {
          const keys = await loadAttestationKeys(tpm, { ek: ekKind });
          try {
            await Deno.writeFile(
              `${work}/ek_mc.pub`,
              marshalTpm2bPublic(unmarshalTpmtPublic(keys.ek.tpmtBytes)),
            );
            const secret = await tpm.getRandom(32);
            await Deno.writeFile(`${work}/secret.bin`, secret);
            await run(
              "tpm2_makecredential",
              "-T",
              "none",
              "-u",
              "ek_mc.pub",
              "-s",
              "secret.bin",
              "-n",
              toHex(keys.ak.name),
              "-o",
              "cred.out",
            );
            const { unmarshalCredentialFile } = await import("../../../attestation/tpm/mod.ts");
            const cred = unmarshalCredentialFile(await Deno.readFile(`${work}/cred.out`));
            assert.deepEqual(marshalCredentialFile(cred), await Deno.readFile(`${work}/cred.out`));
            const got = await tpm.activateCredential(
              keys.ak.handle,
              keys.ek.handle,
              cred.credentialBlob,
              cred.encryptedSecret,
            );
            assert.deepEqual(got, secret);
            // Bound to the AK's name: activating against the EK itself as the object fails.
            await assert.rejects(
              tpm.activateCredential(
                keys.ek.handle,
                keys.ek.handle,
                cred.credentialBlob,
                cred.encryptedSecret,
              ),
              TpmError,
            );
          } finally {
            await keys.flush();
          }
        },
      );
    }

    await t.step("TPM errors name the response code", async () => {
      const err = await tpm.readPublic(0x80ffffff).catch((e) => e);
      assert.ok(err instanceof TpmError, String(err));
      assert.equal(err.rcName, "TPM_RC_VALUE");
      assert.deepEqual(err.subject, { kind: "handle", index: 1 });
      assert.match(err.message, /TPM2_ReadPublic failed: TPM_RC_VALUE \(handle 1\)/);
    });

    await t.step("no transient objects or sessions are left loaded", async () => {
      const out = await run("tpm2_getcap", "handles-transient");
      assert.equal(out.trim(), "");
      const s = await run("tpm2_getcap", "handles-loaded-session");
      assert.equal(s.trim(), "");
    });
  } finally {
    await tpm.close();
    await sw.stop();
    await Deno.remove(work, { recursive: true });
  }
});
