/**
 * The KMS's HTTP surface as a pure factory: {@link createKmsApp} returns a Hono app; only
 * `confidant kms serve` binds it to a socket. Hostile input is answered, never fatal: bodies
 * are read with a size cap (413) and a deadline (408), JSON and schema errors are 400, floods
 * from one source 429 with Retry-After, and overload (a new request would wait longer than the
 * latency target behind those in flight, see {@link AdmissionController}) 429 with Retry-After
 * and a jittered `retryAfterMs`, never a 5xx; one error handler turns anything unexpected into
 * a JSON 500 without a stack or a secret.
 *
 * Routes: POST /v1/attest/begin, POST /v1/attest/finish, GET /metrics, GET /healthz,
 * GET /readyz.
 *
 * @module
 */
import { Hono } from "hono";
import type { Context } from "hono";
import type { z } from "zod";
import { describeError } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import { BodyError, readCappedBody } from "../lib/read_body.ts";
import type { KmsMetrics } from "./metrics.ts";
import {
  BEGIN_PATH,
  beginRequestSchema,
  FINISH_PATH,
  finishRequestSchema,
  MAX_BODY_BYTES,
  MAX_FINISH_BODY_BYTES,
} from "./protocol.ts";
import { AdmissionController, RateLimiter } from "./rate_limit.ts";
import type { KmsService, Outcome } from "./service.ts";

/** What the app needs. */
export interface KmsAppDeps {
  service: KmsService;
  metrics: KmsMetrics;
  log: Logger;
  /** Per-source rate (requests/s) and burst; default 20/s, burst 40. */
  rateLimit?: { ratePerSecond: number; burst: number };
  /** Most requests in flight whatever the latency estimate; default 256. */
  maxInFlight?: number;
  /**
   * Shed a request (429) when its estimated wait behind those in flight exceeds this (ms);
   * default 20 (`finish` may wait twice as long: its `begin` was already paid for).
   */
  targetWaitMs?: number;
  /** Deadline for reading a request body (ms); default 10 s. */
  bodyTimeoutMs?: number;
  /** Ready when this says so (e.g. the policy and state are loaded). */
  ready?: () => boolean;
  /** Clock (ms). */
  now?: () => number;
}

/** Environment Hono passes from Deno.serve (the connection info). */
export interface KmsEnv {
  remoteAddr?: { hostname?: string };
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly error: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(error);
  }
}

async function parseJsonBody<S extends z.ZodType>(
  c: Context,
  schema: S,
  maxBytes: number,
  timeoutMs: number,
): Promise<z.infer<S>> {
  const bytes = await readCappedBody(c.req.raw, maxBytes, timeoutMs);
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    throw new HttpError(400, "body is not JSON");
  }
  const r = schema.safeParse(value);
  if (!r.success) {
    // Name the fields, never echo values.
    const where = r.error.issues.slice(0, 5).map((i) =>
      `${i.path.length ? i.path.join(".") : "(body)"}: ${i.message}`
    );
    throw new HttpError(400, `malformed request: ${where.join("; ")}`.slice(0, 500));
  }
  return r.data;
}

