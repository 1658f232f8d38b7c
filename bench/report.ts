import { formatHeader, type ReportHeader } from "./harness.js";
import type { BenchResult } from "./results.js";
import type { SystemName } from "./systems/types.js";
import { formatTable } from "./table.js";

/** The peers "vs best peer" compares with: every system but rota and the plain-pg ceiling. */
const PEERS: readonly SystemName[] = ["graphile-worker", "pg-boss", "bullmq", "bullmq-postgres"];

/** A system's package version and the Node it ran under. */
export interface SystemInfo {
  version: string;
  node: string;
}

export type QueueReport = ReportHeader & {
  systems: Record<string, SystemInfo>;
  results: BenchResult[];
  notes: string[];
};

/**
 * How a row compares with the best peer on the same workload, 1.00 being the
 * best peer: for throughput its jobs/s over the best peer's, for latency the
 * best peer's p50 over its p50 (so above 1 is better in both cases).
 */
export function versusBestPeer(row: BenchResult, results: BenchResult[]): number | undefined {
  if (row.system === "pg") return undefined;
  const peers = results.filter((r) => r.workload === row.workload && PEERS.includes(r.system));
  if (row.jobs_per_s !== undefined) {
    const best = Math.max(...peers.map((r) => r.jobs_per_s ?? 0));
    return best > 0 ? row.jobs_per_s / best : undefined;
  }
  if (row.p50_ms !== undefined && Number.isFinite(row.p50_ms)) {
    const values = peers.map((r) => r.p50_ms ?? Number.NaN).filter(Number.isFinite);
    if (values.length === 0 || row.p50_ms <= 0) return undefined;
    return Math.min(...values) / row.p50_ms;
  }
  return undefined;
}

function note(row: BenchResult, report: QueueReport): string {
  const parts: string[] = [];
  if (row.complete === false) parts.push(`capped: ${row.jobs} jobs in ${row.seconds.toFixed(0)} s`);
  if (row.lost)
    parts.push(
      `${row.lost} not started ${report.settings.settle_seconds} s after the last enqueue`,
    );
  if (row.max_concurrency !== undefined) {
    const over = row.limit_exceeded ? "LIMIT EXCEEDED: " : "";
    parts.push(`${over}max concurrency ${row.max_concurrency} (limit ${row.concurrency_limit})`);
  }
  if (row.workload === "enqueue_single_10" && row.jobs_per_s !== undefined) {
    const ceiling = report.results.find((r) => r.workload === "insert_commit_ceiling")?.jobs_per_s;
    if (ceiling) parts.push(`${((100 * row.jobs_per_s) / ceiling).toFixed(0)}% of pg ceiling`);
  }
  return parts.join("; ");
}

export function formatQueueReport(report: QueueReport): string {
  const fmt = (value: number | undefined, places: number) =>
    value === undefined || !Number.isFinite(value) ? "" : value.toFixed(places);
  const table = formatTable(
    [
      "workload",
      "system",
      "config",
      "jobs/s",
      "p50 ms",
      "p95 ms",
      "p99 ms",
      "vs best peer",
      "note",
    ],
    report.results.map((row) => [
      row.workload,
      row.system,
      row.config,
      fmt(row.jobs_per_s, 0),
      fmt(row.p50_ms, 1),
      fmt(row.p95_ms, 1),
      fmt(row.p99_ms, 1),
      fmt(versusBestPeer(row, report.results), 2),
      note(row, report),
    ]),
    new Set([3, 4, 5, 6, 7]),
  );
  const out = [
    ...formatHeader(report),
    `systems: ${Object.entries(report.systems)
      .map(([name, info]) => `${name} ${info.version} (node ${info.node})`)
      .join(", ")}`,
    "",
    table,
    "",
    `vs best peer: 1.00 = the best of ${PEERS.join(", ")} on that workload;`,
    "above 1 is better (jobs/s over the best peer's; for latency, the best peer's p50 over this p50).",
  ];
  if (report.notes.length > 0) out.push("", "notes:", ...report.notes.map((text) => `  - ${text}`));
  return `${out.join("\n")}\n`;
}
