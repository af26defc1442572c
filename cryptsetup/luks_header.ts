/**
 * A parser of the LUKS2 on-disk header: both binary header copies and their JSON
 * areas, treated as hostile input. It checks magic, version, header size, header
 * offset, checksum (SHA-256 over the header with the checksum field zeroed plus the
 * JSON area), the JSON's shape and size limits, the keyslot areas and data segments
 * against the metadata layout, and picks the copy libcryptsetup would use (highest
 * sequence id). Any malformed input is a {@link ParseError}; it never reads out of range.
 *
 * Layout (LUKS2 on-disk format specification, "binary header", big-endian integers):
 * magic[6]@0, version u16@6, hdr_size u64@8, seqid u64@16, label[48]@24,
 * checksum_alg[32]@72, salt[64]@104, uuid[40]@168, subsystem[48]@208,
 * hdr_offset u64@256, padding[184]@264, csum[64]@448, padding[3584]@512; 4096 bytes,
 * followed by the JSON area (hdr_size - 4096 bytes, NUL-terminated text).
 *
 * @module
 */
import { createHash } from "node:crypto";
import { ParseError } from "../lib/errors.ts";

/** Size of the binary part of a header copy. */
export const BINARY_HEADER_SIZE = 4096;
/** Magic of the primary header: "LUKS" 0xBA 0xBE. */
export const MAGIC_PRIMARY = new Uint8Array([0x4c, 0x55, 0x4b, 0x53, 0xba, 0xbe]);
/** Magic of the secondary header: "SKUL" 0xBA 0xBE. */
export const MAGIC_SECONDARY = new Uint8Array([0x53, 0x4b, 0x55, 0x4c, 0xba, 0xbe]);
/** The header (binary + JSON area) sizes the specification allows. */
export const HEADER_SIZES: readonly number[] = [
  16,
  32,
  64,
  128,
  256,
  512,
  1024,
  2048,
  4096,
].map((k) => k * 1024);
/** Bytes from the start of the device that always hold both header copies. */
export const HEADER_PROBE_BYTES = 2 * 4096 * 1024;
/** Most keyslots, tokens, segments and digests the format allows (ids 0..31). */
export const MAX_OBJECTS = 32;

/** The binary part of one header copy. */
export interface BinaryHeader {
  /** Which magic it carries. */
  kind: "primary" | "secondary";
  version: number;
  /** Binary header plus JSON area, in bytes. */
  hdrSize: number;
  /** Sequence id (epoch); the copy with the higher one is current. */
  seqid: bigint;
  label: string;
  checksumAlg: string;
  uuid: string;
  subsystem: string;
  /** Offset of this copy on the device. */
  hdrOffset: number;
  /** Hex of the stored SHA-256 checksum. */
  checksum: string;
}

/** A JSON object as parsed (values still untrusted; the whitelist inspects them). */
export type JsonObject = Record<string, unknown>;

/** The LUKS2 JSON metadata, structurally checked. */
export interface Luks2Metadata {
  keyslots: Record<string, JsonObject>;
  tokens: Record<string, JsonObject>;
  segments: Record<string, JsonObject>;
  digests: Record<string, JsonObject>;
  config: JsonObject;
  /** Every top-level key, for the whitelist (which refuses unknown ones). */
  topKeys: string[];
}

/** One verified header copy. */
export interface HeaderCopy {
  binary: BinaryHeader;
  metadata: Luks2Metadata;
  /** The JSON text (up to its NUL). */
  jsonText: string;
}

/** Both copies of a LUKS2 header and the one in force. */
export interface Luks2Header {
  /** The copy libcryptsetup would use (highest seqid). */
  active: HeaderCopy;
  primary: HeaderCopy | null;
  secondary: HeaderCopy | null;
  /** Why a copy was rejected, if it was. */
  primaryError?: string;
  secondaryError?: string;
}

