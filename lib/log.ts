/**
 * Structured logs: one JSON object per line (journald keeps them as they are).
 * Fields never carry secrets: callers pass only public values, and keys that
 * look like secrets are replaced by `"[redacted]"` as a second line of defence.
 *
 * @module
 */

/** Log levels in increasing severity. */
export type LogLevel = "debug" | "info" | "warn" | "error";
const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const SECRET_KEY = /(secret|password|passphrase|token|key(?!Id|Name|Slot)|credential)$/i;

/** A sink for log lines; the default writes to stderr. */
export type LogSink = (line: string) => void;

const encoder = new TextEncoder();
let sink: LogSink = (line) => Deno.stderr.writeSync(encoder.encode(line + "\n"));
let minLevel: LogLevel = (Deno.env.get("CONFIDANT_LOG_LEVEL") as LogLevel | undefined) ?? "info";

/** Replace the sink (tests, the agent writes to stdout for journald). */
export function setLogSink(s: LogSink): void {
  sink = s;
}

/** Set the lowest level that is written. */
export function setLogLevel(level: LogLevel): void {
  minLevel = level;
}

function redact(fields: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) {
    out[k] = SECRET_KEY.test(k)
      ? "[redacted]"
      : v instanceof Uint8Array
      ? `<${v.length} bytes>`
      : v;
  }
  return out;
}

/** A logger bound to a component name. */
export class Logger {
  constructor(readonly component: string, readonly base: Record<string, unknown> = {}) {}

  /** A logger with extra fixed fields. */
  with(fields: Record<string, unknown>): Logger {
    return new Logger(this.component, { ...this.base, ...fields });
  }

  /** Write one line at `level`. */
  log(level: LogLevel, msg: string, fields: Record<string, unknown> = {}): void {
    if (ORDER[level] < ORDER[minLevel]) return;
    const rec = {
      time: new Date().toISOString(),
      level,
      component: this.component,
      msg,
      ...redact({ ...this.base, ...fields }),
    };
    sink(JSON.stringify(rec));
  }
  debug(msg: string, fields?: Record<string, unknown>): void {
    this.log("debug", msg, fields);
  }
  info(msg: string, fields?: Record<string, unknown>): void {
    this.log("info", msg, fields);
  }
  warn(msg: string, fields?: Record<string, unknown>): void {
    this.log("warn", msg, fields);
  }
  error(msg: string, fields?: Record<string, unknown>): void {
    this.log("error", msg, fields);
  }
}
