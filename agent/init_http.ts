/**
 * The agent's routes of the init exchange (cluster/protocol.ts): `POST /v1/init/begin`,
 * `/v1/init/attest`, `/v1/init/finish`, over a {@link NodeBootstrap}. Bodies are read with a
 * size cap and a deadline (lib/read_body.ts: 413 too large, 408 too slow, 400 a bad
 * Content-Length) and validated with zod; a bad body is 400, a refusal carries its status and
 * error name, and any other failure is a generic 500 whose detail is only logged.
 *
 * @module
 */
import { Hono } from "hono";
import type { z } from "zod";
import { describeError } from "../lib/errors.ts";
import { BodyError, readCappedBody } from "../lib/read_body.ts";
import type { Logger } from "../lib/log.ts";
import {
  attestRequestSchema,
  beginRequestSchema,
  finishRequestSchema,
  INIT_ATTEST_PATH,
  INIT_BEGIN_PATH,
  INIT_FINISH_PATH,
  MAX_INIT_BODY_BYTES,
  NODE_FINISH_TIMEOUT_MS,
} from "../cluster/protocol.ts";
import { BootstrapError, type NodeBootstrap } from "./bootstrap.ts";

/** Longest an init or recover may take (kubeadm init included); the operator waits longer. */
export const FINISH_TIMEOUT_MS = NODE_FINISH_TIMEOUT_MS;

/** Longest a client may take to send a request body (ms). */
export const BODY_TIMEOUT_MS = 10_000;

class BadRequest extends Error {}

async function body<S extends z.ZodType>(
  req: Request,
  schema: S,
  timeoutMs: number,
): Promise<z.infer<S>> {
  const buf = await readCappedBody(req, MAX_INIT_BODY_BYTES, timeoutMs);
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(buf));
  } catch {
    throw new BadRequest("the body is not JSON");
  }
  const r = schema.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new BadRequest(`${i.path.join(".") || "body"}: ${i.message}`);
  }
  return r.data;
}

/** The caller's address as Deno.serve passes it (`app.fetch(req, info)`), else "unknown". */
function sourceOf(env: unknown): string {
  const addr = (env as { remoteAddr?: { hostname?: unknown } } | undefined)?.remoteAddr;
  return typeof addr?.hostname === "string" ? addr.hostname : "unknown";
}

/** The init routes over `bootstrap` (mount at the app's root). */
export function initRoutes(
  bootstrap: NodeBootstrap,
  log?: Logger,
  opts: { bodyTimeoutMs?: number } = {},
): Hono {
  const timeoutMs = opts.bodyTimeoutMs ?? BODY_TIMEOUT_MS;
  const app = new Hono();
  app.post(INIT_BEGIN_PATH, async (c) => {
    const b = await body(c.req.raw, beginRequestSchema, timeoutMs);
    return c.json(await bootstrap.begin(b.purpose, sourceOf(c.env)));
  });
  app.post(INIT_ATTEST_PATH, async (c) => {
    return c.json(await bootstrap.attest(await body(c.req.raw, attestRequestSchema, timeoutMs)));
  });
  app.post(INIT_FINISH_PATH, async (c) => {
    const b = await body(c.req.raw, finishRequestSchema, timeoutMs);
    // Not the request's signal: kubeadm must not be cut off by a dropped connection.
    return c.json(await bootstrap.finish(b, AbortSignal.timeout(FINISH_TIMEOUT_MS)));
  });
  app.onError((e, c) => {
    if (e instanceof BadRequest) return c.json({ error: "bad_request", message: e.message }, 400);
    if (e instanceof BodyError) {
      return c.json({ error: "bad_request", message: e.message }, e.status);
    }
    if (e instanceof BootstrapError) {
      log?.warn("init request refused", { path: c.req.path, error: e.error, message: e.message });
      return c.json({ error: e.error, message: e.message }, e.status);
    }
    // The detail goes to the node's log only: it may name paths, devices or internal state.
    const d = describeError(e);
    log?.error("init request failed", { path: c.req.path, code: d.code, error: d.message });
    return c.json({ error: "failed", message: "the node could not complete the request" }, 500);
  });
  return app;
}