/** What sits at the start of a device, as far as LUKS is concerned. */
export type LuksProbe =
  | { kind: "none" }
  | { kind: "luks1" }
  | { kind: "luks2"; header: Luks2Header }
  | { kind: "damaged"; error: ParseError };

function fail(what: string, msg: string): never {
  throw new ParseError(`luks2.${what}`, msg);
}

function startsWith(b: Uint8Array, off: number, magic: Uint8Array): boolean {
  if (off < 0 || off + magic.length > b.length) return false;
  for (let i = 0; i < magic.length; i++) if (b[off + i] !== magic[i]) return false;
  return true;
}

function u64(v: DataView, off: number): bigint {
  return v.getBigUint64(off, false);
}

function fixedString(b: Uint8Array, off: number, len: number, field: string): string {
  const raw = b.subarray(off, off + len);
  const nul = raw.indexOf(0);
  if (nul < 0) fail("binary", `${field} is not NUL-terminated`);
  for (let i = 0; i < nul; i++) {
    if (raw[i] < 0x20 || raw[i] > 0x7e) fail("binary", `${field} holds a non-printable byte`);
  }
  return String.fromCharCode(...raw.subarray(0, nul));
}

function toHexStr(b: Uint8Array): string {
  let s = "";
  for (const x of b) s += x.toString(16).padStart(2, "0");
  return s;
}

/** SHA-256 of a header copy with its checksum field zeroed. */
export function headerChecksum(copy: Uint8Array): Uint8Array {
  const h = createHash("sha256");
  h.update(copy.subarray(0, 448));
  h.update(new Uint8Array(64));
  h.update(copy.subarray(512));
  return new Uint8Array(h.digest());
}

/**
 * Parse the binary part of the copy at `offset` of `bytes` (no JSON, no checksum).
 * `expect` names the magic that must be there.
 */
export function parseBinaryHeader(
  bytes: Uint8Array,
  offset: number,
  expect: "primary" | "secondary",
): BinaryHeader {
  if (offset < 0 || offset + BINARY_HEADER_SIZE > bytes.length) {
    fail("truncated", `no room for a binary header at ${offset}`);
  }
  const b = bytes.subarray(offset, offset + BINARY_HEADER_SIZE);
  const magic = expect === "primary" ? MAGIC_PRIMARY : MAGIC_SECONDARY;
  if (!startsWith(b, 0, magic)) fail("magic", `no ${expect} LUKS2 magic at ${offset}`);
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const version = v.getUint16(6, false);
  if (version !== 2) fail("version", `header version ${version} at ${offset} is not 2`);
  const hdrSizeBig = u64(v, 8);
  const hdrSize = Number(hdrSizeBig);
  if (!HEADER_SIZES.includes(hdrSize) || BigInt(hdrSize) !== hdrSizeBig) {
    fail("hdr_size", `header size ${hdrSizeBig} is not one the format allows`);
  }
  const hdrOffsetBig = u64(v, 256);
  if (hdrOffsetBig !== BigInt(offset)) {
    fail("hdr_offset", `header at ${offset} claims to be at ${hdrOffsetBig}`);
  }
  if (expect === "secondary" && offset !== hdrSize) {
    fail("hdr_offset", `secondary header at ${offset} but its size is ${hdrSize}`);
  }
  return {
    kind: expect,
    version,
    hdrSize,
    seqid: u64(v, 16),
    label: fixedString(b, 24, 48, "label"),
    checksumAlg: fixedString(b, 72, 32, "checksum_alg"),
    uuid: fixedString(b, 168, 40, "uuid"),
    subsystem: fixedString(b, 208, 48, "subsystem"),
    hdrOffset: offset,
    checksum: toHexStr(b.subarray(448, 480)),
  };
}

const ID_RE = /^(?:[0-9]|[12][0-9]|3[01])$/;
const U64_RE = /^(?:0|[1-9][0-9]{0,19})$/;

