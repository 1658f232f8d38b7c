import pg from "pg";
import type { Database } from "../../src/db/database.js";
import { type TableHealthRow, vacuumQueries } from "../../src/db/queries/vacuum.js";

/** How often the tables are looked at: the minute's highest dead rows are the highest of these. */
export const SAMPLE_MS = 2_000;

/** What one look at the soak's schema and database found. */
export interface Sample {
  /** Every table of the schema (TableHealth, the same statement `rota doctor` reads). */
  tables: TableHealthRow[];
  /** The phase of a vacuum running on the jobs table right now (autovacuum's or a manual one), or null. */
  jobsVacuumPhase: string | null;
  /**
   * The oldest client transaction of the database that holds a snapshot or a
   * transaction id (vacuum keeps every row that died after it began): anyone's,
   * the soak's own or another application's on a shared server.
   */
  oldestHolder: { pid: number; age_ms: number; application: string | null } | null;
}

export interface Backlog {
  /** Jobs waiting to be claimed (available and due). */
  available: number;
  running: number;
}

/** The database side of the soak's measurements, on a pool of its own. */
export class Sampler {
  private readonly q;

  constructor(private readonly db: Database) {
    this.q = vacuumQueries(db.schema);
  }

  async sample(): Promise<Sample> {
    const [tables, progress, transactions] = await Promise.all([
      this.db.run(this.q.TableHealth, { schema: this.db.schema }),
      this.db.pool.query<{ phase: string }>(
        `select p.phase from pg_stat_progress_vacuum as p
         join pg_class as c on c.oid = p.relid
         where c.relname = 'jobs' and c.relnamespace = (select oid from pg_namespace where nspname = $1)`,
        [this.db.schema],
      ),
      this.db.run(this.q.OldTransactions, { olderThanMs: 0 }),
    ]);
    const holder = transactions.rows.find((tx) => tx.holds_xmin);
    return {
      tables: tables.rows,
      jobsVacuumPhase: progress.rows[0]?.phase ?? null,
      oldestHolder: holder
        ? { pid: holder.pid, age_ms: holder.age_ms, application: holder.application_name }
        : null,
    };
  }

  /** Each count through its own partial index (jobs_available, jobs_running_lease). */
  async backlog(): Promise<Backlog> {
    const jobs = `${pg.escapeIdentifier(this.db.schema)}.jobs`;
    const result = await this.db.pool.query<Backlog>(
      `select (select count(*) from ${jobs} where state = 'available')::int as available,
              (select count(*) from ${jobs} where state = 'running')::int as running`,
    );
    return result.rows[0] ?? { available: 0, running: 0 };
  }

  /** The server's settings that decide what vacuum does, for the report. */
  async settings(): Promise<Record<string, string | null>> {
    // current_setting() gives each with its unit as people write it (128MB, 1min).
    const result = await this.db.pool.query<{ name: string; setting: string }>(
      `select name, current_setting(name) as setting from pg_settings
       where name in ('autovacuum', 'autovacuum_naptime', 'autovacuum_max_workers',
                      'autovacuum_vacuum_scale_factor', 'autovacuum_vacuum_threshold',
                      'autovacuum_vacuum_insert_scale_factor', 'autovacuum_vacuum_cost_delay',
                      'autovacuum_vacuum_cost_limit', 'vacuum_cost_limit', 'maintenance_work_mem',
                      'autovacuum_work_mem', 'shared_buffers', 'synchronous_commit')
       order by name`,
    );
    const settings: Record<string, string | null> = {};
    for (const row of result.rows) settings[row.name] = row.setting;
    const av = await this.db.run(this.q.Autovacuum, {});
    settings.autovacuum_source = av.rows[0]?.source_file ?? null;
    const reloptions = await this.db.pool.query<{ reloptions: string[] | null }>(
      `select c.reloptions from pg_class as c
       where c.relname = 'jobs' and c.relnamespace = (select oid from pg_namespace where nspname = $1)`,
      [this.db.schema],
    );
    settings.jobs_storage_parameters = reloptions.rows[0]?.reloptions?.join(",") ?? null;
    return settings;
  }
}
