/**
 * `rota bench scheduler`: the scheduler's own benchmark (see BENCHMARKS.md,
 * "Scheduler"). On one PostgreSQL, each workload in a fresh schema dropped
 * afterwards:
 *
 *   materialize_<due>_of_<schedules>  one orchestrator tick with `due` of `schedules` due
 *   materialize_<due>_of_<due>        the same with nothing else in the table
 *   materialize_targets_<targets>     one orchestrator tick planning a fan-out cadence of `targets` executions
 *   lateness                          handler start minus planned time, every-second schedules
 *   failover                          the same while the leading orchestrator process is killed
 *
 * `--workloads` chooses among materialize (the first two), materialize_targets,
 * lateness and failover. Progress goes to stderr; the table, or with --json
 * one JSON object, to stdout.
 */
import { SCHEDULER_BENCH_FLAGS } from "../../src/cli/bench-flags.js";
import { formatHeader, type ReportHeader, runBenchmark } from "../harness.js";
import { round } from "../stats.js";
import { formatTable } from "../table.js";
import { type FailoverMeasurement, failoverWorkload, killTimes } from "./failover.js";
import { type FanOutMeasurement, fanOutWorkload } from "./fan-out.js";
import { type LatenessMeasurement, latenessWorkload } from "./lateness.js";
import { type MaterializeMeasurement, materializeWorkload } from "./materialize.js";

type Result =
  | (MaterializeMeasurement & { ratio_to_smaller?: number })
  | FanOutMeasurement
  | LatenessMeasurement
  | FailoverMeasurement;

export type SchedulerReport = ReportHeader & { results: Result[] };

runBenchmark({
  name: "rota bench scheduler",
  fromCheckout: "node --import tsx bench/scheduler/run.ts [options]",
  description:
    "Measures rota's scheduler on one PostgreSQL, in a fresh schema it drops afterwards.",
  details: `Workloads:
  materialize_<due>_of_<schedules>  one orchestrator tick materializing the due schedules among many
  materialize_<due>_of_<due>        the same with no schedules that are not due (the cost must not grow)
  materialize_targets_<targets>     one orchestrator tick planning the next cadence of a schedule with that
                                    many targets (an execution each), per distribution strategy
  lateness                          handler start minus planned run time, every-second schedules, one worker
  failover                          the same with two orchestrator processes, the leader killed (SIGKILL)`,
  flags: SCHEDULER_BENCH_FLAGS,
  savePrefix: "scheduler-",
  check: (options) =>
    options.workloads.includes("materialize") && options.due > options.schedules
      ? `--due (${options.due}) cannot exceed --schedules (${options.schedules})`
      : undefined,
  measure: async (options, { databaseUrl, log }) => {
    const chosen = new Set(options.workloads);
    const results: Result[] = [];
    if (chosen.has("materialize")) {
      const large = await materializeWorkload(
        databaseUrl,
        { schedules: options.schedules, due: options.due, rounds: options.rounds },
        log,
      );
      const small = await materializeWorkload(
        databaseUrl,
        { schedules: options.due, due: options.due, rounds: options.rounds },
        log,
      );
      const ratio = round(large.materialize_ms / small.materialize_ms, 2);
      results.push({ ...large, ratio_to_smaller: ratio }, small);
    }
    if (chosen.has("materialize_targets")) {
      for (const distribution of options.distributions) {
        results.push(
          await fanOutWorkload(
            databaseUrl,
            { targets: options.targets, distribution, rounds: options.rounds },
            log,
          ),
        );
      }
    }
    if (chosen.has("lateness")) {
      results.push(
        await latenessWorkload(
          databaseUrl,
          {
            schedules: options.latenessSchedules,
            seconds: options.latenessSeconds,
            concurrency: options.concurrency,
          },
          log,
        ),
      );
    }
    if (chosen.has("failover") && options.failoverSeconds > 0) {
      results.push(
        await failoverWorkload(
          databaseUrl,
          {
            schedules: options.latenessSchedules,
            seconds: options.failoverSeconds,
            concurrency: options.concurrency,
            killAt: killTimes(options.failoverSeconds),
          },
          log,
        ),
      );
    }
    return { results };
  },
  format: formatSchedulerReport,
});

