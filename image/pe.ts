/**
 * PE/COFF images (UEFI applications such as the unified kernel image): a
 * bounds-checked parser of the headers and section table, and the Authenticode
 * image hash that UEFI firmware measures into PCR 4 when it loads an image
 * (Microsoft "Windows Authenticode Portable Executable Signature Format",
 * "Calculating the PE Image Hash"; EDK2 Tcg2MeasurePeImage follows it).
 *
 * @module
 */
import { ParseError } from "../lib/errors.ts";

/** One entry of the section table. */
export interface PeSection {
  /** Name with trailing NULs removed, e.g. `.linux`. */
  name: string;
  virtualSize: number;
  virtualAddress: number;
  sizeOfRawData: number;
  pointerToRawData: number;
}

/** The parts of a PE image that hashing and measurement need. */
export interface PeImage {
  /** `0x20b` for PE32+, `0x10b` for PE32. */
  magic: number;
  machine: number;
  /** File offset of the optional header's CheckSum field. */
  checksumOffset: number;
  /** File offset of the Certificate Table data directory entry, or null if absent. */
  certDirOffset: number | null;
  /** Certificate table (file offset, size); size 0 if unsigned. */
  certTable: { offset: number; size: number };
  sizeOfHeaders: number;
  sectionAlignment: number;
  fileAlignment: number;
  sizeOfImage: number;
  /** Preferred load address (objcopy's VMAs are relative to it). */
  imageBase: bigint;
  sections: PeSection[];
}

/** Upper bounds that keep a hostile header from making us loop or allocate. */
const MAX_SECTIONS = 96;
const MAX_IMAGE = 2 ** 31;

function fail(msg: string): never {
  throw new ParseError("pe", msg);
}

/** Parse the headers and section table of a PE/COFF image; anything malformed is a ParseError. */
export function parsePe(b: Uint8Array): PeImage {
  if (b.length > MAX_IMAGE) fail("image larger than 2 GiB");
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const need = (off: number, len: number, what: string) => {
    if (off < 0 || len < 0 || off + len > b.length) fail(`${what} lies outside the file`);
  };
  need(0, 64, "DOS header");
  if (b[0] !== 0x4d || b[1] !== 0x5a) fail("no MZ signature");
  const peOff = dv.getUint32(0x3c, true);
  need(peOff, 24, "PE header");
  if (dv.getUint32(peOff, true) !== 0x00004550) fail("no PE signature");
  const machine = dv.getUint16(peOff + 4, true);
  const nsec = dv.getUint16(peOff + 6, true);
  const optSize = dv.getUint16(peOff + 20, true);
  if (nsec > MAX_SECTIONS) fail(`too many sections (${nsec})`);
  const opt = peOff + 24;
  need(opt, optSize, "optional header");
  if (optSize < 2) fail("optional header too small");
  const magic = dv.getUint16(opt, true);
  let ddOff: number;
  let nDirsOff: number;
  if (magic === 0x20b) {
    ddOff = opt + 112;
    nDirsOff = opt + 108;
  } else if (magic === 0x10b) {
    ddOff = opt + 96;
    nDirsOff = opt + 92;
  } else fail(`unknown optional header magic 0x${magic.toString(16)}`);
  if (nDirsOff + 4 > opt + optSize) fail("optional header too small");
  const nDirs = dv.getUint32(nDirsOff, true);
  if (ddOff + Math.min(nDirs, 16) * 8 > opt + optSize) fail("data directories exceed the header");
  const sectionAlignment = dv.getUint32(opt + 32, true);
  const fileAlignment = dv.getUint32(opt + 36, true);
  const sizeOfImage = dv.getUint32(opt + 56, true);
  const sizeOfHeaders = dv.getUint32(opt + 60, true);
  const imageBase = magic === 0x20b
    ? dv.getBigUint64(opt + 24, true)
    : BigInt(dv.getUint32(opt + 28, true));
  const checksumOffset = opt + 64;
  let certDirOffset: number | null = null;
  let certTable = { offset: 0, size: 0 };
  if (nDirs > 4) {
    certDirOffset = ddOff + 4 * 8;
    certTable = {
      offset: dv.getUint32(certDirOffset, true),
      size: dv.getUint32(certDirOffset + 4, true),
    };
    if (certTable.size > 0) need(certTable.offset, certTable.size, "certificate table");
  }
  const secOff = opt + optSize;
  need(secOff, nsec * 40, "section table");
  if (sizeOfHeaders > b.length) fail("SizeOfHeaders exceeds the file");
  if (sizeOfHeaders < secOff + nsec * 40) fail("SizeOfHeaders does not cover the section table");
  const sections: PeSection[] = [];
  for (let i = 0; i < nsec; i++) {
    const o = secOff + i * 40;
    let end = o;
    while (end < o + 8 && b[end] !== 0) end++;
    const name = String.fromCharCode(...b.subarray(o, end));
    const s: PeSection = {
      name,
      virtualSize: dv.getUint32(o + 8, true),
      virtualAddress: dv.getUint32(o + 12, true),
      sizeOfRawData: dv.getUint32(o + 16, true),
      pointerToRawData: dv.getUint32(o + 20, true),
    };
    if (s.sizeOfRawData > 0) need(s.pointerToRawData, s.sizeOfRawData, `section ${name}`);
    sections.push(s);
  }
  return {
    magic,
    machine,
    checksumOffset,
    certDirOffset,
    certTable,
    sizeOfHeaders,
    sectionAlignment,
    fileAlignment,
    sizeOfImage,
    imageBase,
    sections,
  };
}

