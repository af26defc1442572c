/**
 * An in-memory {@link LuksBackend}: it writes real LUKS2 header copies (binary header,
 * JSON area, checksums, the same JSON libcryptsetup writes for confidant's format) to a
 * {@link MemoryBlockDevice}, so the parser, the whitelist and the lifecycle decisions
 * run exactly as on a real disk. Only the keyslot cryptography is simplified: a
 * keyslot area holds PBKDF2-SHA256(passphrase, salt, 1000) instead of an encrypted,
 * anti-forensic-split volume key. It is not readable by cryptsetup; it serves the
 * agent's host tests where there is no device-mapper.
 *
 * @module
 */
import { ConfidantError } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import { constantTimeEqual, toBase64 } from "../lib/bytes.ts";
import { MemoryBlockDevice } from "./block_device.ts";
import { checkDiskUuid, type FormatStep, type LuksBackend } from "./lifecycle.ts";
import { HEADER_PROBE_BYTES, parseLuks2Header, sealHeaderCopy } from "./luks_header.ts";
import { TOKEN_TYPE } from "./token.ts";
import { DATA_OFFSET, HEADER_SIZE, KEYSLOTS_SIZE } from "./whitelist.ts";

const AREA_SIZE = 258048;
const AREA_BASE = 2 * HEADER_SIZE;
const ITERATIONS = 1000;

interface Meta {
  keyslots: Record<string, Record<string, unknown>>;
  tokens: Record<string, Record<string, unknown>>;
  segments: Record<string, Record<string, unknown>>;
  digests: Record<string, Record<string, unknown>>;
  config: Record<string, unknown>;
}

async function pbkdf2(pass: Uint8Array, salt: Uint8Array): Promise<Uint8Array> {
  const k = await crypto.subtle.importKey("raw", pass as BufferSource, "PBKDF2", false, [
    "deriveBits",
  ]);
  return new Uint8Array(
    await crypto.subtle.deriveBits(
      { name: "PBKDF2", hash: "SHA-256", salt: salt as BufferSource, iterations: ITERATIONS },
      k,
      256,
    ),
  );
}

/** Build one sealed header copy (primary at 0 or secondary at {@link HEADER_SIZE}). */
export function buildHeaderCopy(
  json: string,
  opts: { kind: "primary" | "secondary"; seqid: bigint; uuid: string; salt?: Uint8Array },
): Uint8Array {
  const copy = new Uint8Array(HEADER_SIZE);
  const text = new TextEncoder().encode(json);
  if (text.length >= HEADER_SIZE - 4096) {
    throw new ConfidantError("luks.json_size", "LUKS2 JSON does not fit the header");
  }
  const v = new DataView(copy.buffer);
  copy.set(
    opts.kind === "primary"
      ? [0x4c, 0x55, 0x4b, 0x53, 0xba, 0xbe]
      : [0x53, 0x4b, 0x55, 0x4c, 0xba, 0xbe],
    0,
  );
  v.setUint16(6, 2, false);
  v.setBigUint64(8, BigInt(HEADER_SIZE), false);
  v.setBigUint64(16, opts.seqid, false);
  copy.set(new TextEncoder().encode("sha256"), 72);
  copy.set(opts.salt ?? crypto.getRandomValues(new Uint8Array(64)), 104);
  copy.set(new TextEncoder().encode(opts.uuid), 168);
  v.setBigUint64(256, BigInt(opts.kind === "primary" ? 0 : HEADER_SIZE), false);
  copy.set(text, 4096);
  sealHeaderCopy(copy);
  return copy;
}

/** The in-memory {@link LuksBackend}. */
export class MemoryLuksBackend implements LuksBackend {
  readonly mapsDevice = true;
  /** Names currently "activated". */
  readonly active = new Set<string>();
  /** Whether a filesystem was made (tests look). */
  filesystemMade = false;
  #seqid = 0n;
  #uuid = "";
  constructor(readonly device: MemoryBlockDevice) {}

