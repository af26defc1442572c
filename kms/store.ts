/**
 * The KMS's persistent state behind one small interface: the sealed master secret and one
 * record per enrolled disk. Two backends implement it: a state directory (embedded default,
 * {@link FileStore} in file_store.ts) and Kubernetes Secrets (several replicas,
 * k8s_store.ts). Both make enrolment create-if-absent, so two racing enrolments of the same
 * disk cannot both win.
 *
 * @module
 */
import { z } from "zod";
import { ParseError } from "../lib/errors.ts";
import { DISK_UUID_RE } from "./keys.ts";
import type { SealedMaster } from "./master_at_rest.ts";

/** A disk's enrolment: which node identity may receive its key. */
export const diskRecordSchema = z.object({
  version: z.literal(1),
  uuid: z.string().regex(DISK_UUID_RE),
  /** SHA-256 of the enrolled node's EK SubjectPublicKeyInfo, hex. */
  identity: z.string().regex(/^[0-9a-f]{64}$/),
  nodeName: z.string().max(253),
  role: z.enum(["worker", "control-plane"]),
  enrolledAt: z.string().max(40),
  /** Earlier identities, newest last (set by `kms disks reassign`). */
  previous: z.array(z.object({ identity: z.string(), until: z.string() }).strict()).max(100)
    .default([]),
}).strict();
/** A disk's enrolment. */
export type DiskRecord = z.infer<typeof diskRecordSchema>;

/** Parse a stored disk record (a ParseError when malformed). */
export function parseDiskRecord(text: string): DiskRecord {
  try {
    return diskRecordSchema.parse(JSON.parse(text));
  } catch (e) {
    throw new ParseError("kms_disk_record", "a stored disk record is malformed", { cause: e });
  }
}

/** Persistent state of the KMS. */
export interface KmsStore {
  /** A name for logs (`file:/path`, `kubernetes:ns`). */
  readonly description: string;
  /** The sealed master secret, or undefined before `kms init`. */
  loadMaster(): Promise<SealedMaster | undefined>;
  /** Store the sealed master secret if none exists; false when one already exists. */
  createMaster(m: SealedMaster): Promise<boolean>;
  /** The record of a disk. */
  getDisk(uuid: string): Promise<DiskRecord | undefined>;
  /**
   * Enrol a disk if it has no record yet. Returns the record in force afterwards and
   * whether this call created it (false: someone else's record, possibly from a race).
   */
  enrollDisk(record: DiskRecord): Promise<{ created: boolean; record: DiskRecord }>;
  /** Move a disk to `identity`; throws `kms.disk_unknown` for an unenrolled disk. */
  reassignDisk(uuid: string, identity: string, now: Date): Promise<DiskRecord>;
  /** Every disk record. */
  listDisks(): Promise<DiskRecord[]>;
}
