/**
 * The state-disk lifecycle: a pure decision over what is on the disk, and a thin
 * executor that carries it out through a {@link LuksBackend}.
 *
 * First boot (blank disk): format LUKS2 with a random volume key, write the token
 * `fresh`, add one keyslot holding a random passphrase that lives only in memory,
 * activate, (integrity: zero the mapped device), make ext4, ask for the KMS key,
 * change the keyslot to the KMS key, set the token to `keyed`. The caller mounts and
 * writes data only after this returns, so:
 *
 * - `fresh` means no data was ever written under a KMS key: a power cut at any step
 *   before `keyed` leaves a disk the next boot formats again;
 * - the token is written before the first keyslot, so a header of ours without a
 *   token also has no keyslot: nobody can open it, and with its data area still blank
 *   (nothing was ever activated and written) it is an interrupted format too;
 * - with integrity, libcryptsetup writes the dm-integrity superblock and journal at
 *   the start of the data area before the header, so "data area blank" is judged
 *   from the end of that journal (the superblock says where it ends) and the header
 *   must pass the whitelist with integrity and no keyslot: superblock plus journal
 *   followed by a blank area is exactly what an interrupted format leaves, and a used
 *   integrity device would show tags and data right after its journal (the same holds
 *   for a header write cut short: a damaged header over superblock, journal and zeros);
 * - after `keyed`, the only keyslot holds the KMS key, the only long-term secret.
 *
 * The UUID: the caller may pass the UUID it already asked the KMS for (`uuid`). A format
 * then writes exactly that UUID in every header it writes, so a power cut anywhere after
 * the first header write leaves a header whose UUID the next boot reuses: it asks the KMS
 * for the same disk again instead of enrolling another one.
 *
 * Everything else (not blank and not LUKS, LUKS1, another cluster, a token we do not
 * understand, a whitelist failure, a wrong key) stops with a typed error and changes
 * no byte.
 *
 * One window is not recovered automatically: a power cut inside libcryptsetup's
 * `crypt_format` itself, after it filled the keyslots area with random bytes (and,
 * with integrity, wrote the dm-integrity superblock and journal) but before it wrote
 * the first header copy. The disk then has no LUKS magic and is not blank, which is
 * indistinguishable from another system's disk, so the next boot refuses it with
 * `disk.not_blank`. The operator path: check that the node never got past its first
 * boot (`confidant disk status` shows no LUKS header, and the first 32 KiB are zero),
 * then run `confidant disk reset --yes-destroy-data` and reboot.
 *
 * @module
 */
import { ConfidantError } from "../lib/errors.ts";
import { Logger } from "../lib/log.ts";
import type { BlankReport } from "./blank.ts";
import { checkBlank } from "./blank.ts";
import type { BlockDevice } from "./block_device.ts";
import {
  hasIntegrityMagic,
  integrityMetadataEnd,
  type IntegritySuperblock,
  parseIntegritySuperblock,
  SUPERBLOCK_BYTES,
} from "./integrity_superblock.ts";
import { HEADER_PROBE_BYTES, type Luks2Header, probeLuks } from "./luks_header.ts";
import { type ConfidantToken, decodeToken, encodeToken, TOKEN_TYPE } from "./token.ts";
import {
  checkWhitelist,
  DATA_OFFSET,
  type WhitelistOptions,
  type WhitelistReport,
} from "./whitelist.ts";

/** Name of the device-mapper target (`/dev/mapper/state`). */
export const MAPPER_NAME = "state";
/** Bytes of the random first-boot passphrase. */
export const RANDOM_PASSPHRASE_BYTES = 32;
/** Bytes of the KMS disk key. */
export const KMS_KEY_BYTES = 32;
/**
 * A canonical lower-case RFC 4122 UUID (versions 1-5, variant 10xx), the only form a caller
 * may ask {@link unlockOrFormat} to format with (libcryptsetup writes UUIDs in this form).
 */
