/**
 * Opens a transport from a spec string: a device path (`/dev/tpmrm0`, `/dev/tpm0`) or
 * `swtpm:HOST:PORT` (swtpm's TCP data port).
 *
 * @module
 */
import { UsageError } from "../../../lib/errors.ts";
import { DeviceTransport } from "./device.ts";
import { SwtpmTransport } from "./swtpm.ts";
import type { TpmTransport } from "./transport.ts";

/** A parsed transport spec. */
export type TransportSpec =
  | { kind: "device"; path: string }
  | { kind: "swtpm"; host: string; port: number };

/** Parses `/dev/...` or `swtpm:HOST:PORT` (HOST may be `[v6addr]`); anything else is a UsageError. */
export function parseTransportSpec(spec: string): TransportSpec {
  if (/^\/dev\/[A-Za-z0-9_./-]+$/.test(spec) && !spec.includes("..")) {
    return { kind: "device", path: spec };
  }
  const m = /^swtpm:(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(spec);
  if (m) {
    const port = Number(m[2]);
    if (port >= 1 && port <= 65535) {
      return { kind: "swtpm", host: m[1].replace(/^\[|\]$/g, ""), port };
    }
  }
  throw new UsageError(`TPM "${spec}" is neither a /dev/ path nor swtpm:HOST:PORT`);
}

/** Opens the transport named by `spec` (devices are opened on first use). */
export function openTransport(spec: string, opts: { timeoutMs?: number } = {}): TpmTransport {
  const s = parseTransportSpec(spec);
  return s.kind === "device"
    ? new DeviceTransport(s.path, opts)
    : new SwtpmTransport(s.host, s.port, opts);
}
