/**
 * The node side of the KMS protocol: {@link requestRelease} runs `begin` / activate / quote /
 * `finish` once against a KMS whose TLS certificate is pinned by its SHA-256 fingerprint, and
 * returns the opened release.
 *
 * Pinning in Deno 2.9.6: `Deno.connectTls` cannot skip verification, and a self-signed
 * certificate given as the only CA to `Deno.createHttpClient` fails (rustls refuses a CA used
 * as an end entity, and the host name must match). What works is node:tls: connect with
 * `rejectUnauthorized: false`, read `getPeerCertificate().fingerprint256`, compare it with
 * the pin, and only then send the request over that same socket with node:https
 * (`createConnection` returns the checked socket). Nothing is written before the check. The
 * sealed release also names the KMS's fingerprint, which the node checks end to end. One
 * connection serves `begin` and `finish` (and retries after a 429 overload answer, which are
 * waited out with the KMS's jittered hint).
 *
 * @module
 */
import tls from "node:tls";
import https from "node:https";
import type { z } from "zod";
import { concat, fromBase64, sha256, toBase64 } from "../lib/bytes.ts";
import { ConfidantError } from "../lib/errors.ts";
import type { Tpm } from "../attestation/tpm/client.ts";
import { loadAttestationKeys } from "../attestation/tpm/keys.ts";
import { marshalTpm2bPublic } from "../attestation/tpm/structures/mod.ts";
import { parseCertificate } from "../attestation/ek_certificate.ts";
import { type IssuedDocument, issueDocument } from "../attestation/issue.ts";
import { resolveTee, type TeeChoice, type TeeIssueOptions } from "../attestation/tee_issue.ts";
import {
  BEGIN_PATH,
  type BeginRequest,
  beginResponseSchema,
  errorResponseSchema,
  FINISH_PATH,
  finishResponseSchema,
  type ReleaseRequest,
} from "./protocol.ts";
import {
  type EphemeralKeyPair,
  generateEphemeralKeyPair,
  openRelease,
  releaseBinding,
  type ReleasePayload,
} from "./release.ts";

/** A refusal by the KMS (403), naming every failed check. */
export class KmsRefusedError extends ConfidantError {
  constructor(readonly status: number, readonly error: string, readonly checks: string[]) {
    super(
      "kms.refused",
      `the KMS answered ${status} ${error}${checks.length ? `: ${checks.join(", ")}` : ""}`,
    );
    this.name = "KmsRefusedError";
  }
}

/** Normalise a SHA-256 fingerprint (`AB:CD:...`, `abcd...`, `sha256:abcd...`) to lower hex. */
export function normaliseFingerprint(fp: string): string {
  const hex = fp.trim().replace(/^sha256:/i, "").replace(/:/g, "").toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(hex)) {
    throw new ConfidantError("kms.fingerprint", "a KMS fingerprint is 32 bytes of hex (SHA-256)");
  }
  return hex;
}

/** What {@link KmsTransport.post} returns. */
export interface KmsHttpResponse {
  status: number;
  body: unknown;
  /**
   * With a 429: how long to wait before retrying (ms): the answer's `retryAfterMs` (already
   * jittered by the KMS), else its Retry-After seconds.
   */
  retryAfterMs?: number;
  /** The KMS's own time for the request (ms), from its `server-timing: kms;dur=` header. */
  serverMs?: number;
}

/** How the client talks to the KMS (a pinned HTTPS connection, or a test double). */
export interface KmsTransport {
  post(path: string, body: unknown): Promise<KmsHttpResponse>;
  /** Close a connection kept open between requests (when the transport keeps one). */
  close?(): void;
}

const MAX_RESPONSE = 256 * 1024;

/** Options of {@link pinnedHttpsTransport}. */
export interface PinnedTransportOptions {
  /** Deadline of one request, connection included (ms); default 30 s. */
  timeoutMs?: number;
  /** Local address to connect from (load generators: one loopback address per node). */
  localAddress?: string;
}

/** The retry hint of an answer: `retryAfterMs` in the JSON body, else Retry-After seconds. */
function retryHint(status: number, header: unknown, body: unknown): number | undefined {
  if (status !== 429 && status !== 503) return undefined;
  const ms = (body as { retryAfterMs?: unknown } | null)?.retryAfterMs;
  if (typeof ms === "number" && Number.isFinite(ms) && ms >= 0) return Math.min(ms, 600_000);
  const s = Number(typeof header === "string" ? header : NaN);
  return Number.isFinite(s) && s >= 0 ? Math.min(s, 600) * 1000 : undefined;
}

