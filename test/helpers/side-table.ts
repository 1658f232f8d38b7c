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
