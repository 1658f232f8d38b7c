// How much of a bulk enqueue is rota's statement and how much is the jobs
// table: enqueueMany of N jobs against a plain multi-row INSERT of the same
// rows into the same table, three rounds each, on one schema.
//
//   DATABASE_URL=postgres://… node --import tsx bench/insert-cost.ts [N]
import { databaseOf, Rota } from "../src/client.js";

const url = process.env.DATABASE_URL;
if (!url) throw new Error("set DATABASE_URL");
const n = Number(process.argv[2] ?? 20_000);
const schema = "rota_bench_insert_cost";
const rota = new Rota({ connection: url, schema });
await databaseOf(rota).pool.query(`drop schema if exists ${schema} cascade`);
await rota.migrate();
const specs = Array.from({ length: n }, (_, i) => ({ task: "noop", payload: { i } }));
const plain = `insert into ${schema}.jobs (queue, task, payload, run_at)
  select q, t, p::jsonb, now() from unnest($1::text[], $2::text[], $3::text[]) as u(q, t, p)`;
for (let round = 1; round <= 3; round++) {
  await databaseOf(rota).pool.query(`truncate ${schema}.jobs`);
  let started = performance.now();
  await rota.enqueueMany(specs);
  const enqueueMs = performance.now() - started;
  await databaseOf(rota).pool.query(`truncate ${schema}.jobs`);
  started = performance.now();
  await databaseOf(rota).pool.query(plain, [
    specs.map(() => "default"),
    specs.map((s) => s.task),
    specs.map((s) => JSON.stringify(s.payload)),
  ]);
  const plainMs = performance.now() - started;
  process.stdout.write(
    `round ${round}: enqueueMany(${n}) ${Math.round(enqueueMs)} ms, plain insert ${Math.round(plainMs)} ms, ratio ${(enqueueMs / plainMs).toFixed(2)}\n`,
  );
}
await databaseOf(rota).pool.query(`drop schema ${schema} cascade`);
await rota.close();
