import assert from "node:assert/strict";
import { join } from "node:path";
import { type CpioEntry, cpioHeader, writeCpio } from "../../image/cpio.ts";
import { sha256, toHex } from "../../lib/bytes.ts";

async function archive(entries: CpioEntry[], mtime = 0): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  await writeCpio(
    { write: (p) => (chunks.push(p.slice()), Promise.resolve(p.length)) },
    entries,
    mtime,
  );
  return new Uint8Array(chunks.flatMap((c) => [...c]));
}

Deno.test("cpioHeader() pads header plus name to 4 bytes and refuses bad names", () => {
  const h = cpioHeader("init", 0o100755, 5, 1, 0);
  assert.equal(h.length % 4, 0);
  assert.equal(new TextDecoder().decode(h.subarray(0, 6)), "070701");
  assert.throws(() => cpioHeader("/abs", 0o100644, 0, 1, 0));
  assert.throws(() => cpioHeader("a", 0o100644, -1, 1, 0));
  assert.throws(() => cpioHeader("a", 0o100644, 2 ** 32, 1, 0));
});

Deno.test("writeCpio() output is read back by GNU cpio and is deterministic", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const src = join(dir, "src.bin");
    await Deno.writeFile(src, new Uint8Array([1, 2, 3, 4, 5, 6, 7]));
    const entries: CpioEntry[] = [
      { kind: "dir", path: "etc", mode: 0o755 },
      { kind: "data", path: "etc/hello", mode: 0o644, data: new TextEncoder().encode("hi\n") },
      { kind: "file", path: "etc/src.bin", mode: 0o600, source: src, size: 7 },
      { kind: "symlink", path: "etc/link", target: "hello" },
    ];
    const a = await archive(entries);
    assert.equal(toHex(await sha256(a)), toHex(await sha256(await archive(entries))));
    const path = join(dir, "a.cpio");
    await Deno.writeFile(path, a);
    const out = await new Deno.Command("cpio", {
      args: ["-itv", "-F", path],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
    const listing = new TextDecoder().decode(out.stdout);
    assert.match(listing, /^drwxr-xr-x .* etc$/m);
    assert.match(listing, /^-rw-r--r-- .* 3 .* etc\/hello$/m);
    assert.match(listing, /^-rw------- .* 7 .* etc\/src.bin$/m);
    assert.match(listing, /^lrwxrwxrwx .* etc\/link -> hello$/m);
    // a file that changed size after planning is an error, not a corrupt archive
    await assert.rejects(
      archive([{ kind: "file", path: "x", mode: 0o644, source: src, size: 6 }]),
      /changed size/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
