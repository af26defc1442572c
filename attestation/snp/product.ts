/**
 * AMD EPYC product lines that run SEV-SNP, how to recognise them (CPUID, certificate
 * names), how each lays out its TCB_VERSION, and the pinned AMD root keys (ARK).
 *
 * @module
 */
import { toHex } from "../../lib/bytes.ts";

/** Product lines with their own AMD Root Key. */
export type SnpProduct = "Milan" | "Genoa" | "Turin";

/** Every supported product line. */
export const SNP_PRODUCTS: readonly SnpProduct[] = ["Milan", "Genoa", "Turin"];

/**
 * A trusted root: the SHA-256 of the ARK's DER SubjectPublicKeyInfo and the product it
 * signs for. Pinning the key (not the certificate) survives a re-issued ARK certificate.
 */
export interface ArkPin {
  product: SnpProduct;
  /** Lower-case hex SHA-256 of the ARK SubjectPublicKeyInfo DER. */
  spkiSha256: string;
}

/**
 * AMD's production ARKs. Computed from the ARK certificates AMD's Key Distribution Service
 * publishes (`/vcek/v1/<product>/cert_chain`), as copied in tests/testdata/snp/ask_ark_*.pem;
 * tests/attestation/snp/product_test.ts recomputes them.
 */
export const AMD_ARK_PINS: readonly ArkPin[] = [
  {
    product: "Milan",
    spkiSha256: "9f056bee44377e29308cb5ffa895bdfb62d18881fa6bed8d6f075b0204089cb9",
  },
  {
    product: "Genoa",
    spkiSha256: "429a69c9422aa258ee4d8db5fcda9c6470ef15f8cd5a9cebd6cbc7d90b863831",
  },
  {
    product: "Turin",
    spkiSha256: "4f125410563a2ab9a50356f9243f6fe0b6f73de98603f53f90339c70e9d7ad08",
  },
];

/** SHA-256 of an SPKI, as used in {@link ArkPin}. */
export async function spkiSha256(spki: Uint8Array): Promise<string> {
  return toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", spki as BufferSource)));
}

/**
 * The product of a CPUID family/model (report v3+). Bergamo and Siena (family 0x19, models
 * 0xA0–0xAF) are Genoa parts for AMD's key service. `undefined` for unknown or zero values.
 */
export function productFromCpuid(family: number, model: number): SnpProduct | undefined {
  if (family === 0x19 && model <= 0x0f) return "Milan";
  if (family === 0x19 && ((model >= 0x10 && model <= 0x1f) || (model >= 0xa0 && model <= 0xaf))) {
    return "Genoa";
  }
  if (family === 0x1a && model <= 0x11) return "Turin";
  return undefined;
}

/**
 * The product named by an AMD certificate common name: `ARK-Milan`, `SEV-Milan`,
 * `SEV-VLEK-Milan`, ... `undefined` when the name is not one of these forms.
 */
export function productFromCommonName(cn: string): SnpProduct | undefined {
  const m = cn.match(/^(?:ARK|SEV|SEV-VLEK)-(Milan|Genoa|Turin)$/);
  return m ? (m[1] as SnpProduct) : undefined;
}

/** Named security version numbers of a TCB_VERSION. */
export interface SnpTcb {
  /** Lower-case hex of the raw 8 bytes (little-endian u64 order as stored). */
  raw: string;
  /** FMC SVN (Turin and later only). */
  fmc?: number;
  bootloader: number;
  tee: number;
  snp: number;
  microcode: number;
}

/**
 * Decode a raw 8-byte TCB_VERSION for `product`. Milan and Genoa store
 * `[bl, tee, 0, 0, 0, 0, snp, ucode]`; Turin stores `[fmc, bl, tee, snp, 0, 0, 0, ucode]`.
 */
export function decodeTcb(raw: Uint8Array, product: SnpProduct): SnpTcb {
  if (product === "Turin") {
    return {
      raw: toHex(raw),
      fmc: raw[0],
      bootloader: raw[1],
      tee: raw[2],
      snp: raw[3],
      microcode: raw[7],
    };
  }
  return { raw: toHex(raw), bootloader: raw[0], tee: raw[1], snp: raw[6], microcode: raw[7] };
}

/** Offsets of the reserved (must-be-zero) bytes of a TCB_VERSION for `product`. */
export function tcbReservedBytes(product: SnpProduct): number[] {
  return product === "Turin" ? [4, 5, 6] : [2, 3, 4, 5];
}
