/**
 * Rendering of a benchmark run: the text table, the JSON document and the SVG bar chart
 * of ratios (drawn as SVG text here, no chart library). Pure functions.
 *
 * @module
 */
import type { BenchResult } from "./_frame.ts";

/** Facts about the machine and the run. */
export interface RunInfo {
  /** ISO time the run started. */
  startedAt: string;
  /** Seconds the whole run took. */
  durationSeconds: number;
  /** `--quick` run. */
  quick: boolean;
  /** Host facts: CPU model, core count, load, Deno and OpenSSL versions. */
  host: Record<string, string | number>;
}

/** The JSON document written to `bench/results/`. */
export interface RunReport extends RunInfo {
  /** Every result, baselines first as they were run. */
  results: BenchResult[];
  /** Modules that threw, with their error. */
  errors: { module: string; error: string }[];
}

function num(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a >= 100) return Math.round(v).toLocaleString("en-US");
  if (a >= 1) return v.toFixed(2);
  return v.toPrecision(3);
}

function targetText(r: BenchResult): string {
  if (!r.target) return "";
  const t = r.target;
  return `${t.of === "ratio" ? "ratio" : "value"} ${t.op} ${Number(t.value.toFixed(2))}`;
}

/** The results as an aligned text table. */
export function formatTable(results: BenchResult[]): string {
  const rows = [["benchmark", "value", "unit", "baseline", "ratio", "target", "status"]];
  for (const r of results) {
    rows.push([
      r.label,
      num(r.value),
      r.unit,
      r.role === "baseline" ? "(baseline)" : r.baseline ? r.baseline.id : "-",
      r.ratio === null ? "-" : r.ratio.toFixed(3),
      targetText(r),
      r.pass === null ? "" : r.pass ? "PASS" : "FAIL",
    ]);
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((row) => row[c].length)));
  const line = (row: string[]) =>
    row.map((cell, c) => (c === 1 || c === 4 ? cell.padStart(widths[c]) : cell.padEnd(widths[c])))
      .join("  ").trimEnd();
  return [line(rows[0]), widths.map((w) => "-".repeat(w)).join("  "), ...rows.slice(1).map(line)]
    .join("\n");
}

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(
    /"/g,
    "&quot;",
  );
}

/**
 * A horizontal bar chart of every result's ratio to its baseline: a line marks 1.0 (the
 * baseline), a tick marks the target when the target is on the ratio; bars are green when
 * the target is met, red when it is not, blue without a target.
 */
export function renderSvg(report: RunReport): string {
  const rows = report.results.filter((r) => r.ratio !== null);
  // About 6.8 px per character of a 12 px sans-serif label.
  const labelW = Math.max(
    200,
    16 + Math.ceil(6.8 * Math.max(0, ...rows.map((r) => r.label.length))),
  );
  const chartW = 520;
  const rowH = 26;
  const top = 56;
  const height = top + rows.length * rowH + 40;
  const width = labelW + chartW + 130;
  const maxRatio = Math.max(
    1,
    ...rows.map((r) => r.ratio ?? 0),
    ...rows.map((r) => (r.target?.of === "ratio" ? r.target.value : 0)),
  ) * 1.08;
  const x = (v: number) => labelW + (Math.max(0, v) / maxRatio) * chartW;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
      `viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
  );
  out.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`);
  out.push(
    `<text x="10" y="20" font-size="15" font-weight="bold">confidant benchmarks: ratio to the ` +
      `same-run baseline</text>`,
  );
  const h = report.host;
  const sub = `${report.startedAt}${report.quick ? " (quick)" : ""} · ${h.cpu ?? "?"} · ` +
    `${h.cores ?? "?"} cores · load ${h.loadavg ?? "?"}`;
  out.push(`<text x="10" y="38" fill="#555">${esc(sub)}</text>`);
  rows.forEach((r, i) => {
    const y = top + i * rowH;
    const color = r.role === "baseline"
      ? "#9e9e9e"
      : r.pass === null
      ? "#4a78c2"
      : r.pass
      ? "#3c9a4a"
      : "#c8403a";
    out.push(`<text x="${labelW - 8}" y="${y + 16}" text-anchor="end">${esc(r.label)}</text>`);
    out.push(
      `<rect x="${labelW}" y="${y + 4}" width="${(x(r.ratio!) - labelW).toFixed(1)}" ` +
        `height="${rowH - 8}" fill="${color}"/>`,
    );
    const tickX = r.target?.of === "ratio" ? x(r.target.value) : 0;
    out.push(
      `<text x="${(Math.max(x(r.ratio!), tickX) + 6).toFixed(1)}" y="${y + 16}">` +
        `${r.ratio!.toFixed(3)}` +
        `${r.pass === null ? "" : r.pass ? " ✓" : " ✗"}</text>`,
    );
    if (r.target?.of === "ratio") {
      const tx = x(r.target.value).toFixed(1);
      out.push(
        `<line x1="${tx}" x2="${tx}" y1="${y + 1}" y2="${y + rowH - 1}" stroke="#000" ` +
          `stroke-width="2"/>`,
      );
    }
  });
  const bx = x(1).toFixed(1);
  const bottom = top + rows.length * rowH;
  out.push(
    `<line x1="${bx}" x2="${bx}" y1="${top - 4}" y2="${bottom + 4}" stroke="#333" ` +
      `stroke-dasharray="4 3"/>`,
  );
  out.push(`<text x="${bx}" y="${bottom + 18}" text-anchor="middle">1.0 = baseline</text>`);
  out.push(
    `<text x="10" y="${bottom + 34}" fill="#555">bars: green target met, red missed, blue no ` +
      `target, grey baseline; black tick = target</text>`,
  );
  out.push(`</svg>`);
  return out.join("\n") + "\n";
}
