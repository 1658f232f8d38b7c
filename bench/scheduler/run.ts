/**
 * `rota bench scheduler`: the scheduler's own benchmark (see BENCHMARKS.md,
 * "Scheduler"). On one PostgreSQL, each workload in a fresh schema dropped
 * afterwards:
 *
 *   materialize_<due>_of_<schedules>  one orchestrator tick with `due` of `schedules` due
 *   materialize_<due>_of_<due>        the same with nothing else in the table
 *   lateness                          handler start minus planned time, every-second schedules
 *
 * Progress goes to stderr; the table, or with --json one JSON object, to stdout.
 */
import { availableParallelism } from "node:os";
import pg from "pg";
import { nowMs, timerStalls } from "../time.js";
import { type LatenessMeasurement, latenessWorkload } from "./lateness.js";
import { type MaterializeMeasurement, materializeWorkload } from "./materialize.js";
import { parseSchedulerOptions, type SchedulerBenchOptions, USAGE, UsageError } from "./options.js";
import { round } from "./stats.js";

const DEFAULT_URL = "postgres://root@127.0.0.1:5432/test";

type Result = (MaterializeMeasurement & { ratio_to_smaller?: number }) | LatenessMeasurement;

export interface SchedulerReport {
  postgres: string;
  node: string;
  machine: { cpus: number; timer_stalls: { max_ms: number; over_50ms: number } };
  settings: Record<string, number>;
  results: Result[];
}

function log(line: string): void {
  process.stderr.write(`bench scheduler: ${line}\n`);
}

async function main(): Promise<number> {
  let options: SchedulerBenchOptions;
  try {
    const parsed = parseSchedulerOptions(process.argv.slice(2));
    if (parsed === "help") {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    options = parsed;
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`bench scheduler: ${error.message}\n\n${USAGE}\n`);
    return 2;
  }
  const url = process.env.DATABASE_URL || DEFAULT_URL;
  const began = nowMs();
  const report: SchedulerReport = {
    postgres: await serverVersion(url),
    node: process.version,
    machine: { cpus: availableParallelism(), timer_stalls: await timerStalls(2_000) },
    settings: {
      schedules: options.schedules,
      due: options.due,
      rounds: options.rounds,
      lateness_schedules: options.latenessSchedules,
      lateness_seconds: options.latenessSeconds,
      concurrency: options.concurrency,
    },
    results: [],
  };
  log(`PostgreSQL ${report.postgres}; ${JSON.stringify(report.settings)}`);

  const large = await materializeWorkload(
    url,
    { schedules: options.schedules, due: options.due, rounds: options.rounds },
    log,
  );
  const small = await materializeWorkload(
    url,
    { schedules: options.due, due: options.due, rounds: options.rounds },
    log,
  );
  report.results.push(
    { ...large, ratio_to_smaller: round(large.materialize_ms / small.materialize_ms, 2) },
    small,
  );
  report.results.push(
    await latenessWorkload(
      url,
      {
        schedules: options.latenessSchedules,
        seconds: options.latenessSeconds,
        concurrency: options.concurrency,
      },
      log,
    ),
  );

  log(`done in ${((nowMs() - began) / 1000).toFixed(1)} s`);
  if (options.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else process.stdout.write(formatTable(report));
  return 0;
}

export function formatTable(report: SchedulerReport): string {
  const lines: string[] = [];
  lines.push(
    `PostgreSQL ${report.postgres}, Node ${report.node}, ${report.machine.cpus} CPUs (timer stalls before the run: max ${report.machine.timer_stalls.max_ms} ms, ${report.machine.timer_stalls.over_50ms} over 50 ms)`,
    "",
  );
  const materialize = report.results.filter(
    (r): r is MaterializeMeasurement & { ratio_to_smaller?: number } => r.workload !== "lateness",
  );
  const table = (header: string[], rows: string[][]) => {
    const widths = header.map((h, i) =>
      Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)),
    );
    const line = (cells: string[]) =>
      `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join(" | ")} |`;
    lines.push(line(header), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`);
    for (const row of rows) lines.push(line(row));
    lines.push("");
  };
  table(
    [
      "workload",
      "due/total",
      "materialize ms",
      "executions/s",
      "DueForFill ms",
      "planning ms",
      "Materialize ms",
      "tick ms",
      "idle tick ms",
      "rounds ms",
      "vs no idle",
    ],
    materialize.map((r) => [
      r.workload,
      `${r.due}/${r.schedules}`,
      r.materialize_ms.toFixed(1),
      String(r.executions_per_s),
      r.due_for_fill_ms.toFixed(1),
      r.plan_ms.toFixed(1),
      r.materialize_sql_ms.toFixed(1),
      r.tick_ms.toFixed(1),
      r.idle_tick_ms.toFixed(1),
      r.materialize_ms_rounds.map((ms) => ms.toFixed(0)).join(", "),
      r.ratio_to_smaller === undefined ? "" : `${r.ratio_to_smaller.toFixed(2)}x`,
    ]),
  );
  for (const r of materialize) {
    lines.push(
      `${r.workload} baseline: ${r.baseline.executions} executions in ${r.baseline.seconds} s over ${r.baseline.ticks} ticks (${r.baseline.executions_per_s}/s)`,
    );
  }
  lines.push("");
  const lateness = report.results.filter(
    (r): r is LatenessMeasurement => r.workload === "lateness",
  );
  table(
    [
      "workload",
      "schedules",
      "p50 ms",
      "p95 ms",
      "p99 ms",
      "max ms",
      "claim p50/p99 ms",
      "fired/expected",
      "doubles",
      "missing",
    ],
    lateness.map((r) => [
      r.workload,
      `${r.schedules} x 1/s, ${r.seconds} s`,
      r.p50_ms.toFixed(1),
      r.p95_ms.toFixed(1),
      r.p99_ms.toFixed(1),
      r.max_ms.toFixed(1),
      `${r.claim_p50_ms.toFixed(1)}/${r.claim_p99_ms.toFixed(1)}`,
      `${r.fired}/${r.expected}`,
      String(r.doubles),
      String(r.missing),
    ]),
  );
  for (const r of lateness) {
    lines.push(`lateness executions in the database afterwards: ${JSON.stringify(r.states)}`);
  }
  return `${lines.join("\n")}\n`;
}

async function serverVersion(url: string): Promise<string> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const result = await client.query<{ server_version: string }>("show server_version");
    return result.rows[0]?.server_version ?? "unknown";
  } finally {
    await client.end();
  }
}

// Exits explicitly: a worker that failed to stop may still hold handles open.
main().then(
  (code) => process.stdout.write("", () => process.exit(code)),
  (error) => {
    process.stderr.write(
      `bench scheduler: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exit(1);
  },
);
