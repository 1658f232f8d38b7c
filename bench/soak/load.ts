import pg from "pg";
import type { Database } from "../../src/db/database.js";
import { nowMs } from "../time.js";

/** The queue and task of every soak job, loaded or enqueued. */
export const SOAK_QUEUE = "soak";
export const SOAK_TASK = "soak.noop";

/**
 * What the soak keeps (the retention of every process in it): succeeded jobs
 * a day, failed ones the default 14 days. The finished jobs loaded are
 * spread over those windows, so the oldest age out during the run at the
 * rate they would in a steady state (about 9 a second of 800,000 succeeded)
 * and the pruner deletes them as it would.
 */
export const SOAK_RETENTION = { succeededMs: 86_400_000, failedMs: 14 * 86_400_000 };

export interface LoadReport {
  delayed: number;
  finished: number;
  /** The two INSERT ... SELECT statements. */
  insert_seconds: number;
  /** The VACUUM ANALYZE after them. */
  vacuum_seconds: number;
}

/**
 * Loads the jobs the soak starts with, each kind in one INSERT ... SELECT
 * over generate_series (as bench/jobs-page.ts does): `delayed` jobs
 * scheduled 30 days to a year ahead, and `finished` jobs that ran, 80%
 * succeeded within the last day and 20% failed within the last 14 days (5
 * attempts, an error kept), created two seconds before they finished. Then
 * VACUUM ANALYZE, as autovacuum would after such an insert on a server where
 * it runs: the run starts from a table with its visibility map set, its
 * statistics current and no dead rows.
 */
export async function loadJobs(
  db: Database,
  counts: { delayed: number; finished: number },
  log: (line: string) => void,
): Promise<LoadReport> {
  const jobs = `${pg.escapeIdentifier(db.schema)}.jobs`;
  // One connection for all: its statistics are flushed before the VACUUM
  // (below), else they could land after it and count the rows twice.
  const client = await db.pool.connect();
  try {
    return await load(client, jobs, counts, log);
  } finally {
    client.release();
  }
}

async function load(
  client: pg.PoolClient,
  jobs: string,
  counts: { delayed: number; finished: number },
  log: (line: string) => void,
): Promise<LoadReport> {
  const started = nowMs();
  if (counts.delayed > 0) {
    await client.query(
      `insert into ${jobs} (queue, task, payload, state, run_at, created_at)
       select $2, $3, jsonb_build_object('i', g, 'tenant', g % 1000), 'scheduled',
              now() + interval '30 days' + random() * interval '335 days',
              now() - random() * interval '1 day'
       from generate_series(1, $1::int) as g`,
      [counts.delayed, SOAK_QUEUE, SOAK_TASK],
    );
    log(`loaded ${counts.delayed.toLocaleString("en")} delayed jobs`);
  }
  if (counts.finished > 0) {
    await client.query(
      `insert into ${jobs} (queue, task, payload, state, run_at, attempts, max_attempts,
                            last_error, created_at, started_at, finished_at)
       select $2, $3, jsonb_build_object('i', g, 'tenant', g % 1000), state,
              finished - interval '2 seconds', case when state = 'failed' then 5 else 1 end, 5,
              case when state = 'failed'
                   then jsonb_build_object('message', 'upstream timed out after 30000 ms', 'attempt', 5) end,
              finished - interval '2 seconds', finished - interval '1 second', finished
       from (select g, state,
                    now() - random() * case when state = 'failed' then $5::bigint else $4::bigint end
                                     * interval '1 millisecond' as finished
             from (select g, case when random() < 0.8 then 'succeeded' else 'failed' end as state
                   from generate_series(1, $1::int) as g) as drawn) as jobs
       order by finished`,
      [counts.finished, SOAK_QUEUE, SOAK_TASK, SOAK_RETENTION.succeededMs, SOAK_RETENTION.failedMs],
    );
    log(`loaded ${counts.finished.toLocaleString("en")} finished jobs`);
  }
  const inserted = nowMs();
  // pg_stat_user_tables counts the inserted rows before this returns (PostgreSQL 15).
  await client.query("select pg_stat_force_next_flush()");
  await client.query(`vacuum analyze ${jobs}`);
  const vacuumed = nowMs();
  return {
    delayed: counts.delayed,
    finished: counts.finished,
    insert_seconds: Math.round((inserted - started) / 100) / 10,
    vacuum_seconds: Math.round((vacuumed - inserted) / 100) / 10,
  };
}
