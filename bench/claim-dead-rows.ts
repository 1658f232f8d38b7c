// The claim as the dead row versions of jobs that went through the queue
// pile up before a vacuum, and what a vacuum at autovacuum's pace costs on a
// big jobs table. On the soak's load (bench/soak/load.ts: delayed and
// finished jobs, the history a retention keeps), jobs are taken through the
// queue in bulk, as the worker would one claim at a time: inserted
// available, updated to running, then to succeeded (kept by the retention),
// two dead versions each. After each step: the median of 30 claims (20 jobs
// available, the worker's generic plan, each claim's jobs then finished), and
// the claim's candidate scan of jobs_available alone, its buffers and time.
// At the end, VACUUM with autovacuum's throttle (vacuum_cost_delay 2 ms,
// vacuum_cost_limit 200: the server defaults autovacuum uses), timed, and
// the claim again; then one more step and one more throttled vacuum, for
// the cost of a vacuum with few dead rows on the same big table.
//
//   DATABASE_URL=postgres://… node --import tsx bench/claim-dead-rows.ts [STEPS] [LOADED]
//   STEPS: jobs through the queue at each measure, default 0,50000,100000,200000,400000
//   LOADED: delayed and finished jobs loaded first, default 1,000,000 of each
import pg from "pg";
import { databaseOf, Rota } from "../src/client.js";
import { jobQueries } from "../src/db/queries/jobs.js";
import { loadJobs, SOAK_QUEUE, SOAK_TASK } from "./soak/load.js";
import { median, percentile } from "./stats.js";

const url = process.env.DATABASE_URL;
if (!url) throw new Error("set DATABASE_URL");
const steps = (process.argv[2] ?? "0,50000,100000,200000,400000").split(",").map(Number);
const loaded = Number(process.argv[3] ?? 1_000_000);
const schema = "rota_bench_claim_dead_rows";
const rota = new Rota({ connection: url, schema });
const db = databaseOf(rota);
const jobs = `${pg.escapeIdentifier(schema)}.jobs`;
const q = jobQueries(schema);

await db.pool.query(`drop schema if exists ${pg.escapeIdentifier(schema)} cascade`);
await rota.migrate();
await loadJobs(db, { delayed: loaded, finished: loaded }, (line) => console.error(line));
// As the worker's claim connection: one generic plan, commits without waiting for the disk.
const client = await db.pool.connect();
await client.query("set plan_cache_mode = force_generic_plan; set synchronous_commit = off");

const addAvailable = (n: number) =>
  client.query(
    `insert into ${jobs} (queue, task, run_at) select $2, $3, now() from generate_series(1, $1::int)`,
    [n, SOAK_QUEUE, SOAK_TASK],
  );
const finishRunning = () =>
  client.query(
    `update ${jobs} set state = 'succeeded', finished_at = now(), lease_holder = null,
                        lease_expires_at = null
     where state = 'running'`,
  );

/** `n` jobs through the queue, 50,000 at a time: available, running, succeeded. */
async function throughQueue(n: number): Promise<void> {
  for (let done = 0; done < n; done += 50_000) {
    await addAvailable(Math.min(50_000, n - done));
    await client.query(
      `update ${jobs} set state = 'running', attempts = 1, lease_holder = 'probe',
                          lease_expires_at = now() + interval '1 minute', started_at = now()
       where state = 'available'`,
    );
    await finishRunning();
  }
}

async function measure(label: string): Promise<void> {
  const times: number[] = [];
  for (let i = 0; i < 30; i++) {
    await addAvailable(20);
    const started = performance.now();
    await db.run(
      q.Claim,
      {
        queues: [SOAK_QUEUE],
        tasks: [SOAK_TASK],
        limit: 30,
        workerId: "probe",
        leaseMs: 60_000,
        startNow: 10,
        passOver: [],
        traced: false,
      },
      client,
    );
    times.push(performance.now() - started);
    await finishRunning();
  }
  await addAvailable(20);
  const explained = await client.query(
    `explain (analyze, buffers, format json)
     select id from ${jobs}
     where state = 'available' and hashtext(queue) = hashtext($1) and queue = $1
     order by priority desc, run_at, id limit 30`,
    [SOAK_QUEUE],
  );
  await client.query(
    `update ${jobs} set state = 'succeeded', finished_at = now() where state = 'available'`,
  );
  const plan = explained.rows[0]["QUERY PLAN"][0];
  const buffers = plan.Plan["Shared Hit Blocks"] + plan.Plan["Shared Read Blocks"];
  await client.query("select pg_stat_force_next_flush()");
  const dead = await db.pool.query(
    `select n_dead_tup::float8 as dead from pg_stat_user_tables where schemaname = $1 and relname = 'jobs'`,
    [schema],
  );
  console.log(
    `${label.padEnd(44)} claim median ${median(times).toFixed(2)} ms, p90 ${percentile(times, 90).toFixed(2)} ms; candidate scan ${String(buffers).padStart(5)} buffers, ${plan["Execution Time"].toFixed(2)} ms; dead rows ${dead.rows[0].dead}`,
  );
}

/** VACUUM at autovacuum's default pace, timed. */
async function throttledVacuum(): Promise<number> {
  await client.query("set vacuum_cost_delay = '2ms'; set vacuum_cost_limit = 200");
  const started = performance.now();
  await client.query(`vacuum ${jobs}`);
  await client.query("reset vacuum_cost_delay; reset vacuum_cost_limit");
  return (performance.now() - started) / 1000;
}

const size = await db.pool.query(`select pg_total_relation_size('${jobs}')::float8 as bytes`);
console.log(
  `claims over ${(2 * loaded).toLocaleString("en")} loaded jobs (${(size.rows[0].bytes / 2 ** 20).toFixed(0)} MB with indexes)`,
);
let made = 0;
for (const step of steps) {
  await throughQueue(step - made);
  made = step;
  await measure(`${step.toLocaleString("en")} jobs through since the last vacuum`);
}
console.log(`VACUUM at autovacuum's pace: ${(await throttledVacuum()).toFixed(1)} s`);
await measure("right after it");
const again = steps[1] ?? 50_000;
await throughQueue(again);
await measure(`${again.toLocaleString("en")} jobs through since the last vacuum`);
console.log(`VACUUM at autovacuum's pace: ${(await throttledVacuum()).toFixed(1)} s`);
await measure("right after it");

client.release();
await db.pool.query(`drop schema ${pg.escapeIdentifier(schema)} cascade`);
await rota.close();
