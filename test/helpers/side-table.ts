import pg from "pg";
import type { Rota } from "../../src/client.js";
import { silentLogger } from "../../src/logger.js";
import type { Worker } from "../../src/worker/worker.js";
import { withClient } from "./database.js";

/** The table test worker processes write each run into (see fixtures/side-table-tasks.mjs). */
export async function createSideTable(schema: string): Promise<void> {
  await withClient((c) =>
    c.query(
      `create table "${schema}".side_runs (
         job_id bigint not null, attempt int not null, pid int not null, note text not null,
         at timestamptz not null default clock_timestamp())`,
    ),
  );
}

export async function sideRuns(
  schema: string,
): Promise<{ job_id: string; attempt: number; pid: number; note: string }[]> {
  return withClient(
    async (c) => (await c.query(`select * from "${schema}".side_runs order by at`)).rows,
  );
}

export async function sideCounts(
  schema: string,
): Promise<{ runs: number; distinct: number; pids: number }> {
  return withClient(async (c) => {
    const r = await c.query(
      `select count(*)::int as runs, count(distinct job_id)::int as distinct, count(distinct pid)::int as pids
       from "${schema}".side_runs where note = 'ran'`,
    );
    return r.rows[0];
  });
}

export const SIDE_TASKS = new URL("../fixtures/side-table-tasks.mjs", import.meta.url).pathname;

/**
 * A worker of today's rota in this process running `record` into
 * <schema>.side_runs like the tasks module, its pid negated so a test can
 * tell its runs from those of worker processes. close() ends its pool
 * (stop the worker first).
 */
export function recordingWorker(
  rota: Rota,
  url: string,
  schema: string,
): { worker: Worker; close(): Promise<void> } {
  const sidePool = new pg.Pool({ connectionString: url, max: 2 });
  const worker = rota.worker({
    queues: ["default"],
    logger: silentLogger,
    tasks: {
      record: async (_payload, ctx) => {
        await sidePool.query(
          `insert into ${pg.escapeIdentifier(schema)}.side_runs (job_id, attempt, pid, note) values ($1, $2, $3, 'ran')`,
          [ctx.job.id, ctx.attempt, -process.pid],
        );
      },
    },
  });
  return { worker, close: () => sidePool.end() };
}
