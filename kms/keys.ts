/**
 * Key derivation of the KMS. Every key the KMS hands out or uses is derived with
 * HKDF-SHA256 from the 32-byte master secret and its salt; the `info` string names the
 * purpose, the cluster and the object. The strings are defined here and nowhere else
 * (docs/kms.md repeats them):
 *
 * - disk key: `confidant/v1/disk/<cluster-id>/<disk-uuid>` (32 bytes, the LUKS2 passphrase)
 * - session-token key: `confidant/v1/session-token/<cluster-id>` (AES-256-GCM key)
 *
 * The cluster id and disk UUID are normalised to lower case before they enter the string.
 *
 * @module
 */
import { createSecretKey, hkdfSync, type KeyObject } from "node:crypto";
import { ConfidantError } from "../lib/errors.ts";
import { utf8 } from "../lib/bytes.ts";

/** Bytes of the master secret and of its salt. */
export const MASTER_SECRET_BYTES = 32;
/** Bytes of a derived disk key. */
export const DISK_KEY_BYTES = 32;

/** A cluster id: lower-case letters, digits and dashes, 1..63 characters. */
export const CLUSTER_ID_RE = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
/** A disk UUID in canonical 8-4-4-4-12 hex form (either case accepted, lower case used). */
export const DISK_UUID_RE =
  /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/** The master secret and its salt (both 32 bytes). Never leaves the KMS unencrypted. */
export interface MasterSecret {
  /** Cluster this secret belongs to; part of every derivation. */
  clusterId: string;
  /** 32 random bytes: HKDF input keying material. */
  secret: Uint8Array;
  /** 32 random bytes: HKDF salt. */
  salt: Uint8Array;
}

/** Info string of the key of one disk. */
export function diskKeyInfo(clusterId: string, diskUuid: string): string {
  checkClusterId(clusterId);
  if (!DISK_UUID_RE.test(diskUuid)) {
    throw new ConfidantError("kms.disk_uuid", "disk UUID must be canonical 8-4-4-4-12 hex");
  }
  return `confidant/v1/disk/${clusterId}/${diskUuid.toLowerCase()}`;
}

/** Info string of the key that seals session tokens. */
export function sessionKeyInfo(clusterId: string): string {
  checkClusterId(clusterId);
  return `confidant/v1/session-token/${clusterId}`;
}

function checkClusterId(id: string): void {
  if (!CLUSTER_ID_RE.test(id)) {
    throw new ConfidantError("kms.cluster_id", "cluster id must be 1-63 of [a-z0-9-]");
  }
}

/** Check sizes of a master secret; throws a ConfidantError naming what is wrong. */
export function checkMasterSecret(m: MasterSecret): void {
  checkClusterId(m.clusterId);
  if (m.secret.length !== MASTER_SECRET_BYTES || m.salt.length !== MASTER_SECRET_BYTES) {
    throw new ConfidantError("kms.master", "master secret and salt must be 32 bytes each");
  }
}

/** Make a fresh master secret for `clusterId`. */
export function generateMasterSecret(clusterId: string): MasterSecret {
  const m = {
    clusterId,
    secret: crypto.getRandomValues(new Uint8Array(MASTER_SECRET_BYTES)),
    salt: crypto.getRandomValues(new Uint8Array(MASTER_SECRET_BYTES)),
  };
  checkMasterSecret(m);
  return m;
}

/**
 * Derives keys from a master secret. The secret is held as a node:crypto secret KeyObject
 * (OpenSSL memory, never exported), and every derivation is one synchronous `hkdfSync`: the
 * hot path does no key parsing and awaits nothing. The promise-returning methods are the same
 * derivations for callers that await.
 */
export class KeyDeriver {
  private constructor(
    readonly clusterId: string,
    private readonly ikm: KeyObject,
    private readonly salt: Uint8Array,
  ) {}

  /** Import `m` (the caller may wipe `m.secret` afterwards). */
  static create(m: MasterSecret): Promise<KeyDeriver> {
    try {
      return Promise.resolve(KeyDeriver.createSync(m));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** {@link KeyDeriver.create} without the promise. */
  static createSync(m: MasterSecret): KeyDeriver {
    checkMasterSecret(m);
    return new KeyDeriver(m.clusterId, createSecretKey(m.secret), m.salt.slice());
  }

  /** HKDF-SHA256(master, salt, info) truncated to `bytes`, synchronously. */
  deriveSync(info: string, bytes: number): Uint8Array {
    return new Uint8Array(hkdfSync("sha256", this.ikm, this.salt, utf8(info), bytes));
  }

  /** HKDF-SHA256(master, salt, info) truncated to `bytes`. */
  derive(info: string, bytes: number): Promise<Uint8Array> {
    try {
      return Promise.resolve(this.deriveSync(info, bytes));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** The key of disk `diskUuid` (32 bytes), synchronously. */
  diskKeySync(diskUuid: string): Uint8Array {
    return this.deriveSync(diskKeyInfo(this.clusterId, diskUuid), DISK_KEY_BYTES);
  }

  /** The key of disk `diskUuid` (32 bytes). */
  diskKey(diskUuid: string): Promise<Uint8Array> {
    return this.derive(diskKeyInfo(this.clusterId, diskUuid), DISK_KEY_BYTES);
  }

  /** The AES-256-GCM key that seals session tokens, as a node:crypto secret KeyObject. */
  sessionKeyObject(): KeyObject {
    const raw = this.deriveSync(sessionKeyInfo(this.clusterId), 32);
    try {
      return createSecretKey(raw);
    } finally {
      raw.fill(0);
    }
  }

  /** The AES-256-GCM key that seals session tokens (Web Crypto, non-extractable). */
  async sessionKey(): Promise<CryptoKey> {
    const raw = this.deriveSync(sessionKeyInfo(this.clusterId), 32);
    try {
      return await crypto.subtle.importKey("raw", raw as BufferSource, "AES-GCM", false, [
        "encrypt",
        "decrypt",
      ]);
    } finally {
      raw.fill(0);
    }
  }
}
