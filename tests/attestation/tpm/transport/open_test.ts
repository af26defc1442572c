import assert from "node:assert/strict";
import { UsageError } from "../../../../lib/errors.ts";
import { parseTransportSpec } from "../../../../attestation/tpm/mod.ts";

Deno.test("parseTransportSpec() accepts devices and swtpm:HOST:PORT only", () => {
  assert.deepEqual(parseTransportSpec("/dev/tpmrm0"), { kind: "device", path: "/dev/tpmrm0" });
  assert.deepEqual(parseTransportSpec("swtpm:127.0.0.1:2321"), {
    kind: "swtpm",
    host: "127.0.0.1",
    port: 2321,
  });
  assert.deepEqual(parseTransportSpec("swtpm:[::1]:2321"), {
    kind: "swtpm",
    host: "::1",
    port: 2321,
  });
  for (
    const bad of [
      "",
      "tpm0",
      "/dev/../etc/passwd",
      "swtpm:host",
      "swtpm:h:0",
      "swtpm:h:70000",
      "mssim:h:1",
    ]
  ) {
    assert.throws(() => parseTransportSpec(bad), UsageError, bad);
  }
});
