/**
 * The SEV-SNP `ATTESTATION_REPORT` (AMD SEV-SNP Firmware ABI specification, "Attestation
 * Report" table; 1184 = 0x4A0 bytes, little-endian). Report versions 2 to 5 share one
 * layout; version 3 adds CPUID family/model/stepping at 0x188–0x18A and version 5 adds the
 * launch and current mitigation vectors at 0x1F8 and 0x200. The signature covers bytes
 * 0x000–0x29F; R and S are 72-byte little-endian fields at 0x2A0 and 0x2E8.
 *
 * The parser is pure and checks only the structure (exact size). Semantic checks (version,
 * reserved fields, signer) are named failures in {@link verifySnpReport}.
 *
 * @module
 */
import { ParseError } from "../../lib/errors.ts";

/** Size of an attestation report in bytes. */
export const SNP_REPORT_SIZE = 0x4a0;
/** Length of the signed prefix of the report. */
export const SNP_SIGNED_LENGTH = 0x2a0;
/** Lowest and highest report versions this parser understands. */
export const SNP_MIN_VERSION = 2;
export const SNP_MAX_VERSION = 5;

/** Which key signed the report (flags bits 4:2). */
export type SnpSigningKey = "vcek" | "vlek" | "none" | "reserved";

/** CPU family, model and stepping the firmware reports (version 3 and later). */
export interface SnpCpuid {
  family: number;
  model: number;
  stepping: number;
}

/** Firmware version triple. */
export interface SnpFirmwareVersion {
  major: number;
  minor: number;
  build: number;
}

/** A parsed attestation report. Byte fields are views into a private copy of the input. */
export interface SnpReport {
  /** The 1184 input bytes (a copy). */
  raw: Uint8Array;
  version: number;
  guestSvn: number;
  /** Guest policy (u64). */
  policy: bigint;
  familyId: Uint8Array;
  imageId: Uint8Array;
  vmpl: number;
  signatureAlgo: number;
  /** TCB_VERSION fields are kept raw (8 bytes); decode with {@link decodeTcb} per product. */
  currentTcb: Uint8Array;
  platformInfo: bigint;
  /** The u32 at 0x48: AUTHOR_KEY_EN (bit 0), MASK_CHIP_KEY (bit 1), SIGNING_KEY (bits 4:2). */
  flags: number;
  signingKey: SnpSigningKey;
  maskChipKey: boolean;
  authorKeyEn: boolean;
  reportData: Uint8Array;
  measurement: Uint8Array;
  hostData: Uint8Array;
  idKeyDigest: Uint8Array;
  authorKeyDigest: Uint8Array;
  reportId: Uint8Array;
  reportIdMa: Uint8Array;
  reportedTcb: Uint8Array;
  /** Present for version ≥ 3 (all zero means the firmware did not fill it). */
  cpuid?: SnpCpuid;
  chipId: Uint8Array;
  committedTcb: Uint8Array;
  currentVersion: SnpFirmwareVersion;
  committedVersion: SnpFirmwareVersion;
  launchTcb: Uint8Array;
  /** Version 5 only. */
  launchMitVector?: bigint;
  /** Version 5 only. */
  currentMitVector?: bigint;
  /** Signature R and S as big-endian 48-byte P-384 scalars (low 48 bytes of each field). */
  signatureR: Uint8Array;
  signatureS: Uint8Array;
  /** Byte ranges that must be zero but are not, as `[start, end)` offsets. */
  nonZeroReserved: Array<[number, number]>;
}

function u32(b: Uint8Array, o: number): number {
  return (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16)) + b[o + 3] * 0x1000000;
}

function u64(b: Uint8Array, o: number): bigint {
  return BigInt(u32(b, o)) | (BigInt(u32(b, o + 4)) << 32n);
}

function leScalar(b: Uint8Array, o: number): Uint8Array {
  return b.slice(o, o + 48).reverse();
}

function signingKeyOf(flags: number): SnpSigningKey {
  const k = (flags >>> 2) & 7;
  return k === 0 ? "vcek" : k === 1 ? "vlek" : k === 7 ? "none" : "reserved";
}

/**
 * Parse a 1184-byte report. Any other length is a {@link ParseError}; a caller that holds a
 * longer buffer (e.g. Azure's 1204-byte HCL copy) slices the report out first.
 */