export const DISK_UUID_PATTERN =
  /^[0-9a-f]{8}-[0-9a-f]{4}-[1-5][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** Throws `luks.uuid` unless `uuid` matches {@link DISK_UUID_PATTERN}. */
export function checkDiskUuid(uuid: string): string {
  if (typeof uuid !== "string" || !DISK_UUID_PATTERN.test(uuid)) {
    throw new ConfidantError(
      "luks.uuid",
      `disk UUID ${
        JSON.stringify(String(uuid).slice(0, 64))
      } is not a canonical lower-case RFC 4122 UUID`,
    );
  }
  return uuid;
}

/** What the agent asks for. */
export interface LifecycleConfig {
  /** The cluster this node belongs to. */
  cluster: string;
  /** dm-integrity hmac(sha256) on the data segment. */
  integrity: boolean;
}

/** What is known about the disk before deciding (gathered by {@link observeDisk}). */
export interface DiskObservation {
  /** LUKS at the start of the disk. */
  luks: "none" | "luks1" | "luks2" | "damaged";
  /** Parse error of a damaged header. */
  damage?: string;
  /** Whole-disk blank test (when `luks` is none). */
  blank?: BlankReport;
  /** Blank test of the data area from {@link DATA_OFFSET} (when the header may be a half-done format). */
  dataAreaBlank?: BlankReport;
  /** The parsed header (luks2). */
  header?: Luks2Header;
  /** UUID of the header in force. */
  uuid?: string;
  keyslotCount?: number;
  tokenCount?: number;
  /** Our token, when there is exactly one and it decodes. */
  token?: ConfidantToken;
  /** Why the token is not understood. */
  tokenError?: string;
  /** Whitelist verdict with the limits of the token's state. */
  whitelist?: WhitelistReport;
  /**
   * A header without token or keyslot whose segment has integrity: the dm-integrity
   * superblock found at the data offset (or why there is none usable), and the
   * whitelist verdict for an integrity header with no keyslot.
   */
  integrity?: {
    superblock?: IntegritySuperblock;
    /** Device offset where the journal ends (`dataAreaBlank` is judged from here). */
    journalEnd?: number;
    error?: string;
    whitelist: WhitelistReport;
  };
}

/** The decision. */
export type Decision =
  | { action: "format"; reason: string }
  | { action: "open"; uuid: string }
  | { action: "refuse"; code: string; message: string };

/**
 * Whitelist limits for a header in `state`: keyed means exactly one keyslot; a fresh
 * header may have none (power cut before the first keyslot) or two (power cut inside
 * the keyslot change).
 */
export function whitelistFor(state: "fresh" | "keyed", integrity: boolean): WhitelistOptions {
  return state === "keyed"
    ? { integrity, minKeyslots: 1, maxKeyslots: 1 }
    : { integrity, minKeyslots: 0, maxKeyslots: 2 };
}

/** Read what is on the disk (headers, blank tests). Reads only. */
export async function observeDisk(
  dev: BlockDevice,
  cfg: LifecycleConfig,
): Promise<DiskObservation> {
  const size = await dev.size();
  const head = await dev.read(0, Math.min(size, HEADER_PROBE_BYTES));
  const probe = probeLuks(head);
  if (probe.kind === "none") return { luks: "none", blank: await checkBlank(dev) };
  if (probe.kind === "luks1") return { luks: "luks1" };
  const dataArea = () => checkBlank(dev, DATA_OFFSET);
  if (probe.kind === "damaged") {
    // a header write cut short over an integrity format: judge the data area after the journal
    const sb = await readIntegritySuperblock(dev, size);
    const journalEnd = sb.superblock && ourIntegrityParameters(sb.superblock)
      ? sb.journalEnd
      : undefined;
    return {
      luks: "damaged",
      damage: probe.error.message,
      dataAreaBlank: journalEnd !== undefined
        ? await checkBlank(dev, journalEnd)
        : await dataArea(),
    };
  }
  const header = probe.header;
  const m = header.active.metadata;
  const obs: DiskObservation = {
    luks: "luks2",
    header,
    uuid: header.active.binary.uuid,
    keyslotCount: Object.keys(m.keyslots).length,
    tokenCount: Object.keys(m.tokens).length,
  };
  const tokens = Object.values(m.tokens);
  if (tokens.length === 1 && tokens[0].type === TOKEN_TYPE) {
    try {
      obs.token = decodeToken(tokens[0]);
    } catch (e) {
      obs.tokenError = e instanceof Error ? e.message : String(e);
    }
  } else if (tokens.length > 0) {
    obs.tokenError = `tokens of type ${
      tokens.map((t) => JSON.stringify(String(t.type).slice(0, 32))).join(", ")
    } are not confidant's`;
  }
  obs.whitelist = checkWhitelist(header, whitelistFor(obs.token?.state ?? "keyed", cfg.integrity));
  if (obs.tokenCount === 0 && obs.keyslotCount === 0) {
    const seg = m.segments["0"];
    if (seg && typeof seg.integrity === "object" && seg.integrity !== null) {
      obs.integrity = await observeIntegrity(dev, header, size);
      if (obs.integrity.journalEnd !== undefined) {
        obs.dataAreaBlank = await checkBlank(dev, obs.integrity.journalEnd);
        return obs;
      }
    }
    obs.dataAreaBlank = await dataArea();
  }
  return obs;
}

/** The dm-integrity superblock at {@link DATA_OFFSET}, if any, and where its journal ends. */
async function readIntegritySuperblock(
  dev: BlockDevice,
  size: number,
): Promise<{ superblock?: IntegritySuperblock; journalEnd?: number; error?: string }> {
  if (size < DATA_OFFSET + SUPERBLOCK_BYTES) return { error: "disk too small" };
  const raw = await dev.read(DATA_OFFSET, SUPERBLOCK_BYTES);
  if (!hasIntegrityMagic(raw)) return { error: "no dm-integrity superblock" };
  try {
    const superblock = parseIntegritySuperblock(raw);
    const journalEnd = DATA_OFFSET + integrityMetadataEnd(superblock);
    if (journalEnd + 2 * 1024 * 1024 > size) {
      return { superblock, error: "the journal leaves no data area" };
    }
    return { superblock, journalEnd };
  } catch (e) {
    return { error: e instanceof Error ? e.message : String(e) };
  }
}

/** The dm-integrity superblock of a header with no token or keyslot, and its whitelist verdict. */
async function observeIntegrity(
  dev: BlockDevice,
  header: Luks2Header,
  size: number,
): Promise<NonNullable<DiskObservation["integrity"]>> {
  const whitelist = checkWhitelist(header, { integrity: true, minKeyslots: 0, maxKeyslots: 0 });
  return { whitelist, ...(await readIntegritySuperblock(dev, size)) };
}

/** hmac(sha256) tags, 4096-byte blocks, no journal MAC (journal_integrity none). */
function ourIntegrityParameters(sb: IntegritySuperblock): boolean {
  return sb.tagSize === 32 && sb.log2SectorsPerBlock === 3 && (sb.flags & 1) === 0;
}

/** Whether `i` is what an interrupted confidant format with integrity leaves. */
function interruptedIntegrityFormat(i: DiskObservation["integrity"]): boolean {
  const sb = i?.superblock;
  return !!sb && i.journalEnd !== undefined && i.whitelist.ok && ourIntegrityParameters(sb);
}

function whitelistMessage(w: WhitelistReport): string {
  return w.failures.slice(0, 5).map((f) => `${f.parameter} is ${f.found}, expected ${f.expected}`)
    .join("; ") + (w.failures.length > 5 ? `; and ${w.failures.length - 5} more` : "");
}

/** Decide what to do with the disk. Pure. */
export function decide(obs: DiskObservation, cfg: LifecycleConfig): Decision {
  const refuse = (code: string, message: string): Decision => ({ action: "refuse", code, message });
  switch (obs.luks) {
    case "none":
      if (obs.blank?.blank) return { action: "format", reason: "blank disk (first boot)" };
      return refuse(
        "disk.not_blank",
        `the disk is neither LUKS2 nor blank (${
          obs.blank?.reasons.join("; ") ?? "not checked"
        }); ` +
          "nothing was changed (an operator can run `confidant disk reset --yes-destroy-data`)",
      );
    case "luks1":
      return refuse("luks.luks1", "the disk holds a LUKS1 header; nothing was changed");
    case "damaged":
      if (obs.dataAreaBlank?.blank) {
        return {
          action: "format",
          reason: "interrupted format: damaged header, data area never used",
        };
      }
      return refuse("luks.damaged_header", `the LUKS2 header is damaged: ${obs.damage}`);
    case "luks2":
      break;
  }
  if (obs.tokenCount === 0) {
    if (obs.keyslotCount === 0 && obs.integrity?.superblock && obs.dataAreaBlank?.blank) {
      if (interruptedIntegrityFormat(obs.integrity)) {
        return {
          action: "format",
          reason: "interrupted format: header and dm-integrity journal without token or keyslot",
        };
      }
    } else if (obs.keyslotCount === 0 && obs.dataAreaBlank?.blank) {
      return { action: "format", reason: "interrupted format: header without token or keyslot" };
    }
    return refuse(
      "luks.not_ours",
      "the LUKS2 header has no confidant token (another system's disk?)",
    );
  }
  if (!obs.token) {
    return refuse("luks.token_unknown", `the LUKS2 token is not understood: ${obs.tokenError}`);
  }
  if (obs.token.cluster !== cfg.cluster) {
    return refuse(
      "luks.other_cluster",
      `the disk belongs to cluster ${JSON.stringify(obs.token.cluster)}, not ${
        JSON.stringify(cfg.cluster)
      }`,
    );
  }
  if (obs.token.integrity !== cfg.integrity) {
    return refuse(
      "luks.integrity_mismatch",
      `the disk was formatted with integrity=${obs.token.integrity}, the node expects ${cfg.integrity}`,
    );
  }
  if (!obs.whitelist?.ok) {
    return refuse(
      "luks.whitelist",
      `the LUKS2 header is not confidant's format: ${whitelistMessage(obs.whitelist!)}`,
    );
  }
  if (obs.token.state === "fresh") {
    return { action: "format", reason: "token fresh: the disk was never keyed" };
  }
  return { action: "open", uuid: obs.uuid! };
}

/** Steps of the first-boot sequence, in order (crash injection names one of them). */
export const FORMAT_STEPS = [
  "format-header",
  "token-fresh",
  "keyslot-random",
  "activate",
  "wipe",
  "mkfs",
  "kms-key",
  "keyslot-change",
  "token-keyed",
] as const;
/** One first-boot step. */
export type FormatStep = typeof FORMAT_STEPS[number];

/** Thrown by the executor when `crashAfter` names the step just done (tests only). */
export class SimulatedCrash extends ConfidantError {
  constructor(readonly step: FormatStep) {
    super("test.crash", `simulated power cut after ${step}`);
    this.name = "SimulatedCrash";
  }
}

/** The disk operations the executor needs; implemented over libcryptsetup and in memory. */
export interface LuksBackend {
  /** The raw disk, for observation. */
  readonly device: BlockDevice;
  /** Whether activation creates a mapped device (false: host without device-mapper). */
  readonly mapsDevice: boolean;
  /**
   * Format LUKS2 (random volume key) with UUID `uuid` (default: a random one), write
   * `tokenJson`, then add a keyslot with `passphrase`, calling `checkpoint` after each of
   * the three header writes. Returns the header's UUID.
   */
  format(
    opts: { integrity: boolean; tokenJson: string; passphrase: Uint8Array; uuid?: string },
    checkpoint: (step: FormatStep) => void,
  ): Promise<string>;
  /** Activate as `name` (or only check the key when the backend maps nothing). */
  activate(name: string, passphrase: Uint8Array): Promise<void>;
  /** Zero the whole mapped device (integrity tags become valid), logging progress. */
  wipeMapped(name: string, log: Logger): Promise<void>;
  /** Make the ext4 filesystem on the mapped device. */
  mkfs(name: string): Promise<void>;
  /** Replace the keyslot opened by `oldPassphrase` with one for `newPassphrase`. */
  changeKey(oldPassphrase: Uint8Array, newPassphrase: Uint8Array): Promise<void>;
  /** Replace confidant's token. */
  setToken(tokenJson: string): Promise<void>;
  /** Deactivate `name` if it is active. */
  deactivate(name: string): Promise<void>;
  /** Zero the LUKS metadata area [0, DATA_OFFSET) (operator reset only). */
  wipeHeaderArea(): Promise<void>;
}

/** Options of {@link unlockOrFormat}. */
export interface UnlockOptions extends LifecycleConfig {
  /** Returns the disk key released by the KMS (32 bytes); called once. */
  getKey: () => Promise<Uint8Array>;
  /**
   * The disk's UUID, decided by the caller before it asked the KMS for the key (canonical
   * lower-case RFC 4122, see {@link DISK_UUID_PATTERN}; anything else is refused before any
   * byte is read or written). A format writes exactly this UUID; an open refuses a header
   * with another UUID (`luks.uuid_mismatch`) without asking for the key. Absent: a format
   * picks a random UUID and an open takes the header's.
   */
  uuid?: string;
  /** Test hook: simulate a power cut right after this step. */
  crashAfter?: FormatStep;
  log?: Logger;
}

/** What {@link unlockOrFormat} did. */
export interface UnlockResult {
  action: "formatted" | "opened";
  /** LUKS UUID. */
  uuid: string;
  /** `/dev/mapper/state`, or null when the backend maps nothing. */
  mapper: string | null;
  /** Why it formatted (first boot, fresh token, interrupted format). */
  reason?: string;
}

function checkKey(key: Uint8Array): void {
  if (key.length !== KMS_KEY_BYTES) {
    throw new ConfidantError("luks.key_size", `the KMS disk key must be ${KMS_KEY_BYTES} bytes`);
  }
}

/**
 * Open the state disk with the KMS key, or format it on first boot (see the module
 * doc for the order and what a power cut leaves). Refusals change no byte.
 */
export async function unlockOrFormat(
  backend: LuksBackend,
  opts: UnlockOptions,
): Promise<UnlockResult> {
  const log = opts.log ?? new Logger("disk");
  if (opts.uuid !== undefined) checkDiskUuid(opts.uuid);
  const obs = await observeDisk(backend.device, opts);
  const d = decide(obs, opts);
  const mapper = backend.mapsDevice ? `/dev/mapper/${MAPPER_NAME}` : null;
  if (d.action === "refuse") {
    log.error("state disk refused", { code: d.code });
    throw new ConfidantError(d.code, d.message);
  }
  if (d.action === "open") {
    if (opts.uuid !== undefined && d.uuid.toLowerCase() !== opts.uuid) {
      log.error("state disk refused", { code: "luks.uuid_mismatch" });
      throw new ConfidantError(
        "luks.uuid_mismatch",
        `the disk's UUID is ${d.uuid}, not ${opts.uuid} (the key asked for); nothing was changed`,
      );
    }
    const key = await opts.getKey();
    try {
      checkKey(key);
      await backend.activate(MAPPER_NAME, key);
    } finally {
      key.fill(0);
    }
    // the header must not have changed between the whitelist check and the library's load
    const again = await observeDisk(backend.device, opts);
    if (
      again.header?.active.jsonText !== obs.header!.active.jsonText ||
      again.header?.active.binary.seqid !== obs.header!.active.binary.seqid
    ) {
      await backend.deactivate(MAPPER_NAME);
      throw new ConfidantError("luks.header_changed", "the LUKS2 header changed while opening");
    }
    log.info("state disk opened", { uuid: d.uuid });
    return { action: "opened", uuid: d.uuid, mapper };
  }
  log.info("formatting state disk", { reason: d.reason, integrity: opts.integrity });
  const step = (s: FormatStep) => {
    log.debug("state disk step done", { step: s });
    if (opts.crashAfter === s) throw new SimulatedCrash(s);
  };
  const passphrase = crypto.getRandomValues(new Uint8Array(RANDOM_PASSPHRASE_BYTES));
  let key: Uint8Array | undefined;
  try {
    const uuid = await backend.format(
      {
        integrity: opts.integrity,
        tokenJson: encodeToken({
          state: "fresh",
          cluster: opts.cluster,
          integrity: opts.integrity,
        }),
        passphrase,
        ...(opts.uuid !== undefined ? { uuid: opts.uuid } : {}),
      },
      step,
    );
    if (opts.uuid !== undefined && uuid !== opts.uuid) {
      throw new ConfidantError(
        "luks.format_check",
        `the formatted header has UUID ${uuid}, not the requested ${opts.uuid}`,
      );
    }
    await backend.activate(MAPPER_NAME, passphrase);
    step("activate");
    if (opts.integrity) await backend.wipeMapped(MAPPER_NAME, log);
    step("wipe");
    await backend.mkfs(MAPPER_NAME);
    step("mkfs");
    key = await opts.getKey();
    checkKey(key);
    step("kms-key");
    await backend.changeKey(passphrase, key);
    step("keyslot-change");
    await backend.setToken(
      encodeToken({ state: "keyed", cluster: opts.cluster, integrity: opts.integrity }),
    );
    step("token-keyed");
    const after = await observeDisk(backend.device, opts);
    if (after.token?.state !== "keyed" || after.keyslotCount !== 1 || !after.whitelist?.ok) {
      throw new ConfidantError("luks.format_check", "the formatted header is not what was written");
    }
    log.info("state disk formatted and keyed", { uuid });
    return { action: "formatted", uuid, mapper, reason: d.reason };
  } finally {
    passphrase.fill(0);
    key?.fill(0);
  }
}

/** Options of {@link resetDisk}. */
export interface ResetOptions extends LifecycleConfig {
  log?: Logger;
}

/**
 * The operator's `disk reset --yes-destroy-data`: zero the LUKS metadata area (every
 * keyslot is gone, so whatever the data area held can no longer be decrypted), then
 * write a `fresh` header for `cluster` whose random passphrase is forgotten at once.
 * The next boot sees a fresh disk of its cluster and formats it. Destroys data.
 */
export async function resetDisk(backend: LuksBackend, opts: ResetOptions): Promise<string> {
  const log = opts.log ?? new Logger("disk");
  await backend.deactivate(MAPPER_NAME);
  log.warn("resetting state disk: destroying the LUKS header", { cluster: opts.cluster });
  await backend.wipeHeaderArea();
  const passphrase = crypto.getRandomValues(new Uint8Array(RANDOM_PASSPHRASE_BYTES));
  try {
    return await backend.format(
      {
        integrity: opts.integrity,
        tokenJson: encodeToken({
          state: "fresh",
          cluster: opts.cluster,
          integrity: opts.integrity,
        }),
        passphrase,
      },
      () => {},
    );
  } finally {
    passphrase.fill(0);
  }
}

/**
 * Replace the KMS key of a keyed disk (`oldKey` must open its only keyslot). The
 * header must pass the whitelist first; afterwards it still holds exactly one keyslot.
 */
export async function rekeyDisk(
  backend: LuksBackend,
  cfg: LifecycleConfig,
  oldKey: Uint8Array,
  newKey: Uint8Array,
): Promise<void> {
  const obs = await observeDisk(backend.device, cfg);
  const d = decide(obs, cfg);
  if (d.action === "refuse") throw new ConfidantError(d.code, d.message);
  if (d.action !== "open") {
    throw new ConfidantError("luks.not_keyed", "only a keyed disk can be rekeyed");
  }
  checkKey(oldKey);
  checkKey(newKey);
  await backend.changeKey(oldKey, newKey);
  const after = await observeDisk(backend.device, cfg);
  if (after.keyslotCount !== 1 || !after.whitelist?.ok) {
    throw new ConfidantError("luks.rekey_check", "after rekey the header is not as expected");
  }
}
