/**
 * The dm-integrity superblock at the start of a LUKS2 data segment with integrity,
 * parsed as hostile input, and where its journal ends. libcryptsetup writes this
 * superblock and initialises the journal (through a temporary dm-integrity target)
 * before it writes the LUKS2 header, so a first boot cut right after `format-header`
 * leaves exactly: header, random keyslots area, superblock, journal, and zeros.
 * {@link integrityMetadataEnd} tells the lifecycle where the never-used part begins.
 *
 * Layout (Linux drivers/md/dm-integrity.c, `struct superblock`, little-endian):
 * magic[8] "integrt\0" @0, version u8 @8, log2_interleave_sectors u8 @9,
 * integrity_tag_size u16 @10, journal_sections u32 @12, provided_data_sectors u64 @16,
 * flags u32 @24, log2_sectors_per_block u8 @28, log2_blocks_per_bitmap_bit u8 @29,
 * pad[2], recalc_sector u64 @32, pad2[8], salt[16] @48. The superblock occupies 8
 * sectors; the journal follows as `journal_sections` sections of
 * `journal_section_sectors` 512-byte sectors each (formula in {@link journalSectionSectors}).
 *
 * @module
 */
import { ParseError } from "../lib/errors.ts";

/** Bytes of the superblock area (SB_SECTORS = 8 sectors). */
export const SUPERBLOCK_BYTES = 8 * 512;
/** "integrt" and a NUL. */
export const INTEGRITY_MAGIC = new Uint8Array([0x69, 0x6e, 0x74, 0x65, 0x67, 0x72, 0x74, 0x00]);
/** Superblock flag: the journal carries a MAC (journal_integrity set). */
export const SB_FLAG_HAVE_JOURNAL_MAC = 0x1;
/** Highest superblock version this parser knows (Linux 6.1 writes up to 5). */
export const MAX_SB_VERSION = 5;
/** Bound on the journal (the kernel's default cap is 64 MiB; allow 1 GiB). */
export const MAX_JOURNAL_BYTES = 1024 * 1024 * 1024;

/** The parsed superblock. */
export interface IntegritySuperblock {
  version: number;
  log2InterleaveSectors: number;
  /** Bytes of integrity tag per block (hmac(sha256): 32). */
  tagSize: number;
  journalSections: number;
  /** Sectors of data the target provides. */
  providedDataSectors: bigint;
  flags: number;
  /** log2 of 512-byte sectors per block (3 for 4096-byte blocks). */
  log2SectorsPerBlock: number;
}

/** Whether `b` starts with the dm-integrity magic. */
export function hasIntegrityMagic(b: Uint8Array): boolean {
  return b.length >= 8 && INTEGRITY_MAGIC.every((x, i) => b[i] === x);
}

/** Parse the superblock at the start of `b` (at least {@link SUPERBLOCK_BYTES}). */
export function parseIntegritySuperblock(b: Uint8Array): IntegritySuperblock {
  const fail = (msg: string): never => {
    throw new ParseError("integrity.superblock", msg);
  };
  if (b.length < SUPERBLOCK_BYTES) fail(`need ${SUPERBLOCK_BYTES} bytes, got ${b.length}`);
  if (!hasIntegrityMagic(b)) fail("no dm-integrity magic");
  const v = new DataView(b.buffer, b.byteOffset, SUPERBLOCK_BYTES);
  const sb: IntegritySuperblock = {
    version: v.getUint8(8),
    log2InterleaveSectors: v.getUint8(9),
    tagSize: v.getUint16(10, true),
    journalSections: v.getUint32(12, true),
    providedDataSectors: v.getBigUint64(16, true),
    flags: v.getUint32(24, true),
    log2SectorsPerBlock: v.getUint8(28),
  };
  if (sb.version < 1 || sb.version > MAX_SB_VERSION) fail(`unknown version ${sb.version}`);
  if (sb.log2SectorsPerBlock > 3) fail(`block of 2^${sb.log2SectorsPerBlock} sectors`);
  if (sb.tagSize < 1 || sb.tagSize > 255) fail(`tag size ${sb.tagSize} out of range`);
  if (sb.journalSections < 1) fail("no journal sections");
  return sb;
}

/** 512-byte sectors of one journal section (dm-integrity's calculate_journal_section_size). */
export function journalSectionSectors(sb: IntegritySuperblock): number {
  const sectorsPerBlock = 1 << sb.log2SectorsPerBlock;
  // struct journal_entry: 8-byte sector, one 8-byte commit id per 512-byte sector, then the tag
  const entrySize = Math.ceil((8 + 8 * sectorsPerBlock + sb.tagSize) / 8) * 8;
  // each journal sector holds 504 bytes of entries (8 bytes are its commit id), less the MAC
  const space = 504 - (sb.flags & SB_FLAG_HAVE_JOURNAL_MAC ? 8 : 0);
  const entriesPerSector = Math.floor(space / entrySize);
  if (entriesPerSector < 1) {
    throw new ParseError("integrity.superblock", `journal entry of ${entrySize} bytes`);
  }
  const sectionEntries = entriesPerSector * 8;
  return (sectionEntries << sb.log2SectorsPerBlock) + 8;
}

/**
 * Bytes from the start of the integrity device to the end of its journal (superblock
 * plus journal, the kernel's `initial_sectors`). Throws for a journal larger than
 * {@link MAX_JOURNAL_BYTES}.
 */
export function integrityMetadataEnd(sb: IntegritySuperblock): number {
  const bytes = (8 + journalSectionSectors(sb) * sb.journalSections) * 512;
  if (!Number.isSafeInteger(bytes) || bytes > MAX_JOURNAL_BYTES) {
    throw new ParseError("integrity.superblock", `journal of ${bytes} bytes is too large`);
  }
  return bytes;
}
