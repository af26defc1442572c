/**
 * AMD's X.509 extensions on VCEK and VLEK certificates (AMD "Versioned Chip Endorsement
 * Key (VCEK) Certificate and KDS Interface Specification"): the TCB the key was derived
 * for, the chip's hardware id (VCEK only) and the cloud provider id (VLEK only).
 *
 * @module
 */
import { ParseError } from "../../lib/errors.ts";
import {
  type CertExtension,
  derSmallUint,
  DerTag,
  expectTag,
  readDerExact,
} from "../tee_common/mod.ts";

/** OIDs of AMD's certificate extensions (arc 1.3.6.1.4.1.3704.1). */
export const AmdOid = {
  structVersion: "1.3.6.1.4.1.3704.1.1",
  productName: "1.3.6.1.4.1.3704.1.2",
  blSpl: "1.3.6.1.4.1.3704.1.3.1",
  teeSpl: "1.3.6.1.4.1.3704.1.3.2",
  snpSpl: "1.3.6.1.4.1.3704.1.3.3",
  spl4: "1.3.6.1.4.1.3704.1.3.4",
  spl5: "1.3.6.1.4.1.3704.1.3.5",
  spl6: "1.3.6.1.4.1.3704.1.3.6",
  spl7: "1.3.6.1.4.1.3704.1.3.7",
  ucodeSpl: "1.3.6.1.4.1.3704.1.3.8",
  fmcSpl: "1.3.6.1.4.1.3704.1.3.9",
  hwid: "1.3.6.1.4.1.3704.1.4",
  cspId: "1.3.6.1.4.1.3704.1.5",
} as const;

/** The AMD extension values of an endorsement key certificate. */
export interface AmdKeyExtensions {
  productName?: string;
  bootloader?: number;
  tee?: number;
  snp?: number;
  microcode?: number;
  fmc?: number;
  /** Values of spl_4..spl_7 that are present (reserved, expected 0). */
  reservedSpl: number[];
  /** Hardware id (64 bytes; 8 bytes on Turin). VCEK only. */
  hwid?: Uint8Array;
  /** Cloud service provider id, e.g. `cc-us-east-2.amazonaws.com`. VLEK only. */
  cspId?: string;
}

const td = new TextDecoder("utf-8", { fatal: false });

function intExt(ext: CertExtension | undefined, what: string): number | undefined {
  if (!ext) return undefined;
  const n = derSmallUint(readDerExact(ext.value, what), what);
  if (n > 255) throw new ParseError(what, `${what}: SPL ${n} does not fit in a byte`);
  return n;
}

function stringExt(ext: CertExtension | undefined, what: string): string | undefined {
  if (!ext) return undefined;
  const node = readDerExact(ext.value, what);
  if (node.tag !== DerTag.Ia5String && node.tag !== DerTag.Utf8String) {
    expectTag(node, DerTag.Ia5String, what);
  }
  return td.decode(node.contents);
}

/** Read the AMD extensions; a malformed value is a {@link ParseError}. */
export function readAmdKeyExtensions(
  extensions: Map<string, CertExtension>,
  what = "vcek",
): AmdKeyExtensions {
  const g = (oid: string) => extensions.get(oid);
  const reservedSpl: number[] = [];
  for (const oid of [AmdOid.spl4, AmdOid.spl5, AmdOid.spl6, AmdOid.spl7]) {
    const v = intExt(g(oid), what);
    if (v !== undefined) reservedSpl.push(v);
  }
  return {
    productName: stringExt(g(AmdOid.productName), what),
    bootloader: intExt(g(AmdOid.blSpl), what),
    tee: intExt(g(AmdOid.teeSpl), what),
    snp: intExt(g(AmdOid.snpSpl), what),
    microcode: intExt(g(AmdOid.ucodeSpl), what),
    fmc: intExt(g(AmdOid.fmcSpl), what),
    reservedSpl,
    hwid: g(AmdOid.hwid)?.value,
    cspId: stringExt(g(AmdOid.cspId), what),
  };
}
