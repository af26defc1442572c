/**
 * Adapters from the agent's ports to the project's real implementations: the
 * TPM client and attestation issuer (attestation/), the KMS client (kms/client.ts)
 * and the state disk (cryptsetup/state_disk.ts).
 *
 * Disk UUID and first boot: the KMS enrolls a disk by its LUKS UUID, so the agent decides
 * the UUID before it asks for the key, and the format writes exactly that UUID
 * (cryptsetup's `UnlockOptions.uuid`): a disk with confidant's header (keyed, or `fresh`
 * from a first boot that a power cut interrupted) keeps the header's UUID; a blank disk gets
 * a new random v4 UUID. The agent talks to the KMS before it touches the disk (a KMS that is
 * down or refuses leaves a blank disk blank), and a power cut during the format leaves a
 * header with the UUID already enrolled, which the next boot asks for again: one disk, one
 * enrollment.
 *
 * @module
 */
import { ConfidantError } from "../lib/errors.ts";
import { Tpm } from "../attestation/tpm/client.ts";
import { openTransport } from "../attestation/tpm/transport/open.ts";
import { issueDocument } from "../attestation/issue.ts";
import { AGENT_ENDPOINT_USER_DATA } from "../attestation/qualifying_data.ts";
import { loadAttestationKeys } from "../attestation/tpm/keys.ts";
import { parseCertificate } from "../attestation/ek_certificate.ts";
import { fromBase64, sha256, toHex, wipe } from "../lib/bytes.ts";
import { DEFAULT_PCRS } from "../attestation/issue.ts";
import { CLUSTER_ID_PCR } from "../cluster/cluster_id.ts";
import { extendClusterIdPcr } from "./cluster_pcr.ts";
import type { TeeChoice, TeeIssueOptions } from "../attestation/tee_issue.ts";
import {
  KmsRefusedError as KmsClientRefused,
  requestRelease,
  type RequestReleaseOptions,
} from "../kms/client.ts";
import type { StateDisk } from "../cryptsetup/state_disk.ts";
import { DISK_UUID_PATTERN, MAPPER_NAME } from "../cryptsetup/lifecycle.ts";
import type {
  AttestationIdentity,
  Attestor,
  DiskInspection,
  DiskService,
  KmsClient,
  Release,
  ReleaseRequest,
} from "./ports.ts";
import { KmsRefusedError, KmsUnavailableError } from "./ports.ts";

/** Serialises use of one TPM (the release and `/v1/attestation` share it). */
export class TpmAccess {
  #tail: Promise<unknown> = Promise.resolve();
  constructor(
    readonly spec: string,
    private open = (spec: string) => new Tpm(openTransport(spec)),
  ) {}
  /** Run `fn` with an open TPM, one caller at a time. */
  with<T>(fn: (tpm: Tpm) => Promise<T>): Promise<T> {
    const run = this.#tail.then(async () => {
      const tpm = this.open(this.spec);
      try {
        return await fn(tpm);
      } finally {
        await tpm.close().catch(() => {});
      }
    });
    this.#tail = run.catch(() => {});
    return run;
  }
}

/** Which TEE evidence to add, and how to reach configfs-tsm (see agent config `attestation`). */
export interface TeeSettings {
  /** Default `"auto"`: an SEV-SNP/TDX document on such a guest, else a `tpm` document. */
  tee?: TeeChoice;
  /** configfs-tsm location and cached chain/collateral (tests: a fake kernel). */
  teeOptions?: TeeIssueOptions;
}

/**
 * `/v1/attestation` documents from the TPM, with the same TEE evidence as the node's release
 * requests (so a verifier sees the variant the KMS sees). Every document binds the fixed
 * userData {@link AGENT_ENDPOINT_USER_DATA}: a caller chooses only the nonce, so no document
 * from this public endpoint can stand in for a KMS or init exchange's quote.
 */
export function tpmAttestor(tpm: TpmAccess, tee: TeeSettings = {}): Attestor {
  return {
    document: (nonce) =>
      tpm.with((t) =>
        issueDocument(t, {
          nonce,
          userData: AGENT_ENDPOINT_USER_DATA,
          tee: tee.tee ?? "auto",
          ...(tee.teeOptions ? { teeOptions: tee.teeOptions } : {}),
        })
      ),
  };
}

/** PCRs a release request quotes: the default set and the cluster-ID PCR 15. */
export const RELEASE_PCRS: readonly number[] = [...DEFAULT_PCRS, CLUSTER_ID_PCR];

const TRANSIENT_STATUS = new Set([408, 425, 429, 500, 502, 503, 504]);
const TRANSIENT_CODES = new Set(["kms.connect", "kms.timeout", "kms.response"]);

/** Sort a KMS client error into "wait and retry" or "refused, final". */
export function classifyKmsError(e: unknown): unknown {
  if (e instanceof KmsClientRefused) {
    if (TRANSIENT_STATUS.has(e.status)) {
      return new KmsUnavailableError(`the KMS answered ${e.status} ${e.error}`, { cause: e });
    }
    return new KmsRefusedError(e.message, e.checks.length ? e.checks : [e.error], { cause: e });
  }
  if (e instanceof ConfidantError && TRANSIENT_CODES.has(e.code)) {
    return new KmsUnavailableError(e.message, { cause: e });
  }
  if (e instanceof ConfidantError && e.code === "kms.release_mismatch") {
    return new KmsRefusedError(e.message, e.message.split("; "), { cause: e });
  }
  return e;
}

