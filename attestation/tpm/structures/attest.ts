/**
 * TPMS_ATTEST (Part 2, 10.12.12): the structure a TPM signs for Quote, Certify and the other
 * attestation commands, with TPMS_CLOCK_INFO (10.11.1), TPMS_QUOTE_INFO (10.12.4) and
 * TPMS_CERTIFY_INFO (10.12.3).
 *
 * @module
 */
import {
  type Codec,
  decode,
  encode,
  ParseError,
  type Reader,
  TPM_ST,
  type Writer,
} from "./_deps.ts";
import { type TpmlPcrSelection, tpmlPcrSelection } from "./pcr_selection.ts";

/** Largest TPM2B_NAME (hash alg + SHA-512 digest, or a handle). */
export const MAX_NAME = 2 + 64;
/** Largest TPM2B_DATA (extraData / qualifying data). */
export const MAX_DATA = 64;
/** Largest TPMS_ATTEST accepted. */
export const MAX_ATTEST = 4096;

/** TPMS_CLOCK_INFO. */
export interface TpmsClockInfo {
  /** Milliseconds the TPM has been powered, across resets. */
  clock: bigint;
  /** TPM Reset count. */
  resetCount: number;
  /** TPM Restart/Resume count since the last reset. */
  restartCount: number;
  /** Whether `clock` has not been rolled back. */
  safe: boolean;
}

/** The `attested` union of TPMS_ATTEST, by `type`. */
export type TpmuAttest =
  | { kind: "quote"; pcrSelect: TpmlPcrSelection; pcrDigest: Uint8Array }
  | { kind: "certify"; name: Uint8Array; qualifiedName: Uint8Array }
  | { kind: "other"; raw: Uint8Array };

/** TPMS_ATTEST. */
export interface TpmsAttest {
  /** TPM_GENERATED_VALUE for TPM-produced data (checked by verifiers, not the parser). */
  magic: number;
  /** TPM_ST_ATTEST_* selecting `attested`. */
  type: number;
  /** Qualified name of the signing key. */
  qualifiedSigner: Uint8Array;
  /** Caller's qualifying data (the nonce). */
  extraData: Uint8Array;
  /** Clock information. */
  clockInfo: TpmsClockInfo;
  /** Vendor firmware version. */
  firmwareVersion: bigint;
  /** Type-specific attested data; types other than quote/certify are kept raw. */
  attested: TpmuAttest;
}

/** Codec of TPMS_ATTEST (the `other` kind takes the remaining bytes, so it must come last). */
export const tpmsAttest: Codec<TpmsAttest> = {
  read(r: Reader): TpmsAttest {
    const magic = r.u32("TPMS_ATTEST.magic");
    const type = r.u16("TPMS_ATTEST.type");
    const qualifiedSigner = r.tpm2b("TPMS_ATTEST.qualifiedSigner", MAX_NAME);
    const extraData = r.tpm2b("TPMS_ATTEST.extraData", MAX_DATA);
    const clock = r.u64("TPMS_CLOCK_INFO.clock");
    const resetCount = r.u32("TPMS_CLOCK_INFO.resetCount");
    const restartCount = r.u32("TPMS_CLOCK_INFO.restartCount");
    const safeByte = r.u8("TPMS_CLOCK_INFO.safe");
    if (safeByte > 1) throw r.error(`TPMS_CLOCK_INFO.safe is ${safeByte}, not 0 or 1`);
    const firmwareVersion = r.u64("TPMS_ATTEST.firmwareVersion");
    let attested: TpmuAttest;
    if (type === TPM_ST.ATTEST_QUOTE) {
      const pcrSelect = tpmlPcrSelection.read(r);
      const pcrDigest = r.tpm2b("TPMS_QUOTE_INFO.pcrDigest", 64);
      attested = { kind: "quote", pcrSelect, pcrDigest };
    } else if (type === TPM_ST.ATTEST_CERTIFY) {
      const name = r.tpm2b("TPMS_CERTIFY_INFO.name", MAX_NAME);
      const qualifiedName = r.tpm2b("TPMS_CERTIFY_INFO.qualifiedName", MAX_NAME);
      attested = { kind: "certify", name, qualifiedName };
    } else {
      attested = { kind: "other", raw: r.rest() };
    }
    return {
      magic,
      type,
      qualifiedSigner,
      extraData,
      clockInfo: { clock, resetCount, restartCount, safe: safeByte === 1 },
      firmwareVersion,
      attested,
    };
  },
  write(w: Writer, a: TpmsAttest): void {
    w.u32(a.magic).u16(a.type).tpm2b(a.qualifiedSigner).tpm2b(a.extraData);
    w.u64(a.clockInfo.clock).u32(a.clockInfo.resetCount).u32(a.clockInfo.restartCount);
    w.u8(a.clockInfo.safe ? 1 : 0).u64(a.firmwareVersion);
    const at = a.attested;
    if (at.kind === "quote") {
      tpmlPcrSelection.write(w, at.pcrSelect);
      w.tpm2b(at.pcrDigest);
    } else if (at.kind === "certify") {
      w.tpm2b(at.name).tpm2b(at.qualifiedName);
    } else {
      w.bytes(at.raw);
    }
  },
};

/** Parses a TPMS_ATTEST occupying the whole buffer (e.g. `tpm2_quote -m` output). */
export function unmarshalTpmsAttest(b: Uint8Array): TpmsAttest {
  if (b.length > MAX_ATTEST) {
    throw new ParseError("tpm.attest", `TPMS_ATTEST of ${b.length} bytes is too large`);
  }
  return decode(tpmsAttest, b, "tpm.attest");
}

/** Encodes a TPMS_ATTEST. */
export function marshalTpmsAttest(a: TpmsAttest): Uint8Array {
  return encode(tpmsAttest, a);
}
