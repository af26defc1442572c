/**
 * Load generation against KMS processes: a pinned TLS transport that binds each simulated
 * node's connections to its own loopback source address (so the KMS's per-source rate limit
 * sees one source per node, as in a real cluster), per-exchange timing and status counting,
 * percentiles, and process facts from /proc.
 *
 * @module
 */
import { type KmsTransport, pinnedHttpsTransport } from "../kms/client.ts";

/** Loopback source address of simulated node `i` (127.10.0.1 upwards, never .0 or .255). */
export function sourceAddress(i: number): string {
  const n = (i % (254 * 250)) >>> 0;
  return `127.${10 + Math.floor(n / (254 * 254))}.${Math.floor(n / 254) % 254 + 1}.${n % 254 + 1}`;
}

/**
 * The production transport (`pinnedHttpsTransport`: the KMS's certificate pinned by SHA-256
 * before anything is written, one kept-alive TLS connection for begin, finish and retries)
 * bound to a source address.
 */
export function sourceBoundTransport(
  port: number,
  fingerprint: string,
  localAddress: string,
  timeoutMs = 60_000,
): KmsTransport & { close(): void } {
  return pinnedHttpsTransport(`https://127.0.0.1:${port}`, fingerprint, {
    localAddress,
    timeoutMs,
  });
}

/** The p-th percentile (0..100) of `xs` (nearest rank); NaN when empty. */
export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const rank = Math.min(s.length, Math.max(1, Math.ceil((p / 100) * s.length)));
  return s[rank - 1];
}

/** Status tallies of a load phase. */
export class StatusCounts {
  readonly by = new Map<string, number>();
  /** Count one outcome: an HTTP status or `conn` for a connection error/timeout. */
  add(status: number | "conn"): void {
    const k = String(status);
    this.by.set(k, (this.by.get(k) ?? 0) + 1);
  }
  /** Count of one key. */
  get(k: string): number {
    return this.by.get(k) ?? 0;
  }
  /** Responses with a 5xx status. */
  get fiveXx(): number {
    let n = 0;
    for (const [k, v] of this.by) if (/^5\d\d$/.test(k)) n += v;
    return n;
  }
  /** `status:count` pairs, for details. */
  toString(): string {
    return [...this.by].sort().map(([k, v]) => `${k}:${v}`).join(" ");
  }
}

/** CPU seconds (user + system) used so far by process `pid`, from /proc/<pid>/stat. */
export function processCpuSeconds(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Fields 14 and 15 (utime, stime) are at 11 and 12 after the command name.
  return (Number(f[11]) + Number(f[12])) / 100;
}

/** VmRSS and VmHWM of `pid` in MiB, from /proc/<pid>/status. */
export function processMemory(pid: number): { rssMiB: number; peakMiB: number } {
  const s = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, "m").exec(s)?.[1] ?? NaN);
  return { rssMiB: kb("VmRSS") / 1024, peakMiB: kb("VmHWM") / 1024 };
}