function isObject(x: unknown): x is JsonObject {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function objectMap(top: JsonObject, name: string): Record<string, JsonObject> {
  const m = top[name];
  if (!isObject(m)) fail("json", `"${name}" is not an object`);
  const keys = Object.keys(m);
  if (keys.length > MAX_OBJECTS) fail("json", `"${name}" has ${keys.length} entries`);
  for (const k of keys) {
    if (!ID_RE.test(k)) fail("json", `"${name}" has a bad id ${JSON.stringify(k.slice(0, 16))}`);
    if (!isObject(m[k])) fail("json", `${name}.${k} is not an object`);
  }
  return m as Record<string, JsonObject>;
}

/**
 * A JSON u64 carried as a decimal string (LUKS2 offsets and sizes); it must fit a safe
 * JavaScript integer. Throws naming `field`.
 */
export function jsonU64(x: unknown, field: string): number {
  if (typeof x !== "string" || !U64_RE.test(x)) fail("json", `${field} is not a u64 string`);
  const n = Number(x);
  if (!Number.isSafeInteger(n)) fail("json", `${field} is too large`);
  return n;
}

function parseMetadata(jsonText: string, hdrSize: number): Luks2Metadata {
  let top: unknown;
  try {
    top = JSON.parse(jsonText);
  } catch (e) {
    fail("json", `JSON area does not parse: ${e instanceof Error ? e.message.slice(0, 80) : e}`);
  }
  if (!isObject(top)) fail("json", "JSON area is not an object");
  const keyslots = objectMap(top, "keyslots");
  const tokens = objectMap(top, "tokens");
  const segments = objectMap(top, "segments");
  const digests = objectMap(top, "digests");
  const config = top.config;
  if (!isObject(config)) fail("json", `"config" is not an object`);
  const jsonSize = jsonU64(config.json_size, "config.json_size");
  if (jsonSize !== hdrSize - BINARY_HEADER_SIZE) {
    fail("json", `config.json_size ${jsonSize} does not match header size ${hdrSize}`);
  }
  const keyslotsSize = jsonU64(config.keyslots_size, "config.keyslots_size");
  if (keyslotsSize % 4096 !== 0 || keyslotsSize > 128 * 1024 * 1024) {
    fail("json", `config.keyslots_size ${keyslotsSize} is not a multiple of 4096 up to 128 MiB`);
  }
  const metaEnd = 2 * hdrSize;
  const areaEnd = metaEnd + keyslotsSize;
  const areas: [number, number, string][] = [];
  for (const [id, ks] of Object.entries(keyslots)) {
    const area = ks.area;
    if (!isObject(area)) fail("json", `keyslots.${id}.area is not an object`);
    const off = jsonU64(area.offset, `keyslots.${id}.area.offset`);
    const size = jsonU64(area.size, `keyslots.${id}.area.size`);
    if (off < metaEnd || off + size > areaEnd || size === 0) {
      fail("layout", `keyslots.${id}.area [${off}, +${size}) lies outside the keyslots area`);
    }
    areas.push([off, off + size, `keyslots.${id}`]);
  }
  areas.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < areas.length; i++) {
    if (areas[i][0] < areas[i - 1][1]) fail("layout", `${areas[i][2]} overlaps ${areas[i - 1][2]}`);
  }
  for (const [id, seg] of Object.entries(segments)) {
    const off = jsonU64(seg.offset, `segments.${id}.offset`);
    if (off < areaEnd) fail("layout", `segments.${id}.offset ${off} lies inside the metadata`);
    if (seg.size !== "dynamic") jsonU64(seg.size, `segments.${id}.size`);
  }
  return { keyslots, tokens, segments, digests, config, topKeys: Object.keys(top) };
}