function formatSchedulerReport(report: SchedulerReport): string {
  const materialize = report.results.filter(
    (r): r is MaterializeMeasurement & { ratio_to_smaller?: number } => "due" in r,
  );
  const fanOut = report.results.filter((r): r is FanOutMeasurement => "distribution" in r);
  const failover = report.results.filter(
    (r): r is FailoverMeasurement => r.workload === "failover",
  );
  const lateness = report.results.filter(
    (r): r is LatenessMeasurement => r.workload === "lateness",
  );
  const lines = [...formatHeader(report), ""];
  if (materialize.length > 0) lines.push(...formatMaterialize(materialize));
  if (fanOut.length > 0) lines.push(...formatFanOut(fanOut));
  if (lateness.length > 0) lines.push(...formatLateness(lateness));
  if (failover.length > 0) lines.push(...formatFailover(failover));
  return `${lines.join("\n")}\n`;
}

function formatMaterialize(
  materialize: (MaterializeMeasurement & { ratio_to_smaller?: number })[],
): string[] {
  const lines = [
    formatTable(
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
      new Set([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]),
    ),
    "",
  ];
  for (const r of materialize) {
    lines.push(
      `${r.workload} baseline: ${r.baseline.executions} executions in ${r.baseline.seconds} s over ${r.baseline.ticks} ticks (${r.baseline.executions_per_s}/s)`,
    );
  }
  lines.push("");
  return lines;
}

function formatFanOut(fanOut: FanOutMeasurement[]): string[] {
  const lines = [
    formatTable(
      [
        "workload",
        "distribution",
        "materialize ms",
        "executions/s",
        "rounds ms",
        "FanOut ms (pages)",
        "FetchTargets ms",
        "Count, cursor ms",
        "commit ms",
        "in Node ms",
        "tick ms",
        "second pass ms",
        "second tick ms",
      ],
      fanOut.map((r) => [
        r.workload,
        r.distribution,
        r.materialize_ms.toFixed(1),
        String(r.executions_per_s),
        r.materialize_ms_rounds.map((ms) => ms.toFixed(0)).join(", "),
        `${r.parts.fan_out_ms.toFixed(1)} (${r.parts.pages})`,
        r.parts.fetch_ms.toFixed(1),
        `${r.parts.count_ms.toFixed(1)}, ${r.parts.cursor_ms.toFixed(1)}`,
        r.parts.commit_ms.toFixed(1),
        r.parts.process_ms.toFixed(1),
        r.tick_ms.toFixed(1),
        r.second_pass_ms.toFixed(1),
        r.second_tick_ms.toFixed(1),
      ]),
      new Set([2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]),
    ),
    "",
  ];
  for (const r of fanOut) {
    lines.push(
      `${r.workload} (${r.distribution}): cron ${r.cron}, window ${r.window}; ${r.executions} executions per cadence; setup: targets.add of ${r.targets} targets, planning the first cadence, in ${(r.add_ms / 1000).toFixed(1)} s`,
    );
  }
  lines.push("");
  return lines;
}

function formatLateness(lateness: LatenessMeasurement[]): string[] {
  const lines = [
    formatTable(
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
      new Set([2, 3, 4, 5, 6, 7, 8, 9]),
    ),
    "",
  ];
  for (const r of lateness) {
    lines.push(`lateness executions in the database afterwards: ${JSON.stringify(r.states)}`);
  }
  lines.push("");
  return lines;
}

function formatFailover(failover: FailoverMeasurement[]): string[] {
  return [
    formatTable(
      [
        "workload",
        "kills at s (takeover s)",
        "during failover p50/p99/max ms",
        "all runs p50/p99/max ms",
        "fired/expected",
        "doubles",
        "missing",
      ],
      failover.map((r) => [
        r.workload,
        r.kills.map((k) => `${k.at_s} (${k.takeover_s})`).join(", "),
        `${r.failover_p50_ms.toFixed(1)}/${r.failover_p99_ms.toFixed(1)}/${r.failover_max_ms.toFixed(1)} (${r.failover_samples} runs)`,
        `${r.p50_ms.toFixed(1)}/${r.p99_ms.toFixed(1)}/${r.max_ms.toFixed(1)}`,
        `${r.fired}/${r.expected}`,
        String(r.doubles),
        String(r.missing),
      ]),
      new Set([2, 3, 4, 5, 6]),
    ),
  ];
}
