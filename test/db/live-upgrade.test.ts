// Upgrading a live system: migrating while workers run. A migration that
// builds an index on the jobs table does it CONCURRENTLY, after its
// transaction (`-- rota:concurrently`), so enqueues, claims and outcomes
// go on during the build: measured here on a table of 300,000 jobs, the
// longest enqueue during the migration must stay under a second.
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { databaseOf, Rota } from "../../src/client.js";
import {
  inTransactionForm,
  loadMigrations,
  migrate,
  migrationFromFile,
  migrationLabel,
  migrationStatements,
} from "../../src/db/migrate.js";
import { ownDatabase } from "../helpers/database.js";

const schema = "rota";
let rota: Rota;
let database: Awaited<ReturnType<typeof ownDatabase>>;
// A database of its own: CREATE INDEX CONCURRENTLY waits for every older
// transaction of its database, and the other test files run theirs in the
// shared one.
beforeAll(async () => {
  database = await ownDatabase();
  rota = new Rota({ connection: database.url, schema });
});
afterAll(async () => {
  await rota?.close();
  await database?.drop();
});

describe("a migration on a live jobs table", () => {
  it("splits a migration's concurrent part into its statements, comments dropped", () => {
    const migration = migrationFromFile(
      "0099_x.sql",
      "-- why\nalter table t add column a int;\n-- rota:concurrently\n-- how\ndrop index concurrently if exists {{schema}}.x;\ncreate index concurrently x\n  on t (a);\n",
    );
    expect(migration.sql).toBe("-- why\nalter table t add column a int;\n");
    expect(migration.concurrent).toEqual([
      "drop index concurrently if exists {{schema}}.x",
      "create index concurrently x\n  on t (a)",
    ]);
    expect(migrationStatements("select 1;\n-- c\nselect 2;")).toEqual(["select 1", "select 2"]);
  });

  it("a concurrent part holds only statements that block no writer, each build after a drop of its name; on a fresh schema they run plainly", () => {
    const sql =
      "-- rota:concurrently\nalter table {{schema}}.jobs validate constraint c;\ndrop index concurrently if exists {{schema}}.x;\ncreate unique index concurrently x on {{schema}}.jobs (id);\nalter index if exists {{schema}}.x rename to y;\n";
    const migration = migrationFromFile("0099_x.sql", sql);
    expect(migration.sql).toBe("");
    expect(inTransactionForm(migration.concurrent)).toEqual([
      "alter table {{schema}}.jobs validate constraint c",
      "drop index if exists {{schema}}.x",
      "create unique index x on {{schema}}.jobs (id)",
      "alter index if exists {{schema}}.x rename to y",
    ]);
    expect(() =>
      migrationFromFile(
        "0099_x.sql",
        "-- rota:concurrently\nalter table {{schema}}.jobs add column y int;\n",
      ),
    ).toThrow(
      /holds "alter table \{\{schema\}\}.jobs add column y int" after -- rota:concurrently/,
    );
    expect(() =>
      migrationFromFile(
        "0099_x.sql",
        "-- rota:concurrently\ncreate index concurrently x on {{schema}}.jobs (id);\n",
      ),
    ).toThrow(
      /builds index x concurrently without "drop index concurrently if exists \{\{schema\}\}.x;"/,
    );
    expect(() => migrationFromFile("0099_x.sql", "select 1;\n-- rota:concurrently\n")).toThrow(
      /nothing after/,
    );
    expect(migrationFromFile("0099_y.sql", "alter table t add column y int;").concurrent).toEqual(
      [],
    );
  });

  it("no migration builds an index or validates a check on the jobs table in its transaction", () => {
    for (const migration of loadMigrations().filter((m) => m.version > 2)) {
      const head = migration.sql.replace(/--.*$/gm, "");
      // Each clause of each ALTER TABLE of the jobs table.
      const clauses = [...head.matchAll(/alter table \{\{schema\}\}\.jobs\b([^;]*);/gi)].flatMap(
        (alter) => (alter[1] ?? "").split(/,\s*(?=add |drop |alter |set |validate )/i),
      );
      expect({
        migration: migrationLabel(migration),
        indexBuilt: /create (unique )?index \S+ on \{\{schema\}\}\.jobs\b/i.test(head),
        checksValidated: clauses.filter((c) => /\bcheck\b/i.test(c) && !/\bnot valid\b/i.test(c)),
      }).toEqual({ migration: migrationLabel(migration), indexBuilt: false, checksValidated: [] });
    }
  });

  it("builds its index concurrently: enqueues go on during the build, none waits a second", async () => {
    const db = databaseOf(rota);
    // The schema as it was before the index (0019), with 300,000 jobs, a
    // fifth of them failed: what the index holds.
    await migrate(db, () => {}, { to: 19 });
    const table = `${pg.escapeIdentifier(schema)}.jobs`;
    await db.pool.query(
      `insert into ${table} (queue, task, payload, state, run_at, attempts, finished_at)
       select 'q' || (g % 8), 'task', jsonb_build_object('n', g),
              case when g % 5 = 0 then 'failed' else 'available' end, now(), 0,
              case when g % 5 = 0 then now() end
       from generate_series(1, 300000) as g`,
    );
    const latencies: number[] = [];
    let migrating = true;
    // What a plain CREATE INDEX takes on the table: a SHARE lock, which
    // holds every insert and update until the build ends. Watched for. (An
    // ADD COLUMN's ACCESS EXCLUSIVE lock is a moment's, bounded by the
    // migrations' lock_timeout; the enqueue latency below covers it.)
    const sharedLocks: string[] = [];
    const watcher = (async () => {
      while (migrating) {
        const locks = await db.pool.query(
          `select l.mode from pg_locks l join pg_class c on c.oid = l.relation
             join pg_namespace n on n.oid = c.relnamespace
            where n.nspname = $1 and c.relname = 'jobs' and l.locktype = 'relation'
              and l.mode in ('ShareLock', 'ShareRowExclusiveLock', 'ExclusiveLock')`,
          [schema],
        );
        sharedLocks.push(...locks.rows.map((row) => row.mode as string));
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();
    const writer = (async () => {
      while (migrating) {
        const started = performance.now();
        // Through the SQL function, as a process of the release before would
        // write during the upgrade: today's code is deployed after it.
        await db.pool.query(
          `select ${pg.escapeIdentifier(schema)}.enqueue('live.write', '{}'::jsonb)`,
        );
        latencies.push(performance.now() - started);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    })();
    // Enqueues already running before the migration starts.
    while (latencies.length < 3) await new Promise((resolve) => setTimeout(resolve, 10));
    const before = latencies.length;
    const started = performance.now();
    const applied = await migrate(db);
    const migratedMs = performance.now() - started;
    migrating = false;
    await Promise.all([writer, watcher]);
    expect(sharedLocks).toEqual([]);
    expect(applied.map((m) => m.version)).toContain(20);
    // Writes went on while the migration ran, and none waited long.
    expect(latencies.length - before).toBeGreaterThan(Math.min(5, migratedMs / 200));
    expect(Math.max(...latencies)).toBeLessThan(1_000);
    const index = await db.pool.query(
      `select i.indisvalid from pg_index i
         join pg_class c on c.oid = i.indexrelid
         join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = $1 and c.relname = 'jobs_ended_by_state'`,
      [schema],
    );
    expect(index.rows).toEqual([{ indisvalid: true }]);
  });

  it("an ALTER behind a long transaction gives up its place in the lock queue after a second, and is tried again", async () => {
    const second = new Rota({ connection: database.url, schema: "rota_alter" });
    const db = databaseOf(second);
    try {
      await migrate(db, () => {}, { to: 20 });
      const jobs = `${pg.escapeIdentifier("rota_alter")}.jobs`;
      // A long transaction that read the jobs table: 0021's ALTER TABLE
      // (ADD COLUMN) needs its ACCESS EXCLUSIVE lock, and waits for it.
      const holder = new pg.Client(database.url);
      await holder.connect();
      await holder.query("begin");
      await holder.query(`select count(*) from ${jobs}`);
      const latencies: number[] = [];
      let migrated = false;
      const migration = migrate(db).then(() => {
        migrated = true;
      });
      // Enqueues meanwhile: queued behind the waiting ALTER, they would wait
      // as long as the long transaction lasts; the ALTER steps aside instead.
      const deadline = performance.now() + 4_000;
      while (performance.now() < deadline) {
        const started = performance.now();
        await db.pool.query(
          `select ${pg.escapeIdentifier("rota_alter")}.enqueue('during.alter', '{}'::jsonb)`,
        );
        latencies.push(performance.now() - started);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect(migrated).toBe(false);
      expect(Math.max(...latencies)).toBeLessThan(1_500);
      await holder.query("commit");
      await holder.end();
      await migration;
      expect(migrated).toBe(true);
    } finally {
      await second.close();
    }
  });
});
