/**
 * The configfs-tsm issuer against a temporary directory laid out like
 * /sys/kernel/config/tsm/report. A plain directory cannot produce `outblob` when `inblob` is
 * written, so {@link FakeKernel} stands in for the kernel interface: it wraps the real file
 * operations on the temp dir and, like the kernel, creates the attribute files on mkdir,
 * bumps `generation` on every attribute write and fills `outblob`/`auxblob` with a report
 * signed (by a test VCEK) over the REPORT_DATA just written.
 */
import assert from "node:assert/strict";
import { ConfidantError } from "../../../lib/errors.ts";
import {
  buildSnpCertTable,
  denoTsmFs,
  issueSnpEvidence,
  issueSnpReport,
  SnpCertGuid,
  type TsmFs,
  verifySnpEvidence,
} from "../../../attestation/snp/mod.ts";
import { type FakeChain, makeFakeChain, makeSignedReport } from "./_fake_amd.ts";

const te = new TextEncoder();
const td = new TextDecoder();

class FakeKernel implements TsmFs {
  writes: string[] = [];
  constructor(
    private chain: FakeChain,
    private chipId: Uint8Array,
    private opts: { provider?: string; racer?: boolean; withAux?: boolean } = {},
  ) {}
  async mkdir(p: string) {
    await denoTsmFs.mkdir(p);
    await Deno.writeTextFile(`${p}/provider`, `${this.opts.provider ?? "sev_guest"}\n`);
    await Deno.writeTextFile(`${p}/generation`, "0\n");
  }
  async rmdir(p: string) {
    await Deno.remove(p, { recursive: true });
  }
  readFile(p: string) {
    return denoTsmFs.readFile(p);
  }
  exists(p: string) {
    return denoTsmFs.exists(p);
  }
  async writeFile(p: string, data: Uint8Array) {
    const dir = p.slice(0, p.lastIndexOf("/"));
    const attr = p.slice(p.lastIndexOf("/") + 1);
    this.writes.push(attr);
    await denoTsmFs.writeFile(p, data);
    const gen = Number(td.decode(await Deno.readFile(`${dir}/generation`)).trim());
    await Deno.writeTextFile(`${dir}/generation`, `${gen + 1 + (this.opts.racer ? 1 : 0)}\n`);
    if (attr === "inblob") {
      let vmpl = 0;
      try {
        vmpl = Number(td.decode(await Deno.readFile(`${dir}/privlevel`)));
      } catch { /* not written */ }
      const report = await makeSignedReport(
        {
          tcb: new Uint8Array([1, 2, 0, 0, 0, 0, 3, 4]),
          chipId: this.chipId,
          reportData: data,
          vmpl,
          cpuid: [0x19, 1, 1],
        },
        this.chain.vcekKeys.privateKey,
      );
      await Deno.writeFile(`${dir}/outblob`, report);
      if (this.opts.withAux !== false) {
        await Deno.writeFile(
          `${dir}/auxblob`,
          buildSnpCertTable([
            { guid: SnpCertGuid.vcek, data: this.chain.vcek },
            { guid: SnpCertGuid.ask, data: this.chain.ask },
            { guid: SnpCertGuid.ark, data: this.chain.ark },
          ]),
        );
      }
    }
  }
}

async function setup(opts?: ConstructorParameters<typeof FakeKernel>[2]) {
  const chipId = crypto.getRandomValues(new Uint8Array(64));
  const chain = await makeFakeChain(
    "Milan",
    { bootloader: 1, tee: 2, snp: 3, microcode: 4 },
    chipId,
  );
  const root = await Deno.makeTempDir({ prefix: "confidant-tsm-" });
  return { chain, root, kernel: new FakeKernel(chain, chipId, opts) };
}

Deno.test("issueSnpEvidence() gets a report and certificates that verify end to end", async () => {
  const { chain, root, kernel } = await setup();
  try {
    const reportData = crypto.getRandomValues(new Uint8Array(64));
    const ev = await issueSnpEvidence(reportData, { root, fs: kernel, privlevel: 2 });
    assert.deepEqual(kernel.writes, ["privlevel", "inblob"]);
    const r = await verifySnpEvidence(ev, undefined, {
      now: new Date("2025-01-01T00:00:00Z"),
      expectedReportData: reportData,
      roots: [chain.pin],
    });
    assert.deepEqual(r.failures, []);
    assert.equal(r.report.vmpl, 2);
    assert.deepEqual([...Deno.readDirSync(root)], [], "the entry is removed");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("issueSnpReport() detects a concurrent writer through generation", async () => {
  const { root, kernel } = await setup({ racer: true });
  try {
    await assert.rejects(
      issueSnpReport(new Uint8Array(64), { root, fs: kernel }),
      (e: unknown) => e instanceof ConfidantError && e.code === "snp.tsm_race",
    );
    assert.deepEqual([...Deno.readDirSync(root)], []);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("issueSnpReport() refuses another provider, bad inputs and a missing configfs", async () => {
  const { root, kernel } = await setup({ provider: "tdx_guest" });
  try {
    await assert.rejects(
      issueSnpReport(new Uint8Array(64), { root, fs: kernel }),
      (e: unknown) => e instanceof ConfidantError && e.code === "snp.tsm_provider",
    );
    await assert.rejects(issueSnpReport(new Uint8Array(63), { root, fs: kernel }), /64 bytes/);
    await assert.rejects(
      issueSnpReport(new Uint8Array(64), { root, fs: kernel, privlevel: 4 }),
      /privlevel/,
    );
    await assert.rejects(
      issueSnpReport(new Uint8Array(64), { root: `${root}/absent` }),
      (e: unknown) => e instanceof ConfidantError && e.code === "snp.tsm_unavailable",
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("issueSnpReport() without an auxblob returns the report alone", async () => {
  const { root, kernel } = await setup({ withAux: false });
  try {
    const ev = await issueSnpReport(te.encode("x".repeat(64)), { root, fs: kernel });
    assert.equal(ev.report.length, 1184);
    assert.equal(ev.vcek, undefined);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
