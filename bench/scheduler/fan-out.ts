import { databaseOf, Rota } from "../../src/client.js";
import { median, round } from "../stats.js";
import { dropSchema, quoteIdent } from "../systems/schema.js";
import { nowMs } from "../time.js";
import { checked, label, measuredOrchestrator, shiftPast, timedTick } from "./materialize.js";
import { type FanOutStepTiming, fanOutStep, recordStatements } from "./statements.js";

/** The fan-out schedule: hourly, each cadence's targets placed in a window of an hour. */
export const FAN_OUT_CRON = "0 * * * *";
export const FAN_OUT_WINDOW = "1h";
const NAME = "bench-fan-out";

export interface FanOutMeasurement {
  workload: string;
  /** The schedule's strategy: "random" (offsets drawn in Node), "spread" (targets ranked by md5 in SQL). */
  distribution: string;
  targets: number;
  rounds: number;
  cron: string;
  window: string;
  /** Executions the measured pass wrote: the targets, in every round, or the run fails. */
  executions: number;
  /** The pass's materialization step (median over the rounds), and each round's. */
  materialize_ms: number;
  materialize_ms_rounds: number[];
  executions_per_s: number;
  /** The step's parts (medians; see FanOutStepTiming in statements.ts). */
  parts: {
    due_for_fill_ms: number;
    materialize_sql_ms: number;
    count_ms: number;
    cursor_ms: number;
    fetch_ms: number;
    fan_out_ms: number;
    begin_ms: number;
    commit_ms: number;
    process_ms: number;
    /** FetchTargets and FanOut statements per cadence (pages of 10,000). */
    pages: number;
  };
  /** The whole tick that held the pass (lease, rescue, materialize, reconcile), median. */
  tick_ms: number;
  /** The next tick, with nothing due: its materialization step, and the whole tick (medians). */
  second_pass_ms: number;
  second_pass_ms_rounds: number[];
  second_tick_ms: number;
  /** Setup: one streamed targets.add of all targets, which planned the first cadence inline. */
  add_ms: number;
}

/**
 * materialize_targets_<targets>: one schedule (cron FAN_OUT_CRON, window
 * FAN_OUT_WINDOW, the given distribution) gets `targets` targets in one
 * streamed `rota.schedules.targets.add`, which makes it fan out and plans its
 * next cadence (an execution per target) in the same call. The database
 * clock is then moved to 1 s past that cadence's occurrence, so the
 * schedule's one cadence ahead has begun and the next orchestrator tick must
 * plan the following one: `targets` executions, a page of 10,000 at a time,
 * in one transaction. Its materialization step is timed from its statements
 * (the first DueForFill to the end of the fan-out transaction's COMMIT), then
 * the next tick's, which must plan nothing. Repeated `rounds` times, an hour
 * later each time, after a VACUUM ANALYZE of the jobs and targets (what
 * autovacuum does in the hour between two cadences). The schema is fresh and
 * dropped afterwards.
 */
