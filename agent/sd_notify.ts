/**
 * systemd's readiness protocol (sd_notify(3)) behind the {@link Notifier} port.
 *
 * Two ways, chosen at run time:
 * - native: one datagram to the `NOTIFY_SOCKET` path through `Deno.listenDatagram`
 *   (`transport: "unixpacket"`, which is SOCK_DGRAM on a unix socket). That API is
 *   behind `--unstable-net` in Deno 2.9, so the shipped launcher does not have it.
 * - fallback: `systemd-notify KEY=VALUE...`. A child process is not the main PID,
 *   so the unit sets `NotifyAccess=all` (see agent/systemd/confidant-agent.service).
 *
 * Without `NOTIFY_SOCKET` (not started by systemd) notifications are dropped.
 *
 * @module
 */
import { join } from "node:path";
import { ConfidantError } from "../lib/errors.ts";
import { toHex } from "../lib/bytes.ts";
import type { CommandRunner, Notifier } from "./ports.ts";

/** Encode assignments as the protocol's newline-separated text; refuses newlines in values. */
export function encodeNotification(fields: Record<string, string>): string {
  const lines: string[] = [];
  for (const [k, v] of Object.entries(fields)) {
    if (!/^[A-Z_][A-Z0-9_]*$/.test(k)) {
      throw new ConfidantError("agent.sd_notify", `bad notification key ${JSON.stringify(k)}`);
    }
    if (/[\n\0]/.test(v)) {
      throw new ConfidantError("agent.sd_notify", `notification ${k} has a newline`);
    }
    lines.push(`${k}=${v}`);
  }
  return lines.join("\n") + "\n";
}

interface DatagramConnLike {
  send(p: Uint8Array, addr: { transport: "unixpacket"; path: string }): Promise<number>;
  close(): void;
}
type ListenDatagram = (o: { transport: "unixpacket"; path: string }) => DatagramConnLike;

/** Which way {@link createNotifier} chose. */
export type NotifyMode = "none" | "native" | "systemd-notify";

/** Options of {@link createNotifier}. */
export interface NotifierOptions {
  /** Value of `NOTIFY_SOCKET`. */
  socket: string | undefined;
  runner: CommandRunner;
  /** Directory for the sending socket of the native way (default /run). */
  runtimeDir?: string;
  /** Force a mode (tests). */
  mode?: NotifyMode;
}

/** A notifier for the environment, and which mode it uses. */
export function createNotifier(opts: NotifierOptions): Notifier & { mode: NotifyMode } {
  const listen = (Deno as unknown as { listenDatagram?: ListenDatagram }).listenDatagram;
  const socket = opts.socket;
  const mode: NotifyMode = opts.mode ??
    (!socket
      ? "none"
      : typeof listen === "function" && socket.startsWith("/")
      ? "native"
      : "systemd-notify");
  return {
    mode,
    async notify(fields) {
      const text = encodeNotification(fields);
      if (mode === "none" || !socket) return;
      if (mode === "native") {
        if (typeof listen !== "function") {
          throw new ConfidantError("agent.sd_notify", "Deno.listenDatagram needs --unstable-net");
        }
        const path = join(
          opts.runtimeDir ?? "/run",
          `confidant-notify-${toHex(crypto.getRandomValues(new Uint8Array(6)))}.sock`,
        );
        const conn = listen({ transport: "unixpacket", path });
        try {
          await conn.send(new TextEncoder().encode(text), {
            transport: "unixpacket",
            path: socket,
          });
        } finally {
          conn.close();
          await Deno.remove(path).catch(() => {});
        }
        return;
      }
      const r = await opts.runner.run(
        ["systemd-notify", ...Object.entries(fields).map(([k, v]) => `${k}=${v}`)],
        {},
      );
      if (r.code !== 0) {
        throw new ConfidantError(
          "agent.sd_notify",
          `systemd-notify exited with ${r.code}: ${r.lines.slice(-3).join(" / ")}`,
        );
      }
    },
  };
}
