/**
 * The operator's recovery file: the master secret, its salt, the cluster name and ID,
 * encrypted under a passphrase, so that a cluster whose control plane is entirely lost can be
 * recovered (`confidant recover`).
 *
 * Format (JSON, version 1): `{version, clusterName, clusterId, kdf:{name:"scrypt", N, r, p,
 * salt}, cipher:"AES-256-GCM", iv, ciphertext}`. Key = scrypt(passphrase, salt 16 bytes,
 * N = 2^17, r = 8, p = 1, 32 bytes) — 128 MiB and a few hundred milliseconds per guess, the
 * parameters OWASP recommends for scrypt. AEAD additional data =
 * `confidant/v1/recovery/<clusterName>/<clusterId>`, so the clear-text name and ID cannot be
 * swapped. Reading accepts N a power of two from 2^14 to 2^20, scrypt's memory 128·N·r at most
 * {@link MAX_KDF_MEMORY} (256 MiB, twice the default) and p at most {@link MAX_KDF_P}, with
 * N·r·p at most four times the default's work, so a hostile file can ask for neither unbounded
 * memory nor minutes of CPU. The passphrase is never taken from argv (file or stdin).
 *
 * @module
 */
import { scrypt } from "node:crypto";
import { z } from "zod";
import { fromBase64, toBase64, utf8, wipe } from "../lib/bytes.ts";
import { ConfidantError, ParseError } from "../lib/errors.ts";
import { b64 } from "../kms/protocol.ts";
import { CLUSTER_ID_RE, type MasterSecret } from "../kms/keys.ts";
import { CLUSTER_ID_HEX_RE } from "./cluster_id.ts";

/** scrypt parameters written by {@link sealRecovery}. */
export const RECOVERY_KDF = { N: 1 << 17, r: 8, p: 1 } as const;
/** Most memory a recovery file may ask scrypt for: 128·N·r bytes (256 MiB). */
export const MAX_KDF_MEMORY = 256 * 1024 * 1024;
/** Largest scrypt parallelism accepted (p runs sequentially here: it multiplies the time). */
export const MAX_KDF_P = 4;
/** Largest N·r·p accepted (four times the default's). */
const MAX_KDF_WORK = 4 * RECOVERY_KDF.N * RECOVERY_KDF.r * RECOVERY_KDF.p;
/** Shortest passphrase accepted (characters). */
export const MIN_PASSPHRASE = 12;
/** Largest recovery file read (bytes). */
export const MAX_RECOVERY_BYTES = 16 * 1024;
/** What `confidant init` prints about the recovery file. */
export const RECOVERY_WARNING =
  "WARNING: the recovery file holds the cluster's master secret, encrypted only under your " +
  "passphrase. Anyone with the file and the passphrase can derive every node's disk key. Keep " +
  "it offline, apart from the passphrase; without both, a cluster whose control plane is lost " +
  "cannot be recovered.";

const fileSchema = z.strictObject({
  version: z.literal(1),
  clusterName: z.string().regex(CLUSTER_ID_RE),
  clusterId: z.string().regex(CLUSTER_ID_HEX_RE),
  kdf: z.strictObject({
    name: z.literal("scrypt"),
    N: z.number().int().min(1 << 14).max(1 << 20).refine((n) => (n & (n - 1)) === 0, {
      error: "N must be a power of two",
    }),
    r: z.number().int().min(1).max(32),
    p: z.number().int().min(1).max(MAX_KDF_P),
    salt: b64(16, 16),
  }).refine((k) => 128 * k.N * k.r <= MAX_KDF_MEMORY, {
    error: `scrypt memory 128·N·r must be at most ${MAX_KDF_MEMORY} bytes`,
  }).refine((k) => k.N * k.r * k.p <= MAX_KDF_WORK, {
    error: "scrypt work N·r·p is too large",
  }),
  cipher: z.literal("AES-256-GCM"),
  iv: b64(12, 12),
  ciphertext: b64(1024, 64),
});
/** A recovery file. */
export type RecoveryFile = z.infer<typeof fileSchema>;

const plainSchema = z.strictObject({ masterSecret: b64(32, 32), salt: b64(32, 32) });

/** The contents of an opened recovery file. Secret. */
export interface Recovered {
  master: MasterSecret;
  /** Cluster ID recorded with it. */
  clusterId: string;
}

