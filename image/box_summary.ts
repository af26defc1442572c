/**
 * What a cluster-in-a-box node did, read from its serial console: the PCR
 * values init printed, and the agent's JSON log lines (attestation identity,
 * each step's outcome and duration, the KMS's decision, the disk). Pure: the
 * console text in, a report out; {@link formatBoxSummary} renders the reports
 * `confidant up` prints.
 *
 * The console is the guest's output and so untrusted input: lines are bounded,
 * JSON that does not parse or has unexpected types is ignored, and nothing in it
 * decides anything beyond what is printed.
 *
 * @module
 */

/** Longest console line that is parsed as an agent log line. */
const MAX_LINE = 64 * 1024;

/** The PCRs the box's policy covers. */
export const BOX_PCRS = ["4", "11", "12"] as const;

/** One agent step as its log reports it. */
export interface StepReport {
  step: string;
  outcome: "done" | "skipped" | "failed";
  attempts: number;
  durationMs: number;
  /** Public detail fields of the log line (strings, numbers, booleans only). */
  detail: Record<string, string | number | boolean>;
}

/** What one node's console shows. */
export interface NodeReport {
  /** PCR index → value (lower-case hex) as init printed it. */
  pcrs: Partial<Record<typeof BOX_PCRS[number], string>>;
  identity?: { akName: string; ekCertificateSha256: string; ekIssuer: string };
  nodeName?: string;
  steps: StepReport[];
  /** Failed release attempts that were retried (KMS unreachable). */
  releaseRetries: number;
  /** The KMS's answer as the agent saw it. */
  kms: { decision: "released" | "refused" | "none"; by?: string; checks?: string[] };
  disk: { uuid?: string; formatted?: boolean; mountPoint?: string };
  /** `unlocked`/`ready`: the boot succeeded; `failed`: a step failed; else still booting. */
  final: "unlocked" | "ready" | "failed" | "booting";
  failure?: { step: string; code: string; error: string; checks: string[] };
}

function str(v: unknown): string | undefined {
  return typeof v === "string" && v.length <= 4096 ? v : undefined;
}

function num(v: unknown): number | undefined {
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
}

function strList(v: unknown): string[] | undefined {
  return Array.isArray(v) && v.length <= 64 && v.every((x) => typeof x === "string")
    ? v as string[]
    : undefined;
}

const LOG_KEYS = new Set(["time", "level", "component", "msg", "step", "outcome", "attempt"]);

/** Read a node's console text into a {@link NodeReport}. */
export function parseNodeConsole(console: string): NodeReport {
  const r: NodeReport = {
    pcrs: {},
    steps: [],
    releaseRetries: 0,
    kms: { decision: "none" },
    disk: {},
    final: "booting",
  };
  for (const raw of console.split("\n")) {
    if (raw.length > MAX_LINE) continue;
    const line = raw.replace(/\r$/, "");
    const pcr = /confidant-node: pcr-sha256 (\d+) ([0-9A-Fa-f]{64})\s*$/.exec(line);
    if (pcr && (BOX_PCRS as readonly string[]).includes(pcr[1])) {
      r.pcrs[pcr[1] as typeof BOX_PCRS[number]] = pcr[2].toLowerCase();
      continue;
    }
    const start = line.indexOf('{"time"');
    if (start < 0) continue;
    let rec: Record<string, unknown>;
    try {
      const v = JSON.parse(line.slice(start));
      if (typeof v !== "object" || v === null || Array.isArray(v)) continue;
      rec = v as Record<string, unknown>;
    } catch {
      continue;
    }
    if (rec.component !== "agent") continue;
    const msg = str(rec.msg);
    const step = str(rec.step);
    if (msg === "attestation identity") {
      const akName = str(rec.akName), ek = str(rec.ekCertificateSha256), iss = str(rec.ekIssuer);
      if (akName && ek && iss) r.identity = { akName, ekCertificateSha256: ek, ekIssuer: iss };
    } else if (msg === "step finished" && step) {
      const detail: StepReport["detail"] = {};
      for (const [k, v] of Object.entries(rec)) {
        if (LOG_KEYS.has(k) || k === "durationMs") continue;
        if (typeof v === "string" || typeof v === "boolean" || num(v) !== undefined) {
          detail[k] = v as string | number | boolean;
        }
      }
      const outcome = rec.outcome === "skipped" ? "skipped" : "done";
      r.steps.push({
        step,
        outcome,
        attempts: num(rec.attempt) ?? 1,
        durationMs: num(rec.durationMs) ?? 0,
        detail,
      });
      if (step === "config" && str(rec.nodeName)) r.nodeName = str(rec.nodeName);
      if (step === "release") r.kms = { decision: "released", by: str(rec.kms) };
      if (step === "disk") {
        r.disk.uuid = str(rec.diskUuid) ?? r.disk.uuid;
        if (typeof rec.formatted === "boolean") r.disk.formatted = rec.formatted;
      }
      if (step === "release" && str(rec.diskUuid)) r.disk.uuid = str(rec.diskUuid);
      if (step === "mount") r.disk.mountPoint = str(rec.mountPoint);
    } else if (msg === "step attempt failed, retrying" && step === "release") {
      r.releaseRetries++;
    } else if (msg === "step failed" && step) {
      const checks = strList(rec.checks) ?? [];
      r.failure = { step, code: str(rec.code) ?? "?", error: str(rec.error) ?? "", checks };
      r.steps.push({
        step,
        outcome: "failed",
        attempts: num(rec.attempt) ?? 1,
        durationMs: num(rec.durationMs) ?? 0,
        detail: { code: r.failure.code },
      });
      r.final = "failed";
      if (step === "release" && str(rec.code) === "agent.kms_refused") {
        r.kms = { decision: "refused", checks };
      }
    } else if (msg === "node unlocked") {
      r.final = "unlocked";
    } else if (msg === "node ready") {
      r.final = "ready";
    }
  }
  return r;
}

