import assert from "node:assert/strict";
import { fromHex, toHex } from "../../../../lib/bytes.ts";
import { SwtpmTransport, TpmTransportError } from "../../../../attestation/tpm/mod.ts";

/** A TCP server answering each connection with `reply(command)` (split into small writes). */
function server(reply: (cmd: Uint8Array) => Uint8Array | null) {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const done = (async () => {
    for await (const c of l) {
      (async () => {
        const buf = new Uint8Array(4096);
        const n = await c.read(buf);
        const out = reply(buf.subarray(0, n ?? 0));
        if (out) { for (let i = 0; i < out.length; i += 3) await c.write(out.subarray(i, i + 3)); }
        c.close();
      })().catch(() => {});
    }
  })().catch(() => {});
  return {
    port: (l.addr as Deno.NetAddr).port,
    close: async () => {
      l.close();
      await done;
    },
  };
}

Deno.test("SwtpmTransport reassembles a response split across reads", async () => {
  const s = server(() => fromHex("80010000000e000000000002aabb"));
  const t = new SwtpmTransport("127.0.0.1", s.port);
  try {
    assert.equal(
      toHex(await t.send(fromHex("80010000000c0000017b0002"))),
      "80010000000e000000000002aabb",
    );
  } finally {
    await t.close();
    await s.close();
  }
});

Deno.test("SwtpmTransport refuses oversized and cut-off responses", async () => {
  const big = server(() => fromHex("8001" + "00100000" + "00000000"));
  const cut = server(() => fromHex("80010000000e0000"));
  const t1 = new SwtpmTransport("127.0.0.1", big.port);
  const t2 = new SwtpmTransport("127.0.0.1", cut.port);
  try {
    await assert.rejects(
      t1.send(fromHex("00")),
      (e) => e instanceof TpmTransportError && /exceeds/.test(e.message),
    );
    await assert.rejects(
      t2.send(fromHex("00")),
      (e) => e instanceof TpmTransportError && /closed the connection/.test(e.message),
    );
  } finally {
    await t1.close();
    await t2.close();
    await big.close();
    await cut.close();
  }
});

Deno.test("SwtpmTransport times out when the TPM never answers", async () => {
  const s = server(() => null);
  const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  const acc = (async () => {
    for await (const c of silent) conns.push(c);
  })().catch(() => {});
  const t = new SwtpmTransport("127.0.0.1", (silent.addr as Deno.NetAddr).port, { timeoutMs: 200 });
  try {
    await assert.rejects(
      t.send(fromHex("00")),
      (e) => e instanceof TpmTransportError && e.code === "tpm.timeout",
    );
  } finally {
    await t.close();
    silent.close();
    for (const c of conns) c.close();
    await acc;
    await s.close();
  }
});
