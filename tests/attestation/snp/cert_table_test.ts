import assert from "node:assert/strict";
import { ParseError } from "../../../lib/errors.ts";
import {
  buildSnpCertTable,
  certificatesFromTable,
  parseSnpCertTable,
  SnpCertGuid,
} from "../../../attestation/snp/mod.ts";

const a = new Uint8Array([0x30, 1, 2]);
const b = new Uint8Array([0x30, 3, 4, 5]);

Deno.test("parseSnpCertTable() reads back what buildSnpCertTable() wrote", () => {
  const t = buildSnpCertTable([{ guid: SnpCertGuid.vcek, data: a }, {
    guid: SnpCertGuid.ark,
    data: b,
  }]);
  assert.equal(t.length, 3 * 24 + a.length + b.length);
  const e = parseSnpCertTable(t);
  assert.deepEqual(e.map((x) => x.guid), [SnpCertGuid.vcek, SnpCertGuid.ark]);
  assert.deepEqual(certificatesFromTable(e), { vcek: a, ark: b });
});

Deno.test("parseSnpCertTable() stores GUIDs in RFC 4122 byte order", () => {
  const t = buildSnpCertTable([{ guid: SnpCertGuid.vcek, data: a }]);
  assert.deepEqual([...t.subarray(0, 4)], [0x63, 0xda, 0x75, 0x8d]);
});

Deno.test("parseSnpCertTable() accepts an empty buffer and ignores unknown GUIDs", () => {
  assert.deepEqual(parseSnpCertTable(new Uint8Array()), []);
  const t = buildSnpCertTable([{ guid: "11111111-2222-3333-4444-555555555555", data: a }]);
  assert.deepEqual(certificatesFromTable(parseSnpCertTable(t)), {});
});

Deno.test("parseSnpCertTable() refuses malformed tables", async (t) => {
  const good = buildSnpCertTable([{ guid: SnpCertGuid.vcek, data: a }]);
  const dv = (x: Uint8Array) => new DataView(x.buffer, x.byteOffset);
  await t.step("no terminator", () => {
    assert.throws(() => parseSnpCertTable(good.subarray(0, 30)), ParseError);
  });
  await t.step("an entry overrunning the buffer", () => {
    const x = good.slice();
    dv(x).setUint32(20, 0xffffffff, true);
    assert.throws(() => parseSnpCertTable(x), ParseError);
    dv(x).setUint32(16, 0xfffffff0, true);
    dv(x).setUint32(20, 0x20, true);
    assert.throws(() => parseSnpCertTable(x), ParseError);
  });
  await t.step("an entry pointing into the header", () => {
    const x = good.slice();
    dv(x).setUint32(16, 4, true);
    assert.throws(() => parseSnpCertTable(x), ParseError);
  });
  await t.step("a duplicate GUID", () => {
    const x = buildSnpCertTable([{ guid: SnpCertGuid.ask, data: a }, {
      guid: SnpCertGuid.ark,
      data: b,
    }]);
    x.set(x.subarray(0, 16), 24);
    assert.throws(() => parseSnpCertTable(x), ParseError);
  });
  await t.step("an empty certificate", () => {
    const x = buildSnpCertTable([{ guid: SnpCertGuid.vcek, data: new Uint8Array() }]);
    assert.throws(() => certificatesFromTable(parseSnpCertTable(x)), ParseError);
  });
});
