/**
 * A bounds-checked parser of the crypto-agile TCG event log that UEFI firmware
 * hands to Linux (/sys/kernel/security/tpm0/binary_bios_measurements): the
 * SHA-1 format header event with the "Spec ID Event03" structure, then
 * TCG_PCR_EVENT2 records (TCG PC Client Platform Firmware Profile, 10.2).
 * Used to check `image measure` against what a booted node really extended.
 *
 * @module
 */
import { ParseError } from "../lib/errors.ts";

/** One event of the log. */
export interface TcgEvent {
  pcr: number;
  type: number;
  /** Digests by TPM algorithm id (0x000b = SHA-256). */
  digests: Map<number, Uint8Array>;
  data: Uint8Array;
}

/** Event types this project names. */
export const EventType = {
  EV_POST_CODE: 0x1,
  EV_NO_ACTION: 0x3,
  EV_SEPARATOR: 0x4,
  EV_ACTION: 0x5,
  EV_IPL: 0xd,
  EV_EFI_BOOT_SERVICES_APPLICATION: 0x80000003,
  EV_EFI_ACTION: 0x80000007,
} as const;

/** TPM_ALG_SHA256. */
export const ALG_SHA256 = 0x000b;

const MAX_EVENTS = 10_000;
const MAX_EVENT_DATA = 16 << 20;

/** Parse a crypto-agile event log. Malformed input is a ParseError. */
export function parseEventLog(b: Uint8Array): TcgEvent[] {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let o = 0;
  const need = (n: number, what: string) => {
    if (n < 0 || o + n > b.length) throw new ParseError("event_log", `${what} runs past the end`);
  };
  const u16 = () => (need(2, "u16"), o += 2, dv.getUint16(o - 2, true));
  const u32 = () => (need(4, "u32"), o += 4, dv.getUint32(o - 4, true));
  const bytes = (n: number, what: string) => {
    need(n, what);
    o += n;
    return b.subarray(o - n, o);
  };
  // header event (TCG_PCClientPCREvent, SHA-1 format)
  u32();
  const headerType = u32();
  bytes(20, "header digest");
  const hsize = u32();
  if (headerType !== EventType.EV_NO_ACTION || hsize > 4096) {
    throw new ParseError("event_log", "log does not start with a Spec ID event");
  }
  const hdr = bytes(hsize, "Spec ID event");
  const sig = new TextDecoder().decode(hdr.subarray(0, 15));
  if (sig !== "Spec ID Event03") throw new ParseError("event_log", "not a crypto-agile log");
  const hv = new DataView(hdr.buffer, hdr.byteOffset, hdr.byteLength);
  if (hdr.length < 28) throw new ParseError("event_log", "Spec ID event too short");
  const nAlg = hv.getUint32(24, true);
  if (nAlg === 0 || nAlg > 16 || 28 + nAlg * 4 > hdr.length) {
    throw new ParseError("event_log", "bad algorithm list in Spec ID event");
  }
  const sizes = new Map<number, number>();
  for (let i = 0; i < nAlg; i++) {
    sizes.set(hv.getUint16(28 + i * 4, true), hv.getUint16(30 + i * 4, true));
  }
  const out: TcgEvent[] = [];
  while (o < b.length) {
    if (out.length >= MAX_EVENTS) throw new ParseError("event_log", "too many events");
    // some firmware pads the log with zeros after the last event
    if (b.subarray(o).every((x) => x === 0)) break;
    const pcr = u32();
    const type = u32();
    const count = u32();
    if (count > 16) throw new ParseError("event_log", "too many digests in one event");
    const digests = new Map<number, Uint8Array>();
    for (let i = 0; i < count; i++) {
      const alg = u16();
      const size = sizes.get(alg);
      if (size === undefined) throw new ParseError("event_log", `unknown digest algorithm ${alg}`);
      digests.set(alg, bytes(size, "digest"));
    }
    const dsize = u32();
    if (dsize > MAX_EVENT_DATA) throw new ParseError("event_log", "event data too large");
    const data = bytes(dsize, "event data");
    out.push({ pcr, type, digests, data });
  }
  return out;
}
