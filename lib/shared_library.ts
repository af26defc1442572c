/**
 * Where the shared libraries the program opens through FFI live. Deno checks
 * `--allow-ffi` against the path given to `Deno.dlopen`, so the program opens
 * absolute paths from a fixed list of system library directories, and the
 * permission list (tools/permissions.ts) names exactly those files.
 *
 * @module
 */

/** System library directories searched, in order (Debian multiarch first). */
export const LIBRARY_DIRS: readonly string[] = [
  "/usr/lib/x86_64-linux-gnu",
  "/lib/x86_64-linux-gnu",
  "/usr/lib64",
  "/usr/lib",
];

/** Every absolute path at which `soname` may be opened (for the permission list). */
export function libraryCandidates(soname: string): string[] {
  return LIBRARY_DIRS.map((d) => `${d}/${soname}`);
}

/**
 * The absolute path of `soname` in the first library directory that has it, or
 * `soname` itself when none does (dlopen's own search then decides, and the
 * error names the soname).
 */
export function findSharedLibrary(soname: string): string {
  for (const path of libraryCandidates(soname)) {
    try {
      if (Deno.statSync(path).isFile) return path;
    } catch {
      // not here, or not readable: try the next directory
    }
  }
  return soname;
}
