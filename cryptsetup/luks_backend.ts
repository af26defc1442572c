/**
 * {@link LuksBackend} over libcryptsetup (FFI) and a disk path. With `mapper: false`
 * (a host without device-mapper: tests and debugging on image files) activation only
 * checks the key (`crypt_activate_by_passphrase` with a NULL name), and the steps that
 * need the mapped device (wipe, mkfs) are skipped and logged.
 *
 * Integrity and wiping: with dm-integrity, a sector that was never written has no
 * valid tag and reading it fails. mkfs.ext4 reads before it writes (libblkid probes
 * the start and end of the device, and the kernel reads ahead), so "never read an
 * unwritten sector" cannot be guaranteed from here. On first boot with integrity the
 * whole mapped device is therefore zeroed once, with `crypt_wipe` in 256 MiB calls
 * (1 MiB blocks, no O_DIRECT) and a progress line in the log after each call; this
 * is what `cryptsetup luksFormat --integrity` does by default too.
 *
 * @module
 */
import { ConfidantError } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import { FileBlockDevice } from "./block_device.ts";
import { MIN_PBKDF2, withCryptDevice } from "./crypt_device.ts";
import { checkDiskUuid, type FormatStep, type LuksBackend } from "./lifecycle.ts";
import { TOKEN_TYPE } from "./token.ts";
import { DATA_OFFSET } from "./whitelist.ts";

/** Bytes zeroed per crypt_wipe call (one progress line each). */
export const WIPE_CHUNK = 256 * 1024 * 1024;
/** Block size handed to crypt_wipe. */
export const WIPE_BLOCK = 1024 * 1024;

/** Options of {@link openLuksBackend}. */
export interface LuksBackendOptions {
  /** Create `/dev/mapper/<name>` on activation (false on hosts without device-mapper). */
  mapper: boolean;
  /** mkfs.ext4 binary (default `mkfs.ext4` from PATH). */
  mkfs?: string;
}

/** The libcryptsetup-backed {@link LuksBackend} for the disk at `path`. */
export class LibLuksBackend implements LuksBackend {
  readonly mapsDevice: boolean;
  constructor(
    readonly path: string,
    readonly device: FileBlockDevice,
    private readonly opts: LuksBackendOptions,
  ) {
    this.mapsDevice = opts.mapper;
  }

  async format(
    opts: { integrity: boolean; tokenJson: string; passphrase: Uint8Array; uuid?: string },
    checkpoint: (step: FormatStep) => void,
  ): Promise<string> {
    if (opts.uuid !== undefined) checkDiskUuid(opts.uuid);
    return await withCryptDevice(this.path, async (dev) => {
      await dev.formatLuks2({ integrity: opts.integrity, pbkdf: MIN_PBKDF2, uuid: opts.uuid });
      checkpoint("format-header");
      dev.tokenSet(-1, opts.tokenJson);
      checkpoint("token-fresh");
      dev.setPbkdf(MIN_PBKDF2);
      await dev.addKeyslotAfterFormat(opts.passphrase);
      checkpoint("keyslot-random");
      const uuid = dev.uuid();
      if (!uuid) throw new ConfidantError("luks.format", "formatted header has no UUID");
      return uuid;
    });
  }

  activate(name: string, passphrase: Uint8Array): Promise<void> {
    return withCryptDevice(this.path, async (dev) => {
      await dev.load();
      await dev.activate(this.mapsDevice ? name : null, passphrase);
    });
  }

  async wipeMapped(name: string, log: Logger): Promise<void> {
    if (!this.mapsDevice) {
      log.warn("no device-mapper: integrity wipe skipped", { name });
      return;
    }
    const mapped = `/dev/mapper/${name}`;
    const dev = await FileBlockDevice.open(mapped);
    const size = await dev.size().finally(() => dev.close());
    await withCryptDevice(this.path, async (cd) => {
      await cd.load();
      for (let off = 0; off < size; off += WIPE_CHUNK) {
        const len = Math.min(WIPE_CHUNK, size - off);
        await cd.wipeZero(mapped, off, len, WIPE_BLOCK);
        log.info("integrity wipe", { done: off + len, total: size });
      }
    });
  }

  async mkfs(name: string): Promise<void> {
    if (!this.mapsDevice) return;
    const cmd = new Deno.Command(this.opts.mkfs ?? "mkfs.ext4", {
      // nodiscard: nothing to discard on a new disk, and dm-integrity has no discard
      args: ["-q", "-F", "-E", "nodiscard", `/dev/mapper/${name}`],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    });
    let out: Deno.CommandOutput;
    try {
      out = await cmd.output();
    } catch (e) {
      throw new ConfidantError("disk.mkfs_missing", "mkfs.ext4 not found (install e2fsprogs)", {
        cause: e,
      });
    }
    if (!out.success) {
      const msg = new TextDecoder().decode(out.stderr).trim().slice(0, 300);
      throw new ConfidantError("disk.mkfs", `mkfs.ext4 failed: ${msg}`);
    }
  }

  changeKey(oldPassphrase: Uint8Array, newPassphrase: Uint8Array): Promise<void> {
    return withCryptDevice(this.path, async (dev) => {
      await dev.load();
      dev.setPbkdf(MIN_PBKDF2);
      await dev.changeKeyslot(oldPassphrase, newPassphrase);
    });
  }

  setToken(tokenJson: string): Promise<void> {
    return withCryptDevice(this.path, async (dev) => {
      await dev.load();
      let id = -1;
      for (let i = 0; i < 32; i++) {
        const t = dev.tokenGet(i);
        if (t !== null && (JSON.parse(t) as { type?: unknown }).type === TOKEN_TYPE) {
          id = i;
          break;
        }
      }
      dev.tokenSet(id, tokenJson);
    });
  }

  async deactivate(name: string): Promise<void> {
    if (!this.mapsDevice) return;
    try {
      await Deno.stat(`/dev/mapper/${name}`);
    } catch {
      return;
    }
    await withCryptDevice(this.path, (dev) => dev.deactivate(name));
  }

  /** Zero the LUKS metadata area [0, DATA_OFFSET): keyslots gone, data unrecoverable. */
  wipeHeaderArea(): Promise<void> {
    return withCryptDevice(this.path, (dev) => dev.wipeZero(null, 0, DATA_OFFSET, WIPE_BLOCK));
  }
}

/** Open the disk at `path` read-only for observation and wrap it in a {@link LibLuksBackend}. */
export async function openLuksBackend(
  path: string,
  opts: LuksBackendOptions,
): Promise<LibLuksBackend> {
  const dev = await FileBlockDevice.open(path);
  return new LibLuksBackend(path, dev, opts);
}
