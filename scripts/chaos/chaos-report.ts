/**
 * A chaos run's report: one JSON object (`--json`) or a summary a person
 * reads. `ok` is false, and the run exits 1, when any check found a
 * violation.
 */
import type { ChaosChecks } from "./chaos-checks.js";
import type { Owed } from "./chaos-drain.js";
import type { KillRecord } from "./chaos-faults.js";
import type { LoadCounts } from "./chaos-load.js";
import type { ServerFault } from "./chaos-server.js";

export interface ChaosReport {
  ok: boolean;
  seed: number;
  minutes: number;
  seconds: { setup: number; chaos: number; drain: number; total: number };
  faults: {
    kills: number;
    leaderKills: number;
    workerKills: number;
    restarts: number;
    /** Of those, crashes (an immediate shutdown). */
    immediateRestarts: number;
    restartDownMs: number[];
    terminates: number;
    backendsTerminated: number;
    notPlayed: string[];
  };
  load: LoadCounts;
  /** What was still owed when the drain ended (all zero when it drained). */
  owedAfterDrain: Owed;
  jobs: ChaosChecks["jobs"];
  runs: ChaosChecks["runs"];
  reruns: ChaosChecks["reruns"];
  schedules: ChaosChecks["schedules"];
  limits: ChaosChecks["limits"];
  batches: ChaosChecks["batches"];
  capture: ChaosChecks["capture"];
  processes: ChaosChecks["processes"];
  violations: string[];
}

export function buildReport(parts: {
  seed: number;
  minutes: number;
  seconds: ChaosReport["seconds"];
  kills: readonly KillRecord[];
  serverFaults: readonly ServerFault[];
  notPlayed: string[];
  load: LoadCounts;
  owed: Owed;
  checks: ChaosChecks;
}): ChaosReport {
  const { checks, owed } = parts;
  const violations = [...checks.violations];
  const stillOwed = owed.jobs + owed.batches + owed.items + owed.executions;
  if (stillOwed > 0) {
    violations.unshift(
      `the drain ended with ${owed.jobs} jobs, ${owed.batches} batches, ${owed.items} captured rows and ${owed.executions} executions still owed`,
    );
  }
  const restarts = parts.serverFaults.filter((f) => f.kind === "restart");
  const terminates = parts.serverFaults.filter((f) => f.kind === "terminate");
  if (restarts.length === 0)
    violations.push("the database was never restarted (the run was too short?)");
  if (!parts.kills.some((k) => k.leader))
    violations.push("the leading orchestrator was never killed");
  return {
    ok: violations.length === 0,
    seed: parts.seed,
    minutes: parts.minutes,
    seconds: parts.seconds,
    faults: {
      kills: parts.kills.length,
      leaderKills: parts.kills.filter((k) => k.leader).length,
      workerKills: parts.kills.filter((k) => k.kind === "worker").length,
      restarts: restarts.length,
      immediateRestarts: restarts.filter((f) => f.mode === "immediate").length,
      restartDownMs: restarts.map((f) => f.to - f.from),
      terminates: terminates.length,
      backendsTerminated: terminates.reduce((sum, f) => sum + (f.terminated ?? 0), 0),
      notPlayed: parts.notPlayed,
    },
    load: parts.load,
    owedAfterDrain: owed,
    jobs: checks.jobs,
    runs: checks.runs,
    reruns: checks.reruns,
    schedules: checks.schedules,
    limits: checks.limits,
    batches: checks.batches,
    capture: checks.capture,
    processes: checks.processes,
    violations,
  };
}

export function formatReport(report: ChaosReport): string {
  const { faults, jobs, reruns, schedules, limits, batches, capture, processes } = report;
  const lines = [
    `chaos run, seed ${report.seed}: ${report.minutes} min of faults, drained in ${report.seconds.drain} s (${report.seconds.total} s in all)`,
    `faults: ${faults.kills} kills (${faults.leaderKills} of the leader, ${faults.workerKills} of workers), ${faults.restarts} database restarts (${faults.immediateRestarts} of them crashes; down ${faults.restartDownMs.join(", ")} ms), ${faults.terminates} terminations (${faults.backendsTerminated} backends)`,
    `jobs: ${jobs.enqueued} enqueued, ${jobs.completed} completed, ${jobs.failedForGood} failed for good, ${jobs.lost} lost (${jobs.stuck} stuck, ${jobs.missing} missing); ${jobs.phantom} ran uncommitted; ${jobs.ambiguousEnqueues} enqueues failed without an answer (${jobs.ambiguousThatRan} of them ran)`,
    `reruns: ${reruns.total} (${reruns.explainedByKill} after a kill, ${reruns.explainedByRestart} after a database restart, ${reruns.explainedByTerminate} after terminated connections, ${reruns.unexplained} unexplained)`,
    `schedules: ${schedules.occurrences} occurrences checked, ${schedules.ran} ran, ${schedules.firedTwice} fired twice, ${schedules.missing} missing, ${schedules.stuck} stuck; ${schedules.skippedForOverlap} skipped for overlap, ${schedules.missedPerPolicy} missed per catch-up "latest"`,
    `limits: ${limits.violations} violations; ${Object.entries(limits.checked)
      .map(([name, { limit, max }]) => `${name} ${max}/${limit}`)
      .join(", ")}`,
    `batches: ${batches.enqueued}, callback once ${batches.callbackOnce}, twice ${batches.callbackTwice}, never ${batches.callbackNever}, wrong counts ${batches.wrongCounts}`,
    `capture: ${capture.rows} rows, ${capture.jobsRan} jobs ran, ${capture.unprocessed} rows whose last change was not processed`,
    `processes: ${processes.started} started, ${processes.crashed} crashed, ${processes.stuckAtStop} did not stop, ${processes.busyLoops} busy loops`,
    report.ok ? "OK: no violation" : `FAILED: ${report.violations.length} violation(s):`,
    ...report.violations.map((v) => `  - ${v}`),
  ];
  if (!report.ok)
    lines.push(`replay with: npm run chaos -- --minutes ${report.minutes} --seed ${report.seed}`);
  return lines.join("\n");
}
