import assert from "node:assert/strict";
import { mergedUsrPath, TreePlan } from "../../image/tree.ts";
import { parseAptShow } from "../../image/debian.ts";

Deno.test("mergedUsrPath() moves /bin, /sbin, /lib, /lib64 under usr", () => {
  assert.equal(
    mergedUsrPath("lib/x86_64-linux-gnu/libc.so.6"),
    "usr/lib/x86_64-linux-gnu/libc.so.6",
  );
  assert.equal(mergedUsrPath("/sbin/mkfs.ext4"), "usr/sbin/mkfs.ext4");
  assert.equal(mergedUsrPath("usr/bin/x"), "usr/bin/x");
  assert.equal(mergedUsrPath("library/x"), "library/x");
});

Deno.test("TreePlan.entries() adds parents, sorts, and refuses a file used as a directory", () => {
  const t = new TreePlan();
  t.data("usr/bin/b", "x");
  t.data("usr/bin-a", "x");
  t.symlink("bin", "usr/bin");
  assert.deepEqual(
    t.entries().map((e) => e.path),
    ["bin", "usr", "usr/bin", "usr/bin/b", "usr/bin-a"].sort(
      (a, b) => (a < b ? -1 : 1),
    ),
  );
  t.data("bin/x", "y");
  assert.throws(() => t.entries(), /not a directory/);
  assert.throws(() => t.data("../etc/x", "y"), /bad member path/);
});

Deno.test("parseAptShow() pins name, version and SHA-256 of each stanza", () => {
  const sum = "a".repeat(64);
  const text = `Package: libc6\nVersion: 2.36-9\nArchitecture: amd64\nSHA256: ${sum}\n\n` +
    `Package: kmod\nVersion: 30+20221128-1\nArchitecture: amd64\nSHA256: ${sum}\n`;
  assert.deepEqual(parseAptShow(text).map((p) => p.name), ["libc6", "kmod"]);
  assert.throws(() => parseAptShow("Package: x\nVersion: 1\n"), /lacks/);
  assert.throws(
    () => parseAptShow(`Package: x\nVersion: 1\nArchitecture: a\nSHA256: zz\n`),
    /SHA256/,
  );
});
