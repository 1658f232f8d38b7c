// The outcome statements alone: N jobs without a batch, made running in
// chunks of SIZE (by hand, untimed), then completed by CompleteByDelete, or
// failed for good by Fail, one statement per chunk (as the worker's
// completer writes them, synchronous_commit off). Prints the median
// statement and the time per job. Run it in two checkouts to compare the
// statements before and after a change (each times its own src/).
// HELD more jobs stay running with the same lease holder all along, as the
// jobs a worker's buffer and other handlers hold while an outcome batch is
// written; the table is analyzed before any runs, as when a worker starts
// on a queue that was idle at the last ANALYZE.
//
//   DATABASE_URL=postgres://… node --import tsx bench/complete-cost.ts [SIZE] [N] [HELD]
import { databaseOf, Rota } from "../src/client.js";
import { jobQueries } from "../src/db/queries/jobs.js";

const url = process.env.DATABASE_URL;
if (!url) throw new Error("set DATABASE_URL");
const size = Number(process.argv[2] ?? 50);
const n = Number(process.argv[3] ?? 50_000);
const heldCount = Number(process.argv[4] ?? 0);
const schema = "rota_bench_complete_cost";
const rota = new Rota({ connection: url, schema });
const db = databaseOf(rota);
await db.pool.query(`drop schema if exists ${schema} cascade`);
await rota.migrate();
const q = jobQueries(schema);
const client = await db.pool.connect();
await client.query("set synchronous_commit = off");
const error = JSON.stringify({ message: "no" });
for (const statement of ["CompleteByDelete", "Fail"] as const) {
  const jobs = await rota.enqueueMany(
    Array.from({ length: n }, (_, i) => ({ task: "x", payload: { i } })),
  );
  await db.pool.query(`analyze ${schema}.jobs`);
  const held = await rota.enqueueMany(
    Array.from({ length: heldCount }, (_, i) => ({ task: "x", payload: { held: i } })),
  );
  await client.query(
    `update ${schema}.jobs set state = 'running', attempts = 1, lease_holder = 'w',
       started_at = now(), lease_expires_at = now() + interval '1 hour' where id = any($1::bigint[])`,
    [held.map((job) => job.id)],
  );
  const times: number[] = [];
  for (let from = 0; from < n; from += size) {
    const ids = jobs.slice(from, from + size).map((job) => job.id);
    await client.query(
      `update ${schema}.jobs set state = 'running', attempts = 1, lease_holder = 'w',
         started_at = now(), lease_expires_at = now() + interval '1 hour' where id = any($1::bigint[])`,
      [ids],
    );
    const attempts = ids.map(() => 1);
    const started = performance.now();
    if (statement === "CompleteByDelete") {
      await db.run(q.CompleteByDelete, { ids, attempts, workerId: "w", wake: [] }, client);
    } else {
      await db.run(
        q.Fail,
        {
          ids,
          attempts,
          workerId: "w",
          wake: [],
          errors: ids.map(() => error),
          retryMs: ids.map(() => null),
          cancelled: ids.map(() => false),
        },
        client,
      );
    }
    times.push(performance.now() - started);
  }
  const total = times.reduce((a, b) => a + b, 0);
  times.sort((a, b) => a - b);
  console.log(
    `${statement}: ${times.length} statements of ${size} jobs (${heldCount} more held): median ${(times[times.length >> 1] ?? 0).toFixed(3)} ms a statement, ${((total / n) * 1000).toFixed(2)} µs a job`,
  );
  await db.pool.query(`delete from ${schema}.jobs`);
}
client.release();
await db.pool.query(`drop schema ${schema} cascade`);
await rota.close();
