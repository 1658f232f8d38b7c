import { databaseOf, Rota } from "../../src/client.js";
import type { Worker } from "../../src/worker/worker.js";
import { percentile, round } from "../stats.js";
import { dropSchema, quoteIdent } from "../systems/schema.js";
import { sleep } from "../time.js";

/** Every second (6-field cron, seconds first). */
export const EVERY_SECOND = "* * * * * *";
const TASK = "bench_tick";
const QUEUE = "bench";
/** How long after the end an occurrence may still start and be counted. */
const SETTLE_MS = 5_000;

/** What a run of every-second schedules measures (lateness and failover alike). */
export interface FiringMeasurement {
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

export interface LatenessMeasurement extends FiringMeasurement {
  workload: "lateness";
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
    const firing = await startFiring(rota, options);
    const orchestrator = rota.orchestrator({ holder: "bench-lateness" });
    await orchestrator.start();
    try {
      log(
        `lateness: ${options.schedules} schedules firing every second for ${options.seconds} s (worker concurrency ${options.concurrency})`,
      );
      for (let elapsed = 0; elapsed < options.seconds; ) {
        const step = Math.min(10, options.seconds - elapsed);
        await sleep(step * 1000);
        elapsed += step;
        log(
          `lateness: ${elapsed}/${options.seconds} s, ${firing.samples.length} fired, p99 so far ${percentile(
            firing.samples.map((s) => s.lateMs),
            99,
          ).toFixed(1)} ms`,
        );
      }
      const counted = await settle(firing);
      await orchestrator.stop();
      await firing.worker.stop();
      return {
        workload: "lateness",
        ...options,
        ...counted,
        states: await executionStates(rota, schema),
      };
    } finally {
      await orchestrator.stop();
      await firing.worker.stop();
    }
  } finally {
    await rota.close();
    await dropSchema(databaseUrl, schema);
  }
}

/** One run of a handler: when it was planned, and how late it started (process clock). */
export interface Fire {
  runAt: number;
  lateMs: number;
}

/** Every-second schedules and a worker that records each run (shared with the failover workload). */
export interface Firing {
  worker: Worker;
  samples: Fire[];
  claimSamples: number[];
  /** Runs per `scheduleId@occurrence`. */
  fires: Map<string, number>;
  /** Each schedule's first planned occurrence (ms): where its measured window starts. */
  first: Map<string, number>;
}

/** Starts a worker and upserts `schedules` every-second schedules. */
export async function startFiring(
  rota: Rota,
  options: { schedules: number; concurrency: number },
): Promise<Firing> {
  const firing: Firing = {
    worker: null as unknown as Worker,
    samples: [],
    claimSamples: [],
    fires: new Map(),
    first: new Map(),
  };
  rota.events.on("schedule:execution:fired", (e) => firing.claimSamples.push(e.lateMs));
  firing.worker = rota.worker({
    tasks: {
      [TASK]: async (_payload, ctx) => {
        const at = Date.now();
        const runAt = ctx.job.runAt.getTime();
        firing.samples.push({ runAt, lateMs: at - runAt });
        const key = `${ctx.job.scheduleId}@${ctx.job.occurrenceAt?.getTime()}`;
        firing.fires.set(key, (firing.fires.get(key) ?? 0) + 1);
      },
    },
    queues: [QUEUE],
    concurrency: options.concurrency,
  });
  await firing.worker.start();
  for (let i = 0; i < options.schedules; i++) {
    const name = `every-second-${i}`;
    const { schedule } = await rota.schedules.upsert({
      name,
      task: TASK,
      queue: QUEUE,
      cron: EVERY_SECOND,
      catchUp: "all",
    });
    const [next] = await rota.schedules.upcoming(name, { limit: 1 });
    if (!next) throw new Error(`schedule ${name} has no upcoming run`);
    firing.first.set(schedule.id, next.runAt.getTime());
  }
  return firing;
}

/**
 * Waits (at most SETTLE_MS) for the last occurrences of the window to start,
 * then counts: lateness over every run, and each occurrence of the window
 * fired once, twice or never.
 */
export async function settle(firing: Firing) {
  const lastSecond = Math.floor(Date.now() / 1000) * 1000;
  let expected = 0;
  const window = new Set<string>();
  for (const [id, from] of firing.first) {
    for (let at = from; at <= lastSecond; at += 1000) {
      window.add(`${id}@${at}`);
      expected++;
    }
  }
  // Let the last occurrences of the window start (a late one still counts, with its lateness).
  const settleUntil = Date.now() + SETTLE_MS;
  while ([...window].some((key) => !firing.fires.has(key)) && Date.now() < settleUntil) {
    await sleep(100);
  }
  let fired = 0;
  let doubles = 0;
  for (const [key, count] of firing.fires) {
    if (count > 1) doubles += count - 1;
    if (window.has(key)) fired++;
  }
  const late = firing.samples.map((s) => s.lateMs);
  return {
    p50_ms: round(percentile(late, 50), 1),
    p95_ms: round(percentile(late, 95), 1),
    p99_ms: round(percentile(late, 99), 1),
    max_ms: round(Math.max(...late), 1),
    samples: late.length,
    fired,
    expected,
    doubles,
    missing: expected - fired,
    claim_p50_ms: round(percentile(firing.claimSamples, 50), 1),
    claim_p99_ms: round(percentile(firing.claimSamples, 99), 1),
  };
}

/** The executions' states in the database afterwards (missed, skipped: did not run). */
export async function executionStates(rota: Rota, schema: string): Promise<Record<string, number>> {
  const states = await databaseOf(rota).pool.query<{ state: string; count: number }>(
    `select state, count(*)::int as count from ${quoteIdent(schema)}.jobs
     where schedule_id is not null group by state order by state`,
  );
  return Object.fromEntries(states.rows.map((r) => [r.state, r.count]));
}