/** Options of {@link kmsClientAdapter}. */
export interface KmsAdapterOptions extends TeeSettings {
  kmsUrl: string;
  fingerprint: string;
  tpm: TpmAccess;
  /** Passed through to requestRelease (tests: transport, pcrs, ekKind). */
  extra?: Partial<
    Omit<RequestReleaseOptions, "kmsUrl" | "fingerprint" | "tpm" | "request" | "tee" | "teeOptions">
  >;
}

/**
 * The AK name and EK certificate of `tpm` as the release requests present them (the same
 * templates kms/client.ts loads: ECC AK, EK of `ekKind`, default RSA 2048). Public values.
 */
export async function readAttestationIdentity(
  tpm: Tpm,
  ekKind: "ecc" | "rsa" = "rsa",
): Promise<AttestationIdentity> {
  const keys = await loadAttestationKeys(tpm, { ek: ekKind, ak: "ecc" });
  try {
    const cert = parseCertificate(await tpm.nvRead(keys.ekCertIndex));
    return {
      akName: toHex(keys.ak.name),
      ekCertificateSha256: toHex(await sha256(new Uint8Array(cert.rawData))),
      ekIssuer: cert.issuer,
    };
  } finally {
    await keys.flush();
  }
}

/** The {@link KmsClient} port over kms/client.ts `requestRelease`. */
export function kmsClientAdapter(opts: KmsAdapterOptions): KmsClient {
  return {
    identity: () => opts.tpm.with((tpm) => readAttestationIdentity(tpm, opts.extra?.ekKind)),
    async requestRelease(req: ReleaseRequest): Promise<Release> {
      try {
        const r = await opts.tpm.with(async (tpm) => {
          const r = await requestRelease({
            // PCR 15 quoted too: a KMS policy with clusterIdPcr.required checks it.
            pcrs: [...RELEASE_PCRS],
            ...opts.extra,
            tee: opts.tee ?? "auto",
            ...(opts.teeOptions ? { teeOptions: opts.teeOptions } : {}),
            kmsUrl: opts.kmsUrl,
            fingerprint: opts.fingerprint,
            tpm,
            request: { role: req.role, disk: { uuid: req.diskUuid }, nodeName: req.nodeName },
          });
          // Right after opening the release, before anything else uses it.
          if (r.release.clusterIdentity) {
            try {
              await extendClusterIdPcr(tpm, r.release.clusterIdentity);
            } catch (e) {
              wipe(r.diskKey);
              throw e;
            }
          }
          return r;
        });
        const j = r.release.join;
        const g = r.release.replica;
        return {
          diskKey: r.diskKey,
          kmsIdentity: `${r.release.kms.clusterId}/${r.release.kms.tlsFingerprint.slice(0, 16)}`,
          ...(r.release.clusterIdentity ? { clusterIdentity: r.release.clusterIdentity } : {}),
          ...(g ? { replica: { kek: fromBase64(g.kek, "kek"), policy: g.policy } } : {}),
          ...(j.available
            ? {
              joinTicket: {
                apiServerEndpoint: j.apiServerEndpoint,
                token: j.token,
                caCertHashes: j.caCertHashes,
                ...(j.certificateKey ? { certificateKey: j.certificateKey } : {}),
              },
            }
            : {}),
        };
      } catch (e) {
        throw classifyKmsError(e);
      }
    },
  };
}

/** Options of {@link StateDiskAdapter}. */
export interface StateDiskAdapterOptions {
  disk: StateDisk;
  cluster: string;
  integrity: boolean;
  /** Whether `/dev/mapper/<name>` exists (default: stat it). */
  mapperExists?(name: string): Promise<boolean>;
}

/** The {@link DiskService} port over cryptsetup's StateDisk. */
export class StateDiskAdapter implements DiskService {
  constructor(private opts: StateDiskAdapterOptions) {}

  async #mapperExists(): Promise<boolean> {
    if (this.opts.mapperExists) return await this.opts.mapperExists(MAPPER_NAME);
    return await Deno.stat(`/dev/mapper/${MAPPER_NAME}`).then(() => true, () => false);
  }

  async inspect(): Promise<DiskInspection> {
    const s = await this.opts.disk.status({
      cluster: this.opts.cluster,
      integrity: this.opts.integrity,
    });
    if (s.decision?.action === "refuse") {
      throw new ConfidantError(s.decision.code, s.decision.message);
    }
    const formatted = s.decision?.action === "open";
    const opened = formatted && await this.#mapperExists();
    // A header that will be formatted again (fresh token, or an interrupted format) was
    // written by a first boot of this node with the UUID it asked the KMS for: reuse it.
    const uuid = formatted
      ? s.uuid
      : s.luks === "luks2" && s.uuid && DISK_UUID_PATTERN.test(s.uuid)
      ? s.uuid
      : undefined;
    return {
      formatted,
      ...(uuid ? { uuid } : {}),
      opened,
      ...(opened ? { openedDevice: `/dev/mapper/${MAPPER_NAME}` } : {}),
    };
  }

  async unlockOrFormat(uuid: string, key: Uint8Array) {
    const r = await this.opts.disk.unlockOrFormat({
      cluster: this.opts.cluster,
      integrity: this.opts.integrity,
      uuid: uuid.toLowerCase(),
      getKey: () => Promise.resolve(key.slice()),
    });
    return {
      formatted: r.action === "formatted",
      openedDevice: r.mapper ?? `memory:${r.uuid}`,
    };
  }
}
