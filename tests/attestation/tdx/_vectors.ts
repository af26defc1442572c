/** Shared helpers of the TDX tests: paths and loaders of tests/testdata/tdx. */
import { fileURLToPath } from "node:url";

/** Directory of the TDX test vectors. */
export const TDX_DATA = fileURLToPath(new URL("../../testdata/tdx/", import.meta.url));

/** Bytes of a vector file. */
export function vector(name: string): Uint8Array {
  return Deno.readFileSync(TDX_DATA + name);
}

/** Text of a vector file. */
export function vectorText(name: string): string {
  return Deno.readTextFileSync(TDX_DATA + name);
}

/** Per-quote expectations (from the collection's SUMMARY.json), keyed by vector path. */
export interface Expected {
  version: number;
  length: number;
  fileLength: number;
  mrTd: string;
  reportData: string;
  teeTcbSvn: string;
  rtmr0: string;
  rtmr3: string;
  mrSeam: string;
  tdAttributes: string;
  xfam: string;
  qeMrSigner: string;
  qeIsvSvn: number;
  pckNotBefore: string;
  pckNotAfter: string;
}

/** Every real TDX quote in the test data with its expected fields. */
export const EXPECTED: Record<string, Expected> = JSON.parse(vectorText("expected.json"));

/** A time inside every real PCK chain's validity (all leaves: 2026-01-27 .. 2029-09-20). */
export const INSIDE_ALL = new Date("2026-11-25T00:00:00Z");

/** A time inside one quote's PCK leaf validity. */
export function insideLeaf(e: Expected): Date {
  const nb = Date.parse(e.pckNotBefore.replace(" ", "T"));
  return new Date(nb + 24 * 3600 * 1000);
}
