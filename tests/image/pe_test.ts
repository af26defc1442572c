import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { ParseError } from "../../lib/errors.ts";
import {
  authenticodeRanges,
  authenticodeSha256,
  parsePe,
  peChecksum,
  sectionData,
  setPeTimestamp,
} from "../../image/pe.ts";
import { buildUki, DEBIAN_STUB, planSections } from "../../image/uki.ts";
import { pcr11Events, replay } from "../../image/measure.ts";

async function stub(): Promise<Uint8Array> {
  try {
    return await Deno.readFile(DEBIAN_STUB);
  } catch {
    throw new Error(`${DEBIAN_STUB} missing: install systemd-boot-efi`);
  }
}

const sha = (b: Uint8Array) => new Uint8Array(createHash("sha256").update(b).digest());

/** A small UKI from the real stub with tiny fake payloads (objcopy; no boot). */
async function tinyUki(dir: string, cmdline = "console=ttyS0") {
  const linux = join(dir, "linux");
  const initrd = join(dir, "initrd");
  await Deno.writeFile(linux, new Uint8Array(5000).fill(7));
  await Deno.writeFile(initrd, new Uint8Array(3000).fill(9));
  const out = join(dir, "uki.efi");
  await buildUki({ stub: DEBIAN_STUB, linux, initrd, cmdline, osrel: "ID=test\n" }, out, dir);
  return { path: out, bytes: await Deno.readFile(out) };
}

Deno.test("parsePe() reads the systemd stub's sections", async () => {
  const pe = parsePe(await stub());
  assert.equal(pe.magic, 0x20b);
  assert.equal(pe.machine, 0x8664);
  for (const n of [".text", ".sbat", ".sdmagic"]) assert.ok(pe.sections.some((s) => s.name === n));
});

Deno.test("parsePe() refuses malformed images with a ParseError, never a crash", async () => {
  const good = await stub();
  assert.throws(() => parsePe(new Uint8Array(10)), ParseError);
  assert.throws(() => parsePe(new Uint8Array([0x4d, 0x5a, ...new Uint8Array(100)])), ParseError);
  const badLfanew = good.slice(0, 4096);
  new DataView(badLfanew.buffer).setUint32(0x3c, 0xfffffff0, true);
  assert.throws(() => parsePe(badLfanew), ParseError);
  assert.throws(() => parsePe(good.slice(0, 300)), ParseError);
  // random corruption of the headers: only ParseErrors or a successful parse
  const rnd = (n: number) => Math.floor(Math.random() * n);
  for (let i = 0; i < 2000; i++) {
    const b = good.slice(0, 4096 + rnd(4096));
    for (let k = 0; k < 4; k++) b[rnd(0x400)] = rnd(256);
    try {
      const pe = parsePe(b);
      authenticodeRanges(b, pe);
      for (const s of pe.sections) sectionData(b, pe, s.name);
    } catch (e) {
      assert.ok(e instanceof ParseError, `unexpected ${e}`);
    }
  }
});

Deno.test("authenticodeSha256() skips CheckSum and the cert directory, covers everything else", async () => {
  const b = await stub();
  const pe = parsePe(b);
  const h = await authenticodeSha256(b);
  const ranges = authenticodeRanges(b, pe);
  const parts = ranges.map(([a, z]) => b.subarray(a, z));
  const joined = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) (joined.set(p, o), o += p.length);
  assert.deepEqual(h, sha(joined));
  const c = b.slice();
  c[pe.checksumOffset] ^= 0xff;
  assert.deepEqual(await authenticodeSha256(c), h);
  const s = b.slice();
  const text = pe.sections.find((x) => x.name === ".text")!;
  s[text.pointerToRawData + 10] ^= 1;
  assert.notDeepEqual(await authenticodeSha256(s), h);
});

Deno.test("setPeTimestamp() pins the timestamp and writes the checksum objcopy would", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // objcopy's own output carries a checksum computed by binutils: ours must agree
    const out = join(dir, "copy.efi");
    const r = await new Deno.Command("objcopy", { args: [DEBIAN_STUB, out] }).output();
    assert.ok(r.success, "objcopy failed (install binutils)");
    const b = await Deno.readFile(out);
    const pe = parsePe(b);
    const stored = new DataView(b.buffer).getUint32(pe.checksumOffset, true);
    assert.notEqual(stored, 0, "objcopy wrote no checksum");
    assert.equal(peChecksum(b, pe), stored);
    setPeTimestamp(b, 1234);
    const dv = new DataView(b.buffer);
    assert.equal(dv.getUint32(dv.getUint32(0x3c, true) + 8, true), 1234);
    assert.equal(dv.getUint32(pe.checksumOffset, true), peChecksum(b));
    assert.throws(() => setPeTimestamp(b, -1), ParseError);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("buildUki() is deterministic, page-aligns sections and PCR 11 covers them in stub order", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const a = await tinyUki(dir);
    const b = await tinyUki(dir);
    assert.deepEqual(sha(a.bytes), sha(b.bytes));
    const pe = parsePe(a.bytes);
    const added = [".osrel", ".cmdline", ".linux", ".initrd"].map((n) =>
      pe.sections.find((s) => s.name === n)!
    );
    for (const s of added) assert.equal(s.virtualAddress % 0x1000, 0, s.name);
    for (let i = 1; i < added.length; i++) {
      assert.ok(added[i].virtualAddress >= added[i - 1].virtualAddress + added[i - 1].virtualSize);
    }
    const ev = await pcr11Events(a.bytes);
    assert.deepEqual(ev.map((e) => e.description), [
      ".linux name",
      ".linux contents",
      ".osrel name",
      ".osrel contents",
      ".cmdline name",
      ".cmdline contents",
      ".initrd name",
      ".initrd contents",
    ]);
    assert.deepEqual(ev[0].digest, sha(new TextEncoder().encode(".linux\0")));
    assert.deepEqual(ev[1].digest, sha(new Uint8Array(5000).fill(7)));
    assert.deepEqual(ev[5].digest, sha(new TextEncoder().encode("console=ttyS0")));
    // a different command line changes PCR 11
    const dir2 = await Deno.makeTempDir();
    try {
      const c = await tinyUki(dir2, "console=ttyS0 init=/bin/sh");
      assert.notDeepEqual(await replay(await pcr11Events(c.bytes)), await replay(ev));
    } finally {
      await Deno.remove(dir2, { recursive: true });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("planSections() places sections after the stub without overlap", () => {
  const p = planSections(0x19134n, 0x1000n, [
    { name: ".a", size: 1 },
    { name: ".b", size: 0x1000 },
    { name: ".c", size: 5 },
  ]);
  assert.deepEqual(p.map((x) => x.vma), [0x1a000n, 0x1b000n, 0x1c000n]);
  assert.throws(() => planSections(0n, 0n, []));
});
