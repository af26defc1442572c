/**
 * HPKE (RFC 9180) base-mode single-shot seal for DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 /
 * AES-GCM, synchronously with node:crypto (OpenSSL): one X25519 key generation, one X25519
 * agreement, a handful of HMAC-SHA256 calls and one AES-GCM encryption, without the chain of
 * awaited Web Crypto promises of a generic implementation. The KMS seals every release with it;
 * nodes open with `@hpke/core` (release.ts `openRelease`), and the tests hold both to the
 * RFC's appendix A.1.1 vector and to each other.
 *
 * The labels follow RFC 9180 section 4: `LabeledExtract(salt, label, ikm)` is
 * HKDF-Extract(salt, "HPKE-v1" ‖ suite_id ‖ label ‖ ikm) and `LabeledExpand(prk, label, info,
 * L)` is HKDF-Expand(prk, I2OSP(L, 2) ‖ "HPKE-v1" ‖ suite_id ‖ label ‖ info, L), with the KEM's
 * suite_id ("KEM" ‖ kem_id) inside the KEM and the full one ("HPKE" ‖ kem_id ‖ kdf_id ‖
 * aead_id) in the key schedule.
 *
 * @module
 */
import {
  createCipheriv,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  type KeyObject,
} from "node:crypto";
import { Buffer } from "node:buffer";
import { concat, utf8 } from "../lib/bytes.ts";
import { ConfidantError } from "../lib/errors.ts";

const KEM_ID = 0x0020; // DHKEM(X25519, HKDF-SHA256)
const KDF_ID = 0x0001; // HKDF-SHA256
/** AEAD identifiers of RFC 9180 section 7.3 that this module seals with. */
export const HPKE_AEAD = { "aes-128-gcm": 0x0001, "aes-256-gcm": 0x0002 } as const;
/** An AEAD of {@link HPKE_AEAD}. */
export type HpkeAead = keyof typeof HPKE_AEAD;

const X25519_SPKI_PREFIX = Uint8Array.from([
  0x30,
  0x2a,
  0x30,
  0x05,
  0x06,
  0x03,
  0x2b,
  0x65,
  0x6e,
  0x03,
  0x21,
  0x00,
]);
const X25519_PKCS8_PREFIX = Uint8Array.from([
  0x30,
  0x2e,
  0x02,
  0x01,
  0x00,
  0x30,
  0x05,
  0x06,
  0x03,
  0x2b,
  0x65,
  0x6e,
  0x04,
  0x22,
  0x04,
  0x20,
]);
const VERSION_LABEL = utf8("HPKE-v1");

function i2osp(n: number, w: number): Uint8Array {
  const out = new Uint8Array(w);
  for (let i = w - 1, v = n; i >= 0; i--, v = Math.floor(v / 256)) out[i] = v & 0xff;
  return out;
}

function hmac(key: Uint8Array, data: Uint8Array): Uint8Array {
  return new Uint8Array(createHmac("sha256", key).update(data).digest());
}

function labeledExtract(
  suite: Uint8Array,
  salt: Uint8Array,
  label: string,
  ikm: Uint8Array,
): Uint8Array {
  // HKDF-Extract with an empty salt uses a zero key of the hash length (RFC 5869 2.2); HMAC
  // pads a short key with zeros, so the empty key is the same.
  return hmac(salt, concat(VERSION_LABEL, suite, utf8(label), ikm));
}

function labeledExpand(
  suite: Uint8Array,
  prk: Uint8Array,
  label: string,
  info: Uint8Array,
  length: number,
): Uint8Array {
  if (length > 255 * 32) throw new RangeError("HKDF-Expand length");
  const labeled = concat(i2osp(length, 2), VERSION_LABEL, suite, utf8(label), info);
  const out = new Uint8Array(length);
  let t: Uint8Array = new Uint8Array(0);
  for (let i = 1, o = 0; o < length; i++) {
    t = hmac(prk, concat(t, labeled, Uint8Array.of(i)));
    out.set(t.subarray(0, Math.min(t.length, length - o)), o);
    o += t.length;
  }
  return out;
}

