/**
 * Test helper: a fake configfs-tsm kernel over a temporary directory, in the manner of the
 * vendor tests (tests/attestation/snp/configfs_tsm_test.ts, tests/attestation/tdx/). mkdir of
 * an entry creates `provider` and `generation`; writing `inblob` bumps `generation` and fills
 * `outblob` (and for SEV-SNP `auxblob`) with a report or quote signed by the fake PKIs over
 * the REPORT_DATA just written.
 */
import { toHex } from "../../lib/bytes.ts";
import {
  buildSnpCertTable,
  denoTsmFs,
  SnpCertGuid,
  type TsmFs,
} from "../../attestation/snp/mod.ts";
import { makeSignedReport } from "./snp/_fake_amd.ts";
import { type FakePki, makeFakeQuote } from "./tdx/_fake_tdx.ts";
import { type FakeSnpPlatform, SNP_TCB } from "./_tee_fixtures.ts";

/** What the fake kernel stands for. */
export type FakeProvider =
  | { kind: "sev_guest"; platform: FakeSnpPlatform; auxblob?: boolean }
  | { kind: "tdx_guest"; pki: FakePki }
  /** An entry whose `provider` cannot be read (the kernel's ENXIO without a TEE driver). */
  | { kind: "none" }
  /** Some other provider name. */
  | { kind: "other"; name: string };

/** A fake kernel: its file operations and what it saw. */
export interface FakeTsm {
  fs: TsmFs;
  /** Entries created, in order. */
  created: string[];
  /** REPORT_DATA values written to `inblob`. */
  inblobs: Uint8Array[];
}

/** A fake configfs-tsm for `provider`; `refuseMkdir` makes every mkdir fail like EPERM. */
export function fakeTsm(provider: FakeProvider, refuseMkdir = false): FakeTsm {
  const k: FakeTsm = { fs: denoTsmFs, created: [], inblobs: [] };
  k.fs = {
    async mkdir(p) {
      if (refuseMkdir) throw new Deno.errors.PermissionDenied(`mkdir ${p}: permission denied`);
      await Deno.mkdir(p);
      k.created.push(p);
      if (provider.kind !== "none") {
        const name = provider.kind === "other" ? provider.name : provider.kind;
        await Deno.writeTextFile(`${p}/provider`, `${name}\n`);
      }
      await Deno.writeTextFile(`${p}/generation`, "0\n");
    },
    rmdir: (p) => Deno.remove(p, { recursive: true }),
    readFile: (p) => Deno.readFile(p),
    exists: (p) => denoTsmFs.exists(p),
    async writeFile(p, data) {
      await Deno.writeFile(p, data);
      const dir = p.slice(0, p.lastIndexOf("/"));
      const gen = Number((await Deno.readTextFile(`${dir}/generation`)).trim());
      await Deno.writeTextFile(`${dir}/generation`, `${gen + 1}\n`);
      if (!p.endsWith("/inblob")) return;
      k.inblobs.push(data.slice());
      if (provider.kind === "sev_guest") {
        const { platform } = provider;
        const report = await makeSignedReport(
          { tcb: SNP_TCB, chipId: platform.chipId, reportData: data, cpuid: [0x19, 1, 1] },
          platform.chain.vcekKeys.privateKey,
        );
        await Deno.writeFile(`${dir}/outblob`, report);
        if (provider.auxblob !== false) {
          await Deno.writeFile(
            `${dir}/auxblob`,
            buildSnpCertTable([
              { guid: SnpCertGuid.vcek, data: platform.chain.vcek },
              { guid: SnpCertGuid.ask, data: platform.chain.ask },
              { guid: SnpCertGuid.ark, data: platform.chain.ark },
            ]),
          );
        }
      } else if (provider.kind === "tdx_guest") {
        await Deno.writeFile(
          `${dir}/outblob`,
          await makeFakeQuote(provider.pki, { reportData: toHex(data) }),
        );
      }
    },
  };
  return k;
}

/** Run `fn` with a fresh temporary report directory, removed afterwards. */
export async function withTsmRoot(fn: (root: string) => Promise<void>): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "confidant-tsm-" });
  try {
    await fn(root);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}
