/**
 * Errors with stable codes. Every error the program raises on purpose is a
 * {@link ConfidantError}: a machine-readable `code`, a message that says what
 * to do, and the exit code the CLI maps it to.
 *
 * @module
 */

/** Exit codes of the `confidant` CLI. */
export const ExitCode = {
  /** The command did what was asked. */
  Ok: 0,
  /** The command ran but was refused or failed (bad evidence, device error, ...). */
  Failed: 1,
  /** The command line was wrong: unknown flag, missing argument, invalid value. */
  Usage: 2,
} as const;

/** Base class of every deliberate error: a stable code plus a readable message. */
export class ConfidantError extends Error {
  /** Stable identifier, e.g. `tpm.response`, `luks.not_blank`. */
  readonly code: string;
  /** Exit code the CLI uses when this error ends a command. */
  readonly exitCode: number;
  constructor(code: string, message: string, options?: { cause?: unknown; exitCode?: number }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "ConfidantError";
    this.code = code;
    this.exitCode = options?.exitCode ?? ExitCode.Failed;
  }
}

/** The command line cannot be understood; exit code 2. */
export class UsageError extends ConfidantError {
  constructor(message: string) {
    super("usage", message, { exitCode: ExitCode.Usage });
    this.name = "UsageError";
  }
}

/** Input bytes or documents are malformed (hostile or corrupt); never a crash. */
export class ParseError extends ConfidantError {
  constructor(what: string, message: string, options?: { cause?: unknown }) {
    super(`parse.${what}`, message, options);
    this.name = "ParseError";
  }
}

/** A short, secret-free description of any thrown value, for logs and one-line CLI errors. */
export function describeError(e: unknown): { code: string; message: string } {
  if (e instanceof ConfidantError) return { code: e.code, message: e.message };
  if (e instanceof Deno.errors.NotFound) return { code: "file.not_found", message: e.message };
  if (e instanceof Deno.errors.PermissionDenied) {
    return { code: "permission", message: `${e.message} (run as root, or check the file's mode)` };
  }
  if (e instanceof Deno.errors.NotCapable) return { code: "permission", message: e.message };
  if (e instanceof Error) return { code: "internal", message: `${e.name}: ${e.message}` };
  return { code: "internal", message: String(e) };
}
