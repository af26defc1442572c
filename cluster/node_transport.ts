/**
 * How the operator's CLI reaches a node's agent endpoint: JSON POSTs over `http://` or
 * `https://`. The node's TLS certificate (if any) is not checked — it is not part of the
 * trust: what the operator relies on is the attestation (verified before anything secret is
 * sent) and the HPKE sealing to the attested key. Answers are size-limited.
 *
 * @module
 */
import http from "node:http";
import https from "node:https";
import { concat } from "../lib/bytes.ts";
import { ConfidantError } from "../lib/errors.ts";

/** An answer of the node. */
export interface NodeResponse {
  status: number;
  body: unknown;
}

/** The operator's view of a node endpoint (a real connection, or a test double). */
export interface NodeTransport {
  post(path: string, body: unknown): Promise<NodeResponse>;
}

/** Largest answer read (bytes). */
export const MAX_NODE_RESPONSE = 512 * 1024;

/** A transport to `url` (`http://` or `https://HOST:PORT`). */
export function nodeTransport(url: string, opts: { timeoutMs?: number } = {}): NodeTransport {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ConfidantError("cluster.url", `not a URL: ${JSON.stringify(url.slice(0, 100))}`);
  }
  if (u.protocol !== "https:" && u.protocol !== "http:") {
    throw new ConfidantError("cluster.url", "the node URL must be https:// or http://");
  }
  const mod = u.protocol === "https:" ? https : http;
  const timeoutMs = opts.timeoutMs ?? 600_000;
  const base = u.pathname.replace(/\/$/, "");
  return {
    post(path, body) {
      const data = JSON.stringify(body);
      return new Promise((resolve, reject) => {
        const req = mod.request({
          host: u.hostname.replace(/^\[|\]$/g, ""),
          port: Number(u.port || (u.protocol === "https:" ? 443 : 80)),
          path: base + path,
          method: "POST",
          headers: {
            "content-type": "application/json",
            "content-length": String(new TextEncoder().encode(data).length),
          },
          rejectUnauthorized: false,
          timeout: timeoutMs,
        } as https.RequestOptions, (res) => {
          const chunks: Uint8Array[] = [];
          let total = 0;
          res.on("data", (c: Uint8Array) => {
            total += c.length;
            if (total > MAX_NODE_RESPONSE) {
              req.destroy();
              reject(new ConfidantError("cluster.response", "the node's answer is too large"));
            } else chunks.push(c);
          });
          res.on("end", () => {
            const text = new TextDecoder().decode(concat(...chunks));
            try {
              resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) });
            } catch {
              reject(
                new ConfidantError(
                  "cluster.response",
                  `the node answered ${res.statusCode} with non-JSON`,
                ),
              );
            }
          });
          res.on("error", (e) => reject(connectError(e)));
        });
        req.on("timeout", () => {
          req.destroy();
          reject(new ConfidantError("cluster.timeout", "the node did not answer in time"));
        });
        req.on("error", (e) => reject(connectError(e)));
        req.end(data);
      });
    },
  };
}

function connectError(e: unknown): ConfidantError {
  if (e instanceof ConfidantError) return e;
  return new ConfidantError("cluster.connect", `node request failed: ${(e as Error)?.message}`, {
    cause: e,
  });
}
