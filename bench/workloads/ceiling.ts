import pg from "pg";
import type { Measurement } from "../results.js";
import { dropSchema } from "../systems/schema.js";
import { nowMs } from "../time.js";
import type { WorkloadContext } from "./context.js";

const SCHEMA = "rota_bench_pg";
const WARM_UP_PER_CLIENT = 20;

/**
 * insert_commit_ceiling: the reference no queue on PostgreSQL can beat for
 * one-job-per-commit enqueues. Plain `pg`, N clients (the workload's
 * concurrency), each inserting one small row per autocommitted statement into
 * a table with a bigserial key and a jsonb payload, for a fixed time.
 */
export async function insertCommitCeiling(context: WorkloadContext): Promise<Measurement> {
  const { databaseUrl } = context.env;
  const { concurrency, singleSeconds } = context.options;
  await dropSchema(databaseUrl, SCHEMA);
  const pool = new pg.Pool({ connectionString: databaseUrl, max: concurrency });
  try {
    await pool.query(`create schema ${SCHEMA}`);
    await pool.query(
      `create table ${SCHEMA}.ceiling (id bigserial primary key, payload jsonb not null, created_at timestamptz not null default now())`,
    );
    const insert = {
      name: "bench_ceiling_insert",
      text: `insert into ${SCHEMA}.ceiling (payload) values ($1)`,
    };
    const clients = await Promise.all(Array.from({ length: concurrency }, () => pool.connect()));
    try {
      let next = 0;
      await Promise.all(
        clients.map(async (client) => {
          for (let n = 0; n < WARM_UP_PER_CLIENT; n++) {
            await client.query({ ...insert, values: [JSON.stringify({ i: next++ })] });
          }
        }),
      );
      let count = 0;
      const start = nowMs();
      const deadline = start + singleSeconds * 1000;
      await Promise.all(
        clients.map(async (client) => {
          while (nowMs() < deadline) {
            await client.query({ ...insert, values: [JSON.stringify({ i: next++ })] });
            count++;
          }
        }),
      );
      const seconds = (nowMs() - start) / 1000;
      return { jobs_per_s: count / seconds, jobs: count, seconds };
    } finally {
      for (const client of clients) client.release();
    }
  } finally {
    await pool.end();
    await dropSchema(databaseUrl, SCHEMA);
  }
}