function kdf(
  passphrase: Uint8Array,
  salt: Uint8Array,
  p: { N: number; r: number; p: number },
): Promise<Uint8Array> {
  return new Promise((resolve, reject) =>
    scrypt(
      passphrase,
      salt,
      32,
      { N: p.N, r: p.r, p: p.p, maxmem: 256 * p.N * p.r + 1024 * 1024 },
      (e, k) => e ? reject(e) : resolve(new Uint8Array(k)),
    )
  );
}

function checkPassphrase(passphrase: Uint8Array): void {
  if (new TextDecoder().decode(passphrase).length < MIN_PASSPHRASE) {
    throw new ConfidantError(
      "cluster.passphrase",
      `the recovery passphrase must be at least ${MIN_PASSPHRASE} characters`,
    );
  }
}

async function aesKey(raw: Uint8Array): Promise<CryptoKey> {
  try {
    return await crypto.subtle.importKey("raw", raw as BufferSource, "AES-GCM", false, [
      "encrypt",
      "decrypt",
    ]);
  } finally {
    wipe(raw);
  }
}

const aadOf = (name: string, id: string) => utf8(`confidant/v1/recovery/${name}/${id}`);

/** Encrypt `master` (with its cluster ID) under `passphrase`; returns the file's JSON text. */
export async function sealRecovery(
  master: MasterSecret,
  clusterId: string,
  passphrase: Uint8Array,
  params: { N: number; r: number; p: number } = RECOVERY_KDF,
): Promise<string> {
  checkPassphrase(passphrase);
  const salt = crypto.getRandomValues(new Uint8Array(16));
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const key = await aesKey(await kdf(passphrase, salt, params));
  const pt = utf8(JSON.stringify({
    masterSecret: toBase64(master.secret),
    salt: toBase64(master.salt),
  }));
  try {
    const ct = new Uint8Array(
      await crypto.subtle.encrypt(
        {
          name: "AES-GCM",
          iv: iv as BufferSource,
          additionalData: aadOf(master.clusterId, clusterId) as BufferSource,
        },
        key,
        pt as BufferSource,
      ),
    );
    const file: RecoveryFile = {
      version: 1,
      clusterName: master.clusterId,
      clusterId,
      kdf: { name: "scrypt", ...params, salt: toBase64(salt) },
      cipher: "AES-256-GCM",
      iv: toBase64(iv),
      ciphertext: toBase64(ct),
    };
    return JSON.stringify(file, null, 2) + "\n";
  } finally {
    pt.fill(0);
  }
}

/** Parse a recovery file's text (hostile input: a malformed file is a ParseError). */
export function parseRecoveryFile(text: string): RecoveryFile {
  if (text.length > MAX_RECOVERY_BYTES) throw new ParseError("recovery", "the file is too large");
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new ParseError("recovery", "the recovery file is not JSON");
  }
  const r = fileSchema.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new ParseError("recovery", `not a recovery file: ${i.path.join(".")}: ${i.message}`);
  }
  return r.data;
}

/** Decrypt a recovery file; a wrong passphrase or a tampered file is `cluster.recovery_open`. */
export async function openRecovery(text: string, passphrase: Uint8Array): Promise<Recovered> {
  const f = parseRecoveryFile(text);
  const key = await aesKey(await kdf(passphrase, fromBase64(f.kdf.salt), f.kdf));
  let pt: Uint8Array;
  try {
    pt = new Uint8Array(
      await crypto.subtle.decrypt(
        {
          name: "AES-GCM",
          iv: fromBase64(f.iv) as BufferSource,
          additionalData: aadOf(f.clusterName, f.clusterId) as BufferSource,
        },
        key,
        fromBase64(f.ciphertext) as BufferSource,
      ),
    );
  } catch {
    throw new ConfidantError(
      "cluster.recovery_open",
      "the recovery file does not open: wrong passphrase, or the file was altered",
    );
  }
  try {
    const p = plainSchema.parse(JSON.parse(new TextDecoder().decode(pt)));
    return {
      master: {
        clusterId: f.clusterName,
        secret: fromBase64(p.masterSecret),
        salt: fromBase64(p.salt),
      },
      clusterId: f.clusterId,
    };
  } catch (e) {
    throw new ParseError("recovery", "the recovery file's contents are malformed", { cause: e });
  } finally {
    pt.fill(0);
  }
}
