// Single enqueues timed in one process, without the harness, against a built
// rota (a `dist/` folder): to compare two builds' enqueue path directly.
//
//   DATABASE_URL=postgres://… node bench/enqueue-in-process.mjs <dist> <schema> [jobs]
//
// Prints {"dist", "single": jobs/s from one caller, "ten": jobs/s from ten
// concurrent callers}. The schema is created and dropped.
import pg from "pg";

const [dist, schema, jobs = "4000"] = process.argv.slice(2);
if (!dist || !schema || !process.env.DATABASE_URL) {
  console.error("usage: DATABASE_URL=… node bench/enqueue-in-process.mjs <dist> <schema> [jobs]");
  process.exit(2);
}
const n = Number(jobs);
const { createRota } = await import(`${dist}/index.js`);
const rota = createRota({ connection: process.env.DATABASE_URL, schema });
await rota.migrate();
for (let i = 0; i < 300; i++) await rota.enqueue("t", { i }); // warm-up
const t0 = performance.now();
for (let i = 0; i < n; i++) await rota.enqueue("t", { i });
const single = n / ((performance.now() - t0) / 1000);
const t1 = performance.now();
await Promise.all(
  Array.from({ length: 10 }, async () => {
    for (let i = 0; i < n / 10; i++) await rota.enqueue("t", { i });
  }),
);
const ten = n / ((performance.now() - t1) / 1000);
await rota.close();
const client = new pg.Client(process.env.DATABASE_URL);
await client.connect();
await client.query(`drop schema ${pg.escapeIdentifier(schema)} cascade`);
await client.end();
console.log(JSON.stringify({ dist, single: Math.round(single), ten: Math.round(ten) }));
