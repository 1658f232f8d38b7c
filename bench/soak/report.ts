import { formatHeader, type ReportHeader } from "../harness.js";
import { formatTable } from "../table.js";
import type { LoadReport } from "./load.js";
import type { figuresOf, SoakMinute } from "./minutes.js";
import type { SoakVerdict } from "./verdict.js";

/** What the soak adds to the harness's header: the JSON of `npm run soak -- --json`. */
export interface SoakBody {
  load: LoadReport;
  /** How jobs were enqueued and run. */
  setup: { enqueue: string; workers: number; concurrency: number; retention: string };
  /** The server's vacuum settings and the jobs table's storage parameters. */
  server: Record<string, string | null>;
  /** The tables after the load and its VACUUM ANALYZE, before the first job. */
  before: ReturnType<typeof figuresOf>;
  minutes: SoakMinute[];
  totals: { enqueued: number; completed: number; completed_in_drain: number };
  verdict: SoakVerdict;
}

export type SoakReport = ReportHeader & SoakBody;

const mb = (bytes: number) => (bytes / 2 ** 20).toFixed(0);
const n = (value: number) => Math.round(value).toLocaleString("en");
const ms = (value: number | null) => (value === null ? "-" : value.toFixed(1));
const pct = (share: number | null) => (share === null ? "-" : `${(share * 100).toFixed(1)}%`);

export function formatSoakReport(report: SoakReport): string {
  const { load, setup, server, before, totals, verdict } = report;
  const header = [
    "min",
    "enq/s",
    "done/s",
    "p50 ms",
    "p99 ms",
    "max ms",
    "backlog",
    "jobs dead (max)",
    "dead % (max)",
    "jobs live",
    "jobs MB",
    "idx MB",
    "autovacuums jobs/all",
    "vacuum s",
    "oldest xmin s",
    "load",
  ];
  const rows = report.minutes.map((m) => [
    String(m.minute),
    n(m.enqueued_per_s),
    n(m.completed_per_s),
    ms(m.p50_ms),
    ms(m.p99_ms),
    ms(m.max_ms),
    n(m.backlog),
    `${n(m.jobs_dead_tuples)} (${n(m.jobs_dead_tuples_max)})`,
    pct(m.dead_share_max),
    n(m.jobs_live_tuples),
    mb(m.jobs_total_bytes),
    mb(m.jobs_index_bytes),
    `${m.jobs_autovacuum_count}/${m.autovacuum_count}`,
    String(m.jobs_vacuum_seconds),
    m.oldest_xmin_holder_s === null ? "-" : String(m.oldest_xmin_holder_s),
    m.load_average.toFixed(2),
  ]);
  const numeric = new Set(header.map((_, i) => i).filter((i) => i !== 7 && i !== 12));
  const dead = verdict.dead_tuples;
  const rowsOf = (count: number | null) => (count === null ? "-" : `${n(count)} rows`);
  const mark = (met: boolean | null) => (met === null ? "not judged" : met ? "met" : "NOT MET");
  const lines = [
    ...formatHeader(report),
    `load: ${n(load.delayed)} delayed and ${n(load.finished)} finished jobs in ${load.insert_seconds} s, VACUUM ANALYZE ${load.vacuum_seconds} s; then the jobs table held ${n(before.jobs_live_tuples)} rows, ${mb(before.jobs_total_bytes)} MB (indexes ${mb(before.jobs_index_bytes)} MB)`,
    `run: ${setup.enqueue}; ${setup.workers} worker process(es), concurrency ${setup.concurrency}; retention ${setup.retention}; an orchestrator beside the enqueuer`,
    `server: ${Object.entries(server)
      .map(([key, value]) => `${key}=${value ?? "-"}`)
      .join(" ")}`,
    "",
    "latency: enqueue call to handler start, of the jobs enqueued that minute; backlog: available jobs at the minute's end; jobs dead: at the minute's end (the most any 2 s sample saw);",
    "dead %: the most dead rows among all rows of rota's tables in a sample; MB: jobs with its indexes (idx: the indexes alone); autovacuums: runs so far, of jobs / of all rota's tables;",
    "vacuum s: seconds a vacuum was seen running on jobs, sampled every 2 s (a shorter pass may not show); oldest xmin s: the oldest transaction of the database holding vacuum back, in any sample",
    "",
    formatTable(header, rows, numeric),
    "",
    `totals: ${n(totals.enqueued)} enqueued, ${n(totals.completed)} completed (${n(totals.completed_in_drain)} of them after the last minute, while the run drained)`,
    `verdict: ${verdict.met === null ? "none" : verdict.met ? "MET" : "NOT MET"}`,
    `  latency (${verdict.latency.rule}): minute 1 ${ms(verdict.latency.first_p99_ms)} ms, last ${ms(verdict.latency.last_p99_ms)} ms, ${verdict.latency.ratio ?? "-"}x: ${mark(verdict.latency.met)}`,
    `  dead rows bounded (${verdict.dead_tuples.rule}): minutes 1-${dead.first_half_minutes} ${pct(dead.first_half_max_share)} (${rowsOf(dead.first_half_max_dead)}), last ${pct(dead.last_max_share)} (${rowsOf(dead.last_max_dead)}): ${mark(dead.met)}`,
    ...verdict.notes.map((note) => `  note: ${note}`),
  ];
  return `${lines.join("\n")}\n`;
}
