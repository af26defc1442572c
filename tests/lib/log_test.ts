import assert from "node:assert/strict";
import { Logger, setLogSink } from "../../lib/log.ts";

Deno.test("Logger writes one JSON object per line and redacts secret-looking fields", () => {
  const lines: string[] = [];
  setLogSink((l) => lines.push(l));
  try {
    new Logger("test", { node: "n1" }).info("released", {
      diskKey: "abc",
      masterSecret: "def",
      bootstrapToken: "ghi",
      diskUuid: "1234",
      blob: new Uint8Array(3),
    });
  } finally {
    setLogSink(() => {});
  }
  assert.equal(lines.length, 1);
  const rec = JSON.parse(lines[0]);
  assert.equal(rec.msg, "released");
  assert.equal(rec.component, "test");
  assert.equal(rec.node, "n1");
  assert.equal(rec.diskKey, "[redacted]");
  assert.equal(rec.masterSecret, "[redacted]");
  assert.equal(rec.bootstrapToken, "[redacted]");
  assert.equal(rec.diskUuid, "1234");
  assert.equal(rec.blob, "<3 bytes>");
});
