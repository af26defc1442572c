/**
 * ECDSA verify/s through lib/crypto on each engine (libcrypto FFI on the calling thread,
 * libcrypto on the thread pool, node:crypto, Web Crypto), as ratios to `openssl speed` of
 * the same run. Every verification parses its public key from x/y, as the KMS does (each
 * node has its own attestation key), cycling through 32 keys and signatures per curve over
 * a 150-byte message (about a TPMS_ATTEST).
 *
 * @module
 */
import { generateKeyPairSync, randomBytes, sign } from "node:crypto";
import {
  createEcdsaVerifier,
  type EcdsaCurve,
  type EcdsaVerifier,
  type EcdsaVerifyInput,
} from "../lib/crypto/mod.ts";
import { type BenchContext, type BenchResult, measured, measureRate } from "./_frame.ts";
import { BASELINE_IDS } from "./openssl_speed.ts";

/** Module name. */
export const name = "ecdsa_verify";
/** Runs after the openssl baseline. */
export const order = 10;

const SIZE = { "P-256": 32, "P-384": 48 } as const;
const HASH = { "P-256": "SHA-256", "P-384": "SHA-384" } as const;

function b64u(s: string): Uint8Array {
  return Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
}

/** Valid inputs for `curve` signed with fresh node:crypto keys. */
export function signedInputs(curve: EcdsaCurve, count: number): EcdsaVerifyInput[] {
  const out: EcdsaVerifyInput[] = [];
  for (let i = 0; i < count; i++) {
    const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: curve });
    const jwk = publicKey.export({ format: "jwk" });
    const message = new Uint8Array(randomBytes(150));
    const hash = HASH[curve];
    const sig = sign(hash.replace("-", "").toLowerCase(), message, {
      key: privateKey,
      dsaEncoding: "ieee-p1363",
    });
    const n = SIZE[curve];
    out.push({
      curve,
      hash,
      publicKey: { x: b64u(jwk.x!), y: b64u(jwk.y!) },
      r: new Uint8Array(sig.subarray(0, n)),
      s: new Uint8Array(sig.subarray(n)),
      message,
    });
  }
  return out;
}

interface Engine {
  id: string;
  label: string;
  verifier: EcdsaVerifier;
  sync: boolean;
  concurrency: number;
  /** Target on the ratio to openssl speed, per curve. */
  target?: number;
}

/** Measure every engine on both curves. */
export async function run(ctx: BenchContext): Promise<BenchResult[]> {
  const inFlight = 2 * navigator.hardwareConcurrency;
  const engines: Engine[] = [
    {
      id: "libcrypto",
      label: "libcrypto FFI (sync)",
      verifier: createEcdsaVerifier({ backend: "libcrypto", offload: false }),
      sync: true,
      concurrency: 1,
      target: 0.7,
    },
    {
      id: "libcrypto_pool",
      label: `libcrypto FFI (thread pool, ${inFlight} in flight)`,
      verifier: createEcdsaVerifier({ backend: "libcrypto", offload: true }),
      sync: false,
      concurrency: inFlight,
      // Each hand-off to the pool costs ~30 µs of CPU (thread wake-up, promise); what the
      // pool buys is the other cores, so its per-CPU-second target is lower.
      target: 0.5,
    },
    {
      id: "node",
      label: "node:crypto (sync)",
      verifier: createEcdsaVerifier({ backend: "node" }),
      sync: true,
      concurrency: 1,
    },
    {
      id: "webcrypto",
      label: `Web Crypto (${inFlight} in flight)`,
      verifier: createEcdsaVerifier({ backend: "webcrypto" }),
      sync: false,
      concurrency: inFlight,
    },
  ];
  const seconds = ctx.seconds(2, 0.5);
  const results: BenchResult[] = [];
  for (const curve of ["P-256", "P-384"] as const) {
    const inputs = signedInputs(curve, 32);
    const baseline = ctx.baseline(BASELINE_IDS[curve]);
    for (const e of engines) {
      // Every engine must accept every input, or the figure would measure refusals.
      for (const i of inputs) {
        if (!(await e.verifier.verify(i))) {
          throw new Error(`${e.id} refused a valid ${curve} input`);
        }
      }
      let k = 0;
      const next = () => inputs[k++ & 31];
      const op = e.sync ? () => e.verifier.verifySync(next()) : () => e.verifier.verify(next());
      ctx.log(`${curve} ${e.label}: ${seconds} s`);
      const rate = await measureRate(op, { seconds, concurrency: e.concurrency });
      results.push(measured({
        id: `ecdsa.${curve.toLowerCase().replace("-", "")}.${e.id}`,
        label: `ECDSA ${curve} verify, ${e.label}`,
        value: rate.perCpuSecond,
        unit: "verify/CPU-s",
        baseline,
        target: e.target === undefined ? undefined : {
          description: `≥ ${e.target} × openssl speed per CPU-second (key parsed on every call)`,
          of: "ratio",
          op: ">=",
          value: e.target,
        },
        details: {
          perWallSecond: Math.round(rate.perWallSecond),
          ops: rate.ops,
          wallSeconds: Number(rate.wallSeconds.toFixed(3)),
          cpuSeconds: Number(rate.cpuSeconds.toFixed(3)),
          concurrency: e.concurrency,
        },
      }));
    }
  }
  return results;
}