/** Parse and verify the copy at `offset`; `bytes` must hold at least its hdr_size bytes. */
export function parseHeaderCopy(
  bytes: Uint8Array,
  offset: number,
  expect: "primary" | "secondary",
): HeaderCopy {
  const binary = parseBinaryHeader(bytes, offset, expect);
  if (offset + binary.hdrSize > bytes.length) {
    fail("truncated", `header at ${offset} runs past the ${bytes.length} bytes read`);
  }
  if (binary.checksumAlg !== "sha256") {
    fail("checksum_alg", `checksum algorithm ${JSON.stringify(binary.checksumAlg)} is not sha256`);
  }
  const copy = bytes.subarray(offset, offset + binary.hdrSize);
  const sum = toHexStr(headerChecksum(copy));
  if (sum !== binary.checksum) fail("checksum", `${expect} header checksum does not match`);
  const area = copy.subarray(BINARY_HEADER_SIZE);
  const nul = area.indexOf(0);
  if (nul < 0) fail("json", "JSON area is not NUL-terminated");
  let jsonText: string;
  try {
    jsonText = new TextDecoder("utf-8", { fatal: true }).decode(area.subarray(0, nul));
  } catch {
    fail("json", "JSON area is not UTF-8");
  }
  return { binary, metadata: parseMetadata(jsonText, binary.hdrSize), jsonText };
}

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Parse both copies of a LUKS2 header from the first bytes of a device
 * (read {@link HEADER_PROBE_BYTES} or the whole device if smaller).
 * Throws {@link ParseError} when no copy is valid or the valid copies disagree.
 */
export function parseLuks2Header(head: Uint8Array): Luks2Header {
  let primary: HeaderCopy | null = null;
  let secondary: HeaderCopy | null = null;
  let primaryError: string | undefined;
  let secondaryError: string | undefined;
  try {
    primary = parseHeaderCopy(head, 0, "primary");
  } catch (e) {
    if (!(e instanceof ParseError)) throw e;
    primaryError = describe(e);
  }
  const candidates = primary ? [primary.binary.hdrSize] : HEADER_SIZES;
  for (const off of candidates) {
    if (!startsWith(head, off, MAGIC_SECONDARY)) continue;
    try {
      secondary = parseHeaderCopy(head, off, "secondary");
      secondaryError = undefined;
      break;
    } catch (e) {
      if (!(e instanceof ParseError)) throw e;
      secondaryError = describe(e);
    }
  }
  if (!secondary && !secondaryError) secondaryError = "no secondary header found";
  if (!primary && !secondary) {
    fail(
      "no_valid_copy",
      `no valid LUKS2 header copy (primary: ${primaryError}; secondary: ${secondaryError})`,
    );
  }
  let active: HeaderCopy;
  if (primary && secondary) {
    if (primary.binary.hdrSize !== secondary.binary.hdrSize) {
      fail("copies", "header copies have different sizes");
    }
    if (primary.binary.uuid !== secondary.binary.uuid) {
      fail("copies", "header copies differ in UUID");
    }
    if (
      primary.binary.seqid === secondary.binary.seqid && primary.jsonText !== secondary.jsonText
    ) {
      fail("copies", "header copies have the same sequence id but different metadata");
    }
    active = secondary.binary.seqid > primary.binary.seqid ? secondary : primary;
  } else {
    active = (primary ?? secondary)!;
  }
  return { active, primary, secondary, primaryError, secondaryError };
}

/** What LUKS header, if any, starts `head` (never throws for malformed input). */
export function probeLuks(head: Uint8Array): LuksProbe {
  const p = startsWith(head, 0, MAGIC_PRIMARY);
  const s = HEADER_SIZES.some((o) => startsWith(head, o, MAGIC_SECONDARY));
  if (!p && !s) return { kind: "none" };
  if (p && head.length >= 8 && head[6] === 0 && head[7] === 1) return { kind: "luks1" };
  try {
    return { kind: "luks2", header: parseLuks2Header(head) };
  } catch (e) {
    if (e instanceof ParseError) return { kind: "damaged", error: e };
    throw e;
  }
}

/**
 * Write a copy's checksum field (for tools and tests that build or modify headers):
 * computes SHA-256 over the copy with the field zeroed and stores it.
 */
export function sealHeaderCopy(copy: Uint8Array): void {
  copy.fill(0, 448, 512);
  copy.set(headerChecksum(copy), 448);
}
