/**
 * TPMS_PCR_SELECTION and TPML_PCR_SELECTION (Part 2, 10.6.2 and 10.9.7).
 *
 * @module
 */
import { type Codec, decode, encode, ParseError, type Reader, type Writer } from "./_deps.ts";

/** Largest `sizeofSelect` accepted (256 PCRs; real TPMs use 3). */
export const MAX_SIZEOF_SELECT = 32;
/** Most selections in one TPML_PCR_SELECTION (HASH_COUNT bound). */
export const MAX_PCR_SELECTIONS = 16;

/** One bank's PCR selection: a hash algorithm and the selected PCR indices, ascending. */
export interface TpmsPcrSelection {
  /** Bank hash algorithm (TPM_ALG_ID). */
  hash: number;
  /** Selected PCR indices, sorted ascending, no duplicates. */
  pcrs: number[];
}

/** TPML_PCR_SELECTION: selections over one or more banks. */
export type TpmlPcrSelection = TpmsPcrSelection[];

/** Codec of TPMS_PCR_SELECTION; the bitmap is at least 3 bytes, as TPMs expect. */
export const tpmsPcrSelection: Codec<TpmsPcrSelection> = {
  read(r: Reader): TpmsPcrSelection {
    const hash = r.u16("TPMS_PCR_SELECTION.hash");
    const size = r.u8("TPMS_PCR_SELECTION.sizeofSelect");
    if (size > MAX_SIZEOF_SELECT) throw r.error(`sizeofSelect ${size} > ${MAX_SIZEOF_SELECT}`);
    const bitmap = r.bytes(size, "TPMS_PCR_SELECTION.pcrSelect");
    const pcrs: number[] = [];
    for (let i = 0; i < size * 8; i++) if (bitmap[i >> 3] & (1 << (i & 7))) pcrs.push(i);
    return { hash, pcrs };
  },
  write(w: Writer, s: TpmsPcrSelection): void {
    let max = -1;
    for (const p of s.pcrs) {
      if (!Number.isInteger(p) || p < 0 || p >= MAX_SIZEOF_SELECT * 8) {
        throw new ParseError("tpm.marshal", `PCR index ${p} out of range`);
      }
      if (p > max) max = p;
    }
    const size = Math.max(3, (max >> 3) + 1);
    const bitmap = new Uint8Array(size);
    for (const p of s.pcrs) bitmap[p >> 3] |= 1 << (p & 7);
    w.u16(s.hash, "TPMS_PCR_SELECTION.hash").u8(size).bytes(bitmap);
  },
};

/** Codec of TPML_PCR_SELECTION (u32 count, at most {@link MAX_PCR_SELECTIONS}). */
export const tpmlPcrSelection: Codec<TpmlPcrSelection> = {
  read(r: Reader): TpmlPcrSelection {
    const n = r.u32("TPML_PCR_SELECTION.count");
    if (n > MAX_PCR_SELECTIONS) throw r.error(`TPML_PCR_SELECTION count ${n} too large`);
    const out: TpmlPcrSelection = [];
    for (let i = 0; i < n; i++) out.push(tpmsPcrSelection.read(r));
    return out;
  },
  write(w: Writer, s: TpmlPcrSelection): void {
    if (s.length > MAX_PCR_SELECTIONS) {
      throw new ParseError("tpm.marshal", "too many PCR selections");
    }
    w.u32(s.length);
    for (const x of s) tpmsPcrSelection.write(w, x);
  },
};

/** Parses a TPML_PCR_SELECTION occupying the whole buffer. */
export function unmarshalTpmlPcrSelection(b: Uint8Array): TpmlPcrSelection {
  return decode(tpmlPcrSelection, b, "tpm.pcr_selection");
}

/** Encodes a TPML_PCR_SELECTION. */
export function marshalTpmlPcrSelection(s: TpmlPcrSelection): Uint8Array {
  return encode(tpmlPcrSelection, s);
}
