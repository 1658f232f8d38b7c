import { databaseOf, Rota } from "../../src/client.js";
import { percentile, round } from "../stats.js";
import { dropSchema, quoteIdent } from "../systems/schema.js";
import { sleep } from "../time.js";

/** Every second (6-field cron, seconds first). */
export const EVERY_SECOND = "* * * * * *";
const TASK = "bench_tick";
const QUEUE = "bench";
/** How long after the end an occurrence may still start and be counted. */
const SETTLE_MS = 5_000;

export interface LatenessMeasurement {
  workload: "lateness";
  schedules: number;
  seconds: number;
  concurrency: number;
  /** Handler start (Date.now() at entry) minus the planned run time (ctx.job.runAt). */
  p50_ms: number;
  p95_ms: number;
  p99_ms: number;
  max_ms: number;
  samples: number;
  /** Distinct occurrences that fired, and the occurrences of the measured window. */
  fired: number;
  expected: number;
  /** Occurrences that fired more than once (extra runs), and expected ones that never fired. */
  doubles: number;
  missing: number;
  /** The same lateness seen by the database: the claim's started_at minus run_at (the fired event). */
  claim_p50_ms: number;
  claim_p99_ms: number;
  /** The executions' states in the database afterwards (missed, skipped: did not run). */
  states: Record<string, number>;
}

/**
 * lateness: a worker (no-op handler) and an orchestrator run while
 * `schedules` schedules fire every second for `seconds`. Each handler records
 * when it started against its execution's planned time. The measured window
 * of each schedule runs from its first planned occurrence (the baseline its
 * upsert took) to the end; every occurrence in it must fire exactly once, so
 * `fired` must equal `expected` with no doubles.
 */
export async function latenessWorkload(
  databaseUrl: string,
  options: { schedules: number; seconds: number; concurrency: number },
  log: (line: string) => void,
): Promise<LatenessMeasurement> {
  const schema = "rota_bench_sched_lateness";
  await dropSchema(databaseUrl, schema);
  const rota = new Rota({ connection: databaseUrl, schema });
  try {
    await rota.migrate();
    const samples: number[] = [];
    const claimSamples: number[] = [];
    const fires = new Map<string, number>();
    rota.events.on("schedule:execution:fired", (e) => claimSamples.push(e.lateMs));
    const worker = rota.worker({
      tasks: {
        [TASK]: async (_payload, ctx) => {
          const at = Date.now();
          samples.push(at - ctx.job.runAt.getTime());
          const key = `${ctx.job.scheduleId}@${ctx.job.occurrenceAt?.getTime()}`;
          fires.set(key, (fires.get(key) ?? 0) + 1);
        },
      },
      queues: [QUEUE],
      concurrency: options.concurrency,
    });
    await worker.start();
    const orchestrator = rota.orchestrator({ holder: "bench-lateness" });
    await orchestrator.start();
    try {
      const first = new Map<string, number>();
      for (let i = 0; i < options.schedules; i++) {
        const name = `lateness-${i}`;
        const { schedule } = await rota.schedules.upsert({
          name,
          task: TASK,
          queue: QUEUE,
          cron: EVERY_SECOND,
        });
        const [next] = await rota.schedules.upcoming(name, { limit: 1 });
        if (!next) throw new Error(`schedule ${name} has no upcoming run`);
        first.set(schedule.id, next.runAt.getTime());
      }
      log(
        `lateness: ${options.schedules} schedules firing every second for ${options.seconds} s (worker concurrency ${options.concurrency})`,
      );
      for (let elapsed = 0; elapsed < options.seconds; ) {
        const step = Math.min(10, options.seconds - elapsed);
        await sleep(step * 1000);
        elapsed += step;
        log(
          `lateness: ${elapsed}/${options.seconds} s, ${samples.length} fired, p99 so far ${percentile(samples, 99).toFixed(1)} ms`,
        );
      }
      const end = Date.now();
      const lastSecond = Math.floor(end / 1000) * 1000;
      let expected = 0;
      const window = new Set<string>();
      for (const [id, from] of first) {
        for (let at = from; at <= lastSecond; at += 1000) {
          window.add(`${id}@${at}`);
          expected++;
        }
      }
      // Let the last occurrences of the window start (a late one still counts, with its lateness).
      const settleUntil = Date.now() + SETTLE_MS;
      while ([...window].some((key) => !fires.has(key)) && Date.now() < settleUntil) {
        await sleep(100);
      }
      await orchestrator.stop();
      await worker.stop();

      let fired = 0;
      let doubles = 0;
      for (const [key, count] of fires) {
        if (count > 1) doubles += count - 1;
        if (window.has(key)) fired++;
      }
      const states = await databaseOf(rota).pool.query<{ state: string; count: number }>(
        `select state, count(*)::int as count from ${quoteIdent(schema)}.jobs
         where schedule_id is not null group by state order by state`,
      );
      return {
        workload: "lateness",
        schedules: options.schedules,
        seconds: options.seconds,
        concurrency: options.concurrency,
        p50_ms: round(percentile(samples, 50), 1),
        p95_ms: round(percentile(samples, 95), 1),
        p99_ms: round(percentile(samples, 99), 1),
        max_ms: round(Math.max(...samples), 1),
        samples: samples.length,
        fired,
        expected,
        doubles,
        missing: expected - fired,
        claim_p50_ms: round(percentile(claimSamples, 50), 1),
        claim_p99_ms: round(percentile(claimSamples, 99), 1),
        states: Object.fromEntries(states.rows.map((r) => [r.state, r.count])),
      };
    } finally {
      await orchestrator.stop();
      await worker.stop();
    }
  } finally {
    await rota.close();
    await dropSchema(databaseUrl, schema);
  }
}
