/**
 * In-test fakes of the agent's ports. They are test doubles, not implementations:
 * each records what the agent asked so that tests can check it.
 */
import type {
  Clock,
  CommandResult,
  CommandRunner,
  DiskInspection,
  DiskService,
  Files,
  KmsClient,
  KubeApi,
  Mounter,
  Notifier,
  Release,
  ReleaseRequest,
  WireGuardHost,
} from "../../agent/ports.ts";
import { Logger } from "../../lib/log.ts";

/** Virtual time: sleep advances it at once; deadlines fire when time passes them. */
export class FakeClock implements Clock {
  t = Date.parse("2026-11-25T12:00:00Z");
  sleeps: number[] = [];
  #timers: { at: number; fire: () => void }[] = [];
  now(): number {
    return this.t;
  }
  advance(ms: number): void {
    this.t += ms;
    const due = this.#timers.filter((x) => x.at <= this.t);
    this.#timers = this.#timers.filter((x) => x.at > this.t);
    for (const d of due) d.fire();
  }
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    this.sleeps.push(ms);
    this.advance(ms);
    return Promise.resolve();
  }
  deadline(ms: number) {
    const ctl = new AbortController();
    const timer = {
      at: this.t + ms,
      fire: () => ctl.abort(new DOMException("timeout", "TimeoutError")),
    };
    this.#timers.push(timer);
    return {
      signal: ctl.signal,
      cancel: () => {
        this.#timers = this.#timers.filter((x) => x !== timer);
      },
    };
  }
}

/** Resolves never, rejects when `signal` aborts. */
export function hang(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    signal.addEventListener("abort", () => reject(signal.reason), { once: true });
  });
}

/** A KMS whose answers are scripted call by call (the last entry repeats). */
export class FakeKms implements KmsClient {
  calls: ReleaseRequest[] = [];
  identity?: KmsClient["identity"];
  constructor(
    public script: ((req: ReleaseRequest, signal: AbortSignal) => Promise<Release>)[],
  ) {}
  requestRelease(req: ReleaseRequest, signal: AbortSignal): Promise<Release> {
    this.calls.push(req);
    const f = this.script[Math.min(this.calls.length - 1, this.script.length - 1)];
    return f(req, signal);
  }
}

/** A state disk in memory: remembers its header, its key and whether it is open. */
export class FakeDisk implements DiskService {
  uuid?: string;
  key?: Uint8Array;
  opened = false;
  formats = 0;
  unlocks = 0;
  inspections = 0;
  inspect(): Promise<DiskInspection> {
    this.inspections++;
    return Promise.resolve({
      formatted: this.uuid !== undefined,
      ...(this.uuid ? { uuid: this.uuid } : {}),
      opened: this.opened,
      ...(this.opened ? { openedDevice: "/dev/mapper/fake-state" } : {}),
    });
  }
  unlockOrFormat(uuid: string, key: Uint8Array) {
    this.unlocks++;
    let formatted = false;
    if (this.uuid === undefined) {
      this.uuid = uuid;
      this.key = key.slice();
      this.formats++;
      formatted = true;
    } else if (this.key!.length !== key.length || this.key!.some((b, i) => b !== key[i])) {
      return Promise.reject(new Error("wrong key"));
    }
    this.opened = true;
    return Promise.resolve({ formatted, openedDevice: "/dev/mapper/fake-state" });
  }
}

/** A mount table in memory. */
export class FakeMounter implements Mounter {
  mounted = new Set<string>();
  filesystems = new Set<string>();
  mkfsCalls: string[] = [];
  isMounted(mp: string) {
    return Promise.resolve(this.mounted.has(mp));
  }
  hasFilesystem(device: string) {
    return Promise.resolve(this.filesystems.has(device));
  }
  mkfs(device: string) {
    this.mkfsCalls.push(device);
    this.filesystems.add(device);
    return Promise.resolve();
  }
  mount(_device: string, mp: string) {
    this.mounted.add(mp);
    return Promise.resolve();
  }
}

/** Files in memory; `/run` style directories report tmpfs. */
export class FakeFiles implements Files {
  files = new Map<string, { data: string; mode: number }>();
  written: { path: string; data: string; mode: number }[] = [];
  dirs = new Map<string, number>();
  fsType = "tmpfs";
  exists(p: string) {
    return Promise.resolve(this.files.has(p));
  }
  writeSecret(p: string, data: string) {
    if (this.files.has(p)) return Promise.reject(new Error("exists"));
    this.files.set(p, { data, mode: 0o600 });
    this.written.push({ path: p, data, mode: 0o600 });
    return Promise.resolve();
  }
  remove(p: string) {
    this.files.delete(p);
    return Promise.resolve();
  }
  mkdirp(p: string, mode: number) {
    this.dirs.set(p, mode);
    return Promise.resolve();
  }
  fsTypeOf() {
    return Promise.resolve(this.fsType);
  }
}

/** A runner that answers each program through a handler and records argv. */
export class FakeRunner implements CommandRunner {
  calls: string[][] = [];
  constructor(
    public handler: (argv: string[], signal?: AbortSignal) => Promise<CommandResult>,
  ) {}
  async run(argv: string[], o: { signal?: AbortSignal; onLine?: (l: string) => void }) {
    this.calls.push(argv);
    const r = await this.handler(argv, o.signal);
    for (const l of r.lines) o.onLine?.(l);
    return r;
  }
}

/** A Kubernetes API in memory. */
export class FakeKube implements KubeApi {
  configMaps = new Map<string, Record<string, string>>();
  nodes = new Map<string, Record<string, string>>();
  ciliumNodes = new Map<string, Record<string, string>>();
  mergeConfigMap(ns: string, name: string, data: Record<string, string>) {
    const k = `${ns}/${name}`;
    const cur = this.configMaps.get(k);
    this.configMaps.set(k, { ...cur, ...data });
    return Promise.resolve(cur ? "updated" as const : "created" as const);
  }
  nodeAnnotations(name: string) {
    return Promise.resolve(this.nodes.get(name));
  }
  ciliumNodeAnnotations(name: string) {
    return Promise.resolve(this.ciliumNodes.get(name));
  }
}

/** WireGuard host checks in memory. */
export class FakeWireGuard implements WireGuardHost {
  ensured = 0;
  interfaces = new Set<string>();
  ensure() {
    this.ensured++;
    return Promise.resolve();
  }
  interfaceExists(name: string) {
    return Promise.resolve(this.interfaces.has(name));
  }
}

/** Records notifications. */
export class FakeNotifier implements Notifier {
  sent: Record<string, string>[] = [];
  notify(f: Record<string, string>) {
    this.sent.push(f);
    return Promise.resolve();
  }
}

/** A logger writing to an array (via the shared sink set by the test). */
export function testLogger(): Logger {
  return new Logger("agent");
}

/** A valid WireGuard public key (32 bytes, base64). */
export const WG_PUB = btoa(String.fromCharCode(...new Uint8Array(32).fill(7)));
