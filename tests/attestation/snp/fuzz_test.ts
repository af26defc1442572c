import assert from "node:assert/strict";
import { ParseError } from "../../../lib/errors.ts";
import { toBase64 } from "../../../lib/bytes.ts";
import {
  buildSnpCertTable,
  certificatesFromTable,
  decodeSnpEvidence,
  parseSnpCertTable,
  parseSnpReport,
  SnpCertGuid,
  verifySnpReport,
} from "../../../attestation/snp/mod.ts";
import { parseCertificate, parseCrl } from "../../../attestation/tee_common/mod.ts";
import { readAmdKeyExtensions } from "../../../attestation/snp/vcek_extensions.ts";
import { evidenceOf, VECTORS } from "./_vectors.ts";

/** Deterministic xorshift32 so a failure can be replayed. */
function rng(seed: number) {
  let s = seed >>> 0 || 1;
  const next = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
  return {
    int: (n: number) => next() % n,
    bytes: (n: number) => Uint8Array.from({ length: n }, () => next() & 0xff),
  };
}

/** Run `f`; only ParseError may escape. */
function mustNotCrash(what: string, i: number, f: () => unknown) {
  try {
    f();
  } catch (e) {
    if (!(e instanceof ParseError)) {
      throw new Error(`${what} input #${i} crashed: ${(e as Error).stack}`);
    }
  }
}

function mutate(r: ReturnType<typeof rng>, base: Uint8Array): Uint8Array {
  const b = base.slice();
  const n = 1 + r.int(4);
  for (let k = 0; k < n; k++) {
    switch (r.int(4)) {
      case 0:
        b[r.int(b.length)] ^= 1 << r.int(8);
        break;
      case 1:
        b[r.int(b.length)] = r.int(256);
        break;
      case 2: // a length-ish byte set to an extreme
        b[r.int(b.length)] = [0x00, 0x7f, 0x80, 0x81, 0x84, 0xff][r.int(6)];
        break;
      default:
        return b.subarray(0, r.int(b.length + 1));
    }
  }
  return b;
}

Deno.test("SEV-SNP parsers survive 100,000+ hostile inputs without crashing", () => {
  const r = rng(0x5eed5);
  const ev = evidenceOf(VECTORS[3]);
  const ev2 = evidenceOf(VECTORS[0]);
  const certs = [ev.vlek!, ev.asvk!, ev.ark!, ev2.vcek!, ev2.ask!];
  const table = buildSnpCertTable([
    { guid: SnpCertGuid.vcek, data: ev2.vcek! },
    { guid: SnpCertGuid.ask, data: ev2.ask! },
    { guid: SnpCertGuid.ark, data: ev2.ark! },
  ]);
  let count = 0;
  // Report parser: random bytes of random and exact length.
  for (let i = 0; i < 20_000; i++, count++) {
    const len = r.int(3) === 0 ? r.int(2000) : 1184;
    mustNotCrash("report", i, () => parseSnpReport(r.bytes(len)));
  }
  // Certificate table: random buffers and mutated valid tables.
  for (let i = 0; i < 30_000; i++, count++) {
    const input = i % 3 === 0 ? r.bytes(r.int(200)) : mutate(r, table);
    mustNotCrash("cert table", i, () => certificatesFromTable(parseSnpCertTable(input)));
  }
  // Certificates and AMD extensions: mutated real DER.
  for (let i = 0; i < 30_000; i++, count++) {
    const input = mutate(r, certs[i % certs.length]);
    mustNotCrash(
      "certificate",
      i,
      () => readAmdKeyExtensions(parseCertificate(input, "vcek").extensions),
    );
    if (i % 10 === 0) mustNotCrash("crl", i, () => parseCrl(input));
  }
  // Evidence schema: random JSON-ish values and mutated valid documents.
  const good = {
    report: toBase64(ev2.report),
    certificates: { vcek: toBase64(ev2.vcek!), ask: toBase64(ev2.ask!), ark: toBase64(ev2.ark!) },
  };
  const junk = [null, 0, -1, "", "AAAA", [], {}, true, "x".repeat(5000), { report: 1 }];
  for (let i = 0; i < 25_000; i++, count++) {
    let doc: unknown;
    switch (i % 4) {
      case 0:
        doc = junk[r.int(junk.length)];
        break;
      case 1:
        doc = { ...good, report: good.report.slice(0, r.int(good.report.length + 1)) };
        break;
      case 2:
        doc = {
          ...good,
          certificates: {
            ...good.certificates,
            [["vcek", "ask", "ark", "x"][r.int(4)]]: junk[r.int(junk.length)],
          },
        };
        break;
      default:
        doc = { ...good, crl: toBase64(r.bytes(r.int(64))) + (r.int(2) ? "=" : "") };
    }
    mustNotCrash("evidence", i, () => decodeSnpEvidence(doc));
  }
  assert.ok(count >= 100_000, `${count} inputs`);
});

Deno.test("verifySnpReport() on mutated reports and certificates names failures and never crashes", async () => {
  const r = rng(0xc0ffee);
  const v = VECTORS[2];
  const base = evidenceOf(v);
  for (let i = 0; i < 150; i++) {
    const ev = { ...base };
    const which = (["report", "vcek", "ask", "ark"] as const)[i % 4];
    if (which === "report") ev.report = mutate(r, base.report).slice(0, 1184);
    else ev[which] = mutate(r, base[which]!);
    if (ev.report.length !== 1184) continue; // a short report is a ParseError by contract
    const out = await verifySnpReport(ev, undefined, { now: new Date(v.at) });
    assert.equal(out.ok, out.failures.length === 0);
    for (const f of out.failures) assert.match(f.check, /^[a-z_]+(\.[a-z_]+)?$/);
  }
});
