/**
 * The benchmark frame: what a benchmark module exports, what it reports, and the
 * measuring helpers they share.
 *
 * A benchmark is a file `bench/<name>.ts` (no leading `_`) that exports `name` and
 * `run(ctx)`, and optionally `order` (lower runs first; baselines use 0). `bench/run.ts`
 * finds every such file, runs them in order, and writes the table, JSON and SVG.
 *
 * Every figure is a ratio against a baseline measured in the same run (a module records a
 * baseline with `ctx.setBaseline()` and later modules read it with `ctx.baseline()`), so
 * results from a loaded or slower machine stay comparable. Rates are per CPU-second of
 * this process (user + system, all threads) unless a result says otherwise: that is what
 * `openssl speed` reports too (it divides by user CPU time), and it keeps a shared machine's
 * other load out of the figures. Wall-clock rates go into `details`.
 *
 * @module
 */
import process from "node:process";

/** A pass/fail goal for one result. */
export interface BenchTarget {
  /** Human sentence, e.g. "≥ 50 % of the raw P-256 verify limit". */
  description: string;
  /** Compare the ratio (default) or the raw value with `value`. */
  of: "ratio" | "value";
  /** Direction of the comparison. */
  op: ">=" | "<=";
  /** Threshold. */
  value: number;
}

/** A baseline measured in this run. */
export interface Baseline {
  /** Stable id, e.g. `openssl.ecdsa.p256.verify`. */
  id: string;
  /** Human label. */
  label: string;
  /** Measured value. */
  value: number;
  /** Unit of `value`. */
  unit: string;
}

/** One reported figure. */
export interface BenchResult {
  /** Stable id, e.g. `ecdsa.p256.libcrypto`. */
  id: string;
  /** Human label for the table and the chart. */
  label: string;
  /** `baseline` rows are the references other rows are divided by. */
  role: "baseline" | "measure";
  /** Measured value. */
  value: number;
  /** Unit of `value`, e.g. `verify/s`. */
  unit: string;
  /** The baseline `value` is divided by (null for baselines and for failed runs). */
  baseline: Baseline | null;
  /** `value / baseline.value` (1 for a baseline row). */
  ratio: number | null;
  /** Optional goal. */
  target: BenchTarget | null;
  /** Whether the goal is met; null without a target. */
  pass: boolean | null;
  /** Extra numbers or notes (wall-clock rates, sample counts, errors). */
  details: Record<string, number | string>;
}

/** What a module gets from the runner. */
export interface BenchContext {
  /** `--quick`: shorter measurements for a smoke run. */
  readonly quick: boolean;
  /** Measuring time in seconds: `full`, or `quick` under `--quick`. */
  seconds(full: number, quick: number): number;
  /** Record a baseline for later modules. */
  setBaseline(b: Baseline): void;
  /** A baseline recorded earlier in this run; throws when it is missing. */
  baseline(id: string): Baseline;
  /** Progress line on stderr. */
  log(msg: string): void;
}

/** The shape of a benchmark module. */
export interface BenchModule {
  /** Short name, e.g. `ecdsa_verify`. */
  name: string;
  /** Run order; baselines use 0, default 100. */
  order?: number;
  /** Measure and report. */
  run(ctx: BenchContext): Promise<BenchResult[]>;
}

/** Options of {@link measured}. */
export interface MeasuredOptions {
  id: string;
  label: string;
  value: number;
  unit: string;
  baseline: Baseline | null;
  target?: BenchTarget;
  details?: Record<string, number | string>;
}

/** A result with its ratio and pass computed from the baseline and the target. */
export function measured(o: MeasuredOptions): BenchResult {
  const ratio = o.baseline && o.baseline.value > 0 ? o.value / o.baseline.value : null;
  const target = o.target ?? null;
  let pass: boolean | null = null;
  if (target) {
    const v = target.of === "ratio" ? ratio : o.value;
    pass = v === null ? false : target.op === ">=" ? v >= target.value : v <= target.value;
  }
  return {
    id: o.id,
    label: o.label,
    role: "measure",
    value: o.value,
    unit: o.unit,
    baseline: o.baseline,
    ratio,
    target,
    pass,
    details: o.details ?? {},
  };
}

/** A baseline row for the table. */
export function baselineRow(
  b: Baseline,
  details: Record<string, number | string> = {},
): BenchResult {
  return {
    id: b.id,
    label: b.label,
    role: "baseline",
    value: b.value,
    unit: b.unit,
    baseline: null,
    ratio: 1,
    target: null,
    pass: null,
    details,
  };
}

/** CPU seconds (user + system, all threads) this process has used. */
export function cpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** Throughput of an operation. */
export interface Rate {
  /** Operations completed in the window. */
  ops: number;
  /** Wall-clock seconds of the window. */
  wallSeconds: number;
  /** CPU seconds the process used in the window. */
  cpuSeconds: number;
  /** ops / wall second. */
  perWallSecond: number;
  /** ops / CPU second. */
  perCpuSecond: number;
}

/**
 * Run `op` for about `seconds` (after a short warm-up) with `concurrency` callers in flight
 * and count completions. Synchronous operations are run in batches between clock reads.
 */
export async function measureRate(
  op: () => unknown,
  opts: { seconds: number; concurrency?: number; warmupSeconds?: number },
): Promise<Rate> {
  const concurrency = opts.concurrency ?? 1;
  const run = async (seconds: number): Promise<Rate> => {
    const end = performance.now() + seconds * 1000;
    const c0 = cpuSeconds();
    const t0 = performance.now();
    let ops = 0;
    const worker = async () => {
      while (performance.now() < end) {
        for (let i = 0; i < 8; i++) {
          const r = op();
          if (r instanceof Promise) await r;
        }
        ops += 8;
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    const wall = (performance.now() - t0) / 1000;
    const cpu = cpuSeconds() - c0;
    return {
      ops,
      wallSeconds: wall,
      cpuSeconds: cpu,
      perWallSecond: ops / wall,
      perCpuSecond: cpu > 0 ? ops / cpu : 0,
    };
  };
  await run(opts.warmupSeconds ?? Math.min(0.3, opts.seconds / 4));
  return await run(opts.seconds);
}
