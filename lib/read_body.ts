/**
 * Reading an HTTP request body from an untrusted client: a declared Content-Length must be a
 * plain decimal number no larger than the cap, the stream is read chunk by chunk and stopped
 * as soon as it passes the cap (never buffered whole first), and a body that does not arrive
 * before the deadline is abandoned. Used by the KMS (kms/app.ts) and the node's init endpoint
 * (agent/init_http.ts).
 *
 * @module
 */
import { ConfidantError } from "./errors.ts";

/** A body that was refused, with the HTTP status to answer (400, 408 or 413). */
export class BodyError extends ConfidantError {
  constructor(readonly status: 400 | 408 | 413, message: string) {
    super("http.body", message);
    this.name = "BodyError";
  }
}

/** Read at most `max` bytes of `req`'s body within `timeoutMs`; throws {@link BodyError}. */
export async function readCappedBody(
  req: Request,
  max: number,
  timeoutMs: number,
): Promise<Uint8Array> {
  const declared = req.headers.get("content-length");
  if (declared !== null) {
    if (!/^\d{1,15}$/.test(declared)) throw new BodyError(400, "bad content-length");
    if (Number(declared) > max) throw new BodyError(413, `body larger than ${max} bytes`);
  }
  if (!req.body) return new Uint8Array(0);
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new BodyError(408, "request body too slow")), timeoutMs);
  });
  try {
    for (;;) {
      const { done, value } = await Promise.race([reader.read(), deadline]);
      if (done) break;
      total += value.length;
      if (total > max) throw new BodyError(413, `body larger than ${max} bytes`);
      chunks.push(value);
    }
  } catch (e) {
    reader.cancel().catch(() => {});
    // A body that breaks off (connection reset or closed mid-body) is the client's fault.
    throw e instanceof BodyError ? e : new BodyError(400, "request body could not be read");
  } finally {
    clearTimeout(timer);
  }
  const out = new Uint8Array(total);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}
