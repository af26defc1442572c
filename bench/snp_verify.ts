/**
 * SEV-SNP report verification rate on a real Milan report (tests/testdata/snp/: the
 * go-sev-guest vector, VCEK + ASK/ARK chain) against `openssl speed` ECDSA P-384 verify/s:
 *
 * - `verifySnpReport` as it is: it re-checks the whole chain (ARK self-signature, ASK and
 *   VCEK, three RSA-4096 PSS signatures) and the report's P-384 signature (Web Crypto) on
 *   every call — there is no chain cache in attestation/snp/;
 * - the chain checked once and cached: what is left per report is parsing it and one P-384
 *   verification with the VCEK's key (here through lib/crypto `verifyEcdsa`, libcrypto).
 *
 * @module
 */
import { parseSnpReport, SNP_SIGNED_LENGTH, verifySnpReport } from "../attestation/snp/mod.ts";
import { pemBlocks } from "../attestation/tee_common/mod.ts";
import * as x509 from "../lib/x509.ts";
import { fromBase64Url } from "../lib/bytes.ts";
import { verifyEcdsa } from "../lib/crypto/mod.ts";
import { type BenchContext, type BenchResult, measured, measureRate } from "./_frame.ts";
import { BASELINE_IDS } from "./openssl_speed.ts";

/** Module name. */
export const name = "snp_verify";
/** After the ECDSA engines. */
export const order = 30;

const DIR = new URL("../tests/testdata/snp/", import.meta.url);

/** Measure both rates. */
export async function run(ctx: BenchContext): Promise<BenchResult[]> {
  const report = Deno.readFileSync(new URL("gsg_milan_v2_report.bin", DIR)).slice(0, 1184);
  const vcek = Deno.readFileSync(new URL("gsg_milan_vcek.der", DIR));
  const [ask, ark] = pemBlocks(
    new TextDecoder().decode(Deno.readFileSync(new URL("ask_ark_milan.pem", DIR))),
  );
  const now = new Date("2024-01-01T00:00:00Z");
  const input = { report, vcek, ask, ark };
  const first = await verifySnpReport(input, undefined, { now });
  if (!first.ok) {
    throw new Error(`the SNP vector does not verify: ${JSON.stringify(first.failures)}`);
  }
  const baseline = ctx.baseline(BASELINE_IDS["P-384"]);
  const seconds = ctx.seconds(3, 1);
  const results: BenchResult[] = [];

  ctx.log(`verifySnpReport (chain every time): ${seconds} s`);
  const full = await measureRate(() => verifySnpReport(input, undefined, { now }), {
    seconds,
    concurrency: 4,
  });
  results.push(measured({
    id: "snp.verify.full_chain",
    label: "SEV-SNP verifySnpReport, chain re-checked per report",
    value: full.perCpuSecond,
    unit: "report/CPU-s",
    baseline,
    details: { perWallSecond: Math.round(full.perWallSecond), ops: full.ops },
  }));

  // Chain checked once: keep the VCEK's public point, then parse + one P-384 check per report.
  const jwk = await crypto.subtle.exportKey(
    "jwk",
    await new x509.X509Certificate(vcek).publicKey.export({ name: "ECDSA", namedCurve: "P-384" }, [
      "verify",
    ]),
  );
  const point = { x: fromBase64Url(jwk.x!), y: fromBase64Url(jwk.y!) };
  const cachedCheck = () => {
    const r = parseSnpReport(report);
    const ok = verifyEcdsa({
      curve: "P-384",
      hash: "SHA-384",
      publicKey: point,
      r: r.signatureR,
      s: r.signatureS,
      message: report.subarray(0, SNP_SIGNED_LENGTH),
    });
    if (!ok) throw new Error("the cached-chain check refused the report");
  };
  cachedCheck();
  ctx.log(`cached chain + libcrypto P-384: ${seconds} s`);
  const cached = await measureRate(cachedCheck, { seconds });
  results.push(measured({
    id: "snp.verify.cached_chain",
    label: "SEV-SNP report check, chain cached (parse + libcrypto P-384)",
    value: cached.perCpuSecond,
    unit: "report/CPU-s",
    baseline,
    target: { description: "≥ 0.5 × openssl P-384 verify/s", of: "ratio", op: ">=", value: 0.5 },
    details: {
      perWallSecond: Math.round(cached.perWallSecond),
      ops: cached.ops,
      note: "not in attestation/snp yet: what a chain cache there would give",
    },
  }));
  return results;
}
