/** Test helper: the real hardware SEV-SNP vectors in tests/testdata/snp (see its README). */
import { pemBlocks } from "../../../attestation/tee_common/mod.ts";
import type { SnpEvidenceBytes } from "../../../attestation/snp/evidence.ts";

const DIR = new URL("../../testdata/snp/", import.meta.url);

/** Bytes of a test-data file. */
export function testdata(name: string): Uint8Array {
  return Deno.readFileSync(new URL(name, DIR));
}

/** DER certificates of a PEM test-data file. */
export function pemFile(name: string): Uint8Array[] {
  return pemBlocks(new TextDecoder().decode(testdata(name)));
}

/** One real report with its chain and a time inside every certificate's validity. */
export interface Vector {
  name: string;
  report: string;
  signer: string;
  chain: string;
  vlek?: boolean;
  at: string;
  version: number;
  product: "Milan" | "Genoa" | "Turin";
  /** Report bytes after the 1184-byte report (Azure HCL copy). */
  trailing?: number;
}

/** Every real report that must verify. */
export const VECTORS: Vector[] = [
  {
    name: "go-sev-guest Milan v2",
    report: "gsg_milan_v2_report.bin",
    signer: "gsg_milan_vcek.der",
    chain: "ask_ark_milan.pem",
    at: "2024-01-01T00:00:00Z",
    version: 2,
    product: "Milan",
  },
  {
    name: "virtee Milan v2",
    report: "virtee_milan_v2_report.DERIVED.bin",
    signer: "virtee_milan_vcek.der",
    chain: "ask_ark_milan.pem",
    at: "2024-01-01T00:00:00Z",
    version: 2,
    product: "Milan",
  },
  {
    name: "trustee Milan v2",
    report: "trustee_milan_v2_report.bin",
    signer: "trustee_milan_vcek.der",
    chain: "ask_ark_milan.pem",
    at: "2024-01-01T00:00:00Z",
    version: 2,
    product: "Milan",
  },
  {
    name: "trustee AWS Milan v3 VLEK",
    report: "trustee_milan_v3_vlek_report.bin",
    signer: "trustee_milan_vlek.der",
    chain: "ask_ark_milan_vlek.pem",
    vlek: true,
    at: "2025-06-01T00:00:00Z",
    version: 3,
    product: "Milan",
  },
  {
    name: "trustee Genoa-line v3",
    report: "trustee_genoa_v3_report.DERIVED.bin",
    signer: "trustee_genoa_vcek.DERIVED.der",
    chain: "ask_ark_genoa.pem",
    at: "2026-01-01T00:00:00Z",
    version: 3,
    product: "Genoa",
  },
  {
    name: "trustee Azure Genoa v3",
    report: "trustee_azure_genoa_v3_report.DERIVED.bin",
    signer: "trustee_azure_genoa_vcek.DERIVED.der",
    chain: "ask_ark_genoa.pem",
    at: "2026-01-01T00:00:00Z",
    version: 3,
    product: "Genoa",
  },
  {
    name: "constellation Azure Milan v2 (1204-byte file)",
    report: "constellation_azure_milan_v2_report_1204.bin",
    signer: "constellation_azure_milan_vcek.der",
    chain: "ask_ark_milan.pem",
    at: "2024-01-01T00:00:00Z",
    version: 2,
    product: "Milan",
    trailing: 20,
  },
  {
    name: "constellation AWS Milan v3 VLEK",
    report: "constellation_aws_milan_v3_vlek_report.DERIVED.bin",
    signer: "constellation_aws_milan_vlek.pem",
    chain: "ask_ark_milan_vlek.pem",
    vlek: true,
    at: "2025-06-01T00:00:00Z",
    version: 3,
    product: "Milan",
  },
  {
    name: "teekit GCP Milan v5",
    report: "teekit_gcp_v5_report.bin",
    signer: "teekit_gcp_vcek.pem",
    chain: "teekit_gcp_cert_chain.pem",
    at: "2026-01-01T00:00:00Z",
    version: 5,
    product: "Milan",
  },
  {
    name: "teekit GCP Milan v5 report data",
    report: "teekit_gcp_v5_reportdata_report.bin",
    signer: "teekit_gcp_vcek.pem",
    chain: "teekit_gcp_cert_chain.pem",
    at: "2026-01-01T00:00:00Z",
    version: 5,
    product: "Milan",
  },
  {
    name: "teekit GCP Milan v5 x25519-bound",
    report: "teekit_gcp_v5_x25519_report.bin",
    signer: "teekit_gcp_x25519_vcek.pem",
    chain: "ask_ark_milan.pem",
    at: "2026-01-01T00:00:00Z",
    version: 5,
    product: "Milan",
  },
];

/** A certificate file as DER (PEM files: the first certificate). */
export function certFile(name: string): Uint8Array {
  return name.endsWith(".pem") ? pemFile(name)[0] : testdata(name);
}

/** The decoded evidence of a vector. */
export function evidenceOf(v: Vector): SnpEvidenceBytes {
  const [inter, ark] = pemFile(v.chain);
  const report = testdata(v.report).slice(0, 1184);
  return v.vlek
    ? { report, vlek: certFile(v.signer), asvk: inter, ark }
    : { report, vcek: certFile(v.signer), ask: inter, ark };
}
