/**
 * {@link KmsStore} in a state directory (the embedded default):
 *
 *     DIR/master.json          sealed master secret (see master_at_rest.ts)
 *     DIR/disks/<uuid>.json    one record per enrolled disk
 *
 * Files are written with lib/atomic_write.ts (temp, fsync, rename). Enrolment is
 * create-if-absent across processes: the record is written to a pending file (fsync'd) and
 * hard-linked to its final name, which fails if the name exists; then the directory is
 * fsync'd, so the record is durable before `enrollDisk` returns (and so before any release).
 * That directory fsync is a group commit: enrolments that arrive while one is in flight share
 * the next one, so a storm of first boots costs one directory fsync per batch, not per disk.
 *
 * @module
 */
import { dirname, join } from "node:path";
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

/**
 * Group commit of a directory's fsync: callers that ask while one fsync is in flight share
 * the next one (which starts when the current one ends), so every caller's entry is durable
 * when its promise resolves, and N concurrent callers cost about two fsyncs.
 */
class DirectorySync {
  private running?: Promise<void>;
  private next?: Promise<void>;
  constructor(readonly dir: string) {}

  private async once(): Promise<void> {
    const d = await Deno.open(this.dir, { read: true });
    try {
      await d.sync();
    } finally {
      d.close();
    }
  }

  /** Resolve once an fsync of the directory that started after this call has completed. */
  sync(): Promise<void> {
    if (!this.running) {
      const r = this.once().finally(() => {
        if (this.running === r) this.running = undefined;
      });
      this.running = r;
      return r;
    }
    this.next ??= this.running.catch(() => {}).then(() => {
      this.next = undefined;
      return this.sync();
    });
    return this.next;
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
  private readonly dirSyncs = new Map<string, DirectorySync>();

  constructor(readonly dir: string) {
    this.description = `file:${dir}`;
  }

  private laidOut = false;

  /** Make the directory layout (0700); once per store object. */
  async ensureLayout(): Promise<void> {
    if (this.laidOut) return;
    await Deno.mkdir(join(this.dir, "disks"), { recursive: true, mode: 0o700 });
    this.laidOut = true;
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

  /**
   * Write `text` to `path` only if `path` does not exist (pending file written and fsync'd,
   * hard link, directory fsync shared with concurrent callers); durable when it returns true.
   */
  private async createExclusive(path: string, text: string): Promise<boolean> {
    const rnd = crypto.getRandomValues(new Uint32Array(2)).join("");
    const pending = `${path}.${rnd}.pending`;
    const bytes = new TextEncoder().encode(text + "\n");
    const f = await Deno.open(pending, { write: true, createNew: true, mode: 0o600 });
    let created = false;
    try {
      try {
        let off = 0;
        while (off < bytes.length) off += await f.write(bytes.subarray(off));
        await f.sync();
      } finally {
        f.close();
      }
      await Deno.link(pending, path);
      created = true;
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
    } finally {
      await Deno.remove(pending).catch(() => {});
    }
    if (created) {
      const dir = dirname(path);
      let ds = this.dirSyncs.get(dir);
      if (!ds) this.dirSyncs.set(dir, ds = new DirectorySync(dir));
      try {
        await ds.sync();
      } catch {
        // Some file systems do not allow fsync on a directory (as lib/atomic_write.ts).
      }
    }
    return created;
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
