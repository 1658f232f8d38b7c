// A live upgrade from rota's first release with jobs and schedules (schema
// version 4, commit b5dc137, built from git): that release's worker runs
// through every migration since, to the latest, while producers of that
// release go on enqueueing; then the current release's orchestrator plans
// the schedule on and its worker takes over. Every job runs exactly once,
// every occurrence of the per-second schedule fires once (catch-up `all`:
// none may go missing either). On a table of 300,000 jobs the upgrade takes
// no lock that holds the table's writers for a build (no SHARE lock is
// seen), and no enqueue or job of the first release waits a second.
//
// That release's orchestrator is stopped before the upgrade, as the
// upgrade notes ask (README, "Upgrading"): migration 0009 renames the
// schedule columns it reads. Its worker reads only the jobs table, whose
// columns no migration since has renamed or dropped.
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Rota } from "../../src/client.js";
import { LATEST_SCHEMA_VERSION } from "../../src/db/migrate.js";
import { ownDatabase } from "../helpers/database.js";
import { buildPastRelease, exited, outputOf, type PastRelease } from "../helpers/past-release.js";
import { recordingWorker, SIDE_TASKS } from "../helpers/side-table.js";

/** The last commit at schema version 4: the first with a worker, an orchestrator and schedules. */
const FIRST = "b5dc137301a2e8ea6e81f98660d2844c1d0a57f7";
const FIRST_VERSION = 4;
const schema = "rota";
const s = pg.escapeIdentifier(schema);
let first: PastRelease;
// A database of its own: migration 0020 builds an index CONCURRENTLY, which
// waits for every older transaction of its database.
let database: Awaited<ReturnType<typeof ownDatabase>>;

async function query<R extends pg.QueryResultRow>(text: string): Promise<R[]> {
  const client = new pg.Client(database.url);
  await client.connect();
  try {
    return (await client.query<R>(text)).rows;
  } finally {
    await client.end();
  }
}

/** The one row a query returns. */
async function one<R extends pg.QueryResultRow>(text: string): Promise<R> {
  const [row] = await query<R>(text);
  if (!row) throw new Error(`no row: ${text}`);
  return row;
}

beforeAll(async () => {
  database = await ownDatabase();
  first = buildPastRelease(FIRST);
}, 180_000);