/** One node of the box for {@link formatBoxSummary}. */
export interface BoxNode {
  /** `node0`, ... */
  label: string;
  report: NodeReport;
  /** Host-side phases of this node (ms), e.g. boot until the agent started. */
  hostTimes: [string, number][];
}

/** Everything `confidant up` prints at the end. */
export interface BoxSummaryInput {
  kmsUrl: string;
  kmsFingerprint: string;
  uki: string;
  ukiSha256: string;
  ukiCached: boolean;
  /** The policy's PCR values (from `image measure`). */
  expected: Partial<Record<typeof BOX_PCRS[number], string>>;
  /** Host-side phases shared by every node (ms). */
  hostTimes: [string, number][];
  nodes: BoxNode[];
  totalMs: number;
}

function secs(ms: number): string {
  return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}

/** Whether a node's boot ended well (disk unlocked and mounted). */
export function nodeSucceeded(r: NodeReport): boolean {
  return r.final === "unlocked" || r.final === "ready";
}

/** The text summary of a box (pure). */
export function formatBoxSummary(s: BoxSummaryInput): string {
  const ok = s.nodes.filter((n) => nodeSucceeded(n.report)).length;
  const out = [
    `cluster in a box: ${ok} of ${s.nodes.length} node(s) unlocked, in ${secs(s.totalMs)}`,
    `  KMS      ${s.kmsUrl}, TLS certificate sha256 ${s.kmsFingerprint}`,
    `  image    ${s.uki} (${s.ukiCached ? "reused" : "built"}, sha256 ${s.ukiSha256})`,
    `  policy   PCR 4/11/12 from image measure; EK CA: swtpm's local CA`,
    `  host     ${s.hostTimes.map(([k, v]) => `${k} ${secs(v)}`).join(" · ")}`,
  ];
  for (const n of s.nodes) {
    const r = n.report;
    out.push("");
    out.push(`${n.label} (${r.nodeName ?? "?"}): ${r.final.toUpperCase()}`);
    if (r.identity) {
      out.push(`  attested   AK name ${r.identity.akName}`);
      out.push(`             EK certificate sha256 ${r.identity.ekCertificateSha256}`);
      out.push(`             EK issuer ${r.identity.ekIssuer}`);
    } else {
      out.push("  attested   (no attestation identity in the log)");
    }
    for (const i of BOX_PCRS) {
      const got = r.pcrs[i];
      const want = s.expected[i];
      const cmp = got === undefined
        ? "not reported"
        : want === undefined
        ? ""
        : got === want
        ? "= image measure"
        : `≠ image measure ${want}`;
      out.push(`  PCR ${i.padEnd(2)}     ${got ?? "-".repeat(64)}  ${cmp}`.trimEnd());
    }
    if (r.kms.decision === "released") {
      out.push(
        `  KMS        released the disk key (KMS ${r.kms.by ?? "?"})` +
          (r.releaseRetries ? ` after ${r.releaseRetries} retries while it was unreachable` : ""),
      );
    } else if (r.kms.decision === "refused") {
      out.push(`  KMS        REFUSED: ${r.kms.checks?.join(", ") || "no checks named"}`);
    } else {
      out.push(
        `  KMS        no decision${r.releaseRetries ? ` (${r.releaseRetries} retries)` : ""}`,
      );
    }
    if (r.disk.formatted !== undefined) {
      out.push(
        `  disk       ${r.disk.formatted ? "formatted (first boot)" : "opened"}, LUKS2 ` +
          `${r.disk.uuid ?? "?"}${r.disk.mountPoint ? `, mounted at ${r.disk.mountPoint}` : ""}`,
      );
    } else {
      out.push(`  disk       untouched${r.disk.uuid ? ` (uuid ${r.disk.uuid})` : ""}`);
    }
    const skipped = r.steps.filter((x) => x.outcome === "skipped" && x.detail.reason);
    const reasons = [...new Set(skipped.map((x) => String(x.detail.reason)))];
    for (const why of reasons) {
      const steps = skipped.filter((x) => x.detail.reason === why).map((x) => x.step);
      out.push(`  skipped    ${steps.join(", ")}: ${why}`);
    }
    if (r.failure) {
      out.push(`  failed     step ${r.failure.step}: ${r.failure.code}: ${r.failure.error}`);
    }
    const times = [
      ...n.hostTimes,
      ...r.steps.filter((x) => x.outcome !== "skipped").map((x) =>
        [x.step, x.durationMs] as [string, number]
      ),
    ];
    out.push(`  time       ${times.map(([k, v]) => `${k} ${secs(v)}`).join(" · ")}`);
  }
  return out.join("\n");
}
