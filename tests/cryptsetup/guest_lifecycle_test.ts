/**
 * The state-disk lifecycle in a real Linux guest (QEMU, TCG): dm-crypt, dm-integrity,
 * mkfs.ext4 and mount on virtio disks that are files on the host, so the host can
 * inspect and tamper with them between boots. Two boots:
 *
 * 1. disk `a`: power cuts after format-header and keyslot-change, then first boot
 *    formats; a marker file is written. Disk `i` (integrity): power cut after
 *    format-header, left as it is. Plus the first-boot benchmark on two blank disks.
 * 2. (host: copy `a` and tamper its header; make ext4 on `e`; check `i`'s journal)
 *    `a` refuses a wrong key, then opens with the KMS key and the marker is there;
 *    the tampered copy and the ext4 disk are refused and unchanged; `i` recovers from
 *    the cut, its real integrity header passes the whitelist, reopens with its marker.
 *
 * The guest side is tests/cryptsetup/_guest_lifecycle.ts.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { FileBlockDevice } from "../../cryptsetup/block_device.ts";
import {
  integrityMetadataEnd,
  parseIntegritySuperblock,
  SUPERBLOCK_BYTES,
} from "../../cryptsetup/integrity_superblock.ts";
import { decide, observeDisk } from "../../cryptsetup/lifecycle.ts";
import { DATA_OFFSET } from "../../cryptsetup/whitelist.ts";
import { runInGuest } from "../_support/qemu.ts";
import { fileHash, rewriteHeaderJson, run } from "./_tools.ts";

const MiB = 1024 * 1024;
const cluster = "prod-1";

interface StepResult {
  i: number;
  op: string;
  disk: string;
  ok: boolean;
  ms: number;
  code?: string;
  message?: string;
  // deno-lint-ignore no-explicit-any
  [k: string]: any;
}

async function blank(path: string, size: number): Promise<string> {
  const f = await Deno.open(path, { create: true, write: true });
  await f.truncate(size);
  f.close();
  return path;
}

async function boot(
  plan: Record<string, unknown>[],
  disks: Record<string, string>,
  keys: Uint8Array,
): Promise<StepResult[]> {
  const r = await runInGuest({
    script: "tests/cryptsetup/_guest_lifecycle.ts",
    args: [JSON.stringify(plan)],
    stdin: keys,
    disks: Object.entries(disks).map(([serial, path]) => ({ path, serial })),
    memoryMiB: 1024,
    timeoutMs: 420_000,
  });
  const lines = r.stdout.trim().split("\n").filter((l) => l.startsWith("{"));
  const out = lines.map((l) => JSON.parse(l) as StepResult);
  assert.equal(
    out.length,
    plan.length,
    `guest ran ${out.length} of ${plan.length} steps:\n` +
      `${r.stdout}\n${r.stderr}\n${r.console.slice(-3000)}`,
  );
  console.log(`guest boot: ${r.elapsedMs} ms`);
  return out;
}

function ok(r: StepResult): StepResult {
  assert.ok(r.ok, `step ${r.i} ${r.op} ${r.disk} failed: ${r.code}: ${r.message}`);
  return r;
}

function refused(r: StepResult, code: string): void {
  assert.equal(r.ok, false, `step ${r.i} ${r.op} ${r.disk} should have been refused`);
  assert.equal(r.code, code, `step ${r.i}: ${r.message}`);
}

async function decisionFor(path: string): Promise<string> {
  const dev = await FileBlockDevice.open(path);
  try {
    const cfg = { cluster, integrity: true };
    const d = decide(await observeDisk(dev, cfg), cfg);
    return d.action === "refuse" ? d.code : d.action;
  } finally {
    dev.close();
  }
}

async function patch(path: string, offset: number, bytes: Uint8Array): Promise<void> {
  const f = await Deno.open(path, { write: true });
  try {
    await f.seek(offset, Deno.SeekMode.Start);
    await f.write(bytes);
  } finally {
    f.close();
  }
}

/**
 * On copies of the real image an integrity format cut after format-header left:
 * one byte of "data" after the journal makes it not ours; a damaged header over the
 * untouched journal is formatted again, over data it is refused.
 */
