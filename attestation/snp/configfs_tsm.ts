/**
 * The agent-side issuer: asks the Linux configfs-tsm interface
 * (`/sys/kernel/config/tsm/report/`, Documentation/ABI/testing/configfs-tsm) for an SEV-SNP
 * report over 64 bytes of REPORT_DATA, with the host's certificate table, and returns the
 * evidence section. File access goes through the small {@link TsmFs} interface so tests can
 * stand in for the kernel.
 *
 * Protocol: mkdir an entry; check `provider` is `sev_guest`; read `generation`; write
 * `privlevel` (optional) and `inblob`; read `outblob` and `auxblob`; read `generation` again
 * — it must have advanced by exactly the number of writes, or another writer raced us —
 * and always rmdir the entry.
 *
 * @module
 */
import { toHex } from "../../lib/bytes.ts";
import { ConfidantError, ParseError } from "../../lib/errors.ts";
import { certificatesFromTable, parseSnpCertTable } from "./cert_table.ts";
import { encodeSnpEvidence, type SnpEvidence, type SnpEvidenceBytes } from "./evidence.ts";
import { SNP_REPORT_SIZE } from "./report.ts";

/** The file operations the issuer needs. */
export interface TsmFs {
  mkdir(path: string): Promise<void>;
  rmdir(path: string): Promise<void>;
  readFile(path: string): Promise<Uint8Array>;
  writeFile(path: string, data: Uint8Array): Promise<void>;
  /** Whether `path` exists. */
  exists(path: string): Promise<boolean>;
}

/** {@link TsmFs} on the real file system. */
export const denoTsmFs: TsmFs = {
  mkdir: (p) => Deno.mkdir(p),
  rmdir: (p) => Deno.remove(p),
  readFile: (p) => Deno.readFile(p),
  writeFile: (p, d) => Deno.writeFile(p, d),
  exists: async (p) => {
    try {
      await Deno.lstat(p);
      return true;
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return false;
      throw e;
    }
  },
};

/** The default configfs-tsm report directory. */
export const TSM_REPORT_ROOT = "/sys/kernel/config/tsm/report";

/** Options of {@link issueSnpReport}. */
export interface IssueSnpOptions {
  /** Report directory; default {@link TSM_REPORT_ROOT}. */
  root?: string;
  fs?: TsmFs;
  /** VMPL to request the report at (configfs `privlevel`, 0..3). */
  privlevel?: number;
}

const td = new TextDecoder();
const te = new TextEncoder();

async function readGeneration(fs: TsmFs, dir: string): Promise<number> {
  const s = td.decode(await fs.readFile(`${dir}/generation`)).trim();
  if (!/^\d{1,15}$/.test(s)) {
    throw new ParseError(
      "tsm_generation",
      `configfs-tsm generation "${s.slice(0, 20)}" is not a number`,
    );
  }
  return Number(s);
}

/** Issue a report through configfs-tsm; returns the decoded evidence section. */
export async function issueSnpReport(
  reportData: Uint8Array,
  options: IssueSnpOptions = {},
): Promise<SnpEvidenceBytes> {
  if (reportData.length !== 64) {
    throw new ConfidantError(
      "snp.report_data",
      `REPORT_DATA must be 64 bytes, got ${reportData.length}`,
    );
  }
  const { privlevel } = options;
  if (privlevel !== undefined && (!Number.isInteger(privlevel) || privlevel < 0 || privlevel > 3)) {
    throw new ConfidantError("snp.privlevel", `privlevel must be 0..3, got ${privlevel}`);
  }
  const fs = options.fs ?? denoTsmFs;
  const root = options.root ?? TSM_REPORT_ROOT;
  const name = `confidant-${toHex(crypto.getRandomValues(new Uint8Array(8)))}`;
  const dir = `${root}/${name}`;
  try {
    await fs.mkdir(dir);
  } catch (e) {
    throw new ConfidantError(
      "snp.tsm_unavailable",
      `cannot create ${dir}: is configfs mounted and is this an SEV-SNP guest? (${
        (e as Error).message
      })`,
      { cause: e },
    );
  }
  try {
    const provider = td.decode(await fs.readFile(`${dir}/provider`)).trim();
    if (provider !== "sev_guest") {
      throw new ConfidantError(
        "snp.tsm_provider",
        `configfs-tsm provider is "${provider.slice(0, 40)}", not sev_guest`,
      );
    }
    const before = await readGeneration(fs, dir);
    let writes = 0;
    if (privlevel !== undefined) {
      await fs.writeFile(`${dir}/privlevel`, te.encode(String(privlevel)));
      writes++;
    }
    await fs.writeFile(`${dir}/inblob`, reportData);
    writes++;
    const report = await fs.readFile(`${dir}/outblob`);
    const aux = (await fs.exists(`${dir}/auxblob`))
      ? await fs.readFile(`${dir}/auxblob`)
      : new Uint8Array();
    const after = await readGeneration(fs, dir);
    if (after !== before + writes) {
      throw new ConfidantError(
        "snp.tsm_race",
        `configfs-tsm generation went from ${before} to ${after} for ${writes} writes: another process used the entry`,
      );
    }
    if (report.length !== SNP_REPORT_SIZE) {
      throw new ParseError(
        "snp_report",
        `configfs-tsm outblob has ${report.length} bytes, not ${SNP_REPORT_SIZE}`,
      );
    }
    return { report, ...certificatesFromTable(parseSnpCertTable(aux)) };
  } finally {
    await fs.rmdir(dir).catch(() => {});
  }
}

/** Issue a report and return the evidence section in its JSON form. */
export async function issueSnpEvidence(
  reportData: Uint8Array,
  options: IssueSnpOptions = {},
): Promise<SnpEvidence> {
  return encodeSnpEvidence(await issueSnpReport(reportData, options));
}