/**
 * A transport that pins the KMS's TLS certificate by SHA-256 fingerprint. It keeps one TLS
 * connection open across requests (begin and finish of an admission, and retries after a
 * 429, share one handshake); requests are sent one at a time. A connection the KMS closed
 * is replaced before the next request (new handshake, pin checked again); `close()` ends it.
 */
export function pinnedHttpsTransport(
  kmsUrl: string,
  fingerprint: string,
  opts: PinnedTransportOptions = {},
): KmsTransport & { close(): void } {
  const url = new URL(kmsUrl);
  if (url.protocol !== "https:") {
    throw new ConfidantError("kms.url", "the KMS URL must be https://");
  }
  const pin = normaliseFingerprint(fingerprint);
  const host = url.hostname.replace(/^\[|\]$/g, "");
  const port = Number(url.port || 443);
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const base = url.pathname.replace(/\/$/, "");
  let current: tls.TLSSocket | undefined;
  let queue: Promise<unknown> = Promise.resolve();

  const wrap = (e: unknown) =>
    e instanceof ConfidantError ? e : new ConfidantError(
      "kms.connect",
      `KMS request failed: ${(e as Error)?.message ?? e}`,
      { cause: e },
    );

  /** A connected socket whose peer certificate is the pinned one (nothing written before). */
  const connect = () =>
    new Promise<tls.TLSSocket>((resolve, reject) => {
      const socket = tls.connect({
        host,
        port,
        servername: /^[\d.:]+$/.test(host) ? undefined : host,
        rejectUnauthorized: false,
        ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
      } as tls.ConnectionOptions);
      const onError = (e: unknown) => {
        socket.destroy();
        reject(wrap(e));
      };
      socket.once("error", onError);
      socket.once("secureConnect", () => {
        socket.off("error", onError);
        // Later errors surface through the request that is using the socket.
        socket.on("error", () => {});
        const got = (socket.getPeerCertificate()?.fingerprint256 ?? "").replace(/:/g, "")
          .toLowerCase();
        if (got !== pin) {
          socket.destroy();
          reject(
            new ConfidantError(
              "kms.fingerprint_mismatch",
              `the KMS presented certificate ${got || "(none)"}, not the pinned ${pin}`,
            ),
          );
          return;
        }
        resolve(socket);
      });
    });

  const drop = (s: tls.TLSSocket | undefined) => {
    s?.destroy();
    if (current === s) current = undefined;
  };

  const send = (path: string, body: unknown) =>
    new Promise<KmsHttpResponse>((resolve, reject) => {
      let socket: tls.TLSSocket | undefined;
      let settled = false;
      const fail = (e: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        drop(socket);
        reject(wrap(e));
      };
      const timer = setTimeout(
        () => fail(new ConfidantError("kms.timeout", "the KMS did not answer in time")),
        timeoutMs,
      );
      const reuse = current && !current.destroyed && current.writable ? current : undefined;
      (reuse ? Promise.resolve(reuse) : connect()).then((s) => {
        socket = s;
        if (settled) return drop(s);
        current = s;
        const data = new TextEncoder().encode(JSON.stringify(body));
        const req = https.request({
          host,
          port,
          path: base + path,
          method: "POST",
          headers: { "content-type": "application/json", "content-length": String(data.length) },
          createConnection: () => s,
        } as https.RequestOptions, (res) => {
          const chunks: Uint8Array[] = [];
          let total = 0;
          res.on("data", (c: Uint8Array) => {
            total += c.length;
            if (total > MAX_RESPONSE) {
              fail(new ConfidantError("kms.response", "the KMS answer is too large"));
            } else chunks.push(c);
          });
          res.on("end", () => {
            if (settled) return;
            settled = true;
            clearTimeout(timer);
            if (String(res.headers.connection ?? "").toLowerCase() === "close") drop(s);
            let parsed: unknown;
            try {
              parsed = JSON.parse(new TextDecoder().decode(concat(...chunks)));
            } catch {
              drop(s);
              reject(
                new ConfidantError(
                  "kms.response",
                  `the KMS answered ${res.statusCode} with non-JSON`,
                ),
              );
              return;
            }
            const status = res.statusCode ?? 0;
            const retryAfterMs = retryHint(status, res.headers["retry-after"], parsed);
            const timing = /(?:^|,)\s*kms;dur=([\d.]{1,12})/.exec(
              String(res.headers["server-timing"] ?? ""),
            );
            resolve({
              status,
              body: parsed,
              ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
              ...(timing ? { serverMs: Number(timing[1]) } : {}),
            });
          });
          res.on("error", fail);
        });
        req.on("error", fail);
        req.end(data);
      }, fail);
    });

  return {
    post(path, body) {
      const r = queue.then(() => send(path, body));
      queue = r.catch(() => {});
      return r;
    },
    close() {
      drop(current);
    },
  };
}

