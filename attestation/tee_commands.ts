/**
 * CLI commands for raw TEE reports: `verify-report`.
 *
 * @module
 */
import type { Command } from "../lib/cli.ts";

/** Commands registered in main.ts. */
export const commands: Command[] = [];
