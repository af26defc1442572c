/**
 * Blank-disk detection: a disk may be formatted on first boot only when its first
 * MiB is zero, a deterministic sample across the rest is zero, its last MiB is zero
 * (backup GPT, md 0.90/1.0 superblocks live there), and no known filesystem,
 * partition table, volume manager or LUKS signature is found. The signature table is
 * confidant's own (no blkid dependency).
 *
 * What "blank" means here, precisely: this is a sampling heuristic, not a proof. It reads
 * the first and last MiB and {@link SAMPLE_COUNT} 4 KiB samples spread evenly between them
 * (on a 100 GiB disk one sample every ~1.6 GiB), about 2.3 MiB in all whatever the disk's size,
 * so a first boot does not read the whole disk. A disk whose first and last MiB are zero and
 * that carries no known signature, but holds data between the samples (e.g. a filesystem or
 * volume whose header was wiped, or data written at offsets the samples miss), is judged
 * blank and would be formatted. The check protects against formatting a disk that carries a
 * recognisable structure (partition table, filesystem, LUKS, LVM, RAID, ...) or data at its
 * ends; it cannot tell an all-zero disk from one with headerless data in the middle. Denser
 * sampling (e.g. one sample per 64 MiB up to a cap) narrows but does not close that gap.
 *
 * @module
 */
import type { BlockDevice } from "./block_device.ts";
import { ConfidantError } from "../lib/errors.ts";

const MiB = 1024 * 1024;
/** Number of 4 KiB samples taken between the first and last MiB. */
export const SAMPLE_COUNT = 64;
/** Size of one sample. */
export const SAMPLE_SIZE = 4096;
/** Smallest disk confidant formats. */
export const MIN_DISK_SIZE = 32 * MiB;

/** A signature at a fixed offset from the start (or, if negative, from the end). */
interface Signature {
  name: string;
  offset: number;
  magic: Uint8Array;
}

const ascii = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));
const bytes = (...b: number[]) => new Uint8Array(b);

/** Known signatures, from the formats' on-disk layouts. */
export const SIGNATURES: readonly Signature[] = [
  { name: "luks", offset: 0, magic: bytes(0x4c, 0x55, 0x4b, 0x53, 0xba, 0xbe) },
  ...[16, 32, 64, 128, 256, 512, 1024, 2048, 4096].map((k) => ({
    name: "luks2-secondary",
    offset: k * 1024,
    magic: bytes(0x53, 0x4b, 0x55, 0x4c, 0xba, 0xbe),
  })),
  { name: "mbr", offset: 510, magic: bytes(0x55, 0xaa) },
  { name: "gpt", offset: 512, magic: ascii("EFI PART") },
  { name: "gpt", offset: 4096, magic: ascii("EFI PART") },
  { name: "gpt-backup", offset: -512, magic: ascii("EFI PART") },
  { name: "gpt-backup", offset: -4096, magic: ascii("EFI PART") },
  { name: "ext2/3/4", offset: 1080, magic: bytes(0x53, 0xef) },
  { name: "xfs", offset: 0, magic: ascii("XFSB") },
  { name: "btrfs", offset: 65536 + 64, magic: ascii("_BHRfS_M") },
  { name: "swap", offset: 4096 - 10, magic: ascii("SWAPSPACE2") },
  { name: "swap", offset: 4096 - 10, magic: ascii("SWAP-SPACE") },
  { name: "swap", offset: 65536 - 10, magic: ascii("SWAPSPACE2") },
  ...[0, 512, 1024, 1536].map((o) => ({ name: "lvm2", offset: o, magic: ascii("LABELONE") })),
  { name: "md-raid-1.1", offset: 0, magic: bytes(0xfc, 0x4e, 0x2b, 0xa9) },
  { name: "md-raid-1.2", offset: 4096, magic: bytes(0xfc, 0x4e, 0x2b, 0xa9) },
  {
    name: "bcache",
    offset: 4096 + 24,
    magic: bytes(0xc6, 0x85, 0x73, 0xf6, 0x4e, 0x1a, 0x45, 0xca, 0x82, 0x65, 0xf5, 0x7f),
  },
  { name: "iso9660", offset: 32769, magic: ascii("CD001") },
  { name: "ntfs", offset: 3, magic: ascii("NTFS    ") },
  { name: "bitlocker", offset: 3, magic: ascii("-FVE-FS-") },
  { name: "fat12/16", offset: 54, magic: ascii("FAT1") },
  { name: "fat32", offset: 82, magic: ascii("FAT32   ") },
  { name: "squashfs", offset: 0, magic: ascii("hsqs") },
  { name: "f2fs", offset: 1024, magic: bytes(0x10, 0x20, 0xf5, 0xf2) },
  { name: "zfs", offset: 128 * 1024, magic: bytes(0x0c, 0xb1, 0xba, 0x00) },
];