/** How {@link requestRelease} waits out an overloaded KMS (429). */
export interface OverloadRetryOptions {
  /** Give up retrying after this long (ms, from the first 429); default 300 s. */
  deadlineMs?: number;
  /** Wait (tests). */
  sleep?: (ms: number) => Promise<void>;
  /** Random numbers in [0, 1) for the jitter (tests). */
  random?: () => number;
}

/**
 * POST through `transport`, retrying while the KMS answers 429: after the answer's hint
 * (`retryAfterMs`, jittered by the KMS; else Retry-After seconds × a random factor in
 * [0.5, 1.5)), until `deadlineMs`. Any other answer, or the last 429, is returned.
 */
export async function postRetryingOverload(
  transport: KmsTransport,
  path: string,
  body: unknown,
  o: OverloadRetryOptions = {},
): Promise<KmsHttpResponse> {
  const sleep = o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const random = o.random ?? Math.random;
  const deadline = Date.now() + (o.deadlineMs ?? 300_000);
  while (true) {
    const r = await transport.post(path, body);
    if (r.status !== 429) return r;
    const hinted = typeof (r.body as { retryAfterMs?: unknown } | null)?.retryAfterMs === "number";
    const base = r.retryAfterMs ?? 1000;
    const wait = Math.max(10, hinted ? base : base * (0.5 + random()));
    if (Date.now() + wait > deadline) return r;
    await sleep(wait);
  }
}

/** Options of {@link requestRelease}. */
export interface RequestReleaseOptions {
  /** `https://HOST:PORT` of the KMS. */
  kmsUrl: string;
  /** SHA-256 fingerprint of the KMS's TLS certificate (as `confidant kms serve` prints it). */
  fingerprint: string;
  /** An open TPM client. */
  tpm: Tpm;
  /** What to ask for. */
  request: ReleaseRequest;
  /** SHA-256 PCRs to quote (default `DEFAULT_PCRS` of attestation/issue.ts: 0-9, 11, 12, 14). */
  pcrs?: number[];
  /**
   * EK type whose certificate is read from NV (default RSA 2048: TPMs certify it, and swtpm
   * certifies only RSA 2048 and ECC P-384 EKs).
   */
  ekKind?: "ecc" | "rsa";
  /** DER of intermediate CA certificates to send with the EK certificate (default none). */
  ekIntermediates?: Uint8Array[];
  /** Endorsement hierarchy password (default empty). */
  endorsementPassword?: Uint8Array;
  /**
   * TEE evidence to add (default `"none"`: a `tpm` document): `"auto"` detects an SEV-SNP or
   * TDX guest through configfs-tsm, `"sev-snp"`/`"tdx"` require it. The variant is resolved
   * before `begin`, which announces it; the KMS policy must accept it.
   */
  tee?: TeeChoice;
  /** How to reach configfs-tsm and the cached chain/collateral (TEE documents only). */
  teeOptions?: TeeIssueOptions;
  /** Override the transport (tests); default {@link pinnedHttpsTransport}. */
  transport?: KmsTransport;
  /** How 429 answers (KMS overloaded, or this source too fast) are retried. */
  overload?: OverloadRetryOptions;
  /** Test hook: tamper with the finish answer before it is opened. */
  onFinishResponse?: (body: unknown) => unknown;
}

/** What {@link requestRelease} returns. */
export interface OpenedRelease {
  /** The opened, validated release (holds the disk key: handle as a secret). */
  release: ReleasePayload;
  /** The disk key bytes (32). */
  diskKey: Uint8Array;
}

/** The EK certificate in NV, without the padding NV may hold after the DER. */
async function readEkCertificate(tpm: Tpm, index: number): Promise<Uint8Array> {
  let nv: Uint8Array;
  try {
    nv = await tpm.nvRead(index);
  } catch (e) {
    throw new ConfidantError(
      "kms.ek_certificate",
      `the TPM holds no EK certificate at NV 0x${index.toString(16)}`,
      { cause: e },
    );
  }
  try {
    return new Uint8Array(parseCertificate(nv).rawData);
  } catch (e) {
    throw new ConfidantError("kms.ek_certificate", "the EK certificate in NV cannot be parsed", {
      cause: e,
    });
  }
}

function expect<S extends z.ZodType>(r: KmsHttpResponse, schema: S, what: string): z.infer<S> {
  if (r.status !== 200) {
    const e = errorResponseSchema.safeParse(r.body);
    throw new KmsRefusedError(
      r.status,
      e.success ? e.data.error : "error",
      e.success ? e.data.checks ?? [] : [],
    );
  }
  const p = schema.safeParse(r.body);
  if (!p.success) throw new ConfidantError("kms.response", `the KMS's ${what} answer is malformed`);
  return p.data;
}

