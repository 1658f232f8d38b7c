/**
 * `npm run soak`: rota under a steady load for minutes on end, to see
 * whether it stays as fast as it starts, and whether vacuum keeps the dead
 * rows every claim and outcome leaves in the jobs table in check (see
 * BENCHMARKS.md, "Soak"). In a schema of its own, dropped at the end:
 *
 *   1. load     `--delayed` jobs due far ahead and `--finished` jobs kept by the
 *               retention, each kind in one INSERT ... SELECT (load.ts), then VACUUM ANALYZE
 *   2. run      `--rate` jobs a second enqueued in 10 ms batches (pacer.ts) for
 *               `--minutes`, `--workers` worker processes (worker-child.ts) running
 *               them, an orchestrator here (it prunes, as the leader of a real
 *               deployment does); the tables looked at every 2 s (sampler.ts)
 *   3. drain    enqueueing stops; up to 30 s for the last jobs to run
 *   4. report   a row per minute (minutes.ts) and a verdict (verdict.ts): a
 *               table (report.ts), or with --json one object
 *
 *   DATABASE_URL=postgres://… npm run soak -- [--minutes M] [--rate R] [--json]
 */
import { loadavg } from "node:os";
import pg from "pg";
import { databaseOf, Rota } from "../../src/client.js";
import type { Orchestrator } from "../../src/orchestrator/orchestrator.js";
import { runBenchmark } from "../harness.js";
import { nowMs, sleep } from "../time.js";
import { parseStorage, SOAK_FLAGS, type SoakOptions } from "./flags.js";
import { loadJobs, SOAK_RETENTION } from "./load.js";
import { figuresOf, MinuteLog } from "./minutes.js";
import { PACE_MS, Pacer } from "./pacer.js";
import { formatSoakReport, type SoakBody } from "./report.js";
import { type Backlog, SAMPLE_MS, type Sample, Sampler } from "./sampler.js";
import { verdictOf } from "./verdict.js";
import { type SoakWorker, startSoakWorker } from "./workers.js";

const SCHEMA = "rota_soak";
const DRAIN_MS = 30_000;
const MINUTE_MS = 60_000;

runBenchmark({
  name: "rota soak",
  fromCheckout: "npm run soak -- [options]  (node --import tsx bench/soak/run.ts [options])",
  description:
    "Loads delayed and finished jobs, then enqueues at a steady rate for minutes with workers keeping up, and reports per minute: throughput, latency, dead rows, sizes, autovacuum runs, backlog.",
  details: `The goal: the last minute's latency p99 within 1.5x of minute 1's, and dead rows bounded
(the last minute's highest share of dead rows in rota's tables at most the first half's highest).
Runs in the schema ${SCHEMA}, dropped before and after.`,
  flags: SOAK_FLAGS,
  savePrefix: "soak-",
  check: (options) => {
    const storage = parseStorage(options.jobsStorage);
    return typeof storage === "string" ? storage : undefined;
  },
  measure: (options, { databaseUrl, log }) => soak(options, databaseUrl, log),
  format: formatSoakReport,
});

