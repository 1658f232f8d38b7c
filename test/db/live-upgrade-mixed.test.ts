// A live upgrade with the previous release's code running: a worker and an
// orchestrator of rota as it was at schema version 17 (commit adeccfd,
// built from git into a temporary folder) work a schema it migrated, with
// jobs enqueued from SQL all along and a per-second schedule; the current
// rota migrates the schema to the latest while they run; then its own
// worker and orchestrator take over and the old ones stop. Every job runs
// exactly once, and every occurrence of the schedule once.
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Rota } from "../../src/client.js";
import { LATEST_SCHEMA_VERSION } from "../../src/db/migrate.js";
import { ownDatabase } from "../helpers/database.js";
import { buildPastRelease, exited, outputOf, type PastRelease } from "../helpers/past-release.js";
import { recordingWorker, SIDE_TASKS } from "../helpers/side-table.js";

/** The last commit at schema version 17, before migrations 18 to 20. */
const PREVIOUS = "adeccfd0ea1fdc4e0116dfcdbfd5f293b74fe3b8";
const PREVIOUS_VERSION = 17;
const schema = "rota";
let release: PastRelease;
// A database of its own: the migration builds an index CONCURRENTLY, which
// waits for every older transaction of its database (the other test files'
// in the shared one).
let database: Awaited<ReturnType<typeof ownDatabase>>;
const databaseUrl = () => database.url;
async function withClient<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client(database.url);
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

beforeAll(async () => {
  database = await ownDatabase();
  release = buildPastRelease(PREVIOUS);
}, 180_000);

afterAll(async () => {
  release?.remove();
  await database?.drop();
});

/** A process of the previous release's CLI. */
function previous(args: string[]) {
  return release.cli([...args, "--schema", schema], {
    DATABASE_URL: databaseUrl(),
    ROTA_TEST_SCHEMA: schema,
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("a live upgrade from the previous release", () => {
  it("migrates under its running worker and orchestrator; the new ones take over; every job and occurrence runs once", async () => {
    expect(await exited(previous(["migrate"]))).toBe(0);
    const s = pg.escapeIdentifier(schema);
    const version = await withClient((c) =>
      c.query(`select max(version) as v from ${s}.migrations`),
    );
    expect(version.rows[0].v).toBe(PREVIOUS_VERSION);
    // The side table the tasks module writes each run into (as createSideTable makes it).
    await withClient((c) =>
      c.query(
        `create table ${s}.side_runs (job_id bigint not null, attempt int not null, pid int not null,
           note text not null, at timestamptz not null default clock_timestamp())`,
      ),
    );
    expect(
      await exited(previous(["schedules", "add", "tick", "--task", "record", "--every", "1s"])),
    ).toBe(0);
    const oldWorker = previous(["worker", "--tasks", SIDE_TASKS, "--queues", "default"]);
    const oldOrchestrator = previous(["orchestrator", "--tick-ms", "200"]);

    // Jobs from SQL all along: the function exists in both versions.
    let enqueuing = true;
    let enqueued = 0;
    const producer = (async () => {
      while (enqueuing) {
        await withClient((c) => c.query(`select ${s}.enqueue('record', '{}'::jsonb)`));
        enqueued++;
        await sleep(20);
      }
    })();
    // Both old processes up before the upgrade, whatever the machine's load:
    // one that starts after it refuses the newer schema (SCHEMA_TOO_NEW), as
    // it should. The worker has run a job, and the orchestrator holds the
    // lease (the schedule's first executions were planned when it was added).
    await sleep(2_000);
    for (let i = 0; ; i++) {
      const up = await withClient((c) =>
        c.query(
          `select (select count(*) from ${s}.side_runs) > 0
                  and exists (select 1 from ${s}.leases where name = 'orchestrator') as up`,
        ),
      );
      if (up.rows[0].up) break;
      if (i > 300) {
        throw new Error(
          `the previous release's worker never ran a job, or its orchestrator never led:\n${outputOf(oldWorker)}\n${outputOf(oldOrchestrator)}`,
        );
      }
      await sleep(100);
    }

    // The upgrade, while the old processes run.
    const rota = new Rota({ connection: databaseUrl(), schema });
    try {
      const applied = await rota.migrate();
      expect(applied.map((m) => m.version)).toEqual(
        Array.from(
          { length: LATEST_SCHEMA_VERSION - PREVIOUS_VERSION },
          (_, i) => PREVIOUS_VERSION + 1 + i,
        ),
      );
      await sleep(1_500);
      expect(oldWorker.exitCode, outputOf(oldWorker)).toBeNull();
      expect(oldOrchestrator.exitCode, outputOf(oldOrchestrator)).toBeNull();

      // The new release takes over, then the old one stops.
      const { worker, close: closeSide } = recordingWorker(rota, databaseUrl(), schema);
      await worker.start();
      const orchestrator = rota.orchestrator({ tickMs: 200 });
      await orchestrator.start();
      oldWorker.kill("SIGTERM");
      oldOrchestrator.kill("SIGTERM");
      expect(await exited(oldWorker)).toBe(0);
      expect(await exited(oldOrchestrator)).toBe(0);
      await sleep(1_500);
      enqueuing = false;
      await producer;

      // Everything enqueued has run, once.
      for (let i = 0; ; i++) {
        const open = await withClient((c) =>
          c.query(
            `select count(*)::int as n from ${s}.jobs
              where schedule_id is null and state in ('available', 'scheduled', 'running')`,
          ),
        );
        if (open.rows[0].n === 0) break;
        if (i > 300) throw new Error(`${open.rows[0].n} job(s) never ran`);
        await sleep(100);
      }
      await orchestrator.stop();
      await worker.stop();
      await closeSide();
      const runs = await withClient((c) =>
        c.query(
          `select count(*)::int as runs, count(distinct job_id)::int as jobs,
                  count(*) filter (where pid > 0)::int as by_old, count(*) filter (where pid < 0)::int as by_new
             from ${s}.side_runs`,
        ),
      );
      const fired = await withClient((c) =>
        c.query(
          `select count(*)::int as executions, count(distinct occurrence_at)::int as occurrences
             from ${s}.jobs where schedule_id is not null and occurrence_at is not null
              and state in ('succeeded', 'running')`,
        ),
      );
      const { runs: total, jobs, by_old, by_new } = runs.rows[0];
      expect(total).toBe(jobs);
      expect(by_old).toBeGreaterThan(0);
      expect(by_new).toBeGreaterThan(0);
      // Plain jobs (from SQL) and schedule executions, each run once.
      expect(jobs).toBeGreaterThanOrEqual(enqueued);
      expect(fired.rows[0].executions).toBe(fired.rows[0].occurrences);
      expect(fired.rows[0].occurrences).toBeGreaterThan(3);
    } finally {
      // On a failure too: the producer and the old processes stop before the
      // database is dropped.
      enqueuing = false;
      await producer.catch(() => undefined);
      for (const child of [oldWorker, oldOrchestrator]) {
        if (child.exitCode === null) child.kill("SIGKILL");
      }
      await rota.close();
    }
  }, 120_000);
});
