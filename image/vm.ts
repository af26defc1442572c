/**
 * Boot a node UKI the realistic way: OVMF (UEFI) finds it as
 * \EFI\BOOT\BOOTX64.EFI on an ESP and measures it into PCR 4, systemd-stub
 * measures its sections into PCR 11; the vTPM is swtpm (optionally provisioned
 * with an EK certificate from swtpm's local CA). QEMU runs with TCG.
 *
 * The ESP is a directory served by QEMU's virtual FAT driver (`fat:` read-only),
 * so no FAT tooling (dosfstools, mtools) is needed. The console goes to a file
 * so that a VM started by `confidant up` outlives the command.
 *
 * @module
 */
import { join } from "node:path";
import { ConfidantError } from "../lib/errors.ts";
import { KMS_GUEST_ADDR } from "./cluster.ts";
import { startSwtpmTcp, startSwtpmUnixSocket } from "./swtpm.ts";

/** Debian 12 OVMF firmware (package ovmf). */
export const OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd";
/** Template of the UEFI variable store (copied per VM). */
export const OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/** A raw disk for the VM (virtio-blk). */
export interface VmDisk {
  path: string;
  /** Serial visible at /sys/block/vdX/serial (at most 20 characters of [A-Za-z0-9_.-]). */
  serial?: string;
}

/** Options of {@link startUefiVm}. */
export interface UefiVmOptions {
  /** The UKI to boot. */
  uki: string;
  /** Directory for this VM's ESP, variable store, sockets and console log (created). */
  runDir: string;
  /** swtpm state directory (keep it to reboot with the same TPM). */
  tpmStateDir: string;
  /** State disks. */
  disks?: VmDisk[];
  /** User-mode networking: the guest reaches the host's loopback as 10.0.2.2. */
  network?: boolean;
  /**
   * With `network`: forward the guest's connections to KMS_GUEST_ADDR
   * (10.0.2.100:8443) to this port on the host's 127.0.0.1 (one `busybox nc`
   * relay per connection; busybox-static).
   */
  kmsHostPort?: number;
  /**
   * With `network`: host name the DHCP server hands out (the node's name; not measured,
   * like any cloud's instance name).
   */
  hostname?: string;
  memoryMiB?: number;
  cpus?: number;
  /**
   * Start swtpm and QEMU in their own session (setsid), so that they survive
   * the terminal's Ctrl-C and the end of the starting process (`confidant up`).
   */
  detached?: boolean;
}

/** A started VM. */
export interface UefiVm {
  qemuPid: number;
  swtpmPid: number;
  /** File the serial console is written to. */
  consolePath: string;
  /** Resolves when QEMU exits (swtpm is stopped then too). */
  exited: Promise<Deno.CommandStatus>;
  /** Kill QEMU and swtpm (SIGKILL / SIGTERM) and wait for them. */
  kill(): Promise<void>;
  /** Let this process exit while the VM keeps running (for `confidant up`). */
  detach(): void;
}

/** Everything {@link uefiQemuArgs} needs (pure). */
export interface UefiQemuConfig {
  espDir: string;
  varsPath: string;
  tpmSocket: string;
  consolePath: string;
  disks: VmDisk[];
  network: boolean;
  /** Host loopback port that the guest's KMS_GUEST_ADDR is forwarded to. */
  kmsHostPort?: number;
  /** DHCP host name of the guest. */
  hostname?: string;
  memoryMiB: number;
  cpus: number;
}

