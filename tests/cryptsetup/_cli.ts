/** Test entry: runs only the cryptsetup area's commands (so the test does not depend on other areas). */
import { commands } from "../../cryptsetup/commands.ts";
import { runCli } from "../../lib/run_cli.ts";

Deno.exitCode = await runCli(commands, Deno.args);
