import type { BenchResult } from "./results.js";
import type { SystemName } from "./systems/types.js";

const PEERS: readonly SystemName[] = ["graphile-worker", "pg-boss", "bullmq"];

export interface Report {
  postgres: string;
  node: string;
  machine: {
    cpus: number;
    memory_gib: number;
    timer_stalls: { max_ms: number; over_50ms: number };
  };
  settings: Record<string, unknown>;
  results: BenchResult[];
  notes: string[];
}

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

function note(row: BenchResult, report: Report): string {
  const results = report.results;
  const parts: string[] = [];
  if (row.complete === false) parts.push(`capped: ${row.jobs} jobs in ${row.seconds.toFixed(0)} s`);
  if (row.lost)
    parts.push(
      `${row.lost} not started ${report.settings.settle_seconds} s after the last enqueue`,
    );
  if (row.workload === "enqueue_single_10" && row.jobs_per_s !== undefined) {
    const ceiling = results.find((r) => r.workload === "insert_commit_ceiling")?.jobs_per_s;
    if (ceiling) parts.push(`${((100 * row.jobs_per_s) / ceiling).toFixed(0)}% of pg ceiling`);
  }
  return parts.join("; ");
}

export function formatTable(report: Report): string {
  const fmt = (value: number | undefined, places: number) =>
    value === undefined || !Number.isFinite(value) ? "" : value.toFixed(places);
  const header = [
    "workload",
    "system",
    "config",
    "jobs/s",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "vs best peer",
    "note",
  ];
  const rows = report.results.map((row) => [
    row.workload,
    row.system,
    row.config,
    fmt(row.jobs_per_s, 0),
    fmt(row.p50_ms, 1),
    fmt(row.p95_ms, 1),
    fmt(row.p99_ms, 1),
    fmt(versusBestPeer(row, report.results), 2),
    note(row, report),
  ]);
  const numeric = new Set([3, 4, 5, 6, 7]);
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => (row[column] ?? "").length)),
  );
  const line = (cells: string[]) =>
    cells
      .map((cell, column) =>
        numeric.has(column) ? cell.padStart(widths[column] ?? 0) : cell.padEnd(widths[column] ?? 0),
      )
      .join("  ")
      .trimEnd();
  const out = [
    `PostgreSQL ${report.postgres}; node ${report.node}; ${report.machine.cpus} CPUs, ${report.machine.memory_gib} GiB`,
    `idle 10 ms timer over 2 s: longest stall ${report.machine.timer_stalls.max_ms} ms, ${report.machine.timer_stalls.over_50ms} stalls over 50 ms (a quiet machine: a few ms, none)`,
    `settings: ${Object.entries(report.settings)
      .map(([key, value]) => `${key}=${value}`)
      .join(" ")}`,
    "",
    line(header),
    line(widths.map((width) => "-".repeat(width))),
    ...rows.map(line),
    "",
    "vs best peer: 1.00 = the best of graphile-worker, pg-boss and BullMQ on that workload;",
    "above 1 is better (jobs/s over the best peer's; for latency, the best peer's p50 over this p50).",
  ];
  if (report.notes.length > 0) out.push("", "notes:", ...report.notes.map((text) => `  - ${text}`));
  return `${out.join("\n")}\n`;
}
