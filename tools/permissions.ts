/**
 * The one permission list of the `confidant` program. `deno task compile` bakes it
 * into the binary and `deno task bundle` writes it into the launcher that runs the
 * bundle with the pinned deno, so both forms of the program get the same rights.
 *
 * What is narrowed, and what is not (and why):
 * - run: only the named programs the agent, the disk code and the box drive.
 * - ffi: open. The program opens only libcryptsetup (the state disk) and libcrypto
 *   (fast ECDSA), by absolute path (lib/shared_library.ts), but Deno 2.9 checks the
 *   pointer and pointer-view APIs against an unrestricted grant, so a path-scoped
 *   `--allow-ffi` cannot run it (tests/tools/bundle_test.ts shows this). FFI is
 *   native code, equivalent to full access either way.
 * - env: open. @kubernetes/client-node loads the `debug` package, which lists
 *   the whole environment at import time; Deno cannot grant that listing with a
 *   named-variable allow-list. The variables the program itself reads are in
 *   ALLOWED_ENV (documentation and the contract the tests check).
 * - sys: only the host facts the agent reports.
 * - read/write/net stay open: the CLI reads documents, policies and key files and
 *   writes outputs at paths the operator names, and the KMS URL is configuration.
 *   On a node the systemd unit confines the service instead (ProtectSystem=strict,
 *   ReadWritePaths, PrivateTmp, device allow-list); see agent/systemd/.
 *
 * @module
 */

/** Programs the process may start. */
export const ALLOWED_COMMANDS = [
  "cryptsetup",
  "mkfs.ext4",
  "mount",
  "umount",
  "modprobe",
  "wg",
  "ip",
  "kubeadm",
  "systemd-notify",
  "swtpm",
  "swtpm_setup",
  "qemu-system-x86_64",
  "openssl",
] as const;

/** Shared libraries the program opens through FFI (by absolute path, see lib/shared_library.ts). */
export const ALLOWED_LIBRARIES = ["libcryptsetup.so.12", "libcrypto.so.3"] as const;

/** Environment variables the program itself reads (see the note on env above). */
export const ALLOWED_ENV = [
  "CONFIDANT_LOG_LEVEL",
  "CONFIDANT_KMS_KEK",
  "CONFIDANT_KMS_KEK_FILE",
  "NOTIFY_SOCKET",
  "KUBECONFIG",
  "KUBERNETES_SERVICE_HOST",
  "KUBERNETES_SERVICE_PORT",
  "HOME",
  "PATH",
  "TMPDIR",
  "DENO_DIR",
] as const;

/**
 * Runtime features beyond the stable API: `net` gives `Deno.serve({ reusePort })`
 * with TLS (`kms serve --reuse-port`, one process per core on one port) and
 * unix datagram sockets (sd_notify without a helper process). deno.json enables
 * the same set for `deno task`.
 */
export const UNSTABLE_FLAGS: string[] = ["--unstable-net"];

/** The flags, in the order deno takes them. */
export const PERMISSION_FLAGS: string[] = [
  "--allow-read",
  "--allow-write",
  "--allow-net",
  "--allow-env",
  `--allow-run=${ALLOWED_COMMANDS.join(",")}`,
  "--allow-ffi",
  "--allow-sys=hostname,osRelease,loadavg,systemMemoryInfo,networkInterfaces,uid",
];

/** Everything deno needs to run the program: unstable features, then permissions. */
export const RUNTIME_FLAGS: string[] = [...UNSTABLE_FLAGS, ...PERMISSION_FLAGS];

/**
 * The node agent's flags (the node image's /usr/bin/confidant). Deno 2.9 answers
 * any read under /proc or /sys with "requires all access" whatever --allow-read
 * names, and the agent must read /proc/cmdline (its configuration),
 * /proc/self/mountinfo (idempotent mounts), /sys/class/tpm and the configfs-tsm
 * tree. So on the node the program runs with --allow-all; the systemd unit and
 * the read-only, measured initrd are what confine it there. The KMS and the
 * operator's CLI keep {@link RUNTIME_FLAGS}.
 */
export const NODE_RUNTIME_FLAGS: string[] = [...UNSTABLE_FLAGS, "--allow-all"];

/** Flags as a shell-safe string (launchers, the node image). */
export function flagsForShell(flags: readonly string[] = RUNTIME_FLAGS): string {
  return flags.map((f) => `'${f.replaceAll("'", "'\\''")}'`).join(" ");
}