afterAll(async () => {
  first?.remove();
  await database?.drop();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("a live upgrade from the first release", () => {
  it("its worker runs through every migration to the latest; every job and occurrence runs once", async () => {
    const env = { DATABASE_URL: database.url, ROTA_TEST_SCHEMA: schema };
    const cli = (args: string[]) => first.cli([...args, "--schema", schema], env);
    expect(await exited(cli(["migrate"]))).toBe(0);
    const { v } = await one<{ v: number }>(`select max(version) as v from ${s}.migrations`);
    expect(v).toBe(FIRST_VERSION);
    await query(
      `create table ${s}.side_runs (job_id bigint not null, attempt int not null, pid int not null,
         note text not null, at timestamptz not null default clock_timestamp())`,
    );
    expect(
      await exited(
        cli(["schedules", "add", "tick", "--task", "record", "--every", "1s", "--catch-up", "all"]),
      ),
    ).toBe(0);
    // A table of some size: 300,000 jobs waiting a day or failed, in a
    // queue nobody serves, for the migrations' index builds and checks to read.
    await query(
      `insert into ${s}.jobs (queue, task, payload, state, run_at, attempts, finished_at)
       select 'bulk', 'task', jsonb_build_object('n', g),
              case when g % 5 = 0 then 'failed' else 'scheduled' end,
              now() + interval '1 day', 0, case when g % 5 = 0 then now() end
       from generate_series(1, 300000) as g`,
    );
    const oldWorker = cli(["worker", "--tasks", SIDE_TASKS, "--queues", "default"]);
    const oldOrchestrator = cli(["orchestrator", "--tick-ms", "200"]);

    // A producer of the first release, in this process, all along.
    const { Rota: FirstRota } = await import(`${first.root}/dist/index.js`);
    const producerRota = new FirstRota({ connection: database.url, schema });
    let producing = true;
    let produced = 0;
    const enqueueMs: { at: number; ms: number }[] = [];
    // When each job was enqueued (committed), by id: succeeded jobs leave
    // the table on completion, their side_runs row says when they ran.
    const enqueuedAt = new Map<string, number>();
    const producer = (async () => {
      while (producing) {
        const started = Date.now();
        const { id } = await producerRota.enqueue("record", { n: produced });
        enqueuedAt.set(String(id), Date.now());
        enqueueMs.push({ at: started, ms: Date.now() - started });
        produced++;
        await sleep(20);
      }
    })();
    await sleep(2_500);
    // The first release's worker up before the upgrade, whatever the
    // machine's load (one that starts after it refuses the newer schema,
    // SCHEMA_TOO_NEW, as it should): it has run a job.
    for (let i = 0; ; i++) {
      const ran = await one<{ n: number }>(`select count(*)::int as n from ${s}.side_runs`);
      if (ran.n > 0) break;
      if (i > 300) throw new Error(`the first release's worker never ran:\n${outputOf(oldWorker)}`);
      await sleep(100);
    }

    // The upgrade notes: stop orchestrators older than schema 9, then migrate.
    oldOrchestrator.kill("SIGTERM");
    expect(await exited(oldOrchestrator)).toBe(0);
    const rota = new Rota({ connection: database.url, schema });
    // The locks the migration takes on the jobs table, watched for: a plain
    // CREATE INDEX takes SHARE, which holds every insert and update until
    // the build ends (none may be seen); an ALTER TABLE takes ACCESS
    // EXCLUSIVE for a moment (how long it is held is reported).
    const watcher = new pg.Client(database.url);
    await watcher.connect();
    let watching = true;
    const blockingLocks: string[] = [];
    // Each hold of ACCESS EXCLUSIVE, from the first poll that saw it to the
    // last (a hold not seen by a poll has ended).
    const exclusiveHeld = new Map<number, { first: number; last: number }>();
    let longestExclusiveMs = 0;
    const watching$ = (async () => {
      while (watching) {
        const locks = await watcher.query<{ pid: number; mode: string }>(
          `select l.pid, l.mode from pg_locks l join pg_class c on c.oid = l.relation
             join pg_namespace n on n.oid = c.relnamespace
            where n.nspname = $1 and c.relname = 'jobs' and l.granted
              and l.locktype = 'relation'
              and l.mode in ('ShareLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock')`,
          [schema],
        );
        const now = performance.now();
        const seen = new Set<number>();
        for (const lock of locks.rows) {
          if (lock.mode !== "AccessExclusiveLock") blockingLocks.push(lock.mode);
          else {
            seen.add(lock.pid);
            const held = exclusiveHeld.get(lock.pid) ?? { first: now, last: now };
            held.last = now;
            exclusiveHeld.set(lock.pid, held);
          }
        }
        for (const [pid, held] of exclusiveHeld) {
          if (seen.has(pid)) continue;
          longestExclusiveMs = Math.max(longestExclusiveMs, held.last - held.first);
          exclusiveHeld.delete(pid);
        }
        await sleep(2);
      }
    })();
    const stopWatching = async () => {
      if (!watching) return;
      watching = false;
      await watching$;
      await watcher.end();
    };
    try {
      const before = await one<{ at: Date }>(`select clock_timestamp() as at`);
      const applied = await rota.migrate();
      const after = await one<{ at: Date }>(`select clock_timestamp() as at`);
      await stopWatching();
      expect(blockingLocks).toEqual([]);
      expect(applied.map((m) => m.version)).toEqual(
        Array.from(
          { length: LATEST_SCHEMA_VERSION - FIRST_VERSION },
          (_, i) => FIRST_VERSION + 1 + i,
        ),
      );
      // The first release's worker goes on through and after the upgrade,
      // now running executions the current orchestrator plans.
      const orchestrator = rota.orchestrator({ tickMs: 200 });
      await orchestrator.start();
      await sleep(2_500);
      expect(oldWorker.exitCode, outputOf(oldWorker)).toBeNull();

      // The current release's worker takes over; the first one stops.
      const { worker, close: closeSide } = recordingWorker(rota, database.url, schema);
      await worker.start();
      oldWorker.kill("SIGTERM");
      expect(await exited(oldWorker)).toBe(0);
      await sleep(1_500);
      producing = false;
      await producer;

      for (let i = 0; ; i++) {
        const open = await one<{ n: number }>(
          `select count(*)::int as n from ${s}.jobs
            where queue = 'default' and schedule_id is null
              and state in ('available', 'scheduled', 'running')`,
        );
        if (open.n === 0) break;
        if (i > 300) throw new Error(`${open.n} job(s) never ran`);
        await sleep(100);
      }
      await orchestrator.stop();
      await worker.stop();
      await closeSide();

      // Every job ran once; both releases' workers ran some.
      const runs = await one<{ runs: number; jobs: number; by_first: number; by_current: number }>(
        `select count(*)::int as runs, count(distinct job_id)::int as jobs,
                count(*) filter (where pid > 0)::int as by_first,
                count(*) filter (where pid < 0)::int as by_current
           from ${s}.side_runs`,
      );
      expect(runs.runs).toBe(runs.jobs);
      expect(runs.by_first).toBeGreaterThan(0);
      expect(runs.by_current).toBeGreaterThan(0);
      // Succeeded plain jobs leave the table on completion (the default
      // retention); executions stay for their history. So the jobs run are
      // every job produced plus every execution that succeeded.
      const executions = await one<{ n: number; ran: number }>(
        `select count(*)::int as n, count(r.job_id)::int as ran
           from ${s}.jobs as j left join ${s}.side_runs as r on r.job_id = j.id
          where j.schedule_id is not null and j.state = 'succeeded'`,
      );
      expect(executions.ran).toBe(executions.n);
      expect(runs.jobs).toBe(produced + executions.n);

      // Every occurrence once, and none missing from the first to the last.
      const fired = await one<{ executions: number; occurrences: number; span: number }>(
        `select count(*)::int as executions, count(distinct occurrence_at)::int as occurrences,
                (extract(epoch from max(occurrence_at) - min(occurrence_at)))::int + 1 as span
           from ${s}.jobs where schedule_id is not null and state = 'succeeded'`,
      );
      expect(fired.executions).toBe(fired.occurrences);
      expect(fired.occurrences).toBe(fired.span);
      expect(fired.occurrences).toBeGreaterThan(5);

      // The first release's worker waited on no migration lock for more
      // than a second: the longest a job enqueued during the upgrade waited
      // from its enqueue to its run.
      const from = before.at.getTime();
      const to = after.at.getTime();
      const ranByFirst = await query<{ job_id: string; at: Date }>(
        `select job_id, at from ${s}.side_runs where pid > 0`,
      );
      const waits = ranByFirst
        .map((r) => ({ queued: enqueuedAt.get(r.job_id), ran: r.at.getTime() }))
        .filter((w): w is { queued: number; ran: number } => w.queued !== undefined)
        .filter((w) => w.queued >= from && w.queued <= to)
        .map((w) => w.ran - w.queued);
      const wait = { n: waits.length, ms: Math.max(...waits) };
      const enqueues = enqueueMs.filter((e) => e.at >= from && e.at <= to);
      const longestEnqueue = Math.max(...enqueues.map((e) => e.ms));
      console.log(
        `live upgrade from schema ${FIRST_VERSION} (300,000 jobs): migrated in ${to - from} ms; ` +
          `${enqueues.length} enqueues meanwhile, the longest ${longestEnqueue} ms; ` +
          `${wait.n} of those jobs ran on the first release's worker, the longest wait ${wait.ms} ms; ` +
          `ACCESS EXCLUSIVE on jobs held at most ~${Math.round(longestExclusiveMs)} ms (polled every 2 ms)`,
      );
      expect(enqueues.length).toBeGreaterThan(0);
      expect(longestEnqueue).toBeLessThan(1_000);
      expect(wait.n).toBeGreaterThan(0);
      expect(wait.ms).toBeLessThan(1_000);
    } finally {
      // On a failure too: the producer and the first release's worker stop
      // before the database is dropped.
      await stopWatching().catch(() => undefined);
      producing = false;
      await producer.catch(() => undefined);
      await producerRota.close();
      if (oldWorker.exitCode === null) oldWorker.kill("SIGKILL");
      await rota.close();
    }
  }, 120_000);
});
