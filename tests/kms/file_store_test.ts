/**
 * kms/file_store.ts enrolment under concurrency: of many concurrent enrolments of one disk
 * exactly one creates the record (create-if-absent) and all see that record; concurrent
 * enrolments of distinct disks (sharing grouped directory fsyncs) are all on disk when they
 * return, and no pending file is left behind.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { FileStore } from "../../kms/file_store.ts";
import type { DiskRecord } from "../../kms/store.ts";

const uuid = (i: number) => `00000000-0000-4000-8000-${i.toString(16).padStart(12, "0")}`;
const record = (u: string, identity: string): DiskRecord => ({
  version: 1,
  uuid: u,
  identity,
  nodeName: "n",
  role: "worker",
  enrolledAt: new Date(0).toISOString(),
  previous: [],
});

Deno.test("FileStore.enrollDisk() creates a disk once under concurrent enrolments", async () => {
  const dir = await Deno.makeTempDir({ prefix: "confidant-kms-store-" });
  try {
    const a = new FileStore(dir);
    const b = new FileStore(dir); // a second process's store on the same directory
    const ids = Array.from({ length: 20 }, (_, i) => i.toString(16).padStart(64, "0"));
    const rs = await Promise.all(
      ids.map((id, i) => (i % 2 ? a : b).enrollDisk(record(uuid(1), id))),
    );
    const created = rs.filter((r) => r.created);
    assert.equal(created.length, 1);
    for (const r of rs) assert.equal(r.record.identity, created[0].record.identity);
    assert.equal((await a.getDisk(uuid(1)))?.identity, created[0].record.identity);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("FileStore.enrollDisk() of many disks at once leaves every record and no pending file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "confidant-kms-store-" });
  try {
    const s = new FileStore(dir);
    const n = 64;
    const rs = await Promise.all(
      Array.from({ length: n }, (_, i) => s.enrollDisk(record(uuid(i), "ab".repeat(32)))),
    );
    assert.ok(rs.every((r) => r.created));
    const names: string[] = [];
    for await (const e of Deno.readDir(join(dir, "disks"))) names.push(e.name);
    assert.equal(names.length, n, names.filter((x) => !x.endsWith(".json")).join(","));
    assert.equal((await s.listDisks()).length, n);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
