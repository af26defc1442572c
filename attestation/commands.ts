/**
 * CLI commands of the attestation area: `attest`, `verify`, `debug pcrs`.
 *
 * @module
 */
import type { Command } from "../lib/cli.ts";

/** Commands registered in main.ts. */
export const commands: Command[] = [];
