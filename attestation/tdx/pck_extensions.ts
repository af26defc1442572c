/**
 * The Intel SGX extension of a PCK certificate (OID 1.2.840.113741.1.13.1):
 * the platform's FMSPC, PCE id and the TCB it was certified at (16 CPU SVN
 * components and the PCE SVN). TCB status evaluation starts from these.
 *
 * @module
 */
import { ParseError } from "../../lib/errors.ts";
import { toHex } from "../../lib/bytes.ts";
import type { X509Certificate } from "../../lib/x509.ts";
import { children, content, type DerNode, oid, readRoot, smallInt, Tag } from "./_der.ts";

/** OID of the SGX extension. */
export const SGX_EXTENSION_OID = "1.2.840.113741.1.13.1";

/** What the SGX extension of a PCK certificate says. */
export interface PckExtensions {
  /** 6 bytes, lower-case hex. */
  fmspc: string;
  /** 2 bytes, lower-case hex. */
  pceId: string;
  /** The 16 SGX TCB component SVNs. */
  cpuSvnComponents: number[];
  pceSvn: number;
  /** CPUSVN as 16 bytes, lower-case hex. */
  cpuSvn: string;
}

function pairs(seq: DerNode, what: string): Map<string, DerNode> {
  const out = new Map<string, DerNode>();
  for (const item of children(seq)) {
    if (item.tag !== Tag.Sequence) throw new ParseError("pck", `${what}: entry is not a SEQUENCE`);
    const kids = children(item);
    if (kids.length !== 2) {
      throw new ParseError("pck", `${what}: entry must hold an OID and a value`);
    }
    const id = oid(kids[0], what);
    if (out.has(id)) throw new ParseError("pck", `${what}: ${id} appears twice`);
    out.set(id, kids[1]);
  }
  return out;
}

/** Decode the SGX extension's value (the DER SEQUENCE inside the extension's OCTET STRING). */
export function parseSgxExtension(der: Uint8Array): PckExtensions {
  const root = readRoot(der);
  if (root.tag !== Tag.Sequence) throw new ParseError("pck", "SGX extension is not a SEQUENCE");
  const top = pairs(root, "SGX extension");
  const get = (arc: string): DerNode => {
    const n = top.get(`${SGX_EXTENSION_OID}.${arc}`);
    if (!n) throw new ParseError("pck", `SGX extension lacks ${SGX_EXTENSION_OID}.${arc}`);
    return n;
  };
  const fmspc = content(get("4"), Tag.OctetString, "FMSPC");
  if (fmspc.length !== 6) throw new ParseError("pck", "FMSPC must be 6 bytes");
  const pceId = content(get("3"), Tag.OctetString, "PCE-ID");
  if (pceId.length !== 2) throw new ParseError("pck", "PCE-ID must be 2 bytes");
  const tcbNode = get("2");
  if (tcbNode.tag !== Tag.Sequence) throw new ParseError("pck", "SGX TCB is not a SEQUENCE");
  const tcb = pairs(tcbNode, "SGX TCB");
  const comps: number[] = [];
  for (let i = 1; i <= 16; i++) {
    const n = tcb.get(`${SGX_EXTENSION_OID}.2.${i}`);
    if (!n) throw new ParseError("pck", `SGX TCB lacks component ${i}`);
    const v = smallInt(n, `TCB component ${i}`);
    if (v > 255) throw new ParseError("pck", `TCB component ${i} is out of range`);
    comps.push(v);
  }
  const pceSvnNode = tcb.get(`${SGX_EXTENSION_OID}.2.17`);
  if (!pceSvnNode) throw new ParseError("pck", "SGX TCB lacks the PCE SVN");
  const pceSvn = smallInt(pceSvnNode, "PCESVN");
  if (pceSvn > 0xffff) throw new ParseError("pck", "PCESVN is out of range");
  const cpuSvnNode = tcb.get(`${SGX_EXTENSION_OID}.2.18`);
  if (!cpuSvnNode) throw new ParseError("pck", "SGX TCB lacks the CPUSVN");
  const cpuSvn = content(cpuSvnNode, Tag.OctetString, "CPUSVN");
  if (cpuSvn.length !== 16) throw new ParseError("pck", "CPUSVN must be 16 bytes");
  return {
    fmspc: toHex(fmspc),
    pceId: toHex(pceId),
    cpuSvnComponents: comps,
    pceSvn,
    cpuSvn: toHex(cpuSvn),
  };
}

/** The SGX extension of a PCK certificate; a missing or malformed one is a {@link ParseError}. */
export function pckExtensions(cert: X509Certificate): PckExtensions {
  const ext = cert.extensions.find((e) => e.type === SGX_EXTENSION_OID);
  if (!ext) throw new ParseError("pck", "PCK certificate has no SGX extension");
  return parseSgxExtension(new Uint8Array(ext.value));
}
