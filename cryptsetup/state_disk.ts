/**
 * The disk service the agent uses: status, unlock-or-format, rekey, close. One class
 * over any {@link LuksBackend}: libcryptsetup on a real device ({@link openStateDisk})
 * or the in-memory backend ({@link createMemoryStateDisk}) where there is no
 * device-mapper.
 *
 * @module
 */
import { MemoryBlockDevice } from "./block_device.ts";
import {
  decide,
  type Decision,
  type LifecycleConfig,
  type LuksBackend,
  MAPPER_NAME,
  observeDisk,
  rekeyDisk,
  resetDisk,
  type UnlockOptions,
  unlockOrFormat,
  type UnlockResult,
} from "./lifecycle.ts";
import { openLuksBackend } from "./luks_backend.ts";
import { MemoryLuksBackend } from "./memory_backend.ts";
import type { ConfidantToken } from "./token.ts";
import type { WhitelistReport } from "./whitelist.ts";

/** `disk status` as JSON. */
export interface DiskStatus {
  /** Device path, null for an in-memory disk. */
  device: string | null;
  size: number;
  luks: "none" | "luks1" | "luks2" | "damaged";
  uuid: string | null;
  /** Confidant's token, or null. */
  token: ConfidantToken | null;
  tokenError: string | null;
  keyslots: number | null;
  /** Whitelist verdict (luks2 only). */
  whitelist: WhitelistReport | null;
  /** Whole-disk blank test (non-LUKS only). */
  blank: boolean | null;
  /** Why it is not blank / signatures found. */
  blankReasons: string[];
  /** What unlockOrFormat would do for `cluster` (null when no cluster was given). */
  decision: Decision | null;
}

/** The state-disk service. */
export interface StateDisk {
  /** What is on the disk; with `cfg`, also what {@link StateDisk.unlockOrFormat} would do. */
  status(cfg?: LifecycleConfig): Promise<DiskStatus>;
  /** Open with the KMS key, or format on first boot; see lifecycle.ts. */
  unlockOrFormat(opts: UnlockOptions): Promise<UnlockResult>;
  /** Replace the KMS key of a keyed disk. */
  rekey(cfg: LifecycleConfig, oldKey: Uint8Array, newKey: Uint8Array): Promise<void>;
  /** Operator reset: destroy the header and leave a fresh header for `cfg.cluster`. */
  reset(cfg: LifecycleConfig): Promise<string>;
  /** Deactivate `/dev/mapper/state` if active and release the device (the object is done). */
  close(): Promise<void>;
}

/** {@link StateDisk} over a {@link LuksBackend}. */
export class LuksStateDisk implements StateDisk {
  constructor(readonly backend: LuksBackend) {}

  async status(cfg?: LifecycleConfig): Promise<DiskStatus> {
    const eff: LifecycleConfig = cfg ?? { cluster: "", integrity: false };
    let obs = await observeDisk(this.backend.device, eff);
    if (!cfg && obs.token) {
      // without a config, judge the header by what its own token says
      obs = await observeDisk(this.backend.device, { ...eff, integrity: obs.token.integrity });
    }
    return {
      device: this.backend.device.path,
      size: await this.backend.device.size(),
      luks: obs.luks,
      uuid: obs.uuid ?? null,
      token: obs.token ?? null,
      tokenError: obs.tokenError ?? (obs.luks === "damaged" ? obs.damage ?? null : null),
      keyslots: obs.keyslotCount ?? null,
      whitelist: obs.whitelist ?? null,
      blank: obs.blank ? obs.blank.blank : null,
      blankReasons: obs.blank?.reasons ?? [],
      decision: cfg ? decide(obs, cfg) : null,
    };
  }

  unlockOrFormat(opts: UnlockOptions): Promise<UnlockResult> {
    return unlockOrFormat(this.backend, opts);
  }

  rekey(cfg: LifecycleConfig, oldKey: Uint8Array, newKey: Uint8Array): Promise<void> {
    return rekeyDisk(this.backend, cfg, oldKey, newKey);
  }

  reset(cfg: LifecycleConfig): Promise<string> {
    return resetDisk(this.backend, cfg);
  }

  async close(): Promise<void> {
    await this.backend.deactivate(MAPPER_NAME);
    this.backend.device.close();
  }
}

/**
 * The state disk at `path` through libcryptsetup. `mapper: false` on hosts without
 * device-mapper (activation only checks the key; wipe and mkfs are skipped).
 */
export async function openStateDisk(
  path: string,
  opts: { mapper: boolean } = { mapper: true },
): Promise<LuksStateDisk> {
  return new LuksStateDisk(await openLuksBackend(path, opts));
}

/** An in-memory state disk of `size` bytes (blank), for host tests of the agent. */
export function createMemoryStateDisk(size = 64 * 1024 * 1024): LuksStateDisk {
  return new LuksStateDisk(new MemoryLuksBackend(new MemoryBlockDevice(size)));
}
