/**
 * CLI commands of the agent area.
 *
 * @module
 */
import type { Command } from "../lib/cli.ts";

/** Commands registered in main.ts. */
export const commands: Command[] = [];
