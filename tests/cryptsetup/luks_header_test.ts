import assert from "node:assert/strict";
import { parseLuks2Header, probeLuks, sealHeaderCopy } from "../../cryptsetup/luks_header.ts";
import { buildHeaderCopy } from "../../cryptsetup/memory_backend.ts";
import { ParseError } from "../../lib/errors.ts";

const UUID = "0b9f2a6e-5d1c-4c8e-9d7a-3f2e1b0c9a8d";
const meta = (tag: string) =>
  JSON.stringify({
    keyslots: {},
    tokens: { "0": { type: "confidant", keyslots: [], note: tag } },
    segments: {
      "0": {
        type: "crypt",
        offset: "16777216",
        size: "dynamic",
        iv_tweak: "0",
        encryption: "aes-xts-plain64",
        sector_size: 4096,
      },
    },
    digests: {},
    config: { json_size: "12288", keyslots_size: "16744448" },
  });

function image(p: string, pSeq: bigint, s: string, sSeq: bigint): Uint8Array {
  const b = new Uint8Array(2 * 16384);
  b.set(buildHeaderCopy(p, { kind: "primary", seqid: pSeq, uuid: UUID }), 0);
  b.set(buildHeaderCopy(s, { kind: "secondary", seqid: sSeq, uuid: UUID }), 16384);
  return b;
}

function parseFails(b: Uint8Array, code: string): void {
  assert.throws(() => parseLuks2Header(b), (e: unknown) => {
    assert.ok(e instanceof ParseError, String(e));
    assert.equal(e.code, code, e.message);
    return true;
  });
}

Deno.test("parseLuks2Header() uses the copy with the higher sequence id", () => {
  const h = parseLuks2Header(image(meta("old"), 4n, meta("new"), 5n));
  assert.equal(h.active.binary.kind, "secondary");
  assert.equal(h.active.metadata.tokens["0"].note, "new");
  const h2 = parseLuks2Header(image(meta("new"), 9n, meta("old"), 5n));
  assert.equal(h2.active.binary.kind, "primary");
  assert.equal(h.active.binary.uuid, UUID);
});

Deno.test("parseLuks2Header() refuses copies with the same seqid and different metadata", () => {
  parseFails(image(meta("a"), 3n, meta("b"), 3n), "parse.luks2.copies");
});

Deno.test("parseLuks2Header() falls back to the secondary copy when the primary is corrupt", () => {
  const b = image(meta("x"), 3n, meta("x"), 3n);
  b[100] ^= 1;
  const h = parseLuks2Header(b);
  assert.equal(h.primary, null);
  assert.match(h.primaryError!, /checksum/);
  assert.equal(h.active.binary.kind, "secondary");
});

Deno.test("parseLuks2Header() refuses size and offset lies even with valid checksums", async (t) => {
  const cases: [string, (c: DataView, b: Uint8Array) => void][] = [
    ["hdr_size 8192", (v) => v.setBigUint64(8, 8192n, false)],
    ["hdr_size 2^40", (v) => v.setBigUint64(8, 2n ** 40n, false)],
    ["hdr_offset", (v) => v.setBigUint64(256, 4096n, false)],
    ["version 1", (v) => v.setUint16(6, 1, false)],
    ["version 3", (v) => v.setUint16(6, 3, false)],
    ["checksum_alg", (_v, b) => b.set(new TextEncoder().encode("sha1\0\0"), 72)],
    ["label unterminated", (_v, b) => b.fill(0x41, 24, 72)],
  ];
  for (const [name, edit] of cases) {
    await t.step(name, () => {
      const b = image(meta("x"), 3n, meta("x"), 3n);
      for (const off of [0, 16384]) {
        const copy = b.subarray(off, off + 16384);
        edit(new DataView(copy.buffer, copy.byteOffset, 16384), copy);
        sealHeaderCopy(copy);
      }
      const p = probeLuks(b);
      assert.ok(p.kind === "damaged" || p.kind === "luks1", `${name}: ${p.kind}`);
    });
  }
});

Deno.test("parseLuks2Header() refuses JSON lies: json_size, areas outside the keyslots area, huge numbers", async (t) => {
  const base = JSON.parse(meta("x"));
  const area = (offset: string, size: string) => ({
    type: "luks2",
    area: { type: "raw", offset, size },
  });
  const cases: [string, (m: Record<string, Record<string, unknown>>) => void][] = [
    ["json_size", (m) => (m.config.json_size = "4096")],
    ["area in the header", (m) => (m.keyslots["0"] = area("4096", "4096"))],
    ["area past the keyslots area", (m) => (m.keyslots["0"] = area("16773120", "8192"))],
    ["overlapping areas", (m) => {
      m.keyslots["0"] = area("32768", "258048");
      m.keyslots["1"] = area("36864", "4096");
    }],
    ["offset beyond 2^53", (m) => (m.keyslots["0"] = area("99999999999999999999", "1"))],
    [
      "segment in the metadata",
      (m) => ((m.segments["0"] as Record<string, unknown>).offset = "4096"),
    ],
    ["keyslot id 32", (m) => (m.keyslots["32"] = area("32768", "4096"))],
    ["keyslots not an object", (m) => ((m as Record<string, unknown>).keyslots = [])],
  ];
  for (const [name, edit] of cases) {
    await t.step(name, () => {
      const m = structuredClone(base);
      edit(m);
      const j = JSON.stringify(m);
      parseFails(image(j, 3n, j, 3n), "parse.luks2.no_valid_copy");
    });
  }
});

Deno.test("probeLuks() tells none, LUKS1, and truncated images apart", () => {
  assert.equal(probeLuks(new Uint8Array(65536)).kind, "none");
  const l1 = new Uint8Array(65536);
  l1.set([0x4c, 0x55, 0x4b, 0x53, 0xba, 0xbe, 0, 1], 0);
  assert.equal(probeLuks(l1).kind, "luks1");
  const b = image(meta("x"), 3n, meta("x"), 3n);
  for (const n of [0, 6, 4095, 4096, 16383, 16384, 20000]) {
    const p = probeLuks(b.slice(0, n));
    if (n >= 16384) assert.equal(p.kind, "luks2", `${n}`);
    else assert.ok(p.kind === "damaged" || p.kind === "none", `${n}: ${p.kind}`);
  }
});
