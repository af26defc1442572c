/**
 * Runs one CLI invocation against a list of commands: finds the command,
 * prints help, parses and validates, runs, and maps errors to exit codes
 * and one clear line on stderr (or a JSON object with `--json`).
 *
 * @module
 */
import {
  type Command,
  type CommandContext,
  commandHelp,
  findCommand,
  parseArgs,
  rootHelp,
  validateInput,
} from "./cli.ts";
import { ConfidantError, describeError, ExitCode, UsageError } from "./errors.ts";

/** Where the CLI writes; tests pass buffers. */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
}

const enc = new TextEncoder();
/** The process's stdout/stderr. */
export const processIo: CliIo = {
  out: (t) => Deno.stdout.writeSync(enc.encode(t + "\n")),
  err: (t) => Deno.stderr.writeSync(enc.encode(t + "\n")),
};

/** Run `argv` against `commands`; returns the exit code. */
export async function runCli(
  commands: Command[],
  argv: string[],
  io: CliIo = processIo,
): Promise<number> {
  const json = argv.includes("--json");
  const fail = (e: unknown): number => {
    const { code, message } = describeError(e);
    const exit = e instanceof ConfidantError ? e.exitCode : ExitCode.Failed;
    if (json) io.err(JSON.stringify({ error: { code, message } }));
    else io.err(`confidant: ${code === "usage" ? "usage error" : code}: ${message}`);
    return exit;
  };
  if (argv.length === 0 || argv[0] === "--help" || argv[0] === "-h" || argv[0] === "help") {
    io.out(rootHelp(commands));
    return argv.length === 0 ? ExitCode.Usage : ExitCode.Ok;
  }
  const { cmd, rest, prefix } = findCommand(commands, argv);
  if (!cmd) {
    const group = commands.filter((c) =>
      prefix.length > 0 && prefix.every((w, i) => c.path[i] === w)
    );
    if (group.length > 0 && (rest.length === 0 || rest[0] === "--help" || rest[0] === "-h")) {
      io.out(rootHelp(group));
      return rest.length === 0 ? ExitCode.Usage : ExitCode.Ok;
    }
    const word = [...prefix, rest[0] ?? ""].join(" ").trim();
    return fail(new UsageError(`unknown command "${word}" (see: confidant --help)`));
  }
  const ctx: CommandContext = { json, out: io.out, err: io.err };
  try {
    const raw = parseArgs(cmd, rest);
    if (raw.help) {
      io.out(commandHelp(cmd));
      return ExitCode.Ok;
    }
    const input = validateInput(cmd, raw);
    const code = await cmd.run(input, ctx);
    return code ?? ExitCode.Ok;
  } catch (e) {
    return fail(e);
  }
}