/** An X25519 public key from its 32 raw bytes. */
export function x25519PublicKey(raw: Uint8Array): KeyObject {
  if (raw.length !== 32) {
    throw new ConfidantError("kms.ephemeral_key", "an X25519 public key is 32 bytes");
  }
  return createPublicKey({
    key: Buffer.from(concat(X25519_SPKI_PREFIX, raw)),
    format: "der",
    type: "spki",
  });
}

/** An X25519 private key from its 32 raw bytes (tests: the RFC vectors' fixed keys). */
export function x25519PrivateKey(raw: Uint8Array): KeyObject {
  if (raw.length !== 32) throw new ConfidantError("kms.hpke", "an X25519 private key is 32 bytes");
  return createPrivateKey({
    key: Buffer.from(concat(X25519_PKCS8_PREFIX, raw)),
    format: "der",
    type: "pkcs8",
  });
}

function rawPublic(k: KeyObject): Uint8Array {
  const der = new Uint8Array(k.export({ format: "der", type: "spki" }));
  return der.slice(der.length - 32);
}

/** Options of {@link hpkeSealBase}. */
export interface HpkeSealOptions {
  /** AEAD (default AES-256-GCM, the release suite). */
  aead?: HpkeAead;
  /**
   * The ephemeral private key. Tests only (the RFC vectors fix it); by default a fresh key
   * is generated for every seal, which HPKE's security requires.
   */
  ephemeralPrivateKey?: KeyObject;
}

/**
 * `SealBase(pkR, info, aad, pt)` of RFC 9180 (sections 5.1.1 and 5.2, sequence number 0):
 * returns the encapsulated key `enc` (32 bytes) and the ciphertext with its 16-byte tag.
 * A recipient key that is not 32 bytes, or whose agreement is all zeros (a small-order
 * point), is a ConfidantError `kms.ephemeral_key`.
 */
export function hpkeSealBase(
  recipientPublicKey: Uint8Array,
  info: Uint8Array,
  aad: Uint8Array,
  plaintext: Uint8Array,
  options: HpkeSealOptions = {},
): { enc: Uint8Array; ciphertext: Uint8Array } {
  const aead = options.aead ?? "aes-256-gcm";
  const nk = aead === "aes-256-gcm" ? 32 : 16;
  const pkR = x25519PublicKey(recipientPublicKey);
  const skE = options.ephemeralPrivateKey ??
    generateKeyPairSync("x25519").privateKey;
  const enc = rawPublic(createPublicKey(skE));
  let dh: Uint8Array;
  try {
    dh = new Uint8Array(diffieHellman({ privateKey: skE, publicKey: pkR }));
  } catch (e) {
    throw new ConfidantError("kms.ephemeral_key", "X25519 agreement with the key failed", {
      cause: e,
    });
  }
  if (dh.every((b) => b === 0)) {
    throw new ConfidantError("kms.ephemeral_key", "the X25519 key is of small order");
  }
  // DHKEM ExtractAndExpand (section 4.1).
  const kemSuite = concat(utf8("KEM"), i2osp(KEM_ID, 2));
  const eaePrk = labeledExtract(kemSuite, new Uint8Array(0), "eae_prk", dh);
  dh.fill(0);
  const shared = labeledExpand(
    kemSuite,
    eaePrk,
    "shared_secret",
    concat(enc, recipientPublicKey),
    32,
  );
  // Key schedule, mode_base, no PSK (section 5.1).
  const suite = concat(utf8("HPKE"), i2osp(KEM_ID, 2), i2osp(KDF_ID, 2), i2osp(HPKE_AEAD[aead], 2));
  const empty = new Uint8Array(0);
  const context = concat(
    Uint8Array.of(0),
    labeledExtract(suite, empty, "psk_id_hash", empty),
    labeledExtract(suite, empty, "info_hash", info),
  );
  const secret = labeledExtract(suite, shared, "secret", empty);
  shared.fill(0);
  const key = labeledExpand(suite, secret, "key", context, nk);
  const nonce = labeledExpand(suite, secret, "base_nonce", context, 12);
  secret.fill(0);
  try {
    const c = createCipheriv(aead, key, nonce);
    c.setAAD(aad);
    const ct = concat(new Uint8Array(c.update(plaintext)), new Uint8Array(c.final()));
    return { enc, ciphertext: concat(ct, new Uint8Array(c.getAuthTag())) };
  } finally {
    key.fill(0);
  }
}
