import assert from "node:assert/strict";
import { loadAgentConfig, parseKernelCmdline, splitKernelCmdline } from "../../agent/config.ts";
import { ConfidantError } from "../../lib/errors.ts";

const FP = "ab".repeat(32);
const MINIMAL = `
kms:
  url: https://10.0.0.1:9443
  fingerprint: ${FP}
disk:
  device: /dev/vdb
role: worker
`;

function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ConfidantError, `not a ConfidantError: ${e}`);
    assert.equal(e.code, "agent.config");
    return e.message;
  }
  assert.fail("no error thrown");
}

Deno.test("loadAgentConfig() fills defaults for a minimal file", () => {
  const { config, sources } = loadAgentConfig(MINIMAL);
  assert.equal(config.kms?.url, "https://10.0.0.1:9443");
  assert.equal(config.tpm.device, "/dev/tpmrm0");
  assert.equal(config.disk.mountPoint, "/var/lib/confidant");
  assert.equal(config.kubeadm.criSocket, "unix:///run/containerd/containerd.sock");
  assert.equal(config.kubeadm.runtimeDir, "/run/confidant");
  assert.equal(config.cilium.strictModeKeys, "egress");
  assert.equal(config.nodeName.source, "hostname");
  assert.deepEqual(sources.fromCmdline, []);
});

Deno.test("loadAgentConfig() names an unknown key, nested or top-level", () => {
  assert.match(
    configError(() => loadAgentConfig(MINIMAL + "kubeadm:\n  joinTimeout: 5\n")),
    /unknown key kubeadm\.joinTimeout/,
  );
  assert.match(configError(() => loadAgentConfig(MINIMAL + "colour: red\n")), /unknown key colour/);
});

Deno.test("loadAgentConfig() names a missing or malformed field", () => {
  assert.match(
    configError(() => loadAgentConfig("role: worker\ndisk: { device: /dev/vdb }\n")),
    /kms/,
  );
  assert.match(
    configError(() => loadAgentConfig(MINIMAL.replace(FP, "XYZ"))),
    /kms\.fingerprint/,
  );
  assert.match(configError(() => loadAgentConfig(MINIMAL.replace("worker", "boss"))), /role/);
  assert.match(configError(() => loadAgentConfig("- a\n- b\n")), /mapping/);
  assert.match(configError(() => loadAgentConfig("a: [\n")), /YAML/);
  assert.match(
    configError(() => loadAgentConfig(MINIMAL + "nodeName:\n  source: config\n")),
    /nodeName\.name/,
  );
});

Deno.test("loadAgentConfig() takes values from the kernel command line over the file", () => {
  const cmdline =
    `BOOT_IMAGE=/vmlinuz root=/dev/vda1 quiet confidant.kms=https://kms.internal:7000 ` +
    `confidant.role=control-plane confidant.node_name=cp-1 confidant.cilium_apply console=ttyS0`;
  const { config, sources } = loadAgentConfig(MINIMAL, cmdline);
  assert.equal(config.kms?.url, "https://kms.internal:7000");
  assert.equal(config.kms?.fingerprint, FP);
  assert.equal(config.role, "control-plane");
  assert.deepEqual(config.nodeName, { source: "config", name: "cp-1" });
  assert.equal(config.cilium.applyConfig, true);
  assert.deepEqual(sources.fromCmdline.sort(), [
    "cilium.applyConfig",
    "kms.url",
    "nodeName.name",
    "role",
  ]);
});

Deno.test("loadAgentConfig() joins by default; confidant.join=false turns the join off", () => {
  assert.equal(loadAgentConfig(MINIMAL).config.kubeadm.join, true);
  assert.equal(loadAgentConfig(MINIMAL, "confidant.join=false").config.kubeadm.join, false);
  assert.equal(loadAgentConfig(MINIMAL, "confidant.join").config.kubeadm.join, true);
  assert.equal(loadAgentConfig(MINIMAL + "kubeadm:\n  join: false\n").config.kubeadm.join, false);
});

Deno.test("loadAgentConfig() works from the command line alone", () => {
  const { config } = loadAgentConfig(
    "",
    `confidant.kms=https://10.1.1.1:443 confidant.kms_fingerprint=${FP} confidant.disk=/dev/sdb ` +
      `confidant.role=worker`,
  );
  assert.equal(config.disk.device, "/dev/sdb");
});

Deno.test("parseKernelCmdline() refuses unknown, repeated and empty confidant keys", () => {
  assert.throws(() => parseKernelCmdline("confidant.kmss=x"), /unknown key "confidant\.kmss"/);
  assert.throws(() => parseKernelCmdline("confidant.role=a confidant.role=b"), /twice/);
  assert.throws(() => parseKernelCmdline("confidant.kms="), /needs a value/);
  assert.throws(() => parseKernelCmdline("confidant.cilium_apply=maybe"), /true or false/);
  assert.equal(parseKernelCmdline("quiet splash foo.bar=1").size, 0);
});

Deno.test("splitKernelCmdline() groups double-quoted values and refuses an open quote", () => {
  assert.deepEqual(splitKernelCmdline(' a=1  b="x y"\n c '), ["a=1", "b=x y", "c"]);
  assert.throws(() => splitKernelCmdline('a="x'), /unclosed quote/);
  assert.throws(() => splitKernelCmdline("x".repeat(70000)), /too long/);
});

Deno.test("loadAgentConfig() refuses a KMS URL that is not https", () => {
  assert.match(
    configError(() => loadAgentConfig(MINIMAL.replace("https://", "http://"))),
    /kms\.url: must be an https:\/\/ URL/,
  );
});

Deno.test("loadAgentConfig() accepts role init without a KMS and refuses other roles without one", () => {
  const { config } = loadAgentConfig("disk: { device: /dev/vdb }\n", "confidant.role=init");
  assert.equal(config.role, "init");
  assert.equal(config.kms, undefined);
  assert.throws(
    () => loadAgentConfig("disk: { device: /dev/vdb }\nrole: worker\n"),
    /kms: kms is required unless role is init/,
  );
});

Deno.test("loadAgentConfig() attestation.tee: default auto, the four choices, strict, command line", async (t) => {
  await t.step("default auto", () => {
    assert.deepEqual(loadAgentConfig(MINIMAL).config.attestation, { tee: "auto" });
    assert.deepEqual(loadAgentConfig(MINIMAL + "attestation: {}\n").config.attestation, {
      tee: "auto",
    });
  });
  await t.step("each choice", () => {
    for (const tee of ["auto", "sev-snp", "tdx", "none"]) {
      assert.equal(
        loadAgentConfig(MINIMAL + `attestation:\n  tee: ${tee}\n`).config.attestation.tee,
        tee,
      );
    }
  });
  await t.step("an unknown choice or key is named", () => {
    assert.match(
      configError(() => loadAgentConfig(MINIMAL + "attestation:\n  tee: sgx\n")),
      /attestation\.tee/,
    );
    assert.match(
      configError(() => loadAgentConfig(MINIMAL + "attestation:\n  tee: tdx\n  vmpl: 0\n")),
      /unknown key attestation\.vmpl/,
    );
  });
  await t.step("confidant.tee on the kernel command line", () => {
    const { config, sources } = loadAgentConfig(
      MINIMAL + "attestation:\n  tee: none\n",
      "quiet confidant.tee=sev-snp",
    );
    assert.equal(config.attestation.tee, "sev-snp");
    assert.deepEqual(sources.fromCmdline, ["attestation.tee"]);
  });
});
