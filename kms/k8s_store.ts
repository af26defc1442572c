/**
 * {@link KmsStore} in Kubernetes Secrets, so several KMS replicas share state:
 *
 * - `confidant-kms-master` (key `master.json`): the sealed master secret, the same
 *   document as in a state directory (still encrypted under the KEK);
 * - `confidant-disk-<uuid>` (key `record.json`), labelled `confidant.dev/kind=disk`: one
 *   per enrolled disk.
 *
 * Enrolment is a create (the API refuses a second create of the same name with 409), so two
 * replicas racing to enrol a disk cannot both win; reassignment is a read-modify-replace
 * with the read resourceVersion, retried on conflict.
 *
 * @module
 */
import { fromBase64, toBase64, utf8 } from "../lib/bytes.ts";
import { ConfidantError } from "../lib/errors.ts";
import { DISK_UUID_RE } from "./keys.ts";
import { parseSealedMaster, type SealedMaster } from "./master_at_rest.ts";
import type { SecretObject, SecretsApi } from "./kube.ts";
import { type DiskRecord, diskRecordSchema, type KmsStore, parseDiskRecord } from "./store.ts";

/** Name of the master-secret Secret. */
export const MASTER_SECRET_NAME = "confidant-kms-master";
/** Label put on every Secret the KMS owns. */
export const MANAGED_LABEL = { "app.kubernetes.io/managed-by": "confidant-kms" };
const DISK_SELECTOR = "confidant.dev/kind=disk";

/** Name of the Secret of one disk. */
export function diskSecretName(uuid: string): string {
  if (!DISK_UUID_RE.test(uuid)) throw new ConfidantError("kms.disk_uuid", "not a disk UUID");
  return `confidant-disk-${uuid.toLowerCase()}`;
}

function text(s: SecretObject, key: string): string {
  const v = s.data[key];
  if (typeof v !== "string") {
    throw new ConfidantError("kms.state", `Secret ${s.namespace}/${s.name} has no ${key}`);
  }
  return new TextDecoder().decode(fromBase64(v, key));
}

/** Kubernetes Secrets backend. */
export class KubeStore implements KmsStore {
  readonly description: string;
  constructor(private readonly api: SecretsApi, readonly namespace: string) {
    this.description = `kubernetes:${namespace}`;
  }

  async loadMaster(): Promise<SealedMaster | undefined> {
    const s = await this.api.get(this.namespace, MASTER_SECRET_NAME);
    return s ? parseSealedMaster(text(s, "master.json")) : undefined;
  }

  createMaster(m: SealedMaster): Promise<boolean> {
    return this.api.create({
      name: MASTER_SECRET_NAME,
      namespace: this.namespace,
      type: "Opaque",
      labels: { ...MANAGED_LABEL, "confidant.dev/kind": "master" },
      data: { "master.json": toBase64(utf8(JSON.stringify(m))) },
    });
  }

  private diskSecret(rec: DiskRecord, resourceVersion?: string): SecretObject {
    return {
      name: diskSecretName(rec.uuid),
      namespace: this.namespace,
      type: "Opaque",
      labels: { ...MANAGED_LABEL, "confidant.dev/kind": "disk" },
      data: { "record.json": toBase64(utf8(JSON.stringify(rec))) },
      resourceVersion,
    };
  }

  private async readDisk(uuid: string): Promise<{ rec: DiskRecord; rv?: string } | undefined> {
    const s = await this.api.get(this.namespace, diskSecretName(uuid));
    return s ? { rec: parseDiskRecord(text(s, "record.json")), rv: s.resourceVersion } : undefined;
  }

  async getDisk(uuid: string): Promise<DiskRecord | undefined> {
    return (await this.readDisk(uuid))?.rec;
  }

  async enrollDisk(record: DiskRecord): Promise<{ created: boolean; record: DiskRecord }> {
    const rec = diskRecordSchema.parse({ ...record, uuid: record.uuid.toLowerCase() });
    if (await this.api.create(this.diskSecret(rec))) return { created: true, record: rec };
    const existing = await this.getDisk(rec.uuid);
    if (!existing) throw new ConfidantError("kms.state", "disk record vanished during enrolment");
    return { created: false, record: existing };
  }

  async reassignDisk(uuid: string, identity: string, now: Date): Promise<DiskRecord> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const cur = await this.readDisk(uuid);
      if (!cur) throw new ConfidantError("kms.disk_unknown", `disk ${uuid} is not enrolled`);
      const next = diskRecordSchema.parse({
        ...cur.rec,
        identity,
        previous: [...cur.rec.previous, { identity: cur.rec.identity, until: now.toISOString() }]
          .slice(-100),
      });
      if (await this.api.update(this.diskSecret(next, cur.rv))) return next;
    }
    throw new ConfidantError("kms.state", `disk ${uuid} kept changing; reassignment gave up`);
  }

  async listDisks(): Promise<DiskRecord[]> {
    const list = await this.api.list(this.namespace, DISK_SELECTOR);
    return list.map((s) => parseDiskRecord(text(s, "record.json"))).sort((a, b) =>
      a.uuid.localeCompare(b.uuid)
    );
  }
}
