/**
 * A small, strict command-line layer. Each command declares its flags and
 * positionals once; the parser turns argv into a plain record, a zod schema
 * validates and types it, and help text is generated from the same declaration.
 * Parsing is pure: it never reads files or the environment.
 *
 * @module
 */
import { z } from "zod";
import { UsageError } from "./errors.ts";

/** One flag of a command. */
export interface FlagSpec {
  /** Long name without dashes, e.g. `nonce` for `--nonce`. */
  name: string;
  /** `string` takes a value (`--x v` or `--x=v`); `boolean` takes none. */
  type: "string" | "boolean";
  /** Placeholder shown in help, e.g. `HEX`. */
  value?: string;
  /** One line of help. */
  help: string;
  /** The flag may be given several times (the value becomes a list). */
  repeatable?: boolean;
  /** Single-letter alias. */
  short?: string;
}

/** One positional argument. */
export interface PositionalSpec {
  name: string;
  help: string;
  optional?: boolean;
  /** Takes all remaining arguments. */
  variadic?: boolean;
}

/** What every command receives besides its parsed input. */
export interface CommandContext {
  /** `--json` was given: print machine-readable output. */
  json: boolean;
  /** Write a line to stdout. */
  out(text: string): void;
  /** Write a line to stderr. */
  err(text: string): void;
}

/** A declared command; `S` is the zod schema of its input. */
export interface Command<S extends z.ZodType = z.ZodType> {
  /** Words after `confidant`, e.g. `["kms", "serve"]`. */
  path: string[];
  summary: string;
  /** Paragraphs printed after the usage line. */
  description?: string;
  flags: FlagSpec[];
  positionals?: PositionalSpec[];
  examples?: string[];
  /** Validates `{ ...flags, <positional names> }`; messages become usage errors. */
  schema: S;
  /** Runs the command; returns the exit code (default 0). */
  run(input: z.infer<S>, ctx: CommandContext): Promise<number | void>;
}

/** Declare a command with inferred input types. */
export function defineCommand<S extends z.ZodType>(c: Command<S>): Command<S> {
  return c;
}

/** Flags every command accepts. */
export const GLOBAL_FLAGS: FlagSpec[] = [
  { name: "json", type: "boolean", help: "machine-readable output (errors too, on stderr)" },
  { name: "help", type: "boolean", short: "h", help: "show this help" },
];

/** Parse argv for `cmd` into a raw record; unknown flags and missing values are usage errors. */
export function parseArgs(cmd: Command, argv: string[]): Record<string, unknown> {
  const flags = [...cmd.flags, ...GLOBAL_FLAGS];
  const byName = new Map(flags.map((f) => [f.name, f]));
  const byShort = new Map(flags.filter((f) => f.short).map((f) => [f.short!, f]));
  const out: Record<string, unknown> = {};
  const pos: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--") {
      pos.push(...argv.slice(i + 1));
      break;
    }
    let spec: FlagSpec | undefined;
    let inline: string | undefined;
    if (a.startsWith("--")) {
      const eq = a.indexOf("=");
      const name = eq >= 0 ? a.slice(2, eq) : a.slice(2);
      inline = eq >= 0 ? a.slice(eq + 1) : undefined;
      spec = byName.get(name);
      if (!spec) {
        throw new UsageError(
          `unknown flag --${name} (see: confidant ${cmd.path.join(" ")} --help)`,
        );
      }
    } else if (a.startsWith("-") && a.length === 2 && a !== "-") {
      spec = byShort.get(a[1]);
      if (!spec) {
        throw new UsageError(`unknown flag ${a} (see: confidant ${cmd.path.join(" ")} --help)`);
      }
    } else {
      pos.push(a);
      continue;
    }
    let value: string | boolean;
    if (spec.type === "boolean") {
      if (inline !== undefined && inline !== "true" && inline !== "false") {
        throw new UsageError(`--${spec.name} takes no value`);
      }
      value = inline === undefined ? true : inline === "true";
    } else {
      if (inline !== undefined) value = inline;
      else {
        if (i + 1 >= argv.length) {
          throw new UsageError(
            `--${spec.name} needs a value${spec.value ? ` (${spec.value})` : ""}`,
          );
        }
        value = argv[++i];
      }
    }
    if (spec.repeatable) {
      const list = (out[spec.name] as unknown[] | undefined) ?? [];
      list.push(value);
      out[spec.name] = list;
    } else {
      if (spec.name in out) throw new UsageError(`--${spec.name} was given more than once`);
      out[spec.name] = value;
    }
  }
  const specs = cmd.positionals ?? [];
  let pi = 0;
  for (const p of specs) {
    if (p.variadic) {
      out[p.name] = pos.slice(pi);
      pi = pos.length;
      if (!p.optional && (out[p.name] as string[]).length === 0) {
        throw new UsageError(`missing ${p.name.toUpperCase()}`);
      }
      break;
    }
    if (pi < pos.length) out[p.name] = pos[pi++];
    else if (!p.optional && !out.help) throw new UsageError(`missing ${p.name.toUpperCase()}`);
  }
  if (pi < pos.length) {
    throw new UsageError(
      `unexpected argument ${JSON.stringify(pos[pi])} (see: confidant ${
        cmd.path.join(" ")
      } --help)`,
    );
  }
  return out;
}

