/**
 * A minimal DER reader for the few ASN.1 structures the TDX verifier reads
 * itself (the Intel SGX extension of a PCK certificate). Every read is bounds
 * checked; malformed input is a {@link ParseError}.
 *
 * @module
 */
import { ParseError } from "../../lib/errors.ts";

/** One DER element: its tag byte and where its content lies in `buf`. */
export interface DerNode {
  tag: number;
  buf: Uint8Array;
  /** Offset of the first content byte. */
  start: number;
  /** Offset just past the last content byte. */
  end: number;
}

/** DER tags used here. */
export const Tag = {
  Integer: 0x02,
  OctetString: 0x04,
  Oid: 0x06,
  Enumerated: 0x0a,
  Sequence: 0x30,
} as const;

/** Read the element that starts at `off` and ends no later than `limit`. */
export function readNode(buf: Uint8Array, off: number, limit = buf.length): DerNode {
  if (off + 2 > limit) throw new ParseError("der", "DER element truncated");
  const tag = buf[off];
  if ((tag & 0x1f) === 0x1f) throw new ParseError("der", "multi-byte DER tags are not supported");
  let len = buf[off + 1];
  let p = off + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 3) throw new ParseError("der", "unsupported DER length encoding");
    if (p + n > limit) throw new ParseError("der", "DER length truncated");
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[p + i];
    p += n;
  }
  if (p + len > limit) throw new ParseError("der", "DER content runs past its container");
  return { tag, buf, start: p, end: p + len };
}

/** The children of a constructed element, in order. */
export function children(node: DerNode): DerNode[] {
  const out: DerNode[] = [];
  let p = node.start;
  while (p < node.end) {
    const c = readNode(node.buf, p, node.end);
    out.push(c);
    p = c.end;
    if (out.length > 4096) throw new ParseError("der", "too many DER children");
  }
  return out;
}

/** Read a whole buffer as exactly one element. */
export function readRoot(buf: Uint8Array): DerNode {
  const n = readNode(buf, 0);
  if (n.end !== buf.length) throw new ParseError("der", "trailing bytes after DER element");
  return n;
}

/** Content bytes of `node` after checking its tag. */
export function content(node: DerNode, tag: number, what: string): Uint8Array {
  if (node.tag !== tag) {
    throw new ParseError(
      "der",
      `${what}: expected DER tag 0x${tag.toString(16)}, got 0x${node.tag.toString(16)}`,
    );
  }
  return node.buf.subarray(node.start, node.end);
}

/** A non-negative INTEGER (or ENUMERATED) that fits in a safe JS number. */
export function smallInt(node: DerNode, what: string, tag: number = Tag.Integer): number {
  const c = content(node, tag, what);
  if (c.length === 0 || c.length > 6 || (c[0] & 0x80)) {
    throw new ParseError("der", `${what}: integer out of range`);
  }
  let v = 0;
  for (const b of c) v = v * 256 + b;
  return v;
}

/** Dotted-decimal form of an OBJECT IDENTIFIER. */
export function oid(node: DerNode, what = "OID"): string {
  const c = content(node, Tag.Oid, what);
  if (c.length === 0 || c.length > 64) throw new ParseError("der", `${what}: bad OID length`);
  const arcs: number[] = [];
  let v = 0;
  for (let i = 0; i < c.length; i++) {
    if (v > 0x1fffffffffff) throw new ParseError("der", `${what}: OID arc too large`);
    v = v * 128 + (c[i] & 0x7f);
    if (!(c[i] & 0x80)) {
      arcs.push(v);
      v = 0;
    } else if (i === c.length - 1) throw new ParseError("der", `${what}: OID truncated`);
  }
  const first = arcs[0] < 80 ? Math.floor(arcs[0] / 40) : 2;
  return [first, arcs[0] - first * 40, ...arcs.slice(1)].join(".");
}
