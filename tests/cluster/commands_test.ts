/**
 * `confidant init`'s recovery file (finding: a retried init overwrote the file of a cluster an
 * earlier, timed-out init had given to a node). The node is a local HTTP stand-in that counts
 * the requests reaching it.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli } from "../../lib/run_cli.ts";
import { commands } from "../../cluster/commands.ts";
import { FINISH_TIMEOUT_MS } from "../../agent/init_http.ts";
import { NODE_FINISH_TIMEOUT_MS, OPERATOR_FINISH_TIMEOUT_MS } from "../../cluster/protocol.ts";

async function withNode(
  answer: (req: Request) => Response,
  fn: (o: { dir: string; url: string; hits: string[] }) => Promise<void>,
) {
  const dir = await Deno.makeTempDir({ prefix: "cluster-cmd-" });
  const hits: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    hits.push(new URL(req.url).pathname);
    return answer(req);
  });
  try {
    await Deno.writeTextFile(
      join(dir, "policy.json"),
      JSON.stringify({ pcrs: {}, ak: { pinned: ["sha256:" + "00".repeat(32)] } }),
    );
    await Deno.writeTextFile(join(dir, "pass"), "correct horse battery staple\n");
    await fn({ dir, url: `http://127.0.0.1:${server.addr.port}`, hits });
  } finally {
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

const initArgv = (dir: string, url: string) => [
  "init",
  "--node",
  url,
  "--policy",
  join(dir, "policy.json"),
  "--kubernetes-version",
  "v1.33.1",
  "--kubeconfig-out",
  join(dir, "admin.conf"),
  "--recovery-file",
  join(dir, "recovery.json"),
  "--passphrase-file",
  join(dir, "pass"),
];

Deno.test("confidant init never overwrites an existing recovery file and then contacts no node", async () => {
  await withNode(
    () => Response.json({ error: "x" }, { status: 500 }),
    async ({ dir, url, hits }) => {
      await Deno.writeTextFile(join(dir, "recovery.json"), "an earlier cluster's recovery file\n");
      const err: string[] = [];
      const code = await runCli(commands, initArgv(dir, url), {
        out: () => {},
        err: (t) => err.push(t),
      });
      assert.equal(code, 1);
      assert.match(err.join("\n"), /already exists; not overwritten/);
      assert.match(err.join("\n"), /cluster verify/);
      assert.equal(
        await Deno.readTextFile(join(dir, "recovery.json")),
        "an earlier cluster's recovery file\n",
      );
      assert.deepEqual(hits, [], "no request reached the node");
    },
  );
});

Deno.test("confidant init removes its new recovery file when nothing was sent, so a retry can run", async () => {
  await withNode(
    () => Response.json({ error: "busy", message: "try later" }, { status: 503 }),
    async ({ dir, url, hits }) => {
      const code = await runCli(commands, initArgv(dir, url), { out: () => {}, err: () => {} });
      assert.equal(code, 1);
      assert.deepEqual(hits, ["/v1/init/begin"]);
      assert.equal(
        await Deno.stat(join(dir, "recovery.json")).then(() => true, () => false),
        false,
      );
    },
  );
});

Deno.test("the operator waits for the node's answer longer than the node works on it", () => {
  assert.equal(FINISH_TIMEOUT_MS, NODE_FINISH_TIMEOUT_MS);
  assert.ok(OPERATOR_FINISH_TIMEOUT_MS > NODE_FINISH_TIMEOUT_MS);
});