/** QEMU arguments for booting the ESP under OVMF with a vTPM (pure). */
export function uefiQemuArgs(c: UefiQemuConfig): string[] {
  for (const p of [c.espDir, c.varsPath, c.tpmSocket, ...c.disks.map((d) => d.path)]) {
    if (/[,=]/.test(p)) throw new ConfidantError("vm.path", `path ${p} contains ',' or '='`);
  }
  const a = [
    "-accel",
    "tcg,thread=multi",
    "-cpu",
    "max",
    "-machine",
    "q35",
    "-smp",
    String(c.cpus),
    "-m",
    String(c.memoryMiB),
    "-nodefaults",
    "-no-user-config",
    "-display",
    "none",
    "-monitor",
    "none",
    "-serial",
    `file:${c.consolePath}`,
    "-no-reboot",
    "-drive",
    `if=pflash,format=raw,readonly=on,file=${OVMF_CODE}`,
    "-drive",
    `if=pflash,format=raw,file=${c.varsPath}`,
    "-chardev",
    `socket,id=chrtpm,path=${c.tpmSocket}`,
    "-tpmdev",
    "emulator,id=tpm0,chardev=chrtpm",
    "-device",
    "tpm-crb,tpmdev=tpm0",
    "-drive",
    `file=fat:${c.espDir},format=raw,if=none,id=esp,readonly=on`,
    "-device",
    "virtio-blk-pci,drive=esp,bootindex=0",
  ];
  c.disks.forEach((d, i) => {
    if (d.serial !== undefined && !/^[A-Za-z0-9_.-]{1,20}$/.test(d.serial)) {
      throw new ConfidantError("vm.disk", `disk serial ${JSON.stringify(d.serial)} is invalid`);
    }
    a.push(
      "-drive",
      `file=${d.path},format=raw,if=none,id=disk${i}`,
      "-device",
      `virtio-blk-pci,drive=disk${i}${d.serial ? `,serial=${d.serial}` : ""}`,
    );
  });
  if (c.network) {
    let netdev = "user,id=n0";
    if (c.hostname !== undefined) {
      if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(c.hostname)) {
        throw new ConfidantError("vm.hostname", `bad host name ${JSON.stringify(c.hostname)}`);
      }
      netdev += `,hostname=${c.hostname}`;
    }
    if (c.kmsHostPort !== undefined) {
      if (!Number.isInteger(c.kmsHostPort) || c.kmsHostPort < 1 || c.kmsHostPort > 65535) {
        throw new ConfidantError("vm.port", `bad KMS port ${c.kmsHostPort}`);
      }
      // cmd: runs one relay per guest connection (a tcp: chardev would be one shared stream)
      netdev += `,guestfwd=tcp:${KMS_GUEST_ADDR}-cmd:busybox nc 127.0.0.1 ${c.kmsHostPort}`;
    }
    a.push("-netdev", netdev, "-device", "virtio-net-pci,netdev=n0");
  }
  return a;
}

async function exists(p: string): Promise<boolean> {
  return await Deno.stat(p).then(() => true, () => false);
}

/**
 * Give an swtpm state directory an EK (RSA and ECC) with certificates signed by
 * swtpm's local CA, and a platform certificate — once; a provisioned directory is
 * left as it is.
 */
