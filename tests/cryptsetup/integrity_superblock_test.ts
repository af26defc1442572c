import assert from "node:assert/strict";
import {
  integrityMetadataEnd,
  journalSectionSectors,
  parseIntegritySuperblock,
  SUPERBLOCK_BYTES,
} from "../../cryptsetup/integrity_superblock.ts";
import { ParseError } from "../../lib/errors.ts";

/** A superblock as Linux 6.1 writes it for LUKS2 aes-xts-plain64 + hmac(sha256), 4 KiB blocks. */
function superblock(over: Partial<Record<string, number>> = {}): Uint8Array {
  const b = new Uint8Array(SUPERBLOCK_BYTES);
  b.set(new TextEncoder().encode("integrt"), 0);
  const v = new DataView(b.buffer);
  v.setUint8(8, over.version ?? 5);
  v.setUint8(9, 15);
  v.setUint16(10, over.tag ?? 32, true);
  v.setUint32(12, over.sections ?? 6, true);
  v.setBigUint64(16, 229376n, true);
  v.setUint32(24, over.flags ?? 0, true);
  v.setUint8(28, over.log2spb ?? 3);
  return b;
}

Deno.test("parseIntegritySuperblock() reads the fields and the journal end", () => {
  const sb = parseIntegritySuperblock(superblock());
  assert.equal(sb.tagSize, 32);
  assert.equal(sb.journalSections, 6);
  assert.equal(sb.log2SectorsPerBlock, 3);
  // entry 8 + 8*8 + 32 = 104 bytes; 4 per 504-byte sector; 32 per section of 8*32 + 8 sectors
  assert.equal(journalSectionSectors(sb), 264);
  assert.equal(integrityMetadataEnd(sb), (8 + 6 * 264) * 512);
  // a journal MAC takes 8 bytes of each sector: still 4 entries of 104 bytes in 496
  assert.equal(journalSectionSectors(parseIntegritySuperblock(superblock({ flags: 1 }))), 264);
  // 512-byte blocks, tag 32: entry 48 bytes, 10 per sector, 80 per section
  assert.equal(journalSectionSectors(parseIntegritySuperblock(superblock({ log2spb: 0 }))), 88);
});

Deno.test("parseIntegritySuperblock() refuses malformed superblocks with ParseError", () => {
  const bad: [string, Uint8Array][] = [
    ["short", superblock().subarray(0, 100)],
    [
      "magic",
      (() => {
        const b = superblock();
        b[0] = 0x49;
        return b;
      })(),
    ],
    ["version 0", superblock({ version: 0 })],
    ["version 9", superblock({ version: 9 })],
    ["block 2^4 sectors", superblock({ log2spb: 4 })],
    ["tag 0", superblock({ tag: 0 })],
    ["no journal", superblock({ sections: 0 })],
  ];
  for (const [name, b] of bad) {
    assert.throws(() => parseIntegritySuperblock(b), ParseError, name);
  }
  // a journal beyond the bound is a ParseError too, not a huge number
  assert.throws(
    () => integrityMetadataEnd(parseIntegritySuperblock(superblock({ sections: 0xffffffff }))),
    ParseError,
  );
});
