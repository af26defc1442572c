/**
 * The audit log: one JSON object per line for every decision (time, source, node identity,
 * request, decision, every failed check). Entries carry public values only: identities are
 * digests, requests name a role, a disk UUID and a node name; keys and tokens never appear.
 *
 * @module
 */

/** One audit entry. */
export interface AuditEntry {
  /** RFC 3339. */
  time: string;
  /** `begin`, `finish`, `reassign`, `policy`. */
  event: string;
  /** `released`, `refused`, `challenged`, `reassigned`, `error`, `reloaded`, `rejected`. */
  decision: string;
  /** Request source (address). */
  source?: string;
  /** Node identity (EK digest, hex) when known. */
  identity?: string;
  /** What was asked. */
  request?: { role?: string; disk?: { uuid: string }; nodeName?: string };
  /** Every failed check. */
  checks?: string[];
  /** Free detail without secrets. */
  detail?: string;
}

/** A sink of audit entries. */
export interface AuditLog {
  record(e: AuditEntry): void;
  /** Wait until every recorded entry is written. */
  flush(): Promise<void>;
}

/** Appends JSON lines to a file (0600), in order, without blocking the request path. */
export class FileAuditLog implements AuditLog {
  private chain: Promise<void> = Promise.resolve();
  private readonly enc = new TextEncoder();
  private file?: Deno.FsFile;
  constructor(readonly path: string) {}

  record(e: AuditEntry): void {
    const line = this.enc.encode(JSON.stringify(e) + "\n");
    this.chain = this.chain.then(async () => {
      this.file ??= await Deno.open(this.path, { append: true, create: true, mode: 0o600 });
      let off = 0;
      while (off < line.length) off += await this.file.write(line.subarray(off));
    }).catch((err) => {
      console.error(
        `confidant kms: audit write failed: ${err instanceof Error ? err.message : err}`,
      );
    });
  }

  flush(): Promise<void> {
    return this.chain;
  }

  /** Flush and close the file. */
  async close(): Promise<void> {
    await this.flush();
    this.file?.close();
    this.file = undefined;
  }
}

/** Keeps entries in memory (tests, and the `--audit-log -` debugging case). */
export class MemoryAuditLog implements AuditLog {
  readonly entries: AuditEntry[] = [];
  record(e: AuditEntry): void {
    this.entries.push(structuredClone(e));
  }
  flush(): Promise<void> {
    return Promise.resolve();
  }
}
