/**
 * The narrow interfaces through which the agent's boot state machine reaches
 * the outside world: the KMS, the state disk, the mount table, processes, the
 * Kubernetes API, time and systemd. Adapters to the real implementations live
 * in `adapters.ts`; tests pass fakes.
 *
 * @module
 */
import { ConfidantError } from "../lib/errors.ts";

/** Role of a node in the cluster. */
export type NodeRole = "worker" | "control-plane";

/** What a node needs to join the cluster (from the KMS's release). Secret: token and key. */
export interface JoinTicket {
  /** `HOST:PORT` of the API server (or its load balancer). */
  apiServerEndpoint: string;
  /** Bootstrap token `[a-z0-9]{6}.[a-z0-9]{16}`. */
  token: string;
  /** `sha256:<hex>` pins of the cluster CA's public key. */
  caCertHashes: string[];
  /** Control-plane joins: key that decrypts the uploaded control-plane certificates. */
  certificateKey?: string;
}

/** What the KMS releases to an attested node. */
export interface Release {
  /** Key of the state disk (secret). */
  diskKey: Uint8Array;
  joinTicket?: JoinTicket;
  /** Public identity of the KMS that answered (for the log). */
  kmsIdentity?: string;
  /** The cluster ID (64 hex) the release named; PCR 15 already carries it. */
  clusterIdentity?: string;
  /**
   * Control-plane releases under the KMS policy's `replicas.releaseKek`: the KEK (secret)
   * and the policy for this node's KMS replica (agent/kms_replica.ts).
   */
  replica?: { kek: Uint8Array; policy: unknown };
}

/** A release request (attestation is done by the client). */
export interface ReleaseRequest {
  role: NodeRole;
  nodeName: string;
  diskUuid: string;
}

/** Public identity of the node's TPM as the KMS sees it (for the log). */
export interface AttestationIdentity {
  /** TPM name of the attestation key (hex). */
  akName: string;
  /** SHA-256 of the EK certificate (DER, hex). */
  ekCertificateSha256: string;
  /** Issuer of the EK certificate (RFC 4514 string). */
  ekIssuer: string;
}

/** Attests the node and asks the KMS for its release. */
export interface KmsClient {
  /** The AK and EK the release requests use (optional; logged once, never required). */
  identity?(signal: AbortSignal): Promise<AttestationIdentity>;
  /**
   * Throws {@link KmsUnavailableError} when the KMS cannot be reached (the agent waits and
   * retries) and {@link KmsRefusedError} when it answered with a refusal (final for this boot).
   */
  requestRelease(request: ReleaseRequest, signal: AbortSignal): Promise<Release>;
}

/** The KMS could not be reached or answered with a transient error: retry. */
export class KmsUnavailableError extends ConfidantError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("agent.kms_unavailable", message, options);
    this.name = "KmsUnavailableError";
  }
}

/** The KMS refused the release; `checks` names every failed check. */
export class KmsRefusedError extends ConfidantError {
  readonly checks: string[];
  constructor(message: string, checks: string[], options?: { cause?: unknown }) {
    super("agent.kms_refused", message, options);
    this.name = "KmsRefusedError";
    this.checks = checks;
  }
}

/** Produces attestation documents bound to a caller's nonce (for `/v1/attestation`). */
export interface Attestor {
  /** A fresh document (JSON-serialisable, public) bound to `nonce`. */
  document(nonce: Uint8Array, signal?: AbortSignal): Promise<unknown>;
}

/** What is known about the state disk before any key is used. */
export interface DiskInspection {
  /** It carries a LUKS header (never format it again). */
  formatted: boolean;
  /**
   * LUKS UUID when formatted; also for a header of ours that is to be formatted again (a
   * first boot cut short): the UUID the first boot asked the KMS for, to be used again.
   */
  uuid?: string;
  /** Already opened (device-mapper device exists), e.g. after an agent restart. */
  opened: boolean;
  /** Path of the opened device when `opened`. */
  openedDevice?: string;
}

/** The state disk: LUKS2 inspection, unlock, first format. */
export interface DiskService {
  inspect(): Promise<DiskInspection>;
  /**
   * Open the disk with `key`; when (and only when) it is not keyed yet, format it first
   * with `uuid` (the UUID `key` was released for; an open checks the header has it).
   * Returns the opened device and whether this call formatted.
   */
  unlockOrFormat(
    uuid: string,
    key: Uint8Array,
    signal: AbortSignal,
  ): Promise<{ formatted: boolean; openedDevice: string }>;
}

/** File systems and the mount table. */
export interface Mounter {
  isMounted(mountPoint: string): Promise<boolean>;
  /** The device carries a file system signature of `fsType`. */
  hasFilesystem(device: string, fsType: string): Promise<boolean>;
  mkfs(device: string, fsType: string, signal: AbortSignal): Promise<void>;
  mount(device: string, mountPoint: string, fsType: string, signal: AbortSignal): Promise<void>;
}

/** Result of running a program. */
export interface CommandResult {
  code: number;
  /** stdout and stderr lines, interleaved in arrival order (bounded by the runner). */
  lines: string[];
}

/** Runs programs. Arguments never carry secrets (secrets go through files in /run). */
export interface CommandRunner {
  run(
    argv: string[],
    options: { signal?: AbortSignal; onLine?: (line: string) => void },
  ): Promise<CommandResult>;
}

/** Small file operations the agent needs (kubeadm config, joined marker). */
export interface Files {
  exists(path: string): Promise<boolean>;
  /** Create `path` with mode 0600 (fails if it exists) and write `data`. */
  writeSecret(path: string, data: string): Promise<void>;
  remove(path: string): Promise<void>;
  mkdirp(path: string, mode: number): Promise<void>;
  /** File system type of the mount holding `path` (e.g. `tmpfs`). */
  fsTypeOf(path: string): Promise<string | undefined>;
}

/** The part of the Kubernetes API the agent uses. */
export interface KubeApi {
  /** Set `data` keys on a ConfigMap (create it if missing). */
  mergeConfigMap(
    namespace: string,
    name: string,
    data: Record<string, string>,
  ): Promise<"created" | "updated" | "unchanged">;
  /** Annotations of the Node `name`, or undefined when it does not exist. */
  nodeAnnotations(name: string): Promise<Record<string, string> | undefined>;
  /** Annotations of the CiliumNode `name`; undefined when missing or not readable. */
  ciliumNodeAnnotations(name: string): Promise<Record<string, string> | undefined>;
}

/** Host checks for WireGuard. */
export interface WireGuardHost {
  /** Load the module if needed and check that `wg` works; throws with what is missing. */
  ensure(signal: AbortSignal): Promise<void>;
  /** A network interface of that name exists. */
  interfaceExists(name: string): Promise<boolean>;
}

/** Time, injectable so that backoff tests do not sleep. */
export interface Clock {
  now(): number;
  /** Resolves after `ms`; rejects with the signal's reason when aborted. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /** A signal that aborts (with a `TimeoutError` DOMException) `ms` from now, until cancelled. */
  deadline(ms: number): { signal: AbortSignal; cancel(): void };
}

/** systemd's notification protocol (sd_notify). */
export interface Notifier {
  /** Send `KEY=VALUE` assignments, e.g. `{ READY: "1", STATUS: "..." }`. */
  notify(fields: Record<string, string>): Promise<void>;
}