async function checkIntegrityCutVariants(image: string, dir: string): Promise<void> {
  const dev = await FileBlockDevice.open(image);
  const sb = parseIntegritySuperblock(await dev.read(DATA_OFFSET, SUPERBLOCK_BYTES));
  dev.close();
  const end = DATA_OFFSET + integrityMetadataEnd(sb);
  const copy = join(dir, "variant.img");
  const cases: [string, [number, Uint8Array][], string][] = [
    ["a byte after the journal", [[end + 4096, new Uint8Array([1])]], "luks.not_ours"],
    [
      "both header copies damaged",
      [[100, new Uint8Array([1])], [16384 + 100, new Uint8Array([1])]],
      "format",
    ],
    [
      "damaged headers over a used data area",
      [[100, new Uint8Array([1])], [16384 + 100, new Uint8Array([1])], [
        end + 1024,
        new Uint8Array([1]),
      ]],
      "luks.damaged_header",
    ],
    ["a foreign tag size", [[DATA_OFFSET + 10, new Uint8Array([16])]], "luks.not_ours"],
  ];
  for (const [name, patches, want] of cases) {
    await Deno.copyFile(image, copy);
    for (const [off, b] of patches) await patch(copy, off, b);
    assert.equal(await decisionFor(copy), want, name);
  }
  await Deno.remove(copy);
}

