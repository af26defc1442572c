import assert from "node:assert/strict";
import { nodeCmdline } from "../../image/cluster.ts";
import { parseKernelCmdline } from "../../agent/config.ts";

Deno.test("nodeCmdline() gives the agent its KMS, pin, disk and role, and parses as agent config", () => {
  const fp = "ab".repeat(32);
  const c = nodeCmdline(fp);
  assert.match(c, /confidant\.kms=https:\/\/10\.0\.2\.100:8443/);
  const parsed = parseKernelCmdline(c);
  const paths = [...parsed.values()].map((v) => v.path.join("."));
  assert.deepEqual(paths.sort(), [
    "disk.device",
    "kms.fingerprint",
    "kms.url",
    "kubeadm.join",
    "role",
  ]);
  assert.equal(parsed.get("confidant.join")?.value, false, "the box has no Kubernetes");
  assert.equal(nodeCmdline(fp, { join: true }).includes("confidant.join"), false);
  assert.throws(() => nodeCmdline("xyz"), /fingerprint/);
});