/** Validate the raw record with the command's schema; the first problem becomes a usage error. */
export function validateInput<S extends z.ZodType>(
  cmd: Command<S>,
  raw: Record<string, unknown>,
): z.infer<S> {
  const { json: _j, help: _h, ...rest } = raw;
  const r = cmd.schema.safeParse(rest);
  if (!r.success) {
    const issue = r.error.issues[0];
    const where = issue.path.length ? issue.path.join(".") : "input";
    const flag = cmd.flags.some((f) => f.name === where) ? `--${where}` : where.toUpperCase();
    throw new UsageError(`${flag}: ${issue.message}`);
  }
  return r.data;
}

/** Help text of one command. */
export function commandHelp(cmd: Command): string {
  const posUsage = (cmd.positionals ?? []).map((p) => {
    const n = p.name.toUpperCase() + (p.variadic ? "..." : "");
    return p.optional ? `[${n}]` : n;
  });
  const lines = [
    `confidant ${cmd.path.join(" ")} — ${cmd.summary}`,
    "",
    `usage: confidant ${cmd.path.join(" ")} [flags]${
      posUsage.length ? " " + posUsage.join(" ") : ""
    }`,
  ];
  if (cmd.description) lines.push("", ...cmd.description.trim().split("\n"));
  if (cmd.positionals?.length) {
    lines.push("", "arguments:");
    for (const p of cmd.positionals) lines.push(`  ${p.name.toUpperCase().padEnd(26)} ${p.help}`);
  }
  lines.push("", "flags:");
  for (const f of [...cmd.flags, ...GLOBAL_FLAGS]) {
    const left = `${f.short ? `-${f.short}, ` : ""}--${f.name}${
      f.type === "string" ? ` ${f.value ?? "VALUE"}` : ""
    }`;
    lines.push(`  ${left.padEnd(26)} ${f.help}${f.repeatable ? " (repeatable)" : ""}`);
  }
  if (cmd.examples?.length) {
    lines.push("", "examples:");
    for (const e of cmd.examples) lines.push(`  ${e}`);
  }
  return lines.join("\n");
}

/** Top-level help listing every command. */
export function rootHelp(commands: Command[]): string {
  const lines = [
    "confidant — node agent and key service of a confidential Kubernetes cluster",
    "",
    "usage: confidant <command> [flags]      (confidant <command> --help for details)",
    "",
    "commands:",
  ];
  const width = Math.max(...commands.map((c) => c.path.join(" ").length)) + 2;
  for (const c of commands) lines.push(`  ${c.path.join(" ").padEnd(width)} ${c.summary}`);
  lines.push(
    "",
    "exit codes: 0 ok, 1 refused or failed, 2 usage error",
    "global flags: --json (machine-readable output), --help",
  );
  return lines.join("\n");
}

/** Find the command whose path is the longest prefix of argv. */
export function findCommand(
  commands: Command[],
  argv: string[],
): { cmd?: Command; rest: string[]; prefix: string[] } {
  let best: Command | undefined;
  for (const c of commands) {
    if (c.path.length <= argv.length && c.path.every((w, i) => argv[i] === w)) {
      if (!best || c.path.length > best.path.length) best = c;
    }
  }
  if (best) return { cmd: best, rest: argv.slice(best.path.length), prefix: best.path };
  const prefix: string[] = [];
  for (const w of argv) {
    if (w.startsWith("-")) break;
    const next = [...prefix, w];
    if (commands.some((c) => next.every((x, i) => c.path[i] === x))) prefix.push(w);
    else break;
  }
  return { rest: argv.slice(prefix.length), prefix };
}

/** Common zod pieces for flags. */
export const flag = {
  /** A hex string of bytes, optionally with an exact byte length. */
  hex: (bytes?: number) =>
    z.string().regex(/^(?:[0-9a-fA-F]{2})*$/, "must be hex (an even number of 0-9a-f)").refine(
      (s) => bytes === undefined || s.length === bytes * 2,
      bytes === undefined ? "wrong length" : `must be ${bytes} bytes (${bytes * 2} hex digits)`,
    ),
  /** A TCP port number. */
  port: () => z.coerce.number().int().min(1).max(65535),
  /** `HOST:PORT`. */
  hostPort: () =>
    z.string().regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, "must be HOST:PORT"),
};