Deno.test({
  name: "state disk in a real guest: first boot, reboot, wrong key, tampering, power cuts",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const dir = await Deno.makeTempDir({ prefix: "confidant-guest-disk-" });
    try {
      const a = await blank(join(dir, "a.img"), 64 * MiB);
      const i = await blank(join(dir, "i.img"), 64 * MiB);
      const bPlain = await blank(join(dir, "bp.img"), 128 * MiB);
      const bInteg = await blank(join(dir, "bi.img"), 128 * MiB);
      // key 0 is the KMS key, key 1 a wrong one
      const keys = crypto.getRandomValues(new Uint8Array(64));
      const unlock = (disk: string, key: number, more: Record<string, unknown> = {}) => ({
        op: "unlock",
        disk,
        key,
        cluster,
        integrity: disk === "i",
        ...more,
      });

      await t.step("boot 1: power cuts, first boot, marker; integrity cut", async () => {
        const r = await boot(
          [
            unlock("a", 0, { crashAfter: "format-header" }),
            { op: "close", disk: "a" },
            unlock("a", 0, { crashAfter: "keyslot-change" }),
            { op: "close", disk: "a" },
            unlock("a", 0),
            { op: "write", disk: "a", text: "survives reboots" },
            { op: "close", disk: "a" },
            unlock("i", 0, { crashAfter: "format-header" }),
            { op: "close", disk: "i" },
            { op: "bench", disk: "bp", integrity: false },
            { op: "bench", disk: "bi", integrity: true },
          ],
          { a, i, bp: bPlain, bi: bInteg },
          keys,
        );
        refused(r[0], "test.crash");
        assert.equal(ok(r[1]).active, false);
        refused(r[2], "test.crash");
        ok(r[3]);
        assert.equal(ok(r[4]).action, "formatted");
        assert.equal(r[4].mapper, "/dev/mapper/state");
        assert.equal(r[4].reason, "token fresh: the disk was never keyed");
        ok(r[5]);
        assert.equal(ok(r[6]).active, false);
        refused(r[7], "test.crash");
        ok(r[8]);
        for (const b of [r[9], r[10]]) {
          ok(b);
          console.log(
            `first boot integrity=${b.integrity}: ${b.ms} ms for ${b.bytes / MiB} MiB ` +
              `(${Math.round(b.msPerGiB)} ms/GiB)`,
          );
        }
      });

      const tampered = join(dir, "t.img");
      const ext4 = join(dir, "e.img");
      const hashes: Record<string, string> = {};
      await t.step("host: the disks are as the guest left them; tamper and make ext4", async () => {
        // a is keyed for prod-1 and passes the whitelist
        const devA = await FileBlockDevice.open(a);
        try {
          const obs = await observeDisk(devA, { cluster, integrity: false });
          assert.equal(obs.token?.state, "keyed");
          assert.ok(obs.whitelist?.ok, JSON.stringify(obs.whitelist));
          assert.equal(decide(obs, { cluster, integrity: false }).action, "open");
        } finally {
          devA.close();
        }
        // i: header without token or keyslot, superblock and journal, blank after the journal
        const devI = await FileBlockDevice.open(i);
        try {
          const obs = await observeDisk(devI, { cluster, integrity: true });
          assert.equal(obs.tokenCount, 0);
          assert.equal(obs.keyslotCount, 0);
          const sb = parseIntegritySuperblock(await devI.read(DATA_OFFSET, SUPERBLOCK_BYTES));
          assert.equal(sb.tagSize, 32);
          const end = DATA_OFFSET + integrityMetadataEnd(sb);
          assert.equal(obs.integrity?.journalEnd, end);
          // the computed journal end is exact: its last sector holds a commit id, then zeros
          assert.ok((await devI.read(end - 512, 512)).some((x) => x !== 0));
          assert.ok((await devI.read(end, MiB)).every((x) => x === 0));
          assert.deepEqual(decide(obs, { cluster, integrity: true }), {
            action: "format",
            reason: "interrupted format: header and dm-integrity journal without token or keyslot",
          });
        } finally {
          devI.close();
        }
        await checkIntegrityCutVariants(i, dir);
        await Deno.copyFile(a, tampered);
        await rewriteHeaderJson(tampered, (m) => {
          m.segments["0"].encryption = "aes-cbc-essiv:sha256";
        });
        assert.equal((await run("cryptsetup", ["isLuks", tampered])).code, 0);
        await blank(ext4, 64 * MiB);
        const mk = await run("mkfs.ext4", ["-q", "-F", ext4]);
        assert.equal(mk.code, 0, mk.stderr);
        hashes.t = await fileHash(tampered);
        hashes.e = await fileHash(ext4);
      });

      await t.step("boot 2: reboot opens, wrong key, refusals, integrity recovery", async () => {
        const r = await boot(
          [
            unlock("a", 1),
            unlock("a", 0),
            { op: "read", disk: "a" },
            { op: "close", disk: "a" },
            unlock("t", 0),
            unlock("e", 0),
            unlock("i", 0),
            { op: "status", disk: "i", cluster, integrity: true },
            { op: "write", disk: "i", text: "integrity marker" },
            { op: "close", disk: "i" },
            unlock("i", 0),
            { op: "read", disk: "i" },
            { op: "close", disk: "i" },
          ],
          { a, t: tampered, e: ext4, i },
          keys,
        );
        refused(r[0], "luks.wrong_key");
        assert.equal(ok(r[1]).action, "opened");
        assert.equal(ok(r[2]).text, "survives reboots");
        ok(r[3]);
        refused(r[4], "luks.whitelist");
        assert.match(r[4].message!, /segments\.0\.encryption/);
        refused(r[5], "disk.not_blank");
        assert.equal(ok(r[6]).action, "formatted");
        assert.match(r[6].reason, /dm-integrity journal/);
        const st = ok(r[7]);
        assert.deepEqual(st.status.whitelist, { ok: true, failures: [] });
        assert.equal(st.status.token.state, "keyed");
        assert.equal(st.status.token.integrity, true);
        assert.deepEqual(st.json.segments["0"].integrity, {
          type: "hmac(sha256)",
          journal_encryption: "none",
          journal_integrity: "none",
        });
        assert.equal(
          Object.values(st.json.keyslots as Record<string, { key_size: number }>)[0]
            .key_size,
          96,
        );
        ok(r[8]);
        ok(r[9]);
        assert.equal(ok(r[10]).action, "opened");
        assert.equal(ok(r[11]).text, "integrity marker");
        assert.equal(ok(r[12]).active, false);
        // refusals changed no byte
        assert.equal(await fileHash(tampered), hashes.t);
        assert.equal(await fileHash(ext4), hashes.e);
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
