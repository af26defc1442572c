/**
 * Generic HPKE sealing of JSON messages for the init exchange. It uses the one suite of the
 * project, `releaseSuite()` of kms/release.ts (base mode, DHKEM(X25519, HKDF-SHA256),
 * HKDF-SHA256, AES-256-GCM), and its ephemeral key pairs; `sealRelease`/`openRelease` there
 * are typed to the KMS release payload, so this module seals any zod-validated payload under
 * a caller-chosen `info` label instead.
 *
 * @module
 */
import type { z } from "zod";
import { fromBase64, toBase64, utf8 } from "../lib/bytes.ts";
import { ConfidantError } from "../lib/errors.ts";
import { type EphemeralKeyPair, RELEASE_SUITE, releaseSuite } from "../kms/release.ts";

export { type EphemeralKeyPair, generateEphemeralKeyPair } from "../kms/release.ts";

/** A sealed message as it travels (same shape as a KMS release). */
export interface SealedMessage {
  suite: typeof RELEASE_SUITE;
  enc: string;
  ciphertext: string;
}

/** Seal `payload` (JSON) to the raw X25519 key `recipient` with HPKE `info` and `aad`. */
export async function sealJson(
  payload: unknown,
  recipient: Uint8Array,
  info: string,
  aad: Uint8Array,
): Promise<SealedMessage> {
  const suite = releaseSuite();
  let pk: CryptoKey;
  try {
    pk = await suite.kem.deserializePublicKey(recipient as unknown as ArrayBuffer);
  } catch (e) {
    throw new ConfidantError("cluster.ephemeral_key", "the recipient key is not an X25519 key", {
      cause: e,
    });
  }
  const pt = utf8(JSON.stringify(payload));
  try {
    const { ct, enc } = await suite.seal({ recipientPublicKey: pk, info: utf8(info) }, pt, aad);
    return {
      suite: RELEASE_SUITE,
      enc: toBase64(new Uint8Array(enc)),
      ciphertext: toBase64(new Uint8Array(ct)),
    };
  } finally {
    pt.fill(0);
  }
}

/**
 * Open a sealed message and validate it with `schema`. A message that does not open is
 * `cluster.sealed_tampered`; one that opens but does not validate is `cluster.sealed_malformed`.
 */
export async function openJson<S extends z.ZodType>(
  sealed: SealedMessage,
  key: EphemeralKeyPair,
  info: string,
  aad: Uint8Array,
  schema: S,
): Promise<z.infer<S>> {
  if (sealed.suite !== RELEASE_SUITE) {
    throw new ConfidantError("cluster.sealed_suite", `unsupported suite ${sealed.suite}`);
  }
  const suite = releaseSuite();
  let pt: Uint8Array;
  try {
    pt = new Uint8Array(
      await suite.open(
        {
          recipientKey: key.privateKey,
          enc: fromBase64(sealed.enc, "enc") as unknown as ArrayBuffer,
          info: utf8(info),
        },
        fromBase64(sealed.ciphertext, "ciphertext"),
        aad,
      ),
    );
  } catch (e) {
    throw new ConfidantError(
      "cluster.sealed_tampered",
      "the sealed message does not open: tampered, or not sealed for this session and key",
      { cause: e },
    );
  }
  try {
    const r = schema.safeParse(JSON.parse(new TextDecoder().decode(pt)));
    if (!r.success) throw new Error(r.error.issues[0]?.message);
    return r.data;
  } catch (e) {
    throw new ConfidantError("cluster.sealed_malformed", "the opened message is malformed", {
      cause: e,
    });
  } finally {
    pt.fill(0);
  }
}
