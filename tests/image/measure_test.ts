import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { ParseError } from "../../lib/errors.ts";
import { ALG_SHA256, EventType, parseEventLog } from "../../image/event_log.ts";
import { CALLING_EFI_APPLICATION, extendSha256, replay } from "../../image/measure.ts";

const sha = (b: Uint8Array | string) => new Uint8Array(createHash("sha256").update(b).digest());
const u32 = (n: number) => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n, true);
  return b;
};
const cat = (...p: Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(p.reduce((n, x) => n + x.length, 0));
  let o = 0;
  for (const x of p) (out.set(x, o), o += x.length);
  return out;
};

/** A crypto-agile log with a SHA-256 bank and the given (pcr, type, digest, data) events. */
function makeLog(events: [number, number, Uint8Array, Uint8Array][]): Uint8Array {
  type B = Uint8Array;
  const spec = cat(
    new TextEncoder().encode("Spec ID Event03\0"),
    u32(0), // platform class
    new Uint8Array([0, 2, 0, 2]), // minor, major, errata, uintn size
    u32(1),
    new Uint8Array([0x0b, 0x00, 32, 0]), // sha256, 32 bytes
    new Uint8Array([0]), // vendor info size
  );
  const parts: B[] = [
    u32(0),
    u32(EventType.EV_NO_ACTION),
    new Uint8Array(20),
    u32(spec.length),
    spec,
  ];
  for (const [pcr, type, digest, data] of events) {
    parts.push(
      u32(pcr),
      u32(type),
      u32(1),
      new Uint8Array([0x0b, 0]),
      digest,
      u32(data.length),
      data,
    );
  }
  return cat(...parts);
}

Deno.test("extendSha256() and replay() follow TPM2_PCR_Extend", async () => {
  const d1 = sha("a");
  const d2 = sha("b");
  const want = sha(cat(sha(cat(new Uint8Array(32), d1)), d2));
  assert.deepEqual(
    await replay([
      { pcr: 4, digest: d1, description: "" },
      { pcr: 4, digest: d2, description: "" },
    ]),
    want,
  );
  await assert.rejects(extendSha256(new Uint8Array(20), d1));
});

Deno.test("parseEventLog() reads events and their SHA-256 digests", () => {
  const action = new TextEncoder().encode(CALLING_EFI_APPLICATION);
  const log = makeLog([
    [4, EventType.EV_EFI_ACTION, sha(action), action],
    [4, EventType.EV_SEPARATOR, sha(new Uint8Array(4)), new Uint8Array(4)],
  ]);
  const ev = parseEventLog(cat(log, new Uint8Array(16)));
  assert.equal(ev.length, 2);
  assert.equal(ev[0].pcr, 4);
  assert.equal(ev[0].type, EventType.EV_EFI_ACTION);
  assert.deepEqual(ev[0].digests.get(ALG_SHA256), sha(action));
  assert.deepEqual(ev[1].data, new Uint8Array(4));
});

Deno.test("parseEventLog() refuses truncated or corrupt logs with a ParseError", () => {
  const log = makeLog([[4, EventType.EV_SEPARATOR, sha("x"), new Uint8Array(4)]]);
  for (let n = 0; n < log.length; n++) {
    try {
      parseEventLog(log.subarray(0, n));
    } catch (e) {
      assert.ok(e instanceof ParseError, `length ${n}: ${e}`);
    }
  }
  assert.throws(() => parseEventLog(log.subarray(0, log.length - 1)), ParseError);
  for (let i = 0; i < 3000; i++) {
    const b = log.slice();
    b[Math.floor(Math.random() * b.length)] = Math.floor(Math.random() * 256);
    try {
      parseEventLog(b);
    } catch (e) {
      assert.ok(e instanceof ParseError, `${e}`);
    }
  }
});
