import { databaseOf, Rota } from "../../src/client.js";
import type { Orchestrator, TickReport } from "../../src/orchestrator/orchestrator.js";
import { median, round } from "../stats.js";
import { dropSchema, quoteIdent } from "../systems/schema.js";
import { nowMs } from "../time.js";
import {
  materializeStep,
  recordStatements,
  type StatementTiming,
  type StepTiming,
} from "./statements.js";

/** Cron of the schedules that come due: every minute. */
export const DUE_CRON = "* * * * *";
/** Cron of the schedules that are not due: once a year (next 1 January). */
export const NOT_DUE_CRON = "0 0 1 1 *";

export interface MaterializeMeasurement {
  workload: string;
  schedules: number;
  due: number;
  rounds: number;
  /** Executions one measured tick wrote (the same in every round, or the run fails). */
  executions: number;
  /** The tick's materialization step (median over the rounds), and each round's. */
  materialize_ms: number;
  materialize_ms_rounds: number[];
  executions_per_s: number;
  /** Its parts (medians): the two statements, and planning in the process between them. */
  due_for_fill_ms: number;
  materialize_sql_ms: number;
  plan_ms: number;
  /** The whole tick (lease renewal, rescue, materialize, reconcile), median. */
  tick_ms: number;
  /** A tick right after the baseline, when nothing is due. */
  idle_tick_ms: number;
  /** The first materialization of every schedule (baseline, horizon 1), over as many ticks as it took. */
  baseline: { executions: number; ticks: number; seconds: number; executions_per_s: number };
}

/**
 * materialize_<due>_of_<schedules>: `schedules` schedules with horizon 1, of
 * which `due` (spread evenly by id) run every minute and the others once a
 * year. Every schedule is materialized once (the baseline: one planned
 * execution each). The database clock is then moved to 1 s past the minute
 * the every-minute executions were planned for, so exactly `due` schedules
 * have their next execution come due (their one planned execution is now in
 * the past and its horizon slot is free), as after a real minute went by; the
 * yearly ones are not due for months. One orchestrator tick then materializes
 * the next execution of each due schedule; the statements it runs are timed.
 * Repeated `rounds` times, a minute later each time. The schema is fresh and
 * dropped afterwards.
 */
