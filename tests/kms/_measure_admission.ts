/**
 * Measurement script, not a test: the KMS's cost of one admission, per stage, with
 * performance.now(). A swtpm node (EK certificate from swtpm's local CA) is admitted through
 * the in-process app under an EK-CA policy, as `tpm` and as `sev-snp` (fake configfs-tsm and
 * fake AMD chain); the KMS's two attestation stages are wrapped to time them, and then
 * replayed alone on the captured inputs (they are pure) to get stable medians.
 *
 *   ./dev deno run -A tests/kms/_measure_admission.ts [admissions=10] [replays=200]
 */
import { join } from "node:path";
import { toHex } from "../../lib/bytes.ts";
import { Logger, setLogSink } from "../../lib/log.ts";
import { Tpm } from "../../attestation/tpm/client.ts";
import { startSwtpm } from "../_support/swtpm.ts";
import { MemoryAuditLog } from "../../kms/audit.ts";
import { FileStore } from "../../kms/file_store.ts";
import { PolicyHolder } from "../../kms/policy.ts";
import { buildKms, initKms } from "../../kms/server.ts";
import { type KmsTransport, requestRelease } from "../../kms/client.ts";
import {
  createTpmCredentialIssuer,
  createTpmEvidenceVerifier,
  type EndorsementInput,
  type EvidenceInput,
} from "../../kms/evidence.ts";
import { EkTrust } from "../../kms/ek_trust.ts";
import * as ekCertificate from "../../attestation/ek_certificate.ts";
import { fakeTrust, makeFakeSnpPlatform } from "../attestation/_tee_fixtures.ts";
import { fakeTsm } from "../attestation/_fake_tsm.ts";

const ADMISSIONS = Number(Deno.args[0] ?? 10);
const REPLAYS = Number(Deno.args[1] ?? 200);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}
const ms = (x: number) => `${x.toFixed(3)} ms`;

async function time(n: number, f: () => Promise<unknown>): Promise<number> {
  const xs: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await f();
    xs.push(performance.now() - t0);
  }
  return median(xs);
}