/** Build the KMS app. */
export function createKmsApp(deps: KmsAppDeps): Hono<{ Bindings: KmsEnv }> {
  const app = new Hono<{ Bindings: KmsEnv }>();
  const limiter = new RateLimiter(deps.rateLimit ?? { ratePerSecond: 20, burst: 40 });
  const gate = new AdmissionController({
    maxInFlight: deps.maxInFlight ?? 256,
    targetWaitMs: deps.targetWaitMs ?? 20,
  });
  const now = deps.now ?? Date.now;
  const bodyTimeout = deps.bodyTimeoutMs ?? 10_000;
  const sourceOf = (c: Context<{ Bindings: KmsEnv }>) => c.env?.remoteAddr?.hostname ?? "unknown";
  const endpointOf = (path: string) =>
    path === BEGIN_PATH || path === FINISH_PATH || path === "/metrics" || path === "/healthz" ||
      path === "/readyz"
      ? path
      : "other";

  app.use("*", async (c, next) => {
    const start = performance.now();
    const endpoint = endpointOf(c.req.path);
    const isProtocol = endpoint === BEGIN_PATH || endpoint === FINISH_PATH;
    let release: (() => void) | undefined;
    try {
      if (isProtocol) {
        const wait = limiter.take(sourceOf(c), now());
        if (wait > 0) {
          deps.metrics.refusal(["rate_limited"]);
          return c.json(
            {
              error: "too many requests from this source",
              retryAfterMs: Math.round(wait * 1000 * (0.5 + Math.random())),
            },
            429,
            { "Retry-After": String(wait) },
          );
        }
        const a = gate.enter(endpoint === FINISH_PATH ? 2 : 1);
        if (!a.admitted) {
          deps.metrics.refusal(["kms.overloaded"]);
          // A shed node holds nothing here while it waits: its connection is closed.
          return c.json({ error: "overloaded", retryAfterMs: a.retryAfterMs }, 429, {
            "Retry-After": String(a.retryAfterSeconds),
            Connection: "close",
          });
        }
        release = a.release;
      }
      await next();
    } finally {
      release?.();
      const ms = performance.now() - start;
      deps.metrics.request(endpoint, c.res.status, ms / 1000);
      // The KMS's own share of the latency (RFC-less but common Server-Timing form).
      if (isProtocol) {
        try {
          c.res.headers.set("server-timing", `kms;dur=${ms.toFixed(2)}`);
        } catch { /* immutable headers: no timing */ }
      }
    }
  });

  const reply = <T>(c: Context, o: Outcome<T>) =>
    o.ok
      ? c.json(o.body as object, 200)
      : o.status === 429
      ? c.json({ error: o.error, checks: o.checks, retryAfterMs: 1000 }, 429, {
        "Retry-After": "1",
      })
      : c.json({ error: o.error, checks: o.checks }, o.status);

  app.post(BEGIN_PATH, async (c) => {
    const body = await parseJsonBody(c, beginRequestSchema, MAX_BODY_BYTES, bodyTimeout);
    return reply(c, await deps.service.begin(body, sourceOf(c)));
  });
  app.post(FINISH_PATH, async (c) => {
    const body = await parseJsonBody(
      c,
      finishRequestSchema,
      MAX_FINISH_BODY_BYTES,
      bodyTimeout,
    );
    return reply(c, await deps.service.finish(body, sourceOf(c)));
  });
  app.get(
    "/metrics",
    (c) =>
      c.body(deps.metrics.render(), 200, {
        "Content-Type": "text/plain; version=0.0.4; charset=utf-8",
      }),
  );
  app.get("/healthz", (c) => c.json({ status: "ok" }));
  app.get("/readyz", (c) => {
    const ok = deps.ready ? deps.ready() : true;
    return c.json({ status: ok ? "ready" : "not ready" }, ok ? 200 : 503);
  });
  app.all(BEGIN_PATH, (c) => c.json({ error: "method not allowed" }, 405, { Allow: "POST" }));
  app.all(FINISH_PATH, (c) => c.json({ error: "method not allowed" }, 405, { Allow: "POST" }));
  app.notFound((c) => c.json({ error: "not found" }, 404));
  app.onError((err, c) => {
    if (err instanceof HttpError) {
      return c.json({ error: err.error }, err.status as 400, err.headers);
    }
    if (err instanceof BodyError) return c.json({ error: err.message }, err.status);
    const d = describeError(err);
    if (d.code.startsWith("parse.")) return c.json({ error: "malformed request" }, 400);
    deps.log.error("request failed", { path: c.req.path, code: d.code, message: d.message });
    return c.json({ error: "internal error" }, 500);
  });
  return app;
}
