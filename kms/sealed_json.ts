/**
 * HPKE sealing of a JSON payload to an ephemeral X25519 key, bound by additional data: the
 * one construction behind the KMS release (release.ts) and the operator's init exchange
 * (cluster/sealing.ts). The suite is fixed (RFC 9180 base mode, DHKEM(X25519, HKDF-SHA256),
 * HKDF-SHA256, AES-256-GCM); callers choose the HPKE `info` label, the AAD and the error
 * codes their callers see. Sealing runs synchronously on node:crypto (hpke.ts); opening uses
 * `@hpke/core` with a non-exportable private key.
 *
 * Wire form: `{ suite, enc, ciphertext }` with `enc` and `ciphertext` in standard base64.
 *
 * @module
 */
import type { z } from "zod";
import { Aes256Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from "@hpke/core";
import { fromBase64, toBase64, utf8 } from "../lib/bytes.ts";
import { ConfidantError } from "../lib/errors.ts";
import { hpkeSealBase } from "./hpke.ts";

/** HPKE suite name carried on the wire. */
export const RELEASE_SUITE = "DHKEM(X25519,HKDF-SHA256)/HKDF-SHA256/AES-256-GCM" as const;

/** The one HPKE suite of the protocol. */
export function releaseSuite(): CipherSuite {
  return new CipherSuite({
    kem: new DhkemX25519HkdfSha256(),
    kdf: new HkdfSha256(),
    aead: new Aes256Gcm(),
  });
}

/** An ephemeral X25519 key pair of the receiving side. */
export interface EphemeralKeyPair {
  /** Raw public key (32 bytes). */
  publicKey: Uint8Array;
  /** Private key, never exported. */
  privateKey: CryptoKey;
}

/** Make an ephemeral key pair for one exchange. */
export async function generateEphemeralKeyPair(): Promise<EphemeralKeyPair> {
  const suite = releaseSuite();
  const kp = await suite.kem.generateKeyPair();
  const pub = new Uint8Array(await suite.kem.serializePublicKey(kp.publicKey));
  return { publicKey: pub, privateKey: kp.privateKey };
}

/** A sealed JSON payload as it travels. */
export interface SealedJson {
  suite: typeof RELEASE_SUITE;
  enc: string;
  ciphertext: string;
}

/** The error codes a caller's users see, and the noun its messages use. */
export interface SealedJsonErrors {
  /** What is sealed, in messages: "release", "message". */
  noun: string;
  /** The recipient key is not a usable X25519 key. */
  key: string;
  /** The suite on the wire is not {@link RELEASE_SUITE}. */
  suite: string;
  /** The ciphertext does not open with this key, info and AAD. */
  tampered: string;
  /** It opens but is not JSON of the schema. */
  malformed: string;
}

/** Seal `payload` as JSON to the raw X25519 key `recipient` under HPKE `info` and `aad`. */
export function sealJson(
  payload: unknown,
  recipient: Uint8Array,
  info: string,
  aad: Uint8Array,
  errors: SealedJsonErrors,
): Promise<SealedJson> {
  const pt = utf8(JSON.stringify(payload));
  try {
    const { enc, ciphertext } = hpkeSealBase(recipient, utf8(info), aad, pt);
    return Promise.resolve({
      suite: RELEASE_SUITE,
      enc: toBase64(enc),
      ciphertext: toBase64(ciphertext),
    });
  } catch (e) {
    if (e instanceof ConfidantError && e.code === errors.key) return Promise.reject(e);
    const message = e instanceof ConfidantError
      ? e.message
      : "the recipient key is not an X25519 key";
    return Promise.reject(new ConfidantError(errors.key, message, { cause: e }));
  } finally {
    pt.fill(0);
  }
}

/**
 * Open `sealed` with `key` under `info` and `aad`, and validate the JSON inside with `schema`.
 * A foreign suite, a ciphertext that does not open and a payload that does not validate are
 * ConfidantErrors with the codes of `errors`.
 */
export async function openJson<S extends z.ZodType>(
  sealed: SealedJson,
  key: EphemeralKeyPair,
  info: string,
  aad: Uint8Array,
  schema: S,
  errors: SealedJsonErrors,
): Promise<z.infer<S>> {
  if (sealed.suite !== RELEASE_SUITE) {
    throw new ConfidantError(errors.suite, `unsupported ${errors.noun} suite ${sealed.suite}`);
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
      errors.tampered,
      `the sealed ${errors.noun} does not open: tampered, or not sealed for this session and key`,
      { cause: e },
    );
  }
  try {
    const r = schema.safeParse(JSON.parse(new TextDecoder().decode(pt)));
    if (!r.success) throw new Error(r.error.issues[0]?.message);
    return r.data;
  } catch (e) {
    throw new ConfidantError(errors.malformed, `the opened ${errors.noun} is malformed`, {
      cause: e,
    });
  } finally {
    pt.fill(0);
  }
}
