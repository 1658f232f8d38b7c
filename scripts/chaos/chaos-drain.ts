/**
 * The end of a chaos run: with the faults and the load stopped, what is still
 * owed (jobs of the ledger queued or running, batches without their
 * callback's run, captured rows whose last change is not processed,
 * executions due before the end not finished) is waited for, a bounded time.
 * What is still owed then, the checks report.
 */
import type pg from "pg";

export interface Owed {
  jobs: number;
  batches: number;
  items: number;
  executions: number;
}

export async function owed(client: pg.ClientBase, chaosEnd: number): Promise<Owed> {
  const result = await client.query<Owed>(
    `select
       (select count(*) from chaos.enqueued as e join rota.jobs as j on j.id = e.job_id
        where j.state in ('scheduled', 'available', 'running'))::int as jobs,
       (select count(*) from chaos.batches as b
        where not exists (select 1 from chaos.runs as r
                          where r.task = 'chaos.batch-done' and r.outcome = 'ok'
                            and r.payload->>'batch' = b.batch_id::text))::int as batches,
       (select count(*) from chaos.items as i
        left join (select distinct (payload->'key'->>'id')::int as id,
                                   (payload->'row'->>'version')::bigint as version
                   from chaos.runs where task = 'chaos.capture' and outcome = 'ok') as p
          on p.id = i.id and p.version = i.version
        where p.id is null)::int as items,
       (select count(*) from rota.jobs
        where schedule_id is not null and run_at <= $1
          and state in ('scheduled', 'available', 'running'))::int as executions`,
    [new Date(chaosEnd)],
  );
  return result.rows[0] as Owed;
}

/** Waits until nothing is owed or `timeoutMs` has passed; returns what is owed last. */
export async function drain(
  pool: pg.Pool,
  chaosEnd: number,
  timeoutMs: number,
  log: (line: string) => void,
): Promise<Owed> {
  const giveUpAt = Date.now() + timeoutMs;
  let lastLogged = 0;
  for (;;) {
    let now: Owed | null = null;
    try {
      const client = await pool.connect();
      try {
        now = await owed(client, chaosEnd);
      } finally {
        client.release();
      }
    } catch {
      // The database may still be coming back from the last restart.
    }
    if (now !== null && now.jobs + now.batches + now.items + now.executions === 0) return now;
    if (Date.now() >= giveUpAt && now !== null) return now;
    if (Date.now() - lastLogged > 5_000 && now !== null) {
      lastLogged = Date.now();
      log(
        `draining: ${now.jobs} jobs, ${now.batches} batches, ${now.items} captured rows, ${now.executions} executions owed`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}
