import assert from "node:assert/strict";
import { fromHex, toHex } from "../../../lib/bytes.ts";
import { ParseError } from "../../../lib/errors.ts";
import {
  buildCommand,
  commands,
  decodeRc,
  FakeTransport,
  passwordSession,
  Tpm,
  TPM_ALG,
  TpmError,
} from "../../../attestation/tpm/mod.ts";

Deno.test("buildCommand() pins TPM2_GetRandom and TPM2_Quote bytes", () => {
  assert.equal(
    toHex(buildCommand(commands.GetRandom, [], { bytesRequested: 16 })),
    "80010000000c0000017b0010",
  );
  const q = buildCommand(commands.Quote, [0x80000001], {
    qualifyingData: fromHex("abcd"),
    inScheme: { scheme: TPM_ALG.NULL },
    PCRselect: [{ hash: TPM_ALG.SHA256, pcrs: [0, 7] }],
  }, [passwordSession()]);
  assert.equal(
    toHex(q),
    "8002" + "0000002b" + "00000158" + "80000001" + "00000009" + "40000009" + "0000" + "01" +
      "0000" + "0002abcd" + "0010" + "00000001000b03810000",
  );
});

Deno.test("buildCommand() puts FlushContext's handle in the parameter area", () => {
  assert.equal(
    toHex(buildCommand(commands.FlushContext, [], { flushHandle: 0x80000002 })),
    "80010000000e0000016580000002",
  );
  assert.throws(() => buildCommand(commands.Quote, [1], {} as never), ParseError);
});

Deno.test("decodeRc() names format-0, format-1 and warning codes", () => {
  assert.equal(decodeRc(0x907).name, "TPM_RC_LOCALITY");
  assert.equal(decodeRc(0x907).warning, true);
  assert.equal(decodeRc(0x922).name, "TPM_RC_RETRY");
  assert.equal(decodeRc(0x902).name, "TPM_RC_OBJECT_MEMORY");
  assert.equal(decodeRc(0x101).name, "TPM_RC_FAILURE");
  assert.deepEqual(decodeRc(0x1c4), {
    rc: 0x1c4,
    name: "TPM_RC_VALUE",
    warning: false,
    subject: { kind: "parameter", index: 1 },
  });
  assert.deepEqual(decodeRc(0x98e).subject, { kind: "session", index: 1 });
  assert.equal(decodeRc(0x98e).name, "TPM_RC_AUTH_FAIL");
  assert.deepEqual(decodeRc(0x28b).subject, { kind: "handle", index: 2 });
  assert.equal(decodeRc(0x910).name, "TPM_RC_REFERENCE_H0");
});

function rsp(hex: string): Uint8Array {
  return fromHex(hex);
}

Deno.test("the client turns malformed TPM responses into clear errors", async (t) => {
  const cases: [string, string, RegExp | typeof TpmError][] = [
    ["truncated header", "8001000000", /shorter than the 10-byte header/],
    ["size field lies (too big)", "8001000000140000000000020102", /size field says 20 but 14/],
    ["size field lies (too small)", "80010000000c0000000000020102", /size field says 12 but 14/],
    ["wrong tag", "c1c40000000e0000000000020102", /unexpected tag 0xc1c4/],
    [
      "sessions tag without sessions",
      "80020000000e0000000000020102",
      /tag 0x8002, expected 0x8001/,
    ],
    ["TPM2B longer than the body", "80010000000e0000000000050102", /truncated/],
    ["trailing bytes", "80010000000f000000000002010200", /trailing/],
    ["error code with a body", "80010000000e0000090700000000", /extra bytes/],
    ["TPM_RC_LOCALITY", "80010000000a00000907", TpmError],
  ];
  for (const [name, hex, want] of cases) {
    await t.step(name, async () => {
      const tpm = new Tpm(new FakeTransport([{ response: rsp(hex) }]));
      const err = await tpm.getRandom(2).catch((e) => e);
      if (want === TpmError) {
        assert.ok(err instanceof TpmError);
        assert.equal(err.rcName, "TPM_RC_LOCALITY");
        assert.match(err.message, /TPM2_GetRandom failed: TPM_RC_LOCALITY/);
      } else {
        assert.ok(err instanceof ParseError, String(err));
        assert.equal(err.code, "parse.tpm.response");
        assert.match(err.message, want as RegExp);
      }
    });
  }
});

Deno.test("Tpm.getRandom() resends after TPM_RC_RETRY and loops for short answers", async () => {
  const fake = new FakeTransport([
    { response: rsp("80010000000a00000922") },
    { command: fromHex("80010000000c0000017b0003"), response: rsp("80010000000e000000000002aabb") },
    {
      command: fromHex("80010000000c0000017b0001"),
      response: rsp("80010000000d000000000001cc"),
    },
  ]);
  const tpm = new Tpm(fake);
  assert.equal(toHex(await tpm.getRandom(3)), "aabbcc");
  assert.equal(fake.pending, 0);
});

Deno.test("Tpm.pcrRead() loops over responses limited to 8 digests", async () => {
  // First answer: PCRs 0..7 of sha256; second: PCRs 8..9.
  const digest = (b: number) => "0020" + b.toString(16).padStart(2, "0").repeat(32);
  const first = "00000005" + "00000001000b03ff0000" + "00000008" +
    Array.from({ length: 8 }, (_, i) => digest(i)).join("");
  const second = "00000005" + "00000001000b03000300" + "00000002" + digest(8) + digest(9);
  const wrap = (body: string) => {
    const n = 10 + body.length / 2;
    return rsp("8001" + n.toString(16).padStart(8, "0") + "00000000" + body);
  };
  const fake = new FakeTransport([{ response: wrap(first) }, { response: wrap(second) }]);
  const vals = await new Tpm(fake).pcrRead([{
    hash: TPM_ALG.SHA256,
    pcrs: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
  }]);
  assert.equal(vals.get(TPM_ALG.SHA256)!.size, 10);
  assert.equal(toHex(vals.get(TPM_ALG.SHA256)!.get(9)!), "09".repeat(32));
  // The second request asked only for what was missing (PCRs 8 and 9).
  assert.equal(toHex(fake.sent[1].subarray(10)), "00000001000b03000300");
});
