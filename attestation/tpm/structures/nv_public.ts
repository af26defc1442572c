/**
 * TPMS_NV_PUBLIC and TPM2B_NV_PUBLIC (Part 2, 13.5 and 13.6): the public area of an NV index.
 *
 * @module
 */
import { type Codec, sized, struct, tpm2b, u16, u32 } from "./_deps.ts";

/** TPMS_NV_PUBLIC. */
export interface TpmsNvPublic {
  /** The NV index handle. */
  nvIndex: number;
  /** Name algorithm. */
  nameAlg: number;
  /** TPMA_NV bits. */
  attributes: number;
  /** Policy digest. */
  authPolicy: Uint8Array;
  /** Size of the data area in bytes. */
  dataSize: number;
}

/** Codec of TPMS_NV_PUBLIC. */
export const tpmsNvPublic: Codec<TpmsNvPublic> = struct({
  nvIndex: u32,
  nameAlg: u16,
  attributes: u32,
  authPolicy: tpm2b("TPMS_NV_PUBLIC.authPolicy", 64),
  dataSize: u16,
});

/** Codec of TPM2B_NV_PUBLIC. */
export const tpm2bNvPublic: Codec<TpmsNvPublic> = sized("TPM2B_NV_PUBLIC", tpmsNvPublic);

/** TPMA_NV bits used when reading EK certificates (Part 2, 13.4). */
export const TPMA_NV = {
  PPREAD: 1 << 16,
  OWNERREAD: 1 << 17,
  AUTHREAD: 1 << 18,
  POLICYREAD: 1 << 19,
  NO_DA: 1 << 25,
  WRITTEN: 1 << 29,
} as const;
