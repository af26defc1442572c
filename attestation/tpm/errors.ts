/**
 * TPM response codes as typed errors (Part 2, 6.6 "TPM_RC"): {@link TpmError} names the code
 * (e.g. `TPM_RC_LOCALITY`) and, for format-1 codes, which handle, parameter or session it blames.
 *
 * @module
 */
import { ConfidantError } from "../../lib/errors.ts";

const FMT1: Record<number, string> = {
  0x01: "ASYMMETRIC",
  0x02: "ATTRIBUTES",
  0x03: "HASH",
  0x04: "VALUE",
  0x05: "HIERARCHY",
  0x07: "KEY_SIZE",
  0x08: "MGF",
  0x09: "MODE",
  0x0a: "TYPE",
  0x0b: "HANDLE",
  0x0c: "KDF",
  0x0d: "RANGE",
  0x0e: "AUTH_FAIL",
  0x0f: "NONCE",
  0x10: "PP",
  0x12: "SCHEME",
  0x15: "SIZE",
  0x16: "SYMMETRIC",
  0x17: "TAG",
  0x18: "SELECTOR",
  0x1a: "INSUFFICIENT",
  0x1b: "SIGNATURE",
  0x1c: "KEY",
  0x1d: "POLICY_FAIL",
  0x1f: "INTEGRITY",
  0x20: "TICKET",
  0x21: "RESERVED_BITS",
  0x22: "BAD_AUTH",
  0x23: "EXPIRED",
  0x24: "POLICY_CC",
  0x25: "BINDING",
  0x26: "CURVE",
  0x27: "ECC_POINT",
};

const VER1: Record<number, string> = {
  0x00: "INITIALIZE",
  0x01: "FAILURE",
  0x03: "SEQUENCE",
  0x0b: "PRIVATE",
  0x19: "HMAC",
  0x20: "DISABLED",
  0x21: "EXCLUSIVE",
  0x24: "AUTH_TYPE",
  0x25: "AUTH_MISSING",
  0x26: "POLICY",
  0x27: "PCR",
  0x28: "PCR_CHANGED",
  0x2d: "UPGRADE",
  0x2e: "TOO_MANY_CONTEXTS",
  0x2f: "AUTH_UNAVAILABLE",
  0x30: "REBOOT",
  0x31: "UNBALANCED",
  0x42: "COMMAND_SIZE",
  0x43: "COMMAND_CODE",
  0x44: "AUTHSIZE",
  0x45: "AUTH_CONTEXT",
  0x46: "NV_RANGE",
  0x47: "NV_SIZE",
  0x48: "NV_LOCKED",
  0x49: "NV_AUTHORIZATION",
  0x4a: "NV_UNINITIALIZED",
  0x4b: "NV_SPACE",
  0x4c: "NV_DEFINED",
  0x50: "BAD_CONTEXT",
  0x51: "CPHASH",
  0x52: "PARENT",
  0x53: "NEEDS_TEST",
  0x54: "NO_RESULT",
  0x55: "SENSITIVE",
};

const WARN: Record<number, string> = {
  0x01: "CONTEXT_GAP",
  0x02: "OBJECT_MEMORY",
  0x03: "SESSION_MEMORY",
  0x04: "MEMORY",
  0x05: "SESSION_HANDLES",
  0x06: "OBJECT_HANDLES",
  0x07: "LOCALITY",
  0x08: "YIELDED",
  0x09: "CANCELED",
  0x0a: "TESTING",
  0x20: "NV_RATE",
  0x21: "LOCKOUT",
  0x22: "RETRY",
  0x23: "NV_UNAVAILABLE",
};

/** A decoded response code. */
export interface DecodedRc {
  /** The raw response code. */
  rc: number;
  /** Readable name, e.g. `TPM_RC_LOCALITY`, `TPM_RC_VALUE`. */
  name: string;
  /** Format-0 warning (the command may succeed if retried or after freeing resources). */
  warning: boolean;
  /** What a format-1 code blames: `handle`, `parameter` or `session`, with its 1-based number. */
  subject?: { kind: "handle" | "parameter" | "session"; index: number };
}

const hex = (n: number) => `0x${n.toString(16).padStart(3, "0")}`;

/** Decodes a TPM 2.0 response code (Part 2, 6.6.2 "Response code formats"). */
export function decodeRc(rc: number): DecodedRc {
  if (rc & 0x080) {
    const num = rc & 0x3f;
    const base = FMT1[num] ? `TPM_RC_${FMT1[num]}` : `TPM_RC_FMT1_${hex(num + 0x80)}`;
    let subject: DecodedRc["subject"];
    if (rc & 0x040) subject = { kind: "parameter", index: (rc >> 8) & 0xf };
    else if (rc & 0x800) subject = { kind: "session", index: (rc >> 8) & 0x7 };
    else if ((rc >> 8) & 0x7) subject = { kind: "handle", index: (rc >> 8) & 0x7 };
    return { rc, name: base, warning: false, subject };
  }
  if (!(rc & 0x100)) return { rc, name: `TPM_1.2_RC_${hex(rc)}`, warning: false };
  if (rc & 0x400) return { rc, name: `TPM_RC_VENDOR_${hex(rc)}`, warning: false };
  const num = rc & 0x7f;
  if (rc & 0x800) {
    let name = WARN[num];
    if (!name && num >= 0x10 && num <= 0x16) name = `REFERENCE_H${num - 0x10}`;
    if (!name && num >= 0x18 && num <= 0x1e) name = `REFERENCE_S${num - 0x18}`;
    return { rc, name: name ? `TPM_RC_${name}` : `TPM_RC_WARN_${hex(rc)}`, warning: true };
  }
  return { rc, name: VER1[num] ? `TPM_RC_${VER1[num]}` : `TPM_RC_VER1_${hex(rc)}`, warning: false };
}

/** The TPM refused a command: `rc` is its response code, `rcName` the readable name. */
export class TpmError extends ConfidantError {
  /** Raw response code. */
  readonly rc: number;
  /** Readable name such as `TPM_RC_LOCALITY`. */
  readonly rcName: string;
  /** Whether the code is a warning (retry / free resources). */
  readonly warning: boolean;
  /** The handle, parameter or session a format-1 code blames. */
  readonly subject?: { kind: "handle" | "parameter" | "session"; index: number };
  /** Command that failed, e.g. `TPM2_Quote`. */
  readonly command: string;
  constructor(command: string, rc: number) {
    const d = decodeRc(rc);
    const about = d.subject ? ` (${d.subject.kind} ${d.subject.index})` : "";
    super(
      "tpm.rc",
      `${command} failed: ${d.name}${about}, rc 0x${rc.toString(16).padStart(8, "0")}`,
    );
    this.name = "TpmError";
    this.rc = rc;
    this.rcName = d.name;
    this.warning = d.warning;
    this.subject = d.subject;
    this.command = command;
  }
}
