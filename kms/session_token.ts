/**
 * Sealed session tokens: the state of an attestation between `begin` and `finish`, carried
 * by the node instead of a server-side table, so any KMS replica can finish a session.
 *
 * Wire form: base64url( version(1) ‖ iv(12) ‖ AES-256-GCM(JSON payload) ‖ tag(16) ), under a
 * key derived from the master secret (`KeyDeriver.sessionKey`), with the version byte and a
 * fixed label as additional data. The payload holds the nonce, the SHA-256 of the credential
 * secret, the AK name, the enrolling identity (EK digest), how step 1 trusted the node (EK CA
 * chain verified against which CA set, or a pinned AK; the chain is not checked again at
 * step 2), the document variant the node announced at step 1 and an expiry at most 60 s ahead.
 * Version 2 added the endorsement, version 3 the variant; an older token is refused as
 * `session.version`.
 *
 * @module
 */
import { createCipheriv, createDecipheriv, type KeyObject } from "node:crypto";
import { z } from "zod";
import { concat, fromBase64Url, fromHex, toBase64Url, toHex, utf8 } from "../lib/bytes.ts";
import { ConfidantError, ParseError } from "../lib/errors.ts";
import { BUILTIN_VARIANTS, type BuiltinVariant } from "../attestation/document.ts";
import type { Endorsement } from "./evidence.ts";

/** Version byte of the token format. */
export const SESSION_TOKEN_VERSION = 3;
/** Longest lifetime of a session (ms). */
export const MAX_SESSION_LIFETIME_MS = 60_000;
/** Longest accepted token string (characters); anything longer is refused before decoding. */
export const MAX_SESSION_TOKEN_CHARS = 1024;
const AAD_LABEL = "confidant/v1/session-token";

/** What a session token carries. */
export interface SessionClaims {
  /** Random session id (16 bytes), the key of the replay set. */
  sid: Uint8Array;
  /** Nonce the quote must be bound to (32 bytes). */
  nonce: Uint8Array;
  /** SHA-256 of the secret sealed by MakeCredential. */
  secretDigest: Uint8Array;
  /** TPM name of the AK the credential was made for. */
  akName: Uint8Array;
  /** Node identity: SHA-256 of the EK public key (hex of this is used in records). */
  identity: Uint8Array;
  /** How step 1 trusted the node. */
  endorsement: Endorsement;
  /** The document variant announced at step 1: the document of step 2 must be of it. */
  variant: BuiltinVariant;
  /** Expiry, ms since the epoch. */
  expiresAt: number;
}

const hexField = (min: number, max: number) =>
  z.string().regex(/^(?:[0-9a-f]{2})*$/).refine((s) => s.length >= 2 * min && s.length <= 2 * max);

const payloadSchema = z.object({
  sid: hexField(16, 16),
  nonce: hexField(32, 32),
  sd: hexField(32, 32),
  ak: hexField(2, 66),
  id: hexField(32, 32),
  tr: z.enum(["ek-ca", "pinned"]),
  ekd: hexField(32, 32),
  anc: hexField(32, 32).optional(),
  var: z.enum(BUILTIN_VARIANTS),
  exp: z.number().int().nonnegative(),
}).strict();

const AAD = concat(new Uint8Array([SESSION_TOKEN_VERSION]), utf8(AAD_LABEL));
function aad(): Uint8Array {
  return AAD;
}

/**
 * The token key: a node:crypto secret KeyObject (`KeyDeriver.sessionKeyObject()`, sealed and
 * opened synchronously, the KMS's hot path) or a Web Crypto AES-GCM key.
 */
export type SessionKey = CryptoKey | KeyObject;

const isKeyObject = (k: SessionKey): k is KeyObject => !(k instanceof CryptoKey);

function gcmSeal(key: KeyObject, iv: Uint8Array, pt: Uint8Array): Uint8Array {
  const c = createCipheriv("aes-256-gcm", key, iv);
  c.setAAD(AAD);
  return concat(
    new Uint8Array(c.update(pt)),
    new Uint8Array(c.final()),
    new Uint8Array(c.getAuthTag()),
  );
}

