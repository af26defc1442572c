/**
 * `confidant`: one program for the node agent, the KMS, the operator's tools
 * and the debug commands. Each area declares its commands in its own
 * `commands.ts`; this file only puts them together and runs one.
 *
 * @module
 */
import "./lib/quiet_node_deprecations.ts";
import type { Command } from "./lib/cli.ts";
import { runCli } from "./lib/run_cli.ts";
import { commands as attestationCommands } from "./attestation/commands.ts";
import { commands as teeCommands } from "./attestation/tee_commands.ts";
import { commands as kmsCommands } from "./kms/commands.ts";
import { commands as diskCommands } from "./cryptsetup/commands.ts";
import { commands as imageCommands } from "./image/commands.ts";
import { commands as agentCommands } from "./agent/commands.ts";
import { commands as clusterCommands } from "./cluster/commands.ts";

/** Every command of the program, in help order. */
export const commands: Command[] = [
  ...attestationCommands,
  ...teeCommands,
  ...kmsCommands,
  ...diskCommands,
  ...imageCommands,
  ...agentCommands,
  ...clusterCommands,
];

/**
 * `confidant verify --cluster URL ...` is the operator's one statement about a
 * whole cluster; it is served by `cluster verify`, which takes the same flags.
 */
export function routeArgs(argv: string[]): string[] {
  if (argv[0] === "verify" && argv.some((a) => a === "--cluster" || a.startsWith("--cluster="))) {
    return ["cluster", ...argv];
  }
  return argv;
}

if (import.meta.main) {
  Deno.exitCode = await runCli(commands, routeArgs(Deno.args));
}
