/**
 * The one permission list of the `confidant` program. `deno task compile` bakes it
 * into the binary and `deno task bundle` writes it into the launcher that runs the
 * bundle with the pinned deno, so both forms of the program get the same rights.
 *
 * What is narrowed, and what is not (and why):
 * - run: only the named programs the agent, the disk code and the box drive.
 * - ffi: only libcryptsetup (the state disk) and libcrypto (fast ECDSA in the KMS).
 * - env: only the named variables.
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

/** Shared libraries opened through FFI. */
export const ALLOWED_LIBRARIES = ["libcryptsetup.so.12", "libcrypto.so.3"] as const;

/** Environment variables the program reads. */
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

/** The flags, in the order deno takes them. */
export const PERMISSION_FLAGS: string[] = [
  "--allow-read",
  "--allow-write",
  "--allow-net",
  `--allow-env=${ALLOWED_ENV.join(",")}`,
  `--allow-run=${ALLOWED_COMMANDS.join(",")}`,
  `--allow-ffi=${ALLOWED_LIBRARIES.join(",")}`,
  "--allow-sys=hostname,osRelease,loadavg,systemMemoryInfo,networkInterfaces,uid",
];
