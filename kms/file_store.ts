/**
 * {@link KmsStore} in a state directory (the embedded default):
 *
 *     DIR/master.json          sealed master secret (see master_at_rest.ts)
 *     DIR/disks/<uuid>.json    one record per enrolled disk
 *
 * Files are written with lib/atomic_write.ts (temp, fsync, rename). Enrolment is
 * create-if-absent across processes: the record is written to a temp file and hard-linked
 * to its final name, which fails if the name exists.
 *
 * @module
 */
import { join } from "node:path";
import { atomicWriteFile } from "../lib/atomic_write.ts";
import { ConfidantError } from "../lib/errors.ts";
import { DISK_UUID_RE } from "./keys.ts";
import { parseSealedMaster, type SealedMaster } from "./master_at_rest.ts";
import { type DiskRecord, diskRecordSchema, type KmsStore, parseDiskRecord } from "./store.ts";

const MAX_FILE = 64 * 1024;

async function readSmall(path: string): Promise<string | undefined> {
  let f: Deno.FsFile;
  try {
    f = await Deno.open(path, { read: true });
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
  try {
    const st = await f.stat();
    if (st.size > MAX_FILE) {
      throw new ConfidantError("kms.state", `${path} is larger than ${MAX_FILE} bytes`);
    }
    const buf = new Uint8Array(st.size);
    let off = 0;
    while (off < buf.length) {
      const n = await f.read(buf.subarray(off));
      if (n === null) break;
      off += n;
    }
    return new TextDecoder().decode(buf.subarray(0, off));
  } finally {
    f.close();
  }
}

function checkUuid(uuid: string): string {
  if (!DISK_UUID_RE.test(uuid)) throw new ConfidantError("kms.disk_uuid", "not a disk UUID");
  return uuid.toLowerCase();
}

/** State directory backend. */
export class FileStore implements KmsStore {
  readonly description: string;
  private lock: Promise<unknown> = Promise.resolve();

  constructor(readonly dir: string) {
    this.description = `file:${dir}`;
  }

  /** Make the directory layout (0700). */
  async ensureLayout(): Promise<void> {
    await Deno.mkdir(join(this.dir, "disks"), { recursive: true, mode: 0o700 });
  }

  private diskPath(uuid: string): string {
    return join(this.dir, "disks", `${checkUuid(uuid)}.json`);
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.lock.then(fn, fn);
    this.lock = next.catch(() => {});
    return next;
  }

  async loadMaster(): Promise<SealedMaster | undefined> {
    const text = await readSmall(join(this.dir, "master.json"));
    return text === undefined ? undefined : parseSealedMaster(text);
  }

  async createMaster(m: SealedMaster): Promise<boolean> {
    await this.ensureLayout();
    return await this.createExclusive(join(this.dir, "master.json"), JSON.stringify(m, null, 2));
  }

  /** Write `text` to `path` only if `path` does not exist (temp file + hard link). */
  private async createExclusive(path: string, text: string): Promise<boolean> {
    const rnd = crypto.getRandomValues(new Uint32Array(2)).join("");
    const pending = `${path}.${rnd}.pending`;
    await atomicWriteFile(pending, text + "\n", { mode: 0o600 });
    try {
      await Deno.link(pending, path);
      return true;
    } catch (e) {
      if (e instanceof Deno.errors.AlreadyExists) return false;
      throw e;
    } finally {
      await Deno.remove(pending).catch(() => {});
    }
  }

  async getDisk(uuid: string): Promise<DiskRecord | undefined> {
    const text = await readSmall(this.diskPath(uuid));
    return text === undefined ? undefined : parseDiskRecord(text);
  }

  async enrollDisk(record: DiskRecord): Promise<{ created: boolean; record: DiskRecord }> {
    const rec = diskRecordSchema.parse({ ...record, uuid: checkUuid(record.uuid) });
    await this.ensureLayout();
    const created = await this.createExclusive(this.diskPath(rec.uuid), JSON.stringify(rec));
    if (created) return { created, record: rec };
    const existing = await this.getDisk(rec.uuid);
    if (!existing) throw new ConfidantError("kms.state", "disk record vanished during enrolment");
    return { created: false, record: existing };
  }

  reassignDisk(uuid: string, identity: string, now: Date): Promise<DiskRecord> {
    return this.serial(async () => {
      const cur = await this.getDisk(uuid);
      if (!cur) throw new ConfidantError("kms.disk_unknown", `disk ${uuid} is not enrolled`);
      const next = diskRecordSchema.parse({
        ...cur,
        identity,
        previous: [...cur.previous, { identity: cur.identity, until: now.toISOString() }].slice(
          -100,
        ),
      });
      await atomicWriteFile(this.diskPath(uuid), JSON.stringify(next) + "\n", { mode: 0o600 });
      return next;
    });
  }

  async listDisks(): Promise<DiskRecord[]> {
    const out: DiskRecord[] = [];
    try {
      for await (const e of Deno.readDir(join(this.dir, "disks"))) {
        const m = /^([0-9a-f-]{36})\.json$/.exec(e.name);
        if (!e.isFile || !m) continue;
        const r = await this.getDisk(m[1]);
        if (r) out.push(r);
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    return out.sort((a, b) => a.uuid.localeCompare(b.uuid));
  }
}