  #read(): Meta {
    const h = parseLuks2Header(this.device.bytes.subarray(0, HEADER_PROBE_BYTES));
    this.#seqid = h.active.binary.seqid;
    this.#uuid = h.active.binary.uuid;
    return JSON.parse(h.active.jsonText) as Meta;
  }

  #write(meta: Meta): void {
    this.#seqid += 1n;
    const json = JSON.stringify(meta);
    const p = buildHeaderCopy(json, { kind: "primary", seqid: this.#seqid, uuid: this.#uuid });
    const s = buildHeaderCopy(json, { kind: "secondary", seqid: this.#seqid, uuid: this.#uuid });
    this.device.bytes.set(p, 0);
    this.device.bytes.set(s, HEADER_SIZE);
  }

  async #addKeyslot(meta: Meta, passphrase: Uint8Array, keyBytes: number): Promise<string> {
    const used = new Set(Object.keys(meta.keyslots));
    const usedAreas = new Set(
      Object.values(meta.keyslots).map((k) => (k.area as { offset: string }).offset),
    );
    let id = 0;
    while (used.has(String(id))) id++;
    let off = AREA_BASE;
    while (usedAreas.has(String(off))) off += AREA_SIZE;
    const salt = crypto.getRandomValues(new Uint8Array(32));
    const check = await pbkdf2(passphrase, salt);
    this.device.bytes.fill(0, off, off + AREA_SIZE);
    this.device.bytes.set(check, off);
    meta.keyslots[String(id)] = {
      type: "luks2",
      key_size: keyBytes,
      af: { type: "luks1", stripes: 4000, hash: "sha256" },
      area: {
        type: "raw",
        offset: String(off),
        size: String(AREA_SIZE),
        encryption: "aes-xts-plain64",
        key_size: 64,
      },
      kdf: { type: "pbkdf2", hash: "sha256", iterations: ITERATIONS, salt: toBase64(salt) },
    };
    const d = meta.digests["0"];
    d.keyslots = [...(d.keyslots as string[]), String(id)];
    return String(id);
  }

  async #findSlot(meta: Meta, passphrase: Uint8Array): Promise<string> {
    for (const [id, ks] of Object.entries(meta.keyslots)) {
      const kdf = ks.kdf as { salt: string };
      const off = Number((ks.area as { offset: string }).offset);
      const salt = Uint8Array.from(atob(kdf.salt), (c) => c.charCodeAt(0));
      const want = this.device.bytes.slice(off, off + 32);
      if (constantTimeEqual(await pbkdf2(passphrase, salt), want)) return id;
    }
    throw new ConfidantError("luks.wrong_key", "no keyslot of the memory disk opens with this key");
  }

  async format(
    opts: { integrity: boolean; tokenJson: string; passphrase: Uint8Array; uuid?: string },
    checkpoint: (step: FormatStep) => void,
  ): Promise<string> {
    if (opts.uuid !== undefined) checkDiskUuid(opts.uuid);
    if (this.active.size) throw new ConfidantError("luks.busy", "memory disk is active");
    this.device.bytes.fill(0, 0, DATA_OFFSET);
    this.#seqid = 0n;
    this.#uuid = opts.uuid ?? crypto.randomUUID();
    const keyBytes = opts.integrity ? 96 : 64;
    const segment: Record<string, unknown> = {
      type: "crypt",
      offset: String(DATA_OFFSET),
      size: "dynamic",
      iv_tweak: "0",
      encryption: "aes-xts-plain64",
      sector_size: 4096,
    };
    if (opts.integrity) {
      segment.integrity = {
        type: "hmac(sha256)",
        journal_encryption: "none",
        journal_integrity: "none",
      };
    }
    const meta: Meta = {
      keyslots: {},
      tokens: {},
      segments: { "0": segment },
      digests: {
        "0": {
          type: "pbkdf2",
          keyslots: [],
          segments: ["0"],
          hash: "sha256",
          iterations: ITERATIONS,
          salt: toBase64(crypto.getRandomValues(new Uint8Array(32))),
          digest: toBase64(crypto.getRandomValues(new Uint8Array(32))),
        },
      },
      config: { json_size: String(HEADER_SIZE - 4096), keyslots_size: String(KEYSLOTS_SIZE) },
    };
    this.#write(meta);
    checkpoint("format-header");
    meta.tokens["0"] = JSON.parse(opts.tokenJson);
    this.#write(meta);
    checkpoint("token-fresh");
    await this.#addKeyslot(meta, opts.passphrase, keyBytes);
    this.#write(meta);
    checkpoint("keyslot-random");
    return this.#uuid;
  }

  async activate(name: string, passphrase: Uint8Array): Promise<void> {
    await this.#findSlot(this.#read(), passphrase);
    if (this.active.has(name)) throw new ConfidantError("luks.busy", `${name} is already active`);
    this.active.add(name);
  }

  wipeMapped(name: string, log: Logger): Promise<void> {
    if (!this.active.has(name)) {
      throw new ConfidantError("luks.not_active", `${name} is not active`);
    }
    // zeros written through dm-crypt land as ciphertext: random-looking bytes
    const b = this.device.bytes;
    for (let off = DATA_OFFSET; off < b.length; off += 65536) {
      crypto.getRandomValues(b.subarray(off, Math.min(off + 65536, b.length)));
    }
    log.info("integrity wipe", { done: b.length - DATA_OFFSET, total: b.length - DATA_OFFSET });
    return Promise.resolve();
  }

  mkfs(name: string): Promise<void> {
    if (!this.active.has(name)) {
      throw new ConfidantError("luks.not_active", `${name} is not active`);
    }
    // the encrypted superblock and group descriptors at the start of the data area
    crypto.getRandomValues(this.device.bytes.subarray(DATA_OFFSET, DATA_OFFSET + 65536));
    this.filesystemMade = true;
    return Promise.resolve();
  }

  async changeKey(oldPassphrase: Uint8Array, newPassphrase: Uint8Array): Promise<void> {
    const meta = this.#read();
    const old = await this.#findSlot(meta, oldPassphrase);
    const keyBytes = meta.keyslots[old].key_size as number;
    // like libcryptsetup: the new keyslot is written first, then the old one is destroyed
    await this.#addKeyslot(meta, newPassphrase, keyBytes);
    this.#write(meta);
    const off = Number((meta.keyslots[old].area as { offset: string }).offset);
    this.device.bytes.fill(0, off, off + AREA_SIZE);
    delete meta.keyslots[old];
    const d = meta.digests["0"];
    d.keyslots = (d.keyslots as string[]).filter((k) => k !== old);
    this.#write(meta);
  }

  setToken(tokenJson: string): Promise<void> {
    const meta = this.#read();
    const id = Object.keys(meta.tokens).find((k) => meta.tokens[k].type === TOKEN_TYPE) ?? "0";
    meta.tokens[id] = JSON.parse(tokenJson);
    this.#write(meta);
    return Promise.resolve();
  }

  deactivate(name: string): Promise<void> {
    this.active.delete(name);
    return Promise.resolve();
  }

  wipeHeaderArea(): Promise<void> {
    this.device.bytes.fill(0, 0, DATA_OFFSET);
    return Promise.resolve();
  }
}
