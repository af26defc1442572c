/**
 * `deno task bench [--quick] [--only=a,b] [--out=DIR] [--no-write] [--strict]`: run every
 * benchmark module in bench/, print a table, and write `<out>/<date>.json` and
 * `<out>/<date>.svg` plus `latest.json`/`latest.svg` (a `--quick` run writes
 * `<date>-quick.*` and leaves `latest.*` alone). `--strict` exits 1 when a target is missed
 * or a module fails.
 *
 * @module
 */
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { Baseline, BenchContext, BenchModule, BenchResult } from "./_frame.ts";
import { formatTable, renderSvg, type RunReport } from "./_report.ts";

/** Parsed command line. */
export interface BenchArgs {
  quick: boolean;
  only: string[] | null;
  out: string;
  write: boolean;
  strict: boolean;
}

const HERE = dirname(fileURLToPath(import.meta.url));

/** Parse the command line; unknown flags throw. */
export function parseBenchArgs(args: string[]): BenchArgs {
  const a: BenchArgs = {
    quick: false,
    only: null,
    out: join(HERE, "results"),
    write: true,
    strict: false,
  };
  for (const arg of args) {
    if (arg === "--quick") a.quick = true;
    else if (arg === "--no-write") a.write = false;
    else if (arg === "--strict") a.strict = true;
    else if (arg.startsWith("--only=")) a.only = arg.slice(7).split(",").filter((s) => s);
    else if (arg.startsWith("--out=")) a.out = arg.slice(6);
    else {throw new Error(
        `unknown argument ${arg} (use --quick, --only=a,b, --out=DIR, --no-write, --strict)`,
      );}
  }
  return a;
}

/** The benchmark modules in `dir`: `*.ts` files not starting with `_`, except run.ts. */
export async function loadModules(dir: string = HERE): Promise<BenchModule[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && e.name.endsWith(".ts") && !e.name.startsWith("_") && e.name !== "run.ts") {
      names.push(e.name);
    }
  }
  const mods: BenchModule[] = [];
  for (const file of names.sort()) {
    const m = await import(pathToFileURL(join(dir, file)).href);
    if (typeof m.name !== "string" || typeof m.run !== "function") {
      throw new Error(`bench/${file} must export name and run(ctx)`);
    }
    mods.push({ name: m.name, order: typeof m.order === "number" ? m.order : 100, run: m.run });
  }
  return mods.sort((a, b) => (a.order ?? 100) - (b.order ?? 100) || a.name.localeCompare(b.name));
}

async function hostFacts(): Promise<Record<string, string | number>> {
  let cpu = "unknown";
  try {
    const info = await Deno.readTextFile("/proc/cpuinfo");
    cpu = /^model name\s*:\s*(.+)$/m.exec(info)?.[1] ?? cpu;
  } catch { /* not Linux */ }
  return {
    cpu,
    cores: navigator.hardwareConcurrency,
    loadavg: Deno.loadavg().map((l) => l.toFixed(2)).join(" "),
    deno: Deno.version.deno,
    v8: Deno.version.v8,
  };
}

/** Run the selected modules and build the report (writes nothing). */
export async function runBenchmarks(mods: BenchModule[], args: BenchArgs): Promise<RunReport> {
  const started = new Date();
  const t0 = performance.now();
  const baselines = new Map<string, Baseline>();
  const ctx: BenchContext = {
    quick: args.quick,
    seconds: (full, quick) => (args.quick ? quick : full),
    setBaseline: (b) => void baselines.set(b.id, b),
    baseline: (id) => {
      const b = baselines.get(id);
      if (!b) throw new Error(`baseline ${id} was not measured in this run`);
      return b;
    },
    log: (msg) => console.error(`bench: ${msg}`),
  };
  const results: BenchResult[] = [];
  const errors: { module: string; error: string }[] = [];
  for (const m of mods) {
    if (args.only && !args.only.includes(m.name) && (m.order ?? 100) !== 0) continue;
    ctx.log(`== ${m.name}`);
    try {
      results.push(...(await m.run(ctx)));
    } catch (e) {
      const error = e instanceof Error ? e.message : String(e);
      ctx.log(`${m.name} failed: ${error}`);
      errors.push({ module: m.name, error });
    }
  }
  return {
    startedAt: started.toISOString(),
    durationSeconds: Number(((performance.now() - t0) / 1000).toFixed(1)),
    quick: args.quick,
    host: await hostFacts(),
    results,
    errors,
  };
}

async function main(): Promise<number> {
  const args = parseBenchArgs(Deno.args);
  const report = await runBenchmarks(await loadModules(), args);
  console.log(formatTable(report.results));
  for (const e of report.errors) console.log(`ERROR in ${e.module}: ${e.error}`);
  console.log(`(${report.durationSeconds} s; rates are per CPU-second of the measuring process)`);
  if (args.write) {
    await Deno.mkdir(args.out, { recursive: true });
    const stem = report.startedAt.slice(0, 10) + (args.quick ? "-quick" : "");
    const json = JSON.stringify(report, null, 2) + "\n";
    const svg = renderSvg(report);
    await Deno.writeTextFile(join(args.out, `${stem}.json`), json);
    await Deno.writeTextFile(join(args.out, `${stem}.svg`), svg);
    if (!args.quick) {
      await Deno.writeTextFile(join(args.out, "latest.json"), json);
      await Deno.writeTextFile(join(args.out, "latest.svg"), svg);
    }
    console.log(`wrote ${join(args.out, stem)}.{json,svg}${args.quick ? "" : " and latest.*"}`);
  }
  const failed = report.errors.length > 0 || report.results.some((r) => r.pass === false);
  return args.strict && failed ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main());
