import assert from "node:assert/strict";
import { z } from "zod";
import { commandHelp, defineCommand, parseArgs, validateInput } from "../../lib/cli.ts";
import { runCli } from "../../lib/run_cli.ts";
import { UsageError } from "../../lib/errors.ts";

const echo = defineCommand({
  path: ["debug", "echo"],
  summary: "print the parsed input",
  flags: [
    { name: "nonce", type: "string", value: "HEX", help: "a nonce" },
    { name: "pcr", type: "string", help: "a PCR", repeatable: true },
    { name: "loud", type: "boolean", help: "shout" },
  ],
  positionals: [{ name: "file", help: "a file", optional: true }],
  schema: z.object({
    nonce: z.string().regex(/^[0-9a-f]+$/, "must be hex"),
    pcr: z.array(z.coerce.number().int().min(0).max(23)).default([]),
    loud: z.boolean().default(false),
    file: z.string().optional(),
  }).strict(),
  run(input, ctx) {
    ctx.out(JSON.stringify(input));
    return Promise.resolve(input.loud ? 1 : 0);
  },
});

function io() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { out: (t: string) => out.push(t), err: (t: string) => err.push(t) } };
}

Deno.test("parseArgs() reads long flags, = values, repeats and positionals", () => {
  const raw = parseArgs(echo, ["--nonce=ab", "--pcr", "0", "--pcr", "7", "doc.json", "--loud"]);
  assert.deepEqual(raw, { nonce: "ab", pcr: ["0", "7"], file: "doc.json", loud: true });
  assert.deepEqual(validateInput(echo, raw), {
    nonce: "ab",
    pcr: [0, 7],
    loud: true,
    file: "doc.json",
  });
});

Deno.test("parseArgs() refuses unknown flags, missing values, duplicates and extra arguments", () => {
  assert.throws(() => parseArgs(echo, ["--nope"]), UsageError);
  assert.throws(() => parseArgs(echo, ["--nonce"]), /needs a value/);
  assert.throws(() => parseArgs(echo, ["--nonce", "a", "--nonce", "b"]), /more than once/);
  assert.throws(() => parseArgs(echo, ["a", "b"]), /unexpected argument/);
  assert.throws(() => parseArgs(echo, ["--loud=yes"]), /takes no value/);
});

Deno.test("validateInput() names the flag that is wrong", () => {
  assert.throws(() => validateInput(echo, { nonce: "xyz" }), /--nonce: must be hex/);
});

Deno.test("runCli() maps usage errors to exit 2 and failures to exit 1, with --json errors", async () => {
  let b = io();
  assert.equal(await runCli([echo], ["debug", "echo", "--nonce", "zz"], b.io), 2);
  assert.match(b.err[0], /^confidant: usage error: --nonce: must be hex/);
  b = io();
  assert.equal(await runCli([echo], ["debug", "echo", "--nonce", "zz", "--json"], b.io), 2);
  assert.deepEqual(JSON.parse(b.err[0]).error.code, "usage");
  b = io();
  assert.equal(await runCli([echo], ["debug", "echo", "--nonce", "ab", "--loud"], b.io), 1);
  b = io();
  assert.equal(await runCli([echo], ["debug", "nope"], b.io), 2);
  assert.match(b.err[0], /unknown command "debug nope"/);
  b = io();
  assert.equal(await runCli([echo], ["debug", "echo", "--help"], b.io), 0);
  assert.equal(b.out[0], commandHelp(echo));
  assert.match(b.out[0], /--nonce HEX/);
});

Deno.test("runCli() turns an unexpected exception into one line and exit 1", async () => {
  const boom = defineCommand({
    path: ["boom"],
    summary: "throws",
    flags: [],
    schema: z.object({}).strict(),
    run() {
      throw new TypeError("x is undefined");
    },
  });
  const b = io();
  assert.equal(await runCli([boom], ["boom"], b.io), 1);
  assert.equal(b.err.length, 1);
  assert.match(b.err[0], /^confidant: internal: TypeError: x is undefined$/);
});

Deno.test("runCli() reports a missing file as file.not_found with the path", async () => {
  const read = defineCommand({
    path: ["read"],
    summary: "reads a file",
    flags: [],
    positionals: [{ name: "file", help: "a file" }],
    schema: z.object({ file: z.string() }).strict(),
    async run(input) {
      await Deno.readFile(input.file);
    },
  });
  const b = io();
  assert.equal(await runCli([read], ["read", "/nonexistent/confidant-test"], b.io), 1);
  assert.match(b.err[0], /^confidant: file\.not_found: .*\/nonexistent\/confidant-test/);
});
