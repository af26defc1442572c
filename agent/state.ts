/**
 * The boot state as the outside sees it (`/v1/state`, `/readyz`, metrics,
 * `confidant agent status`). It holds no secrets: only step names, statuses,
 * attempt counts, timings, error codes/messages and public details.
 *
 * @module
 */

/** The boot steps, in order. */
export const STEP_NAMES = [
  "config",
  "release",
  "disk",
  "mount",
  "wireguard",
  "join",
  "cilium-config",
  "encryption",
] as const;

/** Name of a boot step. */
export type StepName = typeof STEP_NAMES[number];

/** Where a step is. `waiting`: an attempt failed and the next one is scheduled. */
export type StepStatus = "pending" | "running" | "waiting" | "done" | "skipped" | "failed";

/** Public value of a detail. */
export type DetailValue = string | number | boolean;

/** One step's state. */
export interface StepState {
  name: StepName;
  status: StepStatus;
  attempts: number;
  startedAt?: string;
  finishedAt?: string;
  durationMs?: number;
  /** Last error (code and secret-free message). */
  error?: { code: string; message: string };
  /** Failed checks named by a refusal. */
  checks?: string[];
  /** When the next attempt starts (status `waiting`). */
  nextAttemptAt?: string;
  /** Public facts the step established (disk UUID, whether it formatted, ...). */
  detail: Record<string, DetailValue>;
}

/**
 * Overall phase. `unlocked`: a node configured not to join (`kubeadm.join: false`) got
 * its key, mounted its state disk and set up WireGuard; join and the Cilium checks
 * were skipped, so it is not `ready` in the cluster sense.
 */
export type Phase = "booting" | "ready" | "unlocked" | "failed";

/** What Cilium reports about WireGuard on this node. */
export interface EncryptionState {
  enabled: boolean;
  /** Which signals showed it (`node-annotation`, `ciliumnode-annotation`, `interface`). */
  evidence: string[];
  /** This node's WireGuard public key (public). */
  publicKey?: string;
  checkedAt?: string;
}

/** The whole state. */
export interface AgentState {
  phase: Phase;
  startedAt: string;
  node: { name?: string; role?: string };
  steps: StepState[];
  failure?: { step: StepName; code: string; message: string; checks?: string[] };
  encryption: EncryptionState;
}

/** Holds the current state; every change is a new snapshot. */
export class StateStore {
  #state: AgentState;
  #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
    this.#state = {
      phase: "booting",
      startedAt: new Date(now()).toISOString(),
      node: {},
      steps: STEP_NAMES.map((name) => ({ name, status: "pending", attempts: 0, detail: {} })),
      encryption: { enabled: false, evidence: [] },
    };
  }

  /** A deep copy of the current state. */
  snapshot(): AgentState {
    return structuredClone(this.#state);
  }

  /** Every step is done or skipped and Cilium reports encryption on this node. */
  isReady(): boolean {
    return this.#state.phase === "ready" && this.#state.encryption.enabled &&
      this.#state.steps.every((s) => s.status === "done" || s.status === "skipped");
  }

  #step(name: StepName): StepState {
    return this.#state.steps.find((s) => s.name === name)!;
  }

  #iso(): string {
    return new Date(this.#now()).toISOString();
  }

  /** An attempt of `name` starts. */
  attemptStarted(name: StepName): void {
    const s = this.#step(name);
    if (s.attempts === 0) s.startedAt = this.#iso();
    s.attempts++;
    s.status = "running";
    delete s.nextAttemptAt;
  }

  /** An attempt failed and another follows after `delayMs`. */
  attemptFailed(name: StepName, error: { code: string; message: string }, delayMs: number): void {
    const s = this.#step(name);
    s.status = "waiting";
    s.error = error;
    s.nextAttemptAt = new Date(this.#now() + delayMs).toISOString();
  }

  /** The step finished (`done`) or had nothing to do (`skipped`). */
  finished(name: StepName, status: "done" | "skipped", detail: Record<string, DetailValue>): void {
    const s = this.#step(name);
    s.status = status;
    s.finishedAt = this.#iso();
    if (s.startedAt) s.durationMs = this.#now() - Date.parse(s.startedAt);
    s.detail = { ...s.detail, ...detail };
    delete s.error;
    delete s.nextAttemptAt;
  }

  /** The step failed for good; the boot stops. */
  failed(name: StepName, error: { code: string; message: string }, checks?: string[]): void {
    const s = this.#step(name);
    s.status = "failed";
    s.finishedAt = this.#iso();
    if (s.startedAt) s.durationMs = this.#now() - Date.parse(s.startedAt);
    s.error = error;
    delete s.nextAttemptAt;
    if (checks) s.checks = [...checks];
    this.#state.phase = "failed";
    this.#state.failure = { step: name, ...error, ...(checks ? { checks: [...checks] } : {}) };
  }

  /** Record public node facts. */
  setNode(node: { name?: string; role?: string }): void {
    this.#state.node = { ...this.#state.node, ...node };
  }

  /** Record what Cilium reports. */
  setEncryption(e: Omit<EncryptionState, "checkedAt">): void {
    this.#state.encryption = { ...e, checkedAt: this.#iso() };
  }

  /** All steps passed. */
  markReady(): void {
    this.#state.phase = "ready";
  }

  /** The disk is unlocked and mounted; there is no cluster to join (phase `unlocked`). */
  markUnlocked(): void {
    this.#state.phase = "unlocked";
  }
}
