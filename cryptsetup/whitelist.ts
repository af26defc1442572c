/**
 * The whitelist a LUKS2 header must pass before confidant hands a key to it. A
 * malicious host can rewrite the header (a null cipher, a weak KDF, a second keyslot
 * it knows the passphrase of, a segment that maps plaintext), so every parameter is
 * compared with exactly what confidant formats, and each difference is reported by
 * the parameter's JSON path. Pure: no I/O.
 *
 * @module
 */
import type { HeaderCopy, JsonObject, Luks2Header } from "./luks_header.ts";
import { fromBase64 } from "../lib/bytes.ts";
import { TOKEN_TYPE } from "./token.ts";

/** Data segment offset confidant formats with (16 KiB header x2 + default keyslots area). */
export const DATA_OFFSET = 16 * 1024 * 1024;
/** Header size (binary + JSON) confidant formats with. */
export const HEADER_SIZE = 16384;
/** Keyslots area size for {@link HEADER_SIZE} and {@link DATA_OFFSET}. */
export const KEYSLOTS_SIZE = DATA_OFFSET - 2 * HEADER_SIZE;
/** Highest PBKDF2 iteration count accepted (bounds the work a hostile header can ask for). */
export const MAX_PBKDF2_ITERATIONS = 10_000_000;

/** What the header must look like. */
export interface WhitelistOptions {
  /** dm-integrity hmac(sha256) is expected (and required). */
  integrity: boolean;
  /** Fewest keyslots required (1 once the disk is keyed). */
  minKeyslots: number;
  /** Most keyslots allowed (1 once the disk is keyed). */
  maxKeyslots: number;
}

/** One parameter that is not what confidant formats. */
export interface WhitelistFailure {
  /** JSON path, e.g. `segments.0.encryption`, or `header.hdr_size`. */
  parameter: string;
  /** What was found (JSON, truncated). */
  found: string;
  /** What is accepted. */
  expected: string;
}

/** Verdict over every valid header copy. */
export interface WhitelistReport {
  ok: boolean;
  failures: WhitelistFailure[];
}

function show(x: unknown): string {
  const s = x === undefined ? "(absent)" : JSON.stringify(x) ?? String(x);
  return s.length > 80 ? s.slice(0, 77) + "..." : s;
}

class Checker {
  failures: WhitelistFailure[] = [];
  eq(path: string, found: unknown, expected: unknown): void {
    if (found !== expected) {
      this.failures.push({ parameter: path, found: show(found), expected: show(expected) });
    }
  }
  bad(path: string, found: unknown, expected: string): void {
    this.failures.push({ parameter: path, found: show(found), expected });
  }
  onlyKeys(path: string, obj: JsonObject, allowed: readonly string[]): void {
    for (const k of Object.keys(obj)) {
      if (!allowed.includes(k)) this.bad(`${path}.${k}`, obj[k], "(absent)");
    }
  }
  obj(path: string, x: unknown): JsonObject | null {
    if (typeof x === "object" && x !== null && !Array.isArray(x)) return x as JsonObject;
    this.bad(path, x, "an object");
    return null;
  }
  bytes(path: string, x: unknown, len: number): void {
    try {
      if (typeof x === "string" && fromBase64(x).length === len) return;
    } catch { /* reported below */ }
    this.bad(path, x, `base64 of ${len} bytes`);
  }
  intRange(path: string, x: unknown, min: number, max: number): void {
    if (typeof x !== "number" || !Number.isInteger(x) || x < min || x > max) {
      this.bad(path, x, `an integer in [${min}, ${max}]`);
    }
  }
  stringList(path: string, x: unknown, expected: string[]): void {
    const ok = Array.isArray(x) && x.length === expected.length &&
      [...x].sort().every((v, i) => v === [...expected].sort()[i]);
    if (!ok) this.bad(path, x, show(expected));
  }
}

