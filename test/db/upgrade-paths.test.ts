// Every schema version upgrades to the schema a fresh migrate builds. A
// fresh schema runs each migration whole in its transaction; an upgrade
// runs a migration's concurrent part (`-- rota:concurrently`: index builds
// and validations on the jobs table) outside it, renaming rebuilt indexes
// into place. Both must end with the same tables, columns, indexes (all
// valid), constraints (all validated) and functions. And a concurrent part
// that fails half-way leaves the schema at the version before, finished by
// the next migrate.
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { databaseOf, Rota } from "../../src/client.js";
import { LATEST_SCHEMA_VERSION, migrate } from "../../src/db/migrate.js";
import { ownDatabase } from "../helpers/database.js";

// A database of its own: CREATE INDEX CONCURRENTLY waits for every older
// transaction of its database, and the other test files run theirs in the
// shared one.
let database: Awaited<ReturnType<typeof ownDatabase>>;
let admin: pg.Client;
beforeAll(async () => {
  database = await ownDatabase();
  admin = new pg.Client(database.url);
  await admin.connect();
});
afterAll(async () => {
  await admin?.end();
  await database?.drop();
});

/** The schema as a list of lines, its name taken out: what two paths must agree on. */
async function fingerprint(schema: string): Promise<string[]> {
  const result = await admin.query<{ line: string }>(
    `select 'column ' || table_name || '.' || column_name || ' ' || data_type || ' '
            || coalesce(column_default, '') || ' ' || is_nullable || ' '
            || coalesce(generation_expression, '') as line
       from information_schema.columns where table_schema = $1
     union all
     select 'index ' || c.relname || ' valid=' || i.indisvalid || ' ' || pg_get_indexdef(i.indexrelid)
       from pg_index i join pg_class c on c.oid = i.indexrelid
       join pg_namespace n on n.oid = c.relnamespace where n.nspname = $1
     union all
     select 'constraint ' || t.relname || '.' || k.conname || ' validated=' || k.convalidated
            || ' ' || pg_get_constraintdef(k.oid)
       from pg_constraint k join pg_class t on t.oid = k.conrelid
       join pg_namespace n on n.oid = t.relnamespace where n.nspname = $1
     union all
     select 'function ' || p.proname || ' ' || md5(replace(pg_get_functiondef(p.oid), $1, 'S'))
       from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname = $1
     union all
     select 'options ' || c.relname || ' ' || coalesce(array_to_string(c.reloptions, ','), '')
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = $1 and c.relkind = 'r'
     order by 1`,
    [schema],
  );
  return result.rows.map((row) => row.line.replaceAll(`${schema}.`, "S."));
}

async function withRota<T>(schema: string, fn: (rota: Rota) => Promise<T>): Promise<T> {
  const rota = new Rota({ connection: database.url, schema });
  try {
    return await fn(rota);
  } finally {
    await rota.close();
  }
}

describe("upgrade paths", () => {
  it("from every earlier version, an upgrade builds what a fresh migrate builds", async () => {
    await withRota("fresh", (rota) => rota.migrate());
    const fresh = await fingerprint("fresh");
    expect(fresh.filter((line) => line.includes("valid=false"))).toEqual([]);
    expect(fresh.filter((line) => line.startsWith("index jobs_"))).not.toEqual([]);
    for (let version = 1; version < LATEST_SCHEMA_VERSION; version++) {
      const schema = `from_${version}`;
      await withRota(schema, async (rota) => {
        // The first call creates the schema (each migration whole, in its
        // transaction); the second upgrades it, as a live system would be.
        await migrate(databaseOf(rota), () => {}, { to: version });
        expect((await rota.schemaStatus()).version).toBe(version);
        const applied = await rota.migrate();
        expect(applied).toHaveLength(LATEST_SCHEMA_VERSION - version);
      });
      expect({ version, schema: await fingerprint(schema) }).toEqual({ version, schema: fresh });
    }
  }, 300_000);

  it("a concurrent part that fails half-way: the schema counts the version before until the next migrate finishes it", async () => {
    const schema = "interrupted";
    const jobs = `${pg.escapeIdentifier(schema)}.jobs`;
    await withRota(schema, async (rota) => {
      await migrate(databaseOf(rota), () => {}, { to: 3 });
      // Two jobs of one occurrence: 0004's unique index
      // jobs_execution_once cannot be built over them.
      await admin.query(
        `insert into ${jobs} (queue, task, payload, state, run_at, schedule_id, target_key, occurrence_at)
         select 'q', 't', '{}', 'scheduled', now() + interval '1 day', 7, '', '2026-01-01'
           from generate_series(1, 2)`,
      );
      const failed = await rota.migrate().catch((error: unknown) => error);
      expect(failed).toMatchObject({ code: "MIGRATION_FAILED" });
      expect((failed as Error).message).toMatch(/0004_schedules failed in its concurrent part/);
      // The head committed; the version is not complete.
      const status = await rota.schemaStatus();
      expect(status.version).toBe(3);
      expect(status.pending[0]?.version).toBe(4);
      const rows = await admin.query(
        `select version, complete from ${pg.escapeIdentifier(schema)}.migrations where version >= 3 order by version`,
      );
      expect(rows.rows).toEqual([
        { version: 3, complete: true },
        { version: 4, complete: false },
      ]);
      // The failed build left an invalid index behind.
      const invalid = await admin.query(
        `select i.indisvalid from pg_index i join pg_class c on c.oid = i.indexrelid
           join pg_namespace n on n.oid = c.relnamespace
          where n.nspname = $1 and c.relname = 'jobs_execution_once'`,
        [schema],
      );
      expect(invalid.rows).toEqual([{ indisvalid: false }]);
      // A worker of the latest code refuses the half-built schema.
      await expect(rota.worker({ tasks: { t: async () => {} } }).start()).rejects.toMatchObject({
        code: "SCHEMA_NOT_MIGRATED",
      });

      await admin.query(`delete from ${jobs} where id = (select max(id) from ${jobs})`);
      const applied = await rota.migrate();
      expect(applied.map((m) => m.version)).toEqual(
        Array.from({ length: LATEST_SCHEMA_VERSION - 3 }, (_, i) => 4 + i),
      );
    });
    expect(await fingerprint(schema)).toEqual(await fingerprint("fresh"));
  }, 120_000);
});