/**
 * The byte ranges of `b` that the Authenticode image hash covers, in hashing
 * order: the headers without the CheckSum and the Certificate Table entry, the
 * sections' raw data sorted by file offset, then any trailing data that is not
 * the certificate table.
 */
export function authenticodeRanges(b: Uint8Array, pe = parsePe(b)): [number, number][] {
  const r: [number, number][] = [];
  const cks = pe.checksumOffset;
  if (pe.certDirOffset !== null) {
    r.push([0, cks], [cks + 4, pe.certDirOffset], [pe.certDirOffset + 8, pe.sizeOfHeaders]);
  } else {
    r.push([0, cks], [cks + 4, pe.sizeOfHeaders]);
  }
  let sum = pe.sizeOfHeaders;
  const secs = pe.sections.filter((s) => s.sizeOfRawData > 0).sort((x, y) =>
    x.pointerToRawData - y.pointerToRawData
  );
  for (const s of secs) {
    r.push([s.pointerToRawData, s.pointerToRawData + s.sizeOfRawData]);
    sum += s.sizeOfRawData;
  }
  const certSize = pe.certTable.size;
  if (b.length > sum + certSize) r.push([sum, b.length - certSize]);
  for (const [a, z] of r) {
    if (a > z || z > b.length) fail("image ranges overlap or exceed the file");
  }
  return r;
}

/** Authenticode SHA-256 image hash of a PE file (what the firmware extends into PCR 4). */
export async function authenticodeSha256(b: Uint8Array): Promise<Uint8Array> {
  const ranges = authenticodeRanges(b);
  let n = 0;
  for (const [a, z] of ranges) n += z - a;
  const buf = new Uint8Array(n);
  let o = 0;
  for (const [a, z] of ranges) {
    buf.set(b.subarray(a, z), o);
    o += z - a;
  }
  return new Uint8Array(await crypto.subtle.digest("SHA-256", buf));
}

/**
 * Contents of a named section as a loader maps it: VirtualSize bytes, the part
 * beyond SizeOfRawData zero-filled. Null if absent.
 */
export function sectionData(b: Uint8Array, pe: PeImage, name: string): Uint8Array | null {
  const s = pe.sections.find((x) => x.name === name);
  if (!s) return null;
  if (s.virtualSize > MAX_IMAGE) fail(`section ${name} is too large`);
  const len = Math.min(s.virtualSize, s.sizeOfRawData);
  if (s.pointerToRawData + len > b.length) fail(`section ${name} lies outside the file`);
  const raw = b.subarray(s.pointerToRawData, s.pointerToRawData + len);
  if (len === s.virtualSize) return raw;
  const out = new Uint8Array(s.virtualSize);
  out.set(raw);
  return out;
}

/**
 * The PE image checksum (the optional header's CheckSum field): 16-bit words
 * summed with end-around carry, skipping the field itself, plus the file length.
 */
export function peChecksum(b: Uint8Array, pe = parsePe(b)): number {
  let sum = 0;
  const n = b.length;
  for (let i = 0; i < n; i += 2) {
    if (i >= pe.checksumOffset && i < pe.checksumOffset + 4) continue;
    const w = b[i] | (i + 1 < n ? b[i + 1] << 8 : 0);
    sum += w;
    sum = (sum & 0xffff) + (sum >>> 16);
  }
  sum = (sum & 0xffff) + (sum >>> 16);
  return (sum + n) >>> 0;
}

/**
 * Set the COFF header's TimeDateStamp (tools like objcopy write the build time
 * there) and recompute the CheckSum, in place; makes an image reproducible.
 */
export function setPeTimestamp(b: Uint8Array, seconds: number): void {
  if (!Number.isInteger(seconds) || seconds < 0 || seconds > 0xffffffff) {
    throw new ParseError("pe", "timestamp out of range");
  }
  const pe = parsePe(b);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const peOff = dv.getUint32(0x3c, true);
  dv.setUint32(peOff + 8, seconds, true);
  dv.setUint32(pe.checksumOffset, peChecksum(b, pe), true);
}