export async function fanOutWorkload(
  databaseUrl: string,
  options: { targets: number; distribution: string; rounds: number },
  log: (line: string) => void,
): Promise<FanOutMeasurement> {
  const { targets, distribution, rounds } = options;
  const workload = `materialize_targets_${label(targets)}`;
  const tag = `${workload} (${distribution})`;
  const schema = `rota_bench_sched_targets_${distribution}`;
  await dropSchema(databaseUrl, schema);
  const rota = new Rota({ connection: databaseUrl, schema });
  try {
    await rota.migrate();
    const pool = databaseOf(rota).pool;
    const { schedule } = await rota.schedules.upsert({
      name: NAME,
      task: "bench_noop",
      queue: "bench",
      cron: FAN_OUT_CRON,
      window: FAN_OUT_WINDOW,
      distribution,
    });
    const jobs = `${quoteIdent(schema)}.jobs`;
    /** Executions of the schedule's targets for `occurrence`. */
    const cadenceSize = async (occurrence: Date) => {
      const result = await pool.query<{ count: number }>(
        `select count(*)::int as count from ${jobs}
         where schedule_id = $1 and target_key <> '' and occurrence_at = $2`,
        [schedule.id, occurrence],
      );
      return result.rows[0]?.count ?? 0;
    };
    /** The earliest planned occurrence (fill_at) and the next one to plan (cursor_at). */
    const position = async () => {
      const result = await pool.query<{ fill_at: Date; cursor_at: Date }>(
        `select fill_at, cursor_at from ${quoteIdent(schema)}.schedules where id = $1`,
        [schedule.id],
      );
      return result.rows[0] as { fill_at: Date; cursor_at: Date };
    };

    log(`${tag}: adding ${targets} targets in one call (it plans the first cadence)`);
    const began = nowMs();
    const added = await rota.schedules.targets.add(NAME, targetKeys(targets));
    const addMs = nowMs() - began;
    const first = await position();
    const firstSize = await cadenceSize(first.fill_at);
    if (added.added !== targets || firstSize !== targets) {
      throw new Error(
        `${tag}: targets.add added ${added.added} targets and planned ${firstSize} executions at ${first.fill_at.toISOString()}; expected ${targets}`,
      );
    }
    log(`${tag}: added and planned in ${(addMs / 1000).toFixed(1)} s`);

    const orchestrator = measuredOrchestrator(rota, "bench-fan-out");
    const statements = recordStatements();
    try {
      const warm = checked(await orchestrator.tick(), "first tick");
      if (warm.materialized?.schedules !== 0) {
        throw new Error(`${tag}: the first tick planned a cadence before it came due`);
      }
      const rows: {
        step: FanOutStepTiming;
        tickMs: number;
        secondMs: number;
        secondTickMs: number;
      }[] = [];
      for (let r = 1; r <= rounds; r++) {
        await pool.query(`vacuum analyze ${jobs}`);
        await pool.query(`vacuum analyze ${quoteIdent(schema)}.schedule_targets`);
        const { fill_at: due, cursor_at: next } = await position();
        await shiftPast(rota, due);
        const tick = await timedTick(orchestrator, statements, `round ${r}`);
        const step = fanOutStep(tick.timings);
        const m = tick.report.materialized;
        const written = await cadenceSize(next);
        if (!step || m?.schedules !== 1 || m.executions !== targets || written !== targets) {
          throw new Error(
            `${tag}: round ${r}: the tick wrote ${m?.executions ?? 0} executions (${written} for ${next.toISOString()}) for ${m?.schedules ?? 0} schedules; expected ${targets} for 1`,
          );
        }

        const idle = await timedTick(orchestrator, statements, `round ${r}, second tick`);
        const second = fanOutStep(idle.timings);
        if (!second || idle.report.materialized?.schedules !== 0) {
          throw new Error(`${tag}: round ${r}: the second tick planned again`);
        }
        rows.push({
          step,
          tickMs: tick.ms,
          secondMs: second.stepMs,
          secondTickMs: idle.ms,
        });
        log(
          `${tag}: round ${r}: ${m.executions} executions for ${next.toISOString()}, step ${step.stepMs.toFixed(0)} ms (FanOut ${step.fanOutMs.toFixed(0)} in ${step.fanOuts}, FetchTargets ${step.fetchMs.toFixed(0)}, Count ${step.countMs.toFixed(0)}, commit ${step.commitMs.toFixed(0)}, in Node ${step.processMs.toFixed(0)}), tick ${tick.ms.toFixed(0)} ms; second pass ${second.stepMs.toFixed(1)} ms, tick ${idle.ms.toFixed(1)} ms`,
        );
      }
      const middle = (pick: (s: FanOutStepTiming) => number) =>
        round(median(rows.map((row) => pick(row.step))), 1);
      const materializeMs = median(rows.map((row) => row.step.stepMs));
      return {
        workload,
        distribution,
        targets,
        rounds,
        cron: FAN_OUT_CRON,
        window: FAN_OUT_WINDOW,
        executions: targets,
        materialize_ms: round(materializeMs, 1),
        materialize_ms_rounds: rows.map((row) => round(row.step.stepMs, 1)),
        executions_per_s: Math.round((targets / materializeMs) * 1000),
        parts: {
          due_for_fill_ms: middle((s) => s.dueForFillMs),
          materialize_sql_ms: middle((s) => s.materializeSqlMs),
          count_ms: middle((s) => s.countMs),
          cursor_ms: middle((s) => s.cursorMs),
          fetch_ms: middle((s) => s.fetchMs),
          fan_out_ms: middle((s) => s.fanOutMs),
          begin_ms: middle((s) => s.beginMs),
          commit_ms: middle((s) => s.commitMs),
          process_ms: middle((s) => s.processMs),
          pages: rows[0]?.step.fanOuts ?? 0,
        },
        tick_ms: round(median(rows.map((row) => row.tickMs)), 1),
        second_pass_ms: round(median(rows.map((row) => row.secondMs)), 1),
        second_pass_ms_rounds: rows.map((row) => round(row.secondMs, 1)),
        second_tick_ms: round(median(rows.map((row) => row.secondTickMs)), 1),
        add_ms: round(addMs, 1),
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

/** tenant-000000, tenant-000001, …: generated as targets.add reads them. */
function* targetKeys(count: number): Generator<string> {
  const width = String(count - 1).length;
  for (let i = 0; i < count; i++) yield `tenant-${String(i).padStart(width, "0")}`;
}
