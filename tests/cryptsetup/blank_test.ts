import assert from "node:assert/strict";
import { crc32 } from "node:zlib";
import { checkBlank, findSignatures, sampleOffsets } from "../../cryptsetup/blank.ts";
import { FileBlockDevice, MemoryBlockDevice } from "../../cryptsetup/block_device.ts";
import { ConfidantError } from "../../lib/errors.ts";
import { run, tempImage } from "./_tools.ts";

const MiB = 1024 * 1024;

async function withImage(fn: (path: string) => Promise<void>, size = 64 * MiB): Promise<void> {
  const { path, dir } = await tempImage(size);
  try {
    await fn(path);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function blankOf(path: string) {
  const dev = await FileBlockDevice.open(path);
  try {
    return await checkBlank(dev);
  } finally {
    dev.close();
  }
}

async function blkidType(path: string, tag: "TYPE" | "PTTYPE"): Promise<string> {
  return (await run("blkid", ["-p", "-o", "value", "-s", tag, path])).stdout.trim();
}

/** A minimal valid GPT (protective MBR, primary and backup headers, one partition). */
function writeGpt(bytes: Uint8Array): void {
  const lbas = bytes.length / 512;
  const le = new DataView(bytes.buffer);
  // protective MBR
  bytes[446 + 4] = 0xee;
  le.setUint32(446 + 8, 1, true);
  le.setUint32(446 + 12, Math.min(lbas - 1, 0xffffffff), true);
  bytes[510] = 0x55;
  bytes[511] = 0xaa;
  const entries = new Uint8Array(128 * 128);
  const ev = new DataView(entries.buffer);
  // one Linux filesystem partition: type GUID 0FC63DAF-8483-4772-8E79-3D69D8477DE4
  entries.set([
    0xaf,
    0x3d,
    0xc6,
    0x0f,
    0x83,
    0x84,
    0x72,
    0x47,
    0x8e,
    0x79,
    0x3d,
    0x69,
    0xd8,
    0x47,
    0x7d,
    0xe4,
  ], 0);
  entries.set(crypto.getRandomValues(new Uint8Array(16)), 16);
  ev.setBigUint64(32, 2048n, true);
  ev.setBigUint64(40, BigInt(lbas - 34), true);
  const entriesCrc = crc32(entries);
  const header = (self: number, alt: number, entriesLba: number) => {
    const h = new Uint8Array(92);
    const v = new DataView(h.buffer);
    h.set(new TextEncoder().encode("EFI PART"), 0);
    v.setUint32(8, 0x00010000, true);
    v.setUint32(12, 92, true);
    v.setBigUint64(24, BigInt(self), true);
    v.setBigUint64(32, BigInt(alt), true);
    v.setBigUint64(40, 34n, true);
    v.setBigUint64(48, BigInt(lbas - 34), true);
    h.set(crypto.getRandomValues(new Uint8Array(16)), 56);
    v.setBigUint64(72, BigInt(entriesLba), true);
    v.setUint32(80, 128, true);
    v.setUint32(84, 128, true);
    v.setUint32(88, entriesCrc, true);
    v.setUint32(16, crc32(h), true);
    return h;
  };
  bytes.set(header(1, lbas - 1, 2), 512);
  bytes.set(entries, 1024);
  bytes.set(entries, (lbas - 33) * 512);
  bytes.set(header(lbas - 1, 1, lbas - 33), (lbas - 1) * 512);
}

Deno.test("checkBlank() accepts an all-zero image", async () => {
  await withImage(async (path) => {
    const r = await blankOf(path);
    assert.deepEqual(r, { blank: true, reasons: [], signatures: [] });
  });
});

Deno.test("checkBlank() finds ext4 made by mkfs.ext4 (blkid agrees)", async () => {
  await withImage(async (path) => {
    const mk = await run("mkfs.ext4", ["-q", "-F", path]);
    assert.equal(mk.code, 0, mk.stderr);
    assert.equal(await blkidType(path, "TYPE"), "ext4");
    const r = await blankOf(path);
    assert.equal(r.blank, false);
    assert.ok(r.signatures.includes("ext2/3/4"), JSON.stringify(r));
  });
});

Deno.test("checkBlank() finds swap made by mkswap (blkid agrees)", async () => {
  await withImage(async (path) => {
    assert.equal((await run("mkswap", [path])).code, 0);
    assert.equal(await blkidType(path, "TYPE"), "swap");
    const r = await blankOf(path);
    assert.equal(r.blank, false);
    assert.ok(r.signatures.includes("swap"), JSON.stringify(r));
  });
});

Deno.test("checkBlank() finds a GPT, and its backup alone (blkid agrees on the full one)", async () => {
  await withImage(async (path) => {
    const bytes = await Deno.readFile(path);
    writeGpt(bytes);
    await Deno.writeFile(path, bytes);
    assert.equal(await blkidType(path, "PTTYPE"), "gpt");
    const r = await blankOf(path);
    assert.equal(r.blank, false);
    assert.ok(r.signatures.includes("gpt") && r.signatures.includes("gpt-backup"));
    // the primary wiped, the backup at the end still makes the disk not blank
    bytes.fill(0, 0, MiB);
    await Deno.writeFile(path, bytes);
    const r2 = await blankOf(path);
    assert.equal(r2.blank, false);
    assert.deepEqual(r2.signatures, ["gpt-backup"]);
  });
});

Deno.test("checkBlank() refuses random data anywhere it samples", async (t) => {
  await t.step("whole disk random", async () => {
    await withImage(async (path) => {
      const bytes = await Deno.readFile(path);
      for (let o = 0; o < bytes.length; o += 65536) {
        crypto.getRandomValues(bytes.subarray(o, o + 65536));
      }
      await Deno.writeFile(path, bytes);
      assert.equal((await blankOf(path)).blank, false);
    });
  });
  for (const off of [...sampleOffsets(0, 64 * MiB).filter((_, i) => i % 16 === 3), 64 * MiB - 1]) {
    await t.step(`one byte at ${off}`, async () => {
      const dev = new MemoryBlockDevice(64 * MiB);
      dev.bytes[off] = 0x80;
      const r = await checkBlank(dev);
      assert.equal(r.blank, false);
    });
  }
});

Deno.test("findSignatures() names LUKS, LVM2, XFS and btrfs magics", () => {
  const head = new Uint8Array(MiB);
  const tail = new Uint8Array(MiB);
  head.set([0x4c, 0x55, 0x4b, 0x53, 0xba, 0xbe], 0);
  head.set(new TextEncoder().encode("LABELONE"), 512);
  head.set(new TextEncoder().encode("_BHRfS_M"), 65600);
  assert.deepEqual(findSignatures(head, tail).sort(), ["btrfs", "luks", "lvm2"]);
  const x = new Uint8Array(MiB);
  x.set(new TextEncoder().encode("XFSB"), 0);
  assert.deepEqual(findSignatures(x, tail), ["xfs"]);
});

Deno.test("checkBlank() refuses disks smaller than 32 MiB", async () => {
  await assert.rejects(
    checkBlank(new MemoryBlockDevice(8 * MiB)),
    (e: unknown) => e instanceof ConfidantError && e.code === "disk.too_small",
  );
});
