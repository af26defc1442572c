/**
 * NodeBootstrap's session limits (finding: every begin ran CreatePrimary twice and the 17th
 * begin evicted the oldest session, so a flood of begins cut off an operator's init). TPM: a
 * real swtpm; the state disk is a stand-in that reports a blank disk.
 */
import assert from "node:assert/strict";
import { startSwtpm } from "../_support/swtpm.ts";
import { TpmAccess } from "../../agent/adapters.ts";
import {
  type BootstrapDeps,
  BootstrapError,
  MAX_SESSIONS,
  MAX_SESSIONS_PER_SOURCE,
  NodeBootstrap,
} from "../../agent/bootstrap.ts";
import type { DiskService } from "../../agent/ports.ts";
import { toBase64 } from "../../lib/bytes.ts";
import { testLogger } from "./_fakes.ts";

Deno.test("NodeBootstrap.begin() refuses sessions beyond the limits instead of evicting, reads the TPM once", async () => {
  const sw = await startSwtpm({ ekCert: true });
  const access = new TpmAccess(sw.spec);
  let tpmUses = 0;
  const counting = {
    with: <T>(fn: Parameters<TpmAccess["with"]>[0]) => {
      tpmUses++;
      return access.with(fn) as Promise<T>;
    },
  } as unknown as TpmAccess;
  try {
    const blank: DiskService = {
      inspect: () => Promise.resolve({ formatted: false, opened: false }),
    } as unknown as DiskService;
    const b = new NodeBootstrap({
      tpm: counting,
      disk: () => blank,
      logger: testLogger(),
      nodeName: "n",
    } as unknown as BootstrapDeps);
    const busy = (e: unknown) =>
      e instanceof BootstrapError && e.status === 503 && e.error === "busy";

    const first = await b.begin("init", "192.0.2.1");
    for (let i = 1; i < MAX_SESSIONS_PER_SOURCE; i++) await b.begin("verify", "192.0.2.1");
    await assert.rejects(b.begin("verify", "192.0.2.1"), busy, "per-source limit");
    assert.equal(tpmUses, 1, "the AK public and EK certificate are read once");
    // other sources fill the rest; beyond MAX_SESSIONS everyone is refused
    let n = MAX_SESSIONS_PER_SOURCE;
    for (let s = 2; n < MAX_SESSIONS; s++) {
      for (let i = 0; i < MAX_SESSIONS_PER_SOURCE && n < MAX_SESSIONS; i++, n++) {
        await b.begin("verify", `192.0.2.${s}`);
      }
    }
    await assert.rejects(b.begin("init", "198.51.100.9"), busy, "global limit");
    // the operator's first session was not evicted: it still attests
    const att = await b.attest({ session: first.session, nonce: toBase64(new Uint8Array(32)) });
    assert.ok(att.document);
    assert.equal(att.activationProof, undefined, "no credential sent, no proof");
  } finally {
    await access.with(() => Promise.resolve());
    await sw.stop();
  }
});
