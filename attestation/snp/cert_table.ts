/**
 * The SEV-SNP certificate table the host returns with an extended report (GHCB
 * specification, "SNP Extended Guest Request"; Linux configfs-tsm `auxblob`): a list of
 * `{ guid: 16 bytes, offset: u32 LE, length: u32 LE }` entries ended by an all-zero entry,
 * followed by the certificates the entries point at (offsets from the table start).
 *
 * @module
 */
import { ParseError } from "../../lib/errors.ts";
import type { SnpEvidenceBytes } from "./evidence.ts";
import { MAX_CERT_BYTES, MAX_CRL_BYTES } from "./evidence.ts";

/** GUIDs of the well-known entries (RFC 4122 text form; stored in that byte order). */
export const SnpCertGuid = {
  vcek: "63da758d-e664-4564-adc5-f4b93be8accd",
  vlek: "a8074bc2-a25a-483e-aae6-39c045a0b8a1",
  ask: "4ab7b379-bbac-4fe4-a02f-05aef327c782",
  ark: "c0b406a4-a803-4952-9743-3fb6014cd0ae",
  crl: "92f81bc3-5811-4d3d-97ff-d19f88dc67ea",
} as const;

/** One table entry with the bytes it points at (a copy). */
export interface SnpCertTableEntry {
  guid: string;
  data: Uint8Array;
}

const ENTRY = 24;
/** Largest table accepted (the kernel's buffer is a few pages). */
export const MAX_CERT_TABLE_BYTES = 4 * 1024 * 1024;
const MAX_ENTRIES = 64;

function guidText(b: Uint8Array): string {
  const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function guidBytes(s: string): Uint8Array {
  const h = s.replace(/-/g, "");
  if (!/^[0-9a-f]{32}$/.test(h)) throw new ParseError("snp_cert_table", `bad GUID ${s}`);
  return Uint8Array.from(h.match(/../g)!, (x) => parseInt(x, 16));
}

/**
 * Parse a certificate table. An empty buffer is an empty table. Entries must lie after the
 * header and inside the buffer; a missing terminator or duplicate GUID is a {@link ParseError}.
 */
export function parseSnpCertTable(buf: Uint8Array): SnpCertTableEntry[] {
  if (!(buf instanceof Uint8Array)) throw new ParseError("snp_cert_table", "table must be bytes");
  if (buf.length === 0) return [];
  if (buf.length > MAX_CERT_TABLE_BYTES) {
    throw new ParseError(
      "snp_cert_table",
      `certificate table is larger than ${MAX_CERT_TABLE_BYTES} bytes`,
    );
  }
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const heads: Array<{ guid: string; offset: number; length: number }> = [];
  let p = 0;
  for (;;) {
    if (p + ENTRY > buf.length) {
      throw new ParseError("snp_cert_table", "certificate table has no terminating zero entry");
    }
    const guid = buf.subarray(p, p + 16);
    const offset = dv.getUint32(p + 16, true);
    const length = dv.getUint32(p + 20, true);
    p += ENTRY;
    if (offset === 0 && length === 0 && guid.every((x) => x === 0)) break;
    if (heads.length >= MAX_ENTRIES) {
      throw new ParseError("snp_cert_table", "too many table entries");
    }
    heads.push({ guid: guidText(guid), offset, length });
  }
  const seen = new Set<string>();
  return heads.map((h, i) => {
    if (seen.has(h.guid)) throw new ParseError("snp_cert_table", `duplicate entry ${h.guid}`);
    seen.add(h.guid);
    if (h.offset < p) {
      throw new ParseError(
        "snp_cert_table",
        `entry ${i} points into the table header (offset ${h.offset})`,
      );
    }
    if (h.length > buf.length || h.offset > buf.length - h.length) {
      throw new ParseError(
        "snp_cert_table",
        `entry ${i} (offset ${h.offset}, length ${h.length}) overruns the table`,
      );
    }
    return { guid: h.guid, data: buf.slice(h.offset, h.offset + h.length) };
  });
}

/** Build a certificate table (the inverse of {@link parseSnpCertTable}; used by tests and fakes). */
export function buildSnpCertTable(entries: SnpCertTableEntry[]): Uint8Array {
  const header = (entries.length + 1) * ENTRY;
  const total = header + entries.reduce((n, e) => n + e.data.length, 0);
  const out = new Uint8Array(total);
  const dv = new DataView(out.buffer);
  let off = header;
  entries.forEach((e, i) => {
    out.set(guidBytes(e.guid), i * ENTRY);
    dv.setUint32(i * ENTRY + 16, off, true);
    dv.setUint32(i * ENTRY + 20, e.data.length, true);
    out.set(e.data, off);
    off += e.data.length;
  });
  return out;
}

/**
 * The evidence certificates in a table. The ASK GUID carries the ASVK when the report is
 * VLEK-signed; the verifier uses `ask` as the ASVK then. Unknown GUIDs are ignored.
 */
export function certificatesFromTable(
  entries: SnpCertTableEntry[],
): Omit<SnpEvidenceBytes, "report"> {
  const out: Omit<SnpEvidenceBytes, "report"> = {};
  for (const e of entries) {
    const role = (Object.keys(SnpCertGuid) as Array<keyof typeof SnpCertGuid>)
      .find((k) => SnpCertGuid[k] === e.guid);
    if (!role) continue;
    const max = role === "crl" ? MAX_CRL_BYTES : MAX_CERT_BYTES;
    if (e.data.length === 0 || e.data.length > max) {
      throw new ParseError("snp_cert_table", `${role} entry has ${e.data.length} bytes`);
    }
    out[role] = e.data;
  }
  return out;
}
