import assert from "node:assert/strict";
import { moduleClosure, moduleName, parseModulesDep } from "../../image/modules.ts";

const DEP = `kernel/drivers/md/dm-crypt.ko: kernel/drivers/md/dm-mod.ko kernel/lib/x.ko
kernel/drivers/md/dm-mod.ko:
kernel/lib/x.ko:
kernel/crypto/xts.ko:
kernel/crypto/cbc.ko:
`;

Deno.test("moduleClosure() adds dependencies and directory prefixes", () => {
  const dep = parseModulesDep(DEP);
  assert.deepEqual(moduleClosure(dep, new Set(["ext4"]), ["dm_crypt", "ext4"]), [
    "kernel/drivers/md/dm-crypt.ko",
    "kernel/drivers/md/dm-mod.ko",
    "kernel/lib/x.ko",
  ]);
  assert.deepEqual(moduleClosure(dep, new Set(), ["kernel/crypto/"]), [
    "kernel/crypto/cbc.ko",
    "kernel/crypto/xts.ko",
  ]);
});

Deno.test("moduleClosure() refuses a module the kernel does not have", () => {
  assert.throws(() => moduleClosure(parseModulesDep(DEP), new Set(), ["nope"]), /no module/);
  assert.throws(
    () => moduleClosure(parseModulesDep(DEP), new Set(), ["kernel/net/"]),
    /no modules/,
  );
});

Deno.test("parseModulesDep() refuses a line without a colon; moduleName() normalises", () => {
  assert.throws(() => parseModulesDep("garbage line\n"), /malformed/);
  assert.equal(moduleName("kernel/drivers/md/dm-crypt.ko"), "dm_crypt");
  assert.equal(moduleName("a/b-c.ko.zst"), "b_c");
});
