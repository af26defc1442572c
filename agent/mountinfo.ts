/**
 * Parser of `/proc/self/mountinfo` (proc(5)), to learn whether a path is a
 * mount point and which file system holds it. Pure and bounded.
 *
 * @module
 */
import { ParseError } from "../lib/errors.ts";

/** One mount. */
export interface MountEntry {
  mountPoint: string;
  fsType: string;
  source: string;
}

/** Largest mountinfo accepted (bytes). */
export const MAX_MOUNTINFO_BYTES = 4 * 1024 * 1024;

function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Parse mountinfo text; a malformed line is a ParseError. */
export function parseMountinfo(text: string): MountEntry[] {
  if (text.length > MAX_MOUNTINFO_BYTES) throw new ParseError("mountinfo", "mountinfo too large");
  const out: MountEntry[] = [];
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    const fields = line.split(" ");
    const sep = fields.indexOf("-", 6);
    if (fields.length < 10 || sep < 0 || sep + 2 >= fields.length) {
      throw new ParseError("mountinfo", `malformed mountinfo line: ${line.slice(0, 120)}`);
    }
    out.push({
      mountPoint: unescape(fields[4]),
      fsType: fields[sep + 1],
      source: unescape(fields[sep + 2]),
    });
  }
  return out;
}

/** The mount holding `path` (longest mount-point prefix; later mounts shadow earlier ones). */
export function mountOf(entries: MountEntry[], path: string): MountEntry | undefined {
  let best: MountEntry | undefined;
  for (const e of entries) {
    const mp = e.mountPoint;
    const under = mp === "/" || path === mp || path.startsWith(mp.endsWith("/") ? mp : mp + "/");
    if (under && (!best || mp.length >= best.mountPoint.length)) best = e;
  }
  return best;
}

/** `path` is itself a mount point. */
export function isMountPoint(entries: MountEntry[], path: string): boolean {
  const p = path.length > 1 ? path.replace(/\/+$/, "") : path;
  return entries.some((e) => e.mountPoint === p);
}
