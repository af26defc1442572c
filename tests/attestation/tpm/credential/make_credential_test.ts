import assert from "node:assert/strict";
import { join } from "node:path";
import { makeCredential } from "../../../../attestation/tpm/credential/make_credential.ts";
import {
  EK_TEMPLATE_RSA2048,
  loadAttestationKeys,
  marshalCredentialFile,
  Tpm,
  unmarshalTpm2bPublic,
} from "../../../../attestation/tpm/mod.ts";
import { ConfidantError } from "../../../../lib/errors.ts";
import { toHex } from "../../../../lib/bytes.ts";
import { activateWithTools, createEkAndAkWithTools, startTestTpm, type TestTpm } from "./_tpm2.ts";

/** Create an EK and an AK with tpm2-tools; returns the EK public and the AK name. */
async function ekAndAk(tpm: TestTpm, ekAlg: "rsa" | "ecc") {
  const { ekPub, akName } = await createEkAndAkWithTools(tpm, ekAlg);
  return { ek: unmarshalTpm2bPublic(ekPub).public, akName };
}

for (const ekAlg of ["rsa", "ecc"] as const) {
  Deno.test(`makeCredential() output is activated by tpm2_activatecredential (${ekAlg} EK)`, async () => {
    const tpm = await startTestTpm();
    try {
      const { ek, akName } = await ekAndAk(tpm, ekAlg);
      const secret = crypto.getRandomValues(new Uint8Array(32));
      const cred = makeCredential(ek, akName, secret);
      const got = await activateWithTools(
        tpm,
        marshalCredentialFile(cred),
        join(tpm.dir, "ek.ctx"),
      );
      assert.equal(toHex(got), toHex(secret));

      // Bound to the AK's name: the same credential made for another name is refused.
      const other = akName.slice();
      other[5] ^= 1;
      const wrong = makeCredential(ek, other, secret);
      await assert.rejects(
        activateWithTools(tpm, marshalCredentialFile(wrong), join(tpm.dir, "ek.ctx")),
      );
      // A flipped bit in the blob fails the integrity HMAC.
      const bad = makeCredential(ek, akName, secret);
      bad.credentialBlob[10] ^= 0x40;
      await assert.rejects(
        activateWithTools(tpm, marshalCredentialFile(bad), join(tpm.dir, "ek.ctx")),
      );
    } finally {
      await tpm.stop();
    }
  });
}

Deno.test("makeCredential() refuses unusable inputs with a ConfidantError", () => {
  const ek = { ...EK_TEMPLATE_RSA2048, unique: { n: new Uint8Array(256).fill(0xc3) } };
  const name = new Uint8Array(34);
  name[1] = 0x0b;
  assert.throws(() => makeCredential(ek, name, new Uint8Array(33)), ConfidantError);
  assert.throws(() => makeCredential(ek, name, new Uint8Array(0)), ConfidantError);
  assert.throws(() => makeCredential(ek, name.subarray(0, 20), new Uint8Array(16)), ConfidantError);
  const noAes = { ...ek, parameters: { ...ek.parameters, symmetric: { algorithm: 0x0010 } } };
  assert.throws(() => makeCredential(noAes, name, new Uint8Array(16)), ConfidantError);
});

Deno.test("makeCredential() is deterministic given the seed and differs per name", () => {
  const ek = { ...EK_TEMPLATE_RSA2048, unique: { n: new Uint8Array(256).fill(0xc3) } };
  const name = new Uint8Array(34);
  name[1] = 0x0b;
  const seed = new Uint8Array(32).fill(7);
  const a = makeCredential(ek, name, new Uint8Array(16).fill(1), { seed });
  const b = makeCredential(ek, name, new Uint8Array(16).fill(1), { seed });
  assert.equal(toHex(a.credentialBlob), toHex(b.credentialBlob));
  // blob = u16 32 || HMAC(32) || encIdentity(2 + 16)
  assert.equal(a.credentialBlob.length, 2 + 32 + 18);
  name[33] = 1;
  const c = makeCredential(ek, name, new Uint8Array(16).fill(1), { seed });
  assert.notEqual(toHex(c.credentialBlob), toHex(a.credentialBlob));
});

for (const ekKind of ["rsa", "ecc"] as const) {
  Deno.test(`makeCredential() output is activated by Tpm.activateCredential (${ekKind} EK)`, async () => {
    const sw = await startTestTpm();
    const tpm = Tpm.open(sw.spec);
    try {
      const keys = await loadAttestationKeys(tpm, { ek: ekKind });
      try {
        const secret = crypto.getRandomValues(new Uint8Array(32));
        const cred = makeCredential(keys.ek.public, keys.ak.name, secret);
        const got = await tpm.activateCredential(
          keys.ak.handle,
          keys.ek.handle,
          cred.credentialBlob,
          cred.encryptedSecret,
        );
        assert.equal(toHex(got), toHex(secret));
        // Made for the EK's own name instead of the AK's: the TPM refuses.
        const wrong = makeCredential(keys.ek.public, keys.ek.name, secret);
        await assert.rejects(
          tpm.activateCredential(
            keys.ak.handle,
            keys.ek.handle,
            wrong.credentialBlob,
            wrong.encryptedSecret,
          ),
        );
      } finally {
        await keys.flush();
      }
    } finally {
      await tpm.close();
      await sw.stop();
    }
  });
}
