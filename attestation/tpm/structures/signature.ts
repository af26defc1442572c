/**
 * TPMT_SIGNATURE (Part 2, 11.3.4): RSASSA/RSAPSS (TPMS_SIGNATURE_RSA), ECDSA
 * (TPMS_SIGNATURE_ECC) or NULL. Other signature schemes are refused as unsupported.
 *
 * @module
 */
import {
  type Codec,
  decode,
  encode,
  ParseError,
  type Reader,
  TPM_ALG,
  type Writer,
} from "./_deps.ts";

/** Largest RSA signature accepted (8192-bit). */
export const MAX_RSA_SIG = 1024;
/** Largest ECC signature component accepted. */
export const MAX_ECC_SIG = 128;

/** TPMT_SIGNATURE. */
export type TpmtSignature =
  | { sigAlg: 0x0014 | 0x0016; hash: number; sig: Uint8Array }
  | { sigAlg: 0x0018; hash: number; r: Uint8Array; s: Uint8Array }
  | { sigAlg: 0x0010 };

/** Codec of TPMT_SIGNATURE. */
export const tpmtSignature: Codec<TpmtSignature> = {
  read(r: Reader): TpmtSignature {
    const sigAlg = r.u16("TPMT_SIGNATURE.sigAlg");
    switch (sigAlg) {
      case TPM_ALG.RSASSA:
      case TPM_ALG.RSAPSS: {
        const hash = r.u16("TPMS_SIGNATURE_RSA.hash");
        return { sigAlg, hash, sig: r.tpm2b("TPMS_SIGNATURE_RSA.sig", MAX_RSA_SIG) };
      }
      case TPM_ALG.ECDSA: {
        const hash = r.u16("TPMS_SIGNATURE_ECC.hash");
        const sr = r.tpm2b("TPMS_SIGNATURE_ECC.signatureR", MAX_ECC_SIG);
        const ss = r.tpm2b("TPMS_SIGNATURE_ECC.signatureS", MAX_ECC_SIG);
        return { sigAlg, hash, r: sr, s: ss };
      }
      case TPM_ALG.NULL:
        return { sigAlg };
      default:
        throw r.error(`unsupported signature algorithm 0x${sigAlg.toString(16).padStart(4, "0")}`);
    }
  },
  write(w: Writer, s: TpmtSignature): void {
    w.u16(s.sigAlg);
    switch (s.sigAlg) {
      case TPM_ALG.RSASSA:
      case TPM_ALG.RSAPSS:
        w.u16(s.hash).tpm2b(s.sig, "sig");
        return;
      case TPM_ALG.ECDSA:
        w.u16(s.hash).tpm2b(s.r, "r").tpm2b(s.s, "s");
        return;
      case TPM_ALG.NULL:
        return;
      default:
        throw new ParseError("tpm.marshal", "unsupported signature algorithm");
    }
  },
};

/** Parses a TPMT_SIGNATURE occupying the whole buffer (e.g. `tpm2_quote -s` output). */
export function unmarshalTpmtSignature(b: Uint8Array): TpmtSignature {
  return decode(tpmtSignature, b, "tpm.signature");
}

/** Encodes a TPMT_SIGNATURE. */
export function marshalTpmtSignature(s: TpmtSignature): Uint8Array {
  return encode(tpmtSignature, s);
}