/** AES-256-GCM open; throws when the tag does not verify. */
function gcmOpen(key: KeyObject, iv: Uint8Array, ctAndTag: Uint8Array): Uint8Array {
  if (ctAndTag.length < 16) throw new Error("short");
  const d = createDecipheriv("aes-256-gcm", key, iv);
  d.setAAD(AAD);
  d.setAuthTag(ctAndTag.subarray(ctAndTag.length - 16));
  return concat(
    new Uint8Array(d.update(ctAndTag.subarray(0, ctAndTag.length - 16))),
    new Uint8Array(d.final()),
  );
}

/** Seal `claims` under `key`; refuses a lifetime over 60 s from `now`. */
export async function sealSessionToken(
  key: SessionKey,
  claims: SessionClaims,
  now: number,
): Promise<string> {
  if (claims.expiresAt - now > MAX_SESSION_LIFETIME_MS) {
    throw new ConfidantError("kms.session", "session lifetime exceeds 60 s");
  }
  const payload = utf8(JSON.stringify({
    sid: toHex(claims.sid),
    nonce: toHex(claims.nonce),
    sd: toHex(claims.secretDigest),
    ak: toHex(claims.akName),
    id: toHex(claims.identity),
    tr: claims.endorsement.trust,
    ekd: toHex(claims.endorsement.ekCertificateDigest),
    anc: claims.endorsement.anchors ? toHex(claims.endorsement.anchors) : undefined,
    var: claims.variant,
    exp: claims.expiresAt,
  }));
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const ct = isKeyObject(key) ? gcmSeal(key, iv, payload) : new Uint8Array(
    await crypto.subtle.encrypt(
      { name: "AES-GCM", iv, additionalData: aad() as BufferSource },
      key,
      payload as BufferSource,
    ),
  );
  return toBase64Url(concat(new Uint8Array([SESSION_TOKEN_VERSION]), iv, ct));
}

/** Why a token was not accepted (stable check names, used in refusals and metrics). */
export type SessionFailure =
  | "session.malformed"
  | "session.version"
  | "session.forged"
  | "session.expired";

/**
 * Open a token. Returns the claims, or the failed check. A token that is expired at `now`
 * is refused; so is one whose expiry is more than 60 s after `now` (clock skew is not
 * an excuse for longer sessions).
 */
export async function openSessionToken(
  key: SessionKey,
  token: string,
  now: number,
): Promise<{ ok: true; claims: SessionClaims } | { ok: false; failure: SessionFailure }> {
  if (typeof token !== "string" || token.length > MAX_SESSION_TOKEN_CHARS) {
    return { ok: false, failure: "session.malformed" };
  }
  let raw: Uint8Array;
  try {
    raw = fromBase64Url(token, "session");
  } catch {
    return { ok: false, failure: "session.malformed" };
  }
  if (raw.length < 1 + 12 + 16) return { ok: false, failure: "session.malformed" };
  if (raw[0] !== SESSION_TOKEN_VERSION) return { ok: false, failure: "session.version" };
  let pt: Uint8Array;
  try {
    pt = isKeyObject(key) ? gcmOpen(key, raw.subarray(1, 13), raw.subarray(13)) : new Uint8Array(
      await crypto.subtle.decrypt(
        {
          name: "AES-GCM",
          iv: raw.subarray(1, 13) as BufferSource,
          additionalData: aad() as BufferSource,
        },
        key,
        raw.subarray(13) as BufferSource,
      ),
    );
  } catch {
    return { ok: false, failure: "session.forged" };
  }
  let parsed: z.infer<typeof payloadSchema>;
  try {
    parsed = payloadSchema.parse(JSON.parse(new TextDecoder().decode(pt)));
  } catch (e) {
    // Authenticated but unparsable: only a KMS bug could produce this.
    throw new ParseError("session", "sealed session payload is malformed", { cause: e });
  }
  if (parsed.exp <= now || parsed.exp - now > MAX_SESSION_LIFETIME_MS) {
    return { ok: false, failure: "session.expired" };
  }
  return {
    ok: true,
    claims: {
      sid: fromHex(parsed.sid),
      nonce: fromHex(parsed.nonce),
      secretDigest: fromHex(parsed.sd),
      akName: fromHex(parsed.ak),
      identity: fromHex(parsed.id),
      endorsement: {
        trust: parsed.tr,
        ekCertificateDigest: fromHex(parsed.ekd),
        anchors: parsed.anc === undefined ? undefined : fromHex(parsed.anc),
      },
      variant: parsed.var,
      expiresAt: parsed.exp,
    },
  };
}