/** Check one header copy; returns the failures (empty when it passes). */
export function checkCopy(copy: HeaderCopy, opts: WhitelistOptions): WhitelistFailure[] {
  const c = new Checker();
  const b = copy.binary;
  const m = copy.metadata;
  c.eq("header.hdr_size", b.hdrSize, HEADER_SIZE);
  c.eq("header.checksum_alg", b.checksumAlg, "sha256");
  for (const k of m.topKeys) {
    if (!["keyslots", "tokens", "segments", "digests", "config"].includes(k)) {
      c.bad(k, "…", "(absent)");
    }
  }
  // config
  c.onlyKeys("config", m.config, ["json_size", "keyslots_size", "flags", "requirements"]);
  c.eq("config.keyslots_size", m.config.keyslots_size, String(KEYSLOTS_SIZE));
  if (
    m.config.flags !== undefined && !(Array.isArray(m.config.flags) && m.config.flags.length === 0)
  ) {
    c.bad("config.flags", m.config.flags, "(absent)");
  }
  if (m.config.requirements !== undefined) {
    c.bad("config.requirements", m.config.requirements, "(absent)");
  }
  // segments
  const segIds = Object.keys(m.segments);
  c.stringList("segments", segIds, ["0"]);
  const seg = m.segments["0"];
  if (seg) {
    c.onlyKeys("segments.0", seg, [
      "type",
      "offset",
      "size",
      "iv_tweak",
      "encryption",
      "sector_size",
      "integrity",
    ]);
    c.eq("segments.0.type", seg.type, "crypt");
    c.eq("segments.0.offset", seg.offset, String(DATA_OFFSET));
    c.eq("segments.0.size", seg.size, "dynamic");
    c.eq("segments.0.iv_tweak", seg.iv_tweak, "0");
    c.eq("segments.0.encryption", seg.encryption, "aes-xts-plain64");
    c.eq("segments.0.sector_size", seg.sector_size, 4096);
    if (opts.integrity) {
      const integ = c.obj("segments.0.integrity", seg.integrity);
      if (integ) {
        c.onlyKeys("segments.0.integrity", integ, [
          "type",
          "journal_encryption",
          "journal_integrity",
        ]);
        c.eq("segments.0.integrity.type", integ.type, "hmac(sha256)");
        c.eq("segments.0.integrity.journal_encryption", integ.journal_encryption, "none");
        c.eq("segments.0.integrity.journal_integrity", integ.journal_integrity, "none");
      }
    } else if (seg.integrity !== undefined) {
      c.bad("segments.0.integrity", seg.integrity, "(absent)");
    }
  }
  // keyslots
  const ksIds = Object.keys(m.keyslots);
  if (ksIds.length < opts.minKeyslots || ksIds.length > opts.maxKeyslots) {
    c.bad("keyslots", ksIds, `${opts.minKeyslots} to ${opts.maxKeyslots} keyslot(s)`);
  }
  const volumeKeyBytes = opts.integrity ? 96 : 64;
  for (const id of ksIds) {
    const p = `keyslots.${id}`;
    const ks = m.keyslots[id];
    c.onlyKeys(p, ks, ["type", "key_size", "af", "area", "kdf", "priority"]);
    c.eq(`${p}.type`, ks.type, "luks2");
    c.eq(`${p}.key_size`, ks.key_size, volumeKeyBytes);
    if (ks.priority !== undefined) c.eq(`${p}.priority`, ks.priority, 1);
    const af = c.obj(`${p}.af`, ks.af);
    if (af) {
      c.onlyKeys(`${p}.af`, af, ["type", "stripes", "hash"]);
      c.eq(`${p}.af.type`, af.type, "luks1");
      c.eq(`${p}.af.stripes`, af.stripes, 4000);
      c.eq(`${p}.af.hash`, af.hash, "sha256");
    }
    const area = c.obj(`${p}.area`, ks.area);
    if (area) {
      c.onlyKeys(`${p}.area`, area, ["type", "offset", "size", "encryption", "key_size"]);
      c.eq(`${p}.area.type`, area.type, "raw");
      c.eq(`${p}.area.encryption`, area.encryption, "aes-xts-plain64");
      c.eq(`${p}.area.key_size`, area.key_size, 64);
    }
    const kdf = c.obj(`${p}.kdf`, ks.kdf);
    if (kdf) {
      c.onlyKeys(`${p}.kdf`, kdf, ["type", "hash", "iterations", "salt"]);
      c.eq(`${p}.kdf.type`, kdf.type, "pbkdf2");
      c.eq(`${p}.kdf.hash`, kdf.hash, "sha256");
      c.intRange(`${p}.kdf.iterations`, kdf.iterations, 1000, MAX_PBKDF2_ITERATIONS);
      c.bytes(`${p}.kdf.salt`, kdf.salt, 32);
    }
  }
  // digests
  const dgIds = Object.keys(m.digests);
  c.stringList("digests", dgIds, ["0"]);
  for (const id of dgIds) {
    const p = `digests.${id}`;
    const d = m.digests[id];
    c.onlyKeys(p, d, ["type", "keyslots", "segments", "hash", "iterations", "salt", "digest"]);
    c.eq(`${p}.type`, d.type, "pbkdf2");
    c.eq(`${p}.hash`, d.hash, "sha256");
    c.stringList(`${p}.keyslots`, d.keyslots, ksIds);
    c.stringList(`${p}.segments`, d.segments, ["0"]);
    c.intRange(`${p}.iterations`, d.iterations, 1000, MAX_PBKDF2_ITERATIONS);
    c.bytes(`${p}.salt`, d.salt, 32);
    c.bytes(`${p}.digest`, d.digest, 32);
  }
  // tokens: only ours, at most one, bound to no keyslot
  const tkIds = Object.keys(m.tokens);
  if (tkIds.length > 1) c.bad("tokens", tkIds, "at most one token");
  for (const id of tkIds) {
    const t = m.tokens[id];
    c.eq(`tokens.${id}.type`, t.type, TOKEN_TYPE);
    c.stringList(`tokens.${id}.keyslots`, t.keyslots, []);
  }
  return c.failures;
}

/**
 * Check every valid copy of `header` (a stale copy is what libcryptsetup falls back
 * to, so it must pass too). Failures name the copy: `primary:segments.0.encryption`.
 */
export function checkWhitelist(header: Luks2Header, opts: WhitelistOptions): WhitelistReport {
  const failures: WhitelistFailure[] = [];
  for (
    const [name, copy] of [["primary", header.primary], ["secondary", header.secondary]] as const
  ) {
    if (!copy) continue;
    for (const f of checkCopy(copy, opts)) {
      failures.push({ ...f, parameter: `${name}:${f.parameter}` });
    }
  }
  return { ok: failures.length === 0, failures };
}