/**
 * Run the protocol once: resolve the TEE variant, load EK and AK, `begin` with the variant,
 * the EK certificate and the AK, activate the credential, issue the document (quote, and
 * the TEE report when there is one) with userData = SHA-256(ephemeral public key), `finish`,
 * open the sealed release and check it names the pinned KMS and the request.
 */
export async function requestRelease(opts: RequestReleaseOptions): Promise<OpenedRelease> {
  const transport = opts.transport ?? pinnedHttpsTransport(opts.kmsUrl, opts.fingerprint);
  try {
    return await exchange(opts, transport);
  } finally {
    if (!opts.transport) transport.close?.();
  }
}

async function exchange(
  opts: RequestReleaseOptions,
  transport: KmsTransport,
): Promise<OpenedRelease> {
  const pin = normaliseFingerprint(opts.fingerprint);
  const ekKind = opts.ekKind ?? "rsa";
  // The variant first: a guest whose TEE cannot be reached fails before talking to the KMS.
  const tee = await resolveTee(opts.tee ?? "none", opts.teeOptions);
  // Step 1: endorsement and credential activation with the EK and AK loaded.
  const keys = await loadAttestationKeys(opts.tpm, {
    ek: ekKind,
    ak: "ecc",
    endorsementPassword: opts.endorsementPassword,
  });
  let session: string;
  let nonce: Uint8Array;
  let secret: Uint8Array;
  try {
    const ekCert = await readEkCertificate(opts.tpm, keys.ekCertIndex);
    const beginReq: BeginRequest = {
      variant: tee ?? "tpm",
      ekCertificate: toBase64(ekCert),
      ekIntermediates: (opts.ekIntermediates ?? []).map((c) => toBase64(c)),
      akPublic: toBase64(marshalTpm2bPublic(keys.ak.public)),
    };
    const begun = expect(
      await postRetryingOverload(transport, BEGIN_PATH, beginReq, opts.overload),
      beginResponseSchema,
      "begin",
    );
    session = begun.session;
    nonce = fromBase64(begun.nonce);
    secret = await opts.tpm.activateCredential(
      keys.ak.handle,
      keys.ek.handle,
      fromBase64(begun.credential.credentialBlob),
      fromBase64(begun.credential.encryptedSecret),
      { endorsementPassword: opts.endorsementPassword },
    );
  } finally {
    // issueDocument loads its own EK and AK: free the slots first (a TPM has few).
    await keys.flush();
  }
  // Step 2: the quote, made the one way the attestation area makes evidence. The AK is a
  // primary key of the endorsement hierarchy, so issueDocument re-creates the same one.
  const ephemeral: EphemeralKeyPair = await generateEphemeralKeyPair();
  let finishBody: unknown;
  try {
    const evidence: IssuedDocument = await issueDocument(opts.tpm, {
      nonce,
      userData: await sha256(ephemeral.publicKey),
      pcrs: opts.pcrs,
      ekAlg: ekKind,
      endorsementPassword: opts.endorsementPassword,
      tee: tee ?? "none",
      teeOptions: opts.teeOptions,
    });
    const fin = await postRetryingOverload(transport, FINISH_PATH, {
      session,
      activatedSecret: toBase64(secret),
      evidence,
      ephemeralPublicKey: toBase64(ephemeral.publicKey),
      request: opts.request,
    }, opts.overload);
    finishBody = fin.status === 200 && opts.onFinishResponse
      ? opts.onFinishResponse(fin.body)
      : fin.body;
    finishBody = expect({ status: fin.status, body: finishBody }, finishResponseSchema, "finish");
  } finally {
    secret.fill(0);
  }
  const sealed = (finishBody as z.infer<typeof finishResponseSchema>).release;
  const aad = await releaseBinding(session, opts.request, ephemeral.publicKey);
  const release = await openRelease(sealed, ephemeral, aad);
  const problems: string[] = [];
  if (release.kms.tlsFingerprint !== pin) {
    problems.push("the release names another KMS certificate");
  }
  if (release.disk.uuid !== opts.request.disk.uuid.toLowerCase()) {
    problems.push("the release is for another disk");
  }
  if (release.nodeName !== opts.request.nodeName || release.role !== opts.request.role) {
    problems.push("the release is for another request");
  }
  if (problems.length) throw new ConfidantError("kms.release_mismatch", problems.join("; "));
  return { release, diskKey: fromBase64(release.diskKey) };
}