export async function materializeWorkload(
  databaseUrl: string,
  options: { schedules: number; due: number; rounds: number },
  log: (line: string) => void,
): Promise<MaterializeMeasurement> {
  const { schedules, due, rounds } = options;
  const workload = `materialize_${label(due)}_of_${label(schedules)}`;
  const schema = `rota_bench_sched_${schedules}`;
  await dropSchema(databaseUrl, schema);
  const rota = new Rota({ connection: databaseUrl, schema });
  try {
    await rota.migrate();
    const s = `${quoteIdent(schema)}.schedules`;

    // Start 5 s into a minute, so the baseline (tens of seconds at most)
    // plans every every-minute schedule for the same next minute.
    const start = (await rota.clock.now()).getTime();
    await rota.clock.shift((65_000 - (start % 60_000)) % 60_000);

    log(`${workload}: inserting ${schedules} schedules (${due} every minute, the rest yearly)`);
    let began = nowMs();
    // Schedule i is due when floor(i*due/schedules) steps up at i: exactly
    // `due` of them, evenly spread through the table.
    await databaseOf(rota).pool.query(
      `insert into ${s} (name, task, queue, cron, horizon)
       select 'bench-' || i, 'bench_noop', 'bench',
              case when (i * $2::bigint) / $1 > ((i - 1) * $2::bigint) / $1
                   then '${DUE_CRON}' else '${NOT_DUE_CRON}' end,
              1
       from generate_series(1, $1::bigint) as i`,
      [schedules, due],
    );
    log(`${workload}: inserted in ${((nowMs() - began) / 1000).toFixed(1)} s`);

    // The first (baseline) tick runs the watchdog and pruning.
    const orchestrator = measuredOrchestrator(rota, "bench-scheduler");
    const statements = recordStatements();
    try {
      log(`${workload}: baseline (every schedule materialized once, horizon 1)`);
      began = nowMs();
      let baselineExecutions = 0;
      let ticks = 0;
      for (;;) {
        const report = checked(await orchestrator.tick(), "baseline");
        ticks++;
        const m = report.materialized;
        if (!m || m.schedules === 0) break;
        baselineExecutions += m.executions;
        log(`${workload}: baseline ${baselineExecutions}/${schedules}`);
      }
      const baselineSeconds = (nowMs() - began) / 1000;
      if (baselineExecutions !== schedules) {
        throw new Error(
          `the baseline materialized ${baselineExecutions} executions for ${schedules} schedules`,
        );
      }
      // What autovacuum does on a live system after such a burst: the
      // baseline's 100,000 updates leave dead index entries that every
      // DueForFill would otherwise wade through, and the planner gets
      // statistics for the new rows.
      await databaseOf(rota).pool.query(`vacuum analyze ${s}`);
      await databaseOf(rota).pool.query(`vacuum analyze ${quoteIdent(schema)}.jobs`);

      const { ms: idleTickMs, timings } = await timedTick(orchestrator, statements, "idle tick");
      const idle = timings.map((t) => `${t.name} ${(t.end - t.start).toFixed(1)}`).join(", ");
      log(`${workload}: idle tick ${idleTickMs.toFixed(1)} ms (${idle} ms)`);

      const rows: { step: StepTiming; tickMs: number }[] = [];
      let executions = 0;
      for (let round = 1; round <= rounds; round++) {
        const planned = await databaseOf(rota).pool.query<{ first: Date; distinct: number }>(
          `select min(fill_at) as first, count(distinct fill_at)::int as distinct
           from ${s} where cron = '${DUE_CRON}'`,
        );
        const { first, distinct } = planned.rows[0] as { first: Date; distinct: number };
        if (distinct !== 1) {
          throw new Error(
            `the every-minute schedules wait for ${distinct} different times, not one`,
          );
        }
        await shiftPast(rota, first);
        const tick = await timedTick(orchestrator, statements, `round ${round}`);
        const { report, ms: tickMs } = tick;
        const step = materializeStep(tick.timings);
        const m = report.materialized;
        if (!m || !step || m.schedules !== due || m.executions !== due) {
          throw new Error(
            `round ${round}: the tick materialized ${m?.executions ?? 0} executions for ${m?.schedules ?? 0} schedules; expected ${due}`,
          );
        }
        executions = m.executions;
        rows.push({ step, tickMs });
        log(
          `${workload}: round ${round}: ${m.executions} executions, materialize step ${step.stepMs.toFixed(0)} ms (DueForFill ${step.dueForFillMs.toFixed(0)}, planning ${step.planMs.toFixed(0)}, Materialize ${step.materializeSqlMs.toFixed(0)}), tick ${tickMs.toFixed(0)} ms`,
        );
      }
      const materializeMs = median(rows.map((r) => r.step.stepMs));
      return {
        workload,
        schedules,
        due,
        rounds,
        executions,
        materialize_ms: round(materializeMs, 1),
        materialize_ms_rounds: rows.map((r) => round(r.step.stepMs, 1)),
        executions_per_s: Math.round((executions / materializeMs) * 1000),
        due_for_fill_ms: round(median(rows.map((r) => r.step.dueForFillMs)), 1),
        materialize_sql_ms: round(median(rows.map((r) => r.step.materializeSqlMs)), 1),
        plan_ms: round(median(rows.map((r) => r.step.planMs)), 1),
        tick_ms: round(median(rows.map((r) => r.tickMs)), 1),
        idle_tick_ms: round(idleTickMs, 1),
        baseline: {
          executions: baselineExecutions,
          ticks,
          seconds: round(baselineSeconds, 2),
          executions_per_s: Math.round(baselineExecutions / baselineSeconds),
        },
      };
    } finally {
      statements.restore();
      await orchestrator.stop();
    }
  } finally {
    await rota.close();
    await dropSchema(databaseUrl, schema);
  }
}

/**
 * An orchestrator whose watchdog and pruning run in its first tick and not
 * again, so the measured ticks after it hold only the per-tick steps.
 */
export function measuredOrchestrator(rota: Rota, holder: string): Orchestrator {
  return rota.orchestrator({ holder, watchdogIntervalMs: 3_600_000, pruneIntervalMs: 3_600_000 });
}

/** Moves the schema's clock to 1 s after `at`: what a 1 s tick sees first once `at` came due. */
export async function shiftPast(rota: Rota, at: Date): Promise<void> {
  const now = (await rota.clock.now()).getTime();
  await rota.clock.shift(at.getTime() + 1_000 - now);
}

/** One tick, checked: its report, wall time, and the statements it ran. */
export async function timedTick(
  orchestrator: Orchestrator,
  statements: { take(): StatementTiming[] },
  what: string,
): Promise<{ report: TickReport; ms: number; timings: StatementTiming[] }> {
  statements.take();
  const began = nowMs();
  const report = checked(await orchestrator.tick(), what);
  const ms = nowMs() - began;
  return { report, ms, timings: statements.take() };
}

/** The report of a tick that led and in which no step failed; throws otherwise. */
export function checked(report: TickReport, what: string): TickReport {
  if (!report.leader) throw new Error(`${what}: the orchestrator is not the leader`);
  const failure = report.errors[0];
  if (failure) {
    const error = failure.error;
    throw new Error(
      `${what}: the ${failure.step} step failed: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
  return report;
}

/** 10000 → "10k", 100000 → "100k", 2500 → "2500". */
export function label(n: number): string {
  return n % 1000 === 0 ? `${n / 1000}k` : String(n);
}