setLogSink(() => {});
const dir = await Deno.makeTempDir({ prefix: "confidant-kms-measure-" });
const sw = await startSwtpm({ ekCert: true });
try {
  const tpm = Tpm.open(sw.spec);
  const bank = (await tpm.pcrRead([{ hash: 0x000b, pcrs: [0, 7] }])).get(0x000b)!;
  const pcrs = {
    "0": { expected: [toHex(bank.get(0)!)] },
    "7": { expected: [toHex(bank.get(7)!)] },
  };
  const platform = await makeFakeSnpPlatform();
  const kernel = fakeTsm({ kind: "sev_guest", platform });
  const tsmRoot = join(dir, "tsm");
  await Deno.mkdir(tsmRoot);
  const kek = crypto.getRandomValues(new Uint8Array(32));
  const store = new FileStore(join(dir, "state"));
  await initKms(store, kek, "measure");
  const policyPath = join(dir, "policy.json");
  await Deno.writeTextFile(
    policyPath,
    JSON.stringify({
      variants: ["tpm", "sev-snp"],
      pcrs,
      ak: { ekCaCertificates: [sw.ekCaPem!] },
      snp: {},
    }),
  );
  const policy = await PolicyHolder.open(policyPath);

  const teeTrust = fakeTrust(platform);
  const issuer = createTpmCredentialIssuer(new EkTrust());
  const verifier = createTpmEvidenceVerifier(new EkTrust(), { teeTrust });
  const timing: Record<string, number[]> = {};
  const note = (k: string, v: number) => (timing[k] ??= []).push(v);
  let lastBegin: EndorsementInput | undefined;
  const lastEvidence: Record<string, EvidenceInput> = {};
  const kms = await buildKms({
    store,
    kek,
    policy,
    tlsFingerprint: "ab".repeat(32),
    audit: new MemoryAuditLog(),
    log: new Logger("measure"),
    rateLimit: { ratePerSecond: 1000, burst: 1000 },
    credentials: {
      async begin(input) {
        lastBegin = { ...input, secret: input.secret.slice() };
        const t0 = performance.now();
        const r = await issuer.begin(input);
        note("begin: credential issuer (EK chain + MakeCredential)", performance.now() - t0);
        return r;
      },
    },
    evidence: {
      async verify(input) {
        const v = (input.evidence as { variant: string }).variant;
        lastEvidence[v] = input;
        const t0 = performance.now();
        const r = await verifier.verify(input);
        note(`finish: evidence verifier (${v})`, performance.now() - t0);
        if (r.checks.length) throw new Error(`refused: ${r.checks.join(",")}`);
        return r;
      },
    },
  });
  const http: KmsTransport = {
    async post(path, body) {
      const t0 = performance.now();
      const r = await kms.app.request(path, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      }, { remoteAddr: { hostname: "127.0.0.1" } });
      const out = { status: r.status, body: await r.json() };
      const doc = (body as { evidence?: { variant: string } }).evidence;
      note(
        `http ${path.split("/").pop()}${doc ? ` (${doc.variant})` : ""}`,
        performance.now() - t0,
      );
      return out;
    },
  };
  for (let i = 0; i < ADMISSIONS; i++) {
    for (const tee of ["none", "sev-snp"] as const) {
      await requestRelease({
        kmsUrl: "https://kms.invalid",
        fingerprint: "ab".repeat(32),
        tpm,
        request: {
          role: "worker",
          disk: { uuid: `00000000-0000-4000-8000-${String(i).padStart(12, "0")}` },
          nodeName: "measure",
        },
        pcrs: [0, 7],
        tee,
        teeOptions: { tsmRoot, tsmFs: kernel.fs },
        transport: http,
      });
    }
  }
  console.log(`in-process admissions (median of ${ADMISSIONS}; first one is cold):`);
  for (const [k, xs] of Object.entries(timing)) console.log(`  ${k.padEnd(58)} ${ms(median(xs))}`);

  console.log(`stages replayed alone on the captured inputs (median of ${REPLAYS}):`);
  const b = lastBegin!;
  const rows: [string, number][] = [];
  rows.push([
    "begin, EK chain cold (new EkTrust each time)",
    await time(REPLAYS, () => createTpmCredentialIssuer(new EkTrust()).begin(b)),
  ]);
  rows.push(["begin, EK chain cached (one EkTrust)", await time(REPLAYS, () => issuer.begin(b))]);
  const ak = b.policy.ak as { ekCaCertificates: string[] };
  const { verifyEkCertificate } = ekCertificate;
  const pems = ak.ekCaCertificates;
  rows.push([
    "verifyEkCertificate(PEM anchors)",
    await time(
      REPLAYS,
      () => verifyEkCertificate(b.ekCertificate, { caCertificates: pems, now: b.now }),
    ),
  ]);
  // Prepared anchors exist from the hot-path change on; the same script measures both trees.
  const prepared = (ekCertificate as Record<string, unknown>).EkTrustAnchors as
    | typeof ekCertificate.EkTrustAnchors
    | undefined;
  if (prepared) {
    const anchors = prepared.fromPem(pems);
    rows.push([
      "verifyEkCertificate(prepared anchors)",
      await time(REPLAYS, () => verifyEkCertificate(b.ekCertificate, { anchors, now: b.now })),
    ]);
  }
  for (const [v, input] of Object.entries(lastEvidence)) {
    rows.push([
      `finish, evidence verifier (${v})`,
      await time(REPLAYS, () => verifier.verify(input)),
    ]);
  }
  for (const [k, v] of rows) console.log(`  ${k.padEnd(58)} ${ms(v)}`);
} finally {
  await sw.stop();
  await Deno.remove(dir, { recursive: true });
}
