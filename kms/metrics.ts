/**
 * The KMS's metrics in the Prometheus text exposition format (version 0.0.4): releases,
 * refusals by failed check, requests by endpoint and status, and a latency histogram.
 *
 * @module
 */

const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

function esc(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

function labels(l: Record<string, string>): string {
  const parts = Object.entries(l).map(([k, v]) => `${k}="${esc(v)}"`);
  return parts.length ? `{${parts.join(",")}}` : "";
}

/** Counters and a histogram for the KMS. */
export class KmsMetrics {
  private releases = 0;
  private enrollments = 0;
  private readonly refusals = new Map<string, number>();
  private readonly requests = new Map<string, { endpoint: string; status: string; n: number }>();
  private readonly hist = new Map<string, { counts: number[]; sum: number; n: number }>();

  /** A release was sent (`enrolled`: it enrolled the disk). */
  release(enrolled: boolean): void {
    this.releases++;
    if (enrolled) this.enrollments++;
  }

  /** A refusal; each failed check is counted. */
  refusal(checks: string[]): void {
    for (const c of new Set(checks)) this.refusals.set(c, (this.refusals.get(c) ?? 0) + 1);
  }

  /** A finished request with its latency in seconds. */
  request(endpoint: string, status: number, seconds: number): void {
    const k = `${endpoint} ${status}`;
    const r = this.requests.get(k) ?? { endpoint, status: String(status), n: 0 };
    r.n++;
    this.requests.set(k, r);
    let h = this.hist.get(endpoint);
    if (!h) {
      h = { counts: BUCKETS.map(() => 0), sum: 0, n: 0 };
      this.hist.set(endpoint, h);
    }
    for (let i = 0; i < BUCKETS.length; i++) if (seconds <= BUCKETS[i]) h.counts[i]++;
    h.sum += seconds;
    h.n++;
  }

  /** The exposition text. */
  render(): string {
    const out: string[] = [];
    out.push("# HELP confidant_kms_releases_total Releases sealed and sent.");
    out.push("# TYPE confidant_kms_releases_total counter");
    out.push(`confidant_kms_releases_total ${this.releases}`);
    out.push("# HELP confidant_kms_enrollments_total Disks enrolled by a first release.");
    out.push("# TYPE confidant_kms_enrollments_total counter");
    out.push(`confidant_kms_enrollments_total ${this.enrollments}`);
    out.push("# HELP confidant_kms_refusals_total Refusals, by failed check.");
    out.push("# TYPE confidant_kms_refusals_total counter");
    for (const [check, n] of [...this.refusals].sort()) {
      out.push(`confidant_kms_refusals_total${labels({ check })} ${n}`);
    }
    out.push("# HELP confidant_kms_requests_total HTTP requests, by endpoint and status.");
    out.push("# TYPE confidant_kms_requests_total counter");
    for (const r of [...this.requests.values()]) {
      out.push(
        `confidant_kms_requests_total${labels({ endpoint: r.endpoint, status: r.status })} ${r.n}`,
      );
    }
    out.push("# HELP confidant_kms_request_duration_seconds Latency of HTTP requests.");
    out.push("# TYPE confidant_kms_request_duration_seconds histogram");
    for (const [endpoint, h] of this.hist) {
      BUCKETS.forEach((le, i) =>
        out.push(
          `confidant_kms_request_duration_seconds_bucket${labels({ endpoint, le: String(le) })} ${
            h.counts[i]
          }`,
        )
      );
      out.push(
        `confidant_kms_request_duration_seconds_bucket${labels({ endpoint, le: "+Inf" })} ${h.n}`,
      );
      out.push(`confidant_kms_request_duration_seconds_sum${labels({ endpoint })} ${h.sum}`);
      out.push(`confidant_kms_request_duration_seconds_count${labels({ endpoint })} ${h.n}`);
    }
    return out.join("\n") + "\n";
  }
}