async function soak(
  options: SoakOptions,
  databaseUrl: string,
  log: (line: string) => void,
): Promise<SoakBody> {
  const rota = new Rota({ connection: databaseUrl, schema: SCHEMA, retention: SOAK_RETENTION });
  const db = databaseOf(rota);
  // Its own connections, so a look at the tables never waits behind an enqueue.
  const sampleDb = db.derive({ poolSize: 3, settings: {}, applicationName: "rota soak sampler" });
  const sampler = new Sampler(sampleDb);
  const workers: SoakWorker[] = [];
  let orchestrator: Orchestrator | null = null;
  try {
    await db.pool.query(`drop schema if exists ${pg.escapeIdentifier(SCHEMA)} cascade`);
    await rota.migrate();
    const storage = parseStorage(options.jobsStorage) as [string, string][];
    if (storage.length > 0) {
      const params = storage.map(([name, value]) => `${name} = ${value}`).join(", ");
      await db.pool.query(`alter table ${pg.escapeIdentifier(SCHEMA)}.jobs set (${params})`);
    }
    log(`loading ${count(options.delayed)} delayed and ${count(options.finished)} finished jobs`);
    const load = await loadJobs(db, options, log);
    const server = await sampler.settings();
    log(`server: ${JSON.stringify(server)}`);
    const before = await sampler.sample();

    // Workers report only once told when the run starts, so the log exists by then.
    let recording: MinuteLog | null = null;
    for (let index = 0; index < options.workers; index++) {
      const args = { databaseUrl, schema: SCHEMA, concurrency: options.concurrency, index };
      workers.push(startSoakWorker(args, (message) => recording?.progress(message)));
    }
    const failed = Promise.race(workers.map((w) => w.failed));
    failed.catch(() => {});
    await Promise.race([Promise.all(workers.map((w) => w.ready)), failed]);
    orchestrator = rota.orchestrator();
    await orchestrator.start();

    const startAt = nowMs();
    const record = new MinuteLog(startAt, SAMPLE_MS);
    recording = record;
    for (const worker of workers) worker.send({ type: "start", at: startAt });
    const pacer = new Pacer(rota, options.rate, (n, t) => record.enqueuedAt(n, t));
    pacer.start(startAt);
    log(
      `running: ${options.rate} jobs/s for ${options.minutes} min, ${options.workers} worker process(es) of concurrency ${options.concurrency}`,
    );
    const ends = await runMinutes(options.minutes, startAt, sampler, record, pacer, failed, log);

    await pacer.stop();
    log("enqueueing stopped; draining");
    const drainUntil = nowMs() + DRAIN_MS;
    while (nowMs() < drainUntil) {
      const { enqueued, completed } = record.totals();
      if (completed >= enqueued) break;
      await Promise.race([sleep(500), failed]);
    }
    // Their last reports come before they stop.
    await Promise.all(workers.splice(0).map((w) => w.stop()));

    const rows = ends.map((end, minute) => record.row(minute, end.sample, end.backlog, end.load));
    const totals = record.totals();
    const jobsAtEnd = ends.at(-1)?.sample.tables.find((t) => t.table_name === "jobs");
    const jobsBefore = before.tables.find((t) => t.table_name === "jobs");
    return {
      load,
      setup: {
        enqueue: `enqueueMany every ${PACE_MS} ms (about ${batchSize(options.rate)} a batch)`,
        workers: options.workers,
        concurrency: options.concurrency,
        retention: "succeeded 1 day, failed 14 days",
      },
      server,
      before: figuresOf(before),
      minutes: rows,
      totals: { ...totals, completed_in_drain: record.completedAfter(options.minutes - 1) },
      verdict: verdictOf(rows, {
        autovacuum: server.autovacuum === "on",
        autovacuumSource: server.autovacuum_source ?? null,
        jobsStorage: server.jobs_storage_parameters ?? null,
        enqueued: totals.enqueued,
        completed: totals.completed,
        jobsVacuumTrigger: jobsAtEnd?.vacuum_trigger ?? null,
        jobsAutovacuumBefore: jobsBefore?.autovacuum_count ?? 0,
      }),
    };
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
    await orchestrator?.stop();
    await db.pool.query(`drop schema if exists ${pg.escapeIdentifier(SCHEMA)} cascade`);
    await sampleDb.close();
    await rota.close();
  }
}

/** Jobs in one of the pacer's batches at `rate`, as people read it. */
function batchSize(rate: number): string {
  const jobs = Math.max(1, Math.round((rate * PACE_MS) / 1000));
  return `${jobs} job${jobs === 1 ? "" : "s"}`;
}

function count(n: number): string {
  return n.toLocaleString("en");
}

interface MinuteEnd {
  sample: Sample;
  backlog: Backlog;
  load: number;
}

/**
 * The run itself: a look at the tables every SAMPLE_MS, and at each
 * minute's end one more with the backlog and the load average. The minute's
 * latencies and completions are still arriving then (the workers report every
 * second, a job's latency under the minute it was enqueued in): its row is
 * made at the end of the run, and what is logged now is what has come so far.
 */
async function runMinutes(
  count: number,
  startAt: number,
  sampler: Sampler,
  minutes: MinuteLog,
  pacer: Pacer,
  failed: Promise<never>,
  log: (line: string) => void,
): Promise<MinuteEnd[]> {
  const ends: MinuteEnd[] = [];
  let tick = 1;
  while (ends.length < count) {
    const at = startAt + tick * SAMPLE_MS;
    await Promise.race([sleep(at - nowMs()), failed]);
    if (pacer.error !== null) throw pacer.error;
    const boundary = startAt + (ends.length + 1) * MINUTE_MS;
    if (nowMs() >= boundary) {
      const [sample, backlog] = await Promise.all([sampler.sample(), sampler.backlog()]);
      const end = { sample, backlog, load: loadavg()[0] ?? 0 };
      ends.push(end);
      const row = minutes.row(ends.length - 1, sample, backlog, end.load);
      log(
        `minute ${row.minute}: ${row.enqueued_per_s} enqueued/s, ${row.completed_per_s} completed/s, p50/p99 ${row.p50_ms}/${row.p99_ms} ms (so far), backlog ${row.backlog}, jobs dead ${row.jobs_dead_tuples} (max ${row.jobs_dead_tuples_max}), live ${row.jobs_live_tuples}, ${(row.jobs_total_bytes / 2 ** 20).toFixed(0)} MB, autovacuums ${row.jobs_autovacuum_count}/${row.autovacuum_count}, vacuum ${row.jobs_vacuum_seconds} s, oldest xmin ${row.oldest_xmin_holder_s ?? "-"} s, load ${row.load_average}`,
      );
    } else {
      minutes.sampled(await sampler.sample(), nowMs());
    }
    // A slow look (a loaded machine) skips the ticks it overran, never a minute's end.
    tick = Math.max(tick + 1, Math.ceil((nowMs() - startAt) / SAMPLE_MS));
    const nextBoundaryTick = ((ends.length + 1) * MINUTE_MS) / SAMPLE_MS;
    tick = Math.min(tick, nextBoundaryTick);
  }
  return ends;
}