export function parseSnpReport(bytes: Uint8Array): SnpReport {
  if (!(bytes instanceof Uint8Array)) throw new ParseError("snp_report", "report must be bytes");
  if (bytes.length !== SNP_REPORT_SIZE) {
    throw new ParseError(
      "snp_report",
      `SEV-SNP report must be ${SNP_REPORT_SIZE} bytes, got ${bytes.length}`,
    );
  }
  const b = bytes.slice();
  const version = u32(b, 0x00);
  const flags = u32(b, 0x48);
  const reserved: Array<[number, number]> = [];
  const mbz = (lo: number, hi: number) => {
    for (let i = lo; i < hi; i++) {
      if (b[i] !== 0) {
        reserved.push([lo, hi]);
        return;
      }
    }
  };
  mbz(0x4c, 0x50);
  mbz(version >= 3 ? 0x18b : 0x188, 0x1a0);
  mbz(0x1eb, 0x1ec);
  mbz(0x1ef, 0x1f0);
  // Version 4 firmware may already fill the mitigation vectors; only v2/v3 require zeros there.
  mbz(version >= 4 ? 0x208 : 0x1f8, SNP_SIGNED_LENGTH);
  mbz(0x2a0 + 48, 0x2a0 + 72);
  mbz(0x2e8 + 48, 0x2e8 + 72);
  mbz(0x2e8 + 72, SNP_REPORT_SIZE);
  if (flags >>> 5 !== 0) reserved.push([0x48, 0x4c]);
  return {
    raw: b,
    version,
    guestSvn: u32(b, 0x04),
    policy: u64(b, 0x08),
    familyId: b.subarray(0x10, 0x20),
    imageId: b.subarray(0x20, 0x30),
    vmpl: u32(b, 0x30),
    signatureAlgo: u32(b, 0x34),
    currentTcb: b.subarray(0x38, 0x40),
    platformInfo: u64(b, 0x40),
    flags,
    signingKey: signingKeyOf(flags),
    maskChipKey: (flags & 2) !== 0,
    authorKeyEn: (flags & 1) !== 0,
    reportData: b.subarray(0x50, 0x90),
    measurement: b.subarray(0x90, 0xc0),
    hostData: b.subarray(0xc0, 0xe0),
    idKeyDigest: b.subarray(0xe0, 0x110),
    authorKeyDigest: b.subarray(0x110, 0x140),
    reportId: b.subarray(0x140, 0x160),
    reportIdMa: b.subarray(0x160, 0x180),
    reportedTcb: b.subarray(0x180, 0x188),
    cpuid: version >= 3 ? { family: b[0x188], model: b[0x189], stepping: b[0x18a] } : undefined,
    chipId: b.subarray(0x1a0, 0x1e0),
    committedTcb: b.subarray(0x1e0, 0x1e8),
    currentVersion: { build: b[0x1e8], minor: b[0x1e9], major: b[0x1ea] },
    committedVersion: { build: b[0x1ec], minor: b[0x1ed], major: b[0x1ee] },
    launchTcb: b.subarray(0x1f0, 0x1f8),
    launchMitVector: version >= 5 ? u64(b, 0x1f8) : undefined,
    currentMitVector: version >= 5 ? u64(b, 0x200) : undefined,
    signatureR: leScalar(b, 0x2a0),
    signatureS: leScalar(b, 0x2e8),
    nonZeroReserved: reserved,
  };
}

/** Guest policy bits (ABI spec "Guest Policy" table). */
export const SnpPolicyBit = {
  Smt: 16n,
  Reserved1: 17n,
  MigrateMa: 18n,
  Debug: 19n,
  SingleSocket: 20n,
  CxlAllow: 21n,
  MemAes256Xts: 22n,
  RaplDis: 23n,
  CiphertextHiding: 24n,
  PageSwapDisable: 25n,
} as const;

/** The guest policy split into its named parts. */
export interface SnpGuestPolicy {
  abiMinor: number;
  abiMajor: number;
  smt: boolean;
  migrateMa: boolean;
  debug: boolean;
  singleSocket: boolean;
  cxlAllow: boolean;
  memAes256Xts: boolean;
  raplDis: boolean;
  ciphertextHiding: boolean;
  pageSwapDisable: boolean;
}

/** Decode the u64 guest policy. */
export function decodeGuestPolicy(policy: bigint): SnpGuestPolicy {
  const bit = (n: bigint) => ((policy >> n) & 1n) === 1n;
  return {
    abiMinor: Number(policy & 0xffn),
    abiMajor: Number((policy >> 8n) & 0xffn),
    smt: bit(SnpPolicyBit.Smt),
    migrateMa: bit(SnpPolicyBit.MigrateMa),
    debug: bit(SnpPolicyBit.Debug),
    singleSocket: bit(SnpPolicyBit.SingleSocket),
    cxlAllow: bit(SnpPolicyBit.CxlAllow),
    memAes256Xts: bit(SnpPolicyBit.MemAes256Xts),
    raplDis: bit(SnpPolicyBit.RaplDis),
    ciphertextHiding: bit(SnpPolicyBit.CiphertextHiding),
    pageSwapDisable: bit(SnpPolicyBit.PageSwapDisable),
  };
}
