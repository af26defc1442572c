import assert from "node:assert/strict";
import { atomicWriteFile } from "../../lib/atomic_write.ts";

Deno.test("atomicWriteFile() replaces a file whole, with mode 0600, leaving no temp file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/state.json`;
    await atomicWriteFile(path, "first");
    await atomicWriteFile(path, "second");
    assert.equal(await Deno.readTextFile(path), "second");
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    const names = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    assert.deepEqual(names, ["state.json"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("atomicWriteFile() leaves the old file when the directory is gone", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.remove(dir);
  await assert.rejects(() => atomicWriteFile(`${dir}/x`, "y"));
});
