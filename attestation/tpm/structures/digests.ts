/**
 * Digest containers: TPMT_HA (Part 2, 10.3.2), TPML_DIGEST (10.9.3) and TPML_DIGEST_VALUES
 * (10.9.4).
 *
 * @module
 */
import { hashAlgSize, isHashAlg } from "../constants.ts";
import { type Codec, list, ParseError, type Reader, tpm2b, type Writer } from "./_deps.ts";

/** TPMT_HA: a digest tagged with its hash algorithm. */
export interface TpmtHa {
  /** Hash algorithm. */
  hashAlg: number;
  /** Digest, exactly the algorithm's size. */
  digest: Uint8Array;
}

/** Codec of TPMT_HA (only SHA-1/256/384/512). */
export const tpmtHa: Codec<TpmtHa> = {
  read(r: Reader): TpmtHa {
    const hashAlg = r.u16("TPMT_HA.hashAlg");
    if (!isHashAlg(hashAlg)) throw r.error(`unsupported hash 0x${hashAlg.toString(16)}`);
    return { hashAlg, digest: r.bytes(hashAlgSize(hashAlg), "TPMT_HA.digest") };
  },
  write(w: Writer, v: TpmtHa): void {
    if (!isHashAlg(v.hashAlg) || v.digest.length !== hashAlgSize(v.hashAlg)) {
      throw new ParseError("tpm.marshal", "TPMT_HA digest does not match its hash algorithm");
    }
    w.u16(v.hashAlg).bytes(v.digest);
  },
};

/** Codec of TPML_DIGEST (at most 8 digests). */
export const tpmlDigest: Codec<Uint8Array[]> = list("TPML_DIGEST", tpm2b("TPM2B_DIGEST", 64), 8);

/** Codec of TPML_DIGEST_VALUES (at most 16 banks). */
export const tpmlDigestValues: Codec<TpmtHa[]> = list("TPML_DIGEST_VALUES", tpmtHa, 16);
