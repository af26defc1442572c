/**
 * The agent's HTTP endpoint as a pure factory: `GET /healthz`, `GET /readyz`,
 * `GET /v1/state`, `GET /v1/attestation?nonce=<hex>`, `GET /metrics`, and on init nodes the
 * init exchange (agent/init_http.ts; its payloads are HPKE-sealed). Nothing
 * it returns is secret: the state holds no keys or tokens, attestation
 * documents are public evidence. Bad input is a 400 JSON answer.
 *
 * @module
 */
import { Hono } from "hono";
import { ConfidantError, describeError } from "../lib/errors.ts";
import { fromHex } from "../lib/bytes.ts";
import type { Logger } from "../lib/log.ts";
import type { Attestor } from "./ports.ts";
import type { StateStore } from "./state.ts";
import { renderMetrics } from "./metrics.ts";
import type { NodeBootstrap } from "./bootstrap.ts";
import { initRoutes } from "./init_http.ts";

/** Smallest and largest nonce accepted (bytes). */
export const NONCE_BYTES = { min: 8, max: 64 } as const;

/** What {@link createAgentApp} needs. */
export interface AgentAppDeps {
  state: StateStore;
  /** Issues attestation documents; absent until the TPM is available. */
  attestor?: Attestor;
  log?: Logger;
  now?: () => number;
  /** Serves the init exchange (`confidant.role=init` nodes) when present. */
  bootstrap?: NodeBootstrap;
}

/** Build the agent's Hono app. */
export function createAgentApp(deps: AgentAppDeps): Hono {
  const now = deps.now ?? Date.now;
  const app = new Hono();
  app.get("/healthz", (c) => c.json({ status: "ok" }));
  app.get("/readyz", (c) => {
    const s = deps.state.snapshot();
    const ready = deps.state.isReady();
    const pending = s.steps.filter((x) => x.status !== "done" && x.status !== "skipped").map((x) =>
      x.name
    );
    return c.json(
      {
        ready,
        phase: s.phase,
        encryption: s.encryption.enabled,
        ...(pending.length ? { pending } : {}),
      },
      ready ? 200 : 503,
    );
  });
  app.get("/v1/state", (c) => c.json(deps.state.snapshot()));
  app.get("/v1/attestation", async (c) => {
    const keys = Object.keys(c.req.queries());
    const unknown = keys.filter((k) => k !== "nonce");
    if (unknown.length) {
      return c.json({ error: "bad_request", message: `unknown parameter ${unknown[0]}` }, 400);
    }
    const values = c.req.queries("nonce") ?? [];
    if (values.length !== 1) {
      return c.json({ error: "bad_request", message: "exactly one nonce=<hex> is required" }, 400);
    }
    const hex = values[0];
    if (!/^[0-9a-fA-F]*$/.test(hex) || hex.length % 2 !== 0) {
      return c.json({ error: "bad_request", message: "nonce must be hex" }, 400);
    }
    const n = hex.length / 2;
    if (n < NONCE_BYTES.min || n > NONCE_BYTES.max) {
      return c.json(
        {
          error: "bad_request",
          message: `nonce must be ${NONCE_BYTES.min} to ${NONCE_BYTES.max} bytes`,
        },
        400,
      );
    }
    if (!deps.attestor) {
      return c.json({ error: "unavailable", message: "attestation is not available yet" }, 503);
    }
    const doc = await deps.attestor.document(fromHex(hex, "nonce"));
    return c.json(doc as Record<string, unknown>);
  });
  app.get("/metrics", (c) => {
    c.header("content-type", "text/plain; version=0.0.4; charset=utf-8");
    return c.body(renderMetrics(deps.state.snapshot(), deps.state.isReady(), now()));
  });
  if (deps.bootstrap) app.route("/", initRoutes(deps.bootstrap, deps.log));
  app.notFound((c) => c.json({ error: "not_found" }, 404));
  app.onError((e, c) => {
    const d = describeError(e);
    deps.log?.error("http request failed", { path: c.req.path, code: d.code, error: d.message });
    const status = e instanceof ConfidantError ? 502 : 500;
    return c.json({ error: e instanceof ConfidantError ? d.code : "internal" }, status);
  });
  return app;
}
