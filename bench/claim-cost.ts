// The claim statement alone: N queued jobs claimed in claims of LIMIT (the
// worker's generic plan, synchronous_commit off), each claim's jobs deleted
// after it, as the worker's completions would. Prints the median claim and
// the time per claimed job. Run it in two checkouts to compare the claim
// before and after a change (each times its own src/).
//
//   DATABASE_URL=postgres://… node --import tsx bench/claim-cost.ts [LIMIT] [N]
import { databaseOf, Rota } from "../src/client.js";
import { jobQueries } from "../src/db/queries/jobs.js";

const url = process.env.DATABASE_URL;
if (!url) throw new Error("set DATABASE_URL");
const limit = Number(process.argv[2] ?? 200);
const n = Number(process.argv[3] ?? 200_000);
const schema = "rota_bench_claim_cost";
const rota = new Rota({ connection: url, schema });
const db = databaseOf(rota);
await db.pool.query(`drop schema if exists ${schema} cascade`);
await rota.migrate();
const q = jobQueries(schema);
await rota.enqueueMany(Array.from({ length: n }, (_, i) => ({ task: "x", payload: { i } })));
await db.pool.query(`analyze ${schema}.jobs`);
const client = await db.pool.connect();
await client.query("set plan_cache_mode = force_generic_plan; set synchronous_commit = off");
const times: number[] = [];
let claimed = 0;
while (claimed < n) {
  const started = performance.now();
  const result = await db.run(
    q.Claim,
    {
      queues: ["default"],
      tasks: ["x"],
      limit,
      workerId: "w",
      traced: false,
      leaseMs: 60_000,
      startNow: 10,
      passOver: [],
    },
    client,
  );
  times.push(performance.now() - started);
  // Rows with a null id carry only what limits held back (none here).
  const ids = result.rows.map((row) => row.id).filter((id) => id !== null);
  if (ids.length === 0) break;
  claimed += ids.length;
  await client.query(`delete from ${schema}.jobs where id = any($1::bigint[])`, [ids]);
}
const total = times.reduce((a, b) => a + b, 0);
times.sort((a, b) => a - b);
console.log(
  `${times.length} claims of ${limit} over ${n} jobs: median ${(times[times.length >> 1] ?? 0).toFixed(3)} ms a claim, ${((total / claimed) * 1000).toFixed(2)} µs a job`,
);
client.release();
await db.pool.query(`drop schema ${schema} cascade`);
await rota.close();