/** Names of the signatures found in `head` (the start) and `tail` (the end) of a disk. */
export function findSignatures(head: Uint8Array, tail: Uint8Array): string[] {
  const found = new Set<string>();
  for (const s of SIGNATURES) {
    const buf = s.offset >= 0 ? head : tail;
    const off = s.offset >= 0 ? s.offset : tail.length + s.offset;
    if (off < 0 || off + s.magic.length > buf.length) continue;
    let ok = true;
    for (let i = 0; i < s.magic.length && ok; i++) ok = buf[off + i] === s.magic[i];
    if (ok) found.add(s.name);
  }
  // md 0.90 / 1.0 keep their superblock near the end at a 4 KiB boundary
  for (let off = tail.length - 4096; off >= 0 && off >= tail.length - 128 * 1024; off -= 4096) {
    if (
      tail[off] === 0xfc && tail[off + 1] === 0x4e && tail[off + 2] === 0x2b &&
      tail[off + 3] === 0xa9
    ) found.add("md-raid-end");
  }
  return [...found];
}

function isZero(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

/** Result of {@link checkBlank}. */
export interface BlankReport {
  blank: boolean;
  /** Why the region is not blank (empty when blank). */
  reasons: string[];
  /** Signatures found. */
  signatures: string[];
}

/** Offsets of the deterministic samples in [start, end). */
export function sampleOffsets(start: number, end: number): number[] {
  const out: number[] = [];
  const span = end - start;
  if (span <= 2 * MiB) return out;
  const inner = span - 2 * MiB;
  for (let i = 0; i < SAMPLE_COUNT; i++) {
    let off = start + MiB + Math.floor((inner * i) / SAMPLE_COUNT);
    off -= off % SAMPLE_SIZE;
    if (off + SAMPLE_SIZE <= end - MiB) out.push(off);
  }
  return out;
}

/**
 * Whether the region [start, end of disk) looks blank by sampling (see the module doc for
 * what that does and does not rule out): first MiB zero, {@link SAMPLE_COUNT} samples zero,
 * last MiB zero, no signature. With `start` 0 this is the first-boot test of the whole disk.
 */
export async function checkBlank(dev: BlockDevice, start = 0): Promise<BlankReport> {
  const size = await dev.size();
  if (size < MIN_DISK_SIZE) {
    throw new ConfidantError(
      "disk.too_small",
      `disk has ${size} bytes; at least ${MIN_DISK_SIZE} needed`,
    );
  }
  if (start < 0 || start + 2 * MiB > size) {
    throw new ConfidantError("disk.range", `region from ${start} is too small to check`);
  }
  const reasons: string[] = [];
  const head = await dev.read(start, MiB);
  const tail = await dev.read(size - MiB, MiB);
  const signatures = findSignatures(head, tail);
  if (signatures.length) reasons.push(`signature(s) found: ${signatures.join(", ")}`);
  if (!isZero(head)) reasons.push(`the MiB at ${start} is not zero`);
  if (!isZero(tail)) reasons.push("the last MiB is not zero");
  for (const off of sampleOffsets(start, size)) {
    if (!isZero(await dev.read(off, SAMPLE_SIZE))) {
      reasons.push(`sample at ${off} is not zero`);
      break;
    }
  }
  return { blank: reasons.length === 0, reasons, signatures };
}
