/**
 * Prometheus text exposition (format 0.0.4) of the agent's state. Pure.
 *
 * @module
 */
import type { AgentState, StepStatus } from "./state.ts";

const STATUSES: StepStatus[] = ["pending", "running", "waiting", "done", "skipped", "failed"];

function label(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

/** The metrics text for `state`; `ready` is what `/readyz` answers. */
export function renderMetrics(state: AgentState, ready: boolean, nowMs: number): string {
  const out: string[] = [];
  const metric = (name: string, type: string, help: string, rows: [string, number][]) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, v] of rows) out.push(`${name}${labels} ${v}`);
  };
  metric("confidant_agent_ready", "gauge", "1 when every step is done and encryption is on.", [
    ["", ready ? 1 : 0],
  ]);
  metric("confidant_agent_failed", "gauge", "1 when a step failed for this boot.", [
    ["", state.phase === "failed" ? 1 : 0],
  ]);
  metric("confidant_agent_encryption_enabled", "gauge", "1 when Cilium reports WireGuard here.", [
    ["", state.encryption.enabled ? 1 : 0],
  ]);
  metric(
    "confidant_agent_step_status",
    "gauge",
    "1 for the current status of each boot step.",
    state.steps.flatMap((s) =>
      STATUSES.map((st): [string, number] => [
        `{step="${label(s.name)}",status="${st}"}`,
        s.status === st ? 1 : 0,
      ])
    ),
  );
  metric(
    "confidant_agent_step_attempts_total",
    "counter",
    "Attempts of each boot step.",
    state.steps.map((s) => [`{step="${label(s.name)}"}`, s.attempts]),
  );
  metric(
    "confidant_agent_step_duration_seconds",
    "gauge",
    "Duration of each finished boot step.",
    state.steps.filter((s) => s.durationMs !== undefined).map((
      s,
    ) => [`{step="${label(s.name)}"}`, s.durationMs! / 1000]),
  );
  metric("confidant_agent_uptime_seconds", "gauge", "Seconds since the agent started.", [
    ["", Math.max(0, (nowMs - Date.parse(state.startedAt)) / 1000)],
  ]);
  return out.join("\n") + "\n";
}