export async function provisionSwtpm(stateDir: string): Promise<void> {
  await Deno.mkdir(stateDir, { recursive: true });
  if (await exists(join(stateDir, "tpm2-00.permall"))) return;
  const r = await new Deno.Command("swtpm_setup", {
    args: [
      "--tpm2",
      "--tpmstate",
      stateDir,
      "--create-ek-cert",
      "--create-platform-cert",
      "--ecc",
      "--lock-nvram",
      "--not-overwrite",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output().catch((e) => {
    throw new ConfidantError("vm.tool", `cannot run swtpm_setup (install swtpm-tools): ${e}`);
  });
  if (!r.success) {
    throw new ConfidantError(
      "vm.swtpm",
      `swtpm_setup failed: ${new TextDecoder().decode(r.stderr).trim().split("\n").pop()}`,
    );
  }
  await disableDictionaryAttackLockout(stateDir);
}

/**
 * A VM stopped by `confidant down` or a test never sends TPM2_Shutdown, and a
 * TPM counts every such start as a failed authorization: after a few, the
 * lockout blocks ActivateCredential (TPM_RC_LOCKOUT). A development TPM gets
 * recovery time 0, which turns dictionary-attack protection off.
 */
async function disableDictionaryAttackLockout(stateDir: string): Promise<void> {
  const swtpm = await startSwtpmTcp(stateDir);
  try {
    const env = swtpm.env;
    let last = "";
    for (let i = 0; i < 40; i++) {
      const r = await new Deno.Command("tpm2_dictionarylockout", {
        args: [
          "--setup-parameters",
          "--max-tries=32",
          "--recovery-time=0",
          "--lockout-recovery-time=0",
        ],
        env,
        stdout: "null",
        stderr: "piped",
      }).output().catch((e) => {
        throw new ConfidantError(
          "vm.tool",
          `cannot run tpm2_dictionarylockout (install tpm2-tools): ${e}`,
        );
      });
      if (r.success) {
        await new Deno.Command("tpm2_shutdown", { args: [], env, stdout: "null", stderr: "null" })
          .output();
        return;
      }
      last = new TextDecoder().decode(r.stderr).trim();
      await new Promise((res) => setTimeout(res, 100));
    }
    throw new ConfidantError("vm.swtpm", `could not set the TPM's lockout parameters: ${last}`);
  } finally {
    await swtpm.stop();
  }
}

/** Start swtpm and QEMU for `opts.uki`; the VM runs until it powers off or is killed. */
export async function startUefiVm(opts: UefiVmOptions): Promise<UefiVm> {
  for (const f of [OVMF_CODE, OVMF_VARS]) {
    if (!(await exists(f))) throw new ConfidantError("vm.tool", `${f} not found: install ovmf`);
  }
  await Deno.mkdir(opts.runDir, { recursive: true });
  const espDir = join(opts.runDir, "esp");
  await Deno.mkdir(join(espDir, "EFI/BOOT"), { recursive: true });
  await Deno.copyFile(opts.uki, join(espDir, "EFI/BOOT/BOOTX64.EFI"));
  const varsPath = join(opts.runDir, "OVMF_VARS.fd");
  if (!(await exists(varsPath))) await Deno.copyFile(OVMF_VARS, varsPath);
  const tpmSocket = join(opts.runDir, "swtpm.sock");
  const consolePath = join(opts.runDir, "console.log");
  await Deno.writeTextFile(consolePath, "");
  const swtpm = await startSwtpmUnixSocket({
    stateDir: opts.tpmStateDir,
    socketPath: tpmSocket,
    detached: opts.detached,
    terminate: true,
  });
  const killSwtpm = () => swtpm.stop();
  const args = uefiQemuArgs({
    espDir,
    varsPath,
    tpmSocket,
    consolePath,
    disks: opts.disks ?? [],
    network: opts.network ?? false,
    kmsHostPort: opts.kmsHostPort,
    hostname: opts.hostname,
    memoryMiB: opts.memoryMiB ?? 2048,
    cpus: opts.cpus ?? 2,
  });
  let qemu: Deno.ChildProcess;
  try {
    qemu = new Deno.Command(opts.detached ? "setsid" : "qemu-system-x86_64", {
      args: opts.detached ? ["qemu-system-x86_64", ...args] : args,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
  } catch (e) {
    await killSwtpm();
    throw new ConfidantError(
      "vm.tool",
      `cannot run qemu-system-x86_64 (install qemu-system-x86): ${e}`,
    );
  }
  const exited = qemu.status.then(async (s) => {
    await killSwtpm();
    return s;
  });
  return {
    qemuPid: qemu.pid,
    swtpmPid: swtpm.pid,
    consolePath,
    exited,
    kill: async () => {
      try {
        qemu.kill("SIGKILL");
      } catch { /* gone */ }
      await exited;
    },
    detach: () => {
      qemu.unref();
      swtpm.unref();
    },
  };
}

/**
 * Wait until the console file contains a line matching `pattern`, the VM exits,
 * or `timeoutMs` passes; returns the console text and whether it matched.
 * `onLine` sees each new console line (progress streaming).
 */
export async function waitForConsole(
  vm: Pick<UefiVm, "consolePath" | "exited">,
  pattern: RegExp,
  timeoutMs: number,
  onLine?: (line: string) => void,
): Promise<{ matched: boolean; console: string }> {
  let done = false;
  vm.exited.then(() => (done = true), () => (done = true));
  const deadline = Date.now() + timeoutMs;
  let seen = 0;
  let text = "";
  for (;;) {
    const exitedNow = done;
    text = await Deno.readTextFile(vm.consolePath).catch(() => text);
    if (onLine) {
      const lines = text.split("\n");
      const complete = lines.slice(0, -1);
      for (let i = seen; i < complete.length; i++) onLine(complete[i].replace(/\r$/, ""));
      seen = Math.max(seen, complete.length);
    }
    if (pattern.test(text)) return { matched: true, console: text };
    if (exitedNow || Date.now() > deadline) return { matched: false, console: text };
    await new Promise((r) => setTimeout(r, 250));
  }
}
