import { readdirSync, readFileSync } from "node:fs";
import pg from "pg";
import { isRotaError, RotaError } from "../errors.js";
import type { Database } from "./database.js";
import { bindSchema } from "./sql.js";

/**
 * Forward-only, numbered SQL migrations (`migrations/0001_name.sql`).
 *
 * Each migration runs in its own transaction that first takes a
 * transaction-scoped advisory lock keyed on the schema name (tried, and
 * tried again after a pause: see tryLockMigrations). Concurrent
 * migrators therefore queue behind each other, and each re-reads the applied
 * version after getting the lock, so five `rota migrate` processes started at
 * once apply every file exactly once and all succeed. Transaction-scoped
 * locks (not session locks) keep this safe behind PgBouncer in transaction mode.
 *
 * An index on the jobs table must not be built in a transaction: a plain
 * CREATE INDEX holds every insert and update of live workers for the whole
 * build. A migration that builds one puts it after a line
 * `-- rota:concurrently`. What comes before that line (its head, possibly
 * nothing) runs in the migration's transaction, which records the version
 * as not complete; what comes after (its concurrent part) runs once that
 * has committed, statement by statement (one per `;` at a line's end), on
 * one connection under a session advisory lock on the same key (so
 * migrators still queue), and then the version is marked complete. Each of
 * those statements is safe to run again: if one fails, or the migrator
 * dies, the next migrate runs the whole concurrent part again before
 * anything else. Until then the schema counts as the version before, so no
 * process of the new code starts on a half-built schema. Such a migration
 * needs a session connection: run `rota migrate` on a direct URL, not
 * through a transaction pooler.
 *
 * The concurrent part may hold only `create [unique] index concurrently`
 * (each just after `drop index concurrently if exists` of its name), `drop
 * index concurrently if exists`, `alter index if exists … rename to` (which
 * locks only the index) and `alter table … validate constraint` (a check
 * added NOT VALID in the head, where validating would read the whole table
 * under the ALTER's lock): checked when the files are read. An index
 * replaced under the same name is built under a second name, the old one
 * dropped, and the new one renamed. On a schema this very call created
 * (migrating from version 0: no process uses it yet) the whole migration
 * runs in its transaction, CONCURRENTLY dropped: a concurrent build waits
 * for every older transaction of the database, which an empty new table
 * need not.
 */
export interface Migration {
  version: number;
  name: string;
  /** What runs in the migration's transaction (everything but its concurrent part). */
  sql: string;
  /** The statements after `-- rota:concurrently`, each run by itself after the transaction; empty for most. */
  concurrent: string[];
}

/** The line after which a migration's statements run outside its transaction. */
const CONCURRENTLY = /^-- rota:concurrently[ \t]*$/m;

/** What a migration's concurrent part may hold: statements that block no writer of the table. */
const CONCURRENT_STATEMENT =
  /^(create (unique )?index concurrently |drop index concurrently if exists |alter index if exists \S+ rename to |alter table \S+ validate constraint )/i;

/** An index a concurrent part builds: its name. */
const CONCURRENT_BUILD = /^create (?:unique )?index concurrently (\S+) on /i;

/**
 * Checks a concurrent part: only statements that block no writer, and
 * every build preceded by a drop of its name (a build that failed half-way
 * leaves an invalid index of that name, which the next run must remove).
 */
function checkConcurrentPart(file: string, statements: readonly string[]): void {
  statements.forEach((statement, index) => {
    if (!CONCURRENT_STATEMENT.test(statement)) {
      throw new Error(
        `migration ${file} holds "${statement.split("\n")[0]}" after -- rota:concurrently: what runs outside the transaction is only create index concurrently, drop index concurrently if exists, alter index if exists … rename to, and alter table … validate constraint`,
      );
    }
    const build = CONCURRENT_BUILD.exec(statement);
    const drop = `drop index concurrently if exists {{schema}}.${build?.[1]}`;
    if (build && statements[index - 1]?.toLowerCase() !== drop.toLowerCase()) {
      throw new Error(
        `migration ${file} builds index ${build[1]} concurrently without "${drop};" just before: a build that failed half-way leaves an invalid index the next run must drop`,
      );
    }
  });
}

/**
 * A concurrent part's statements as a transaction runs them (a fresh
 * schema): CONCURRENTLY dropped from each.
 */
export function inTransactionForm(statements: readonly string[]): string[] {
  return statements.map((statement) => statement.replace(/ index concurrently /i, " index "));
}

/** A concurrent part's statements: split at each `;` ending a line, comments dropped. */
export function migrationStatements(sql: string): string[] {
  return sql
    .split(/;[ \t]*$/m)
    .map((chunk) =>
      chunk
        .split("\n")
        .filter((line) => !/^\s*--/.test(line))
        .join("\n")
        .trim(),
    )
    .filter((statement) => statement !== "");
}

const FILE = /^(\d{4})_([a-z0-9_]+)\.sql$/;

/** A migration as its file is named: 0012_concurrency_limits. */
export function migrationLabel(migration: { version: number; name: string }): string {
  return `${String(migration.version).padStart(4, "0")}_${migration.name}`;
}

/** A migration file read: its number, name, head, and concurrent part (checked). */
export function migrationFromFile(file: string, text: string): Migration {
  const match = FILE.exec(file);
  if (!match) throw new Error(`migration file name ${file} is not NNNN_name.sql`);
  const marker = CONCURRENTLY.exec(text);
  const sql = marker ? text.slice(0, marker.index) : text;
  const concurrent = marker ? migrationStatements(text.slice(marker.index + marker[0].length)) : [];
  checkConcurrentPart(file, concurrent);
  if (marker && concurrent.length === 0) {
    throw new Error(`migration ${file} has nothing after -- rota:concurrently`);
  }
  return { version: Number(match[1]), name: match[2] as string, sql, concurrent };
}

export function loadMigrations(): Migration[] {
  const dir = new URL("./migrations/", import.meta.url);
  const migrations = readdirSync(dir)
    .filter((file) => file.endsWith(".sql"))
    .map((file) => migrationFromFile(file, readFileSync(new URL(file, dir), "utf8")))
    .sort((a, b) => a.version - b.version);
  migrations.forEach((migration, index) => {
    // Two changes developed side by side may each take the next number.
    const previous = migrations[index - 1];
    if (previous?.version === migration.version) {
      throw new Error(
        `two migrations are numbered ${String(migration.version).padStart(4, "0")} (${previous.name}, ${migration.name}): renumber one`,
      );
    }
    if (migration.version !== index + 1) {
      throw new Error(`migrations must be numbered 0001, 0002, … without gaps (${migration.name})`);
    }
  });
  return migrations;
}

const migrations = loadMigrations();
export const LATEST_SCHEMA_VERSION = migrations.length;

export interface SchemaStatus {
  schema: string;
  /** 0 when the schema or its migrations table does not exist yet. */
  version: number;
  latest: number;
  pending: { version: number; name: string }[];
}

export async function schemaStatus(db: Database): Promise<SchemaStatus> {
  const client = await db.connect();
  try {
    const version = await readVersion(client, db.schema);
    return {
      schema: db.schema,
      version,
      latest: LATEST_SCHEMA_VERSION,
      pending: migrations
        .filter((m) => m.version > version)
        .map(({ version: v, name }) => ({ version: v, name })),
    };
  } finally {
    client.release();
  }
}

/** Throws unless the schema is exactly at the version this code knows. */
export async function assertSchemaCurrent(db: Database): Promise<void> {
  const status = await schemaStatus(db);
  refuseNewerSchema(db.schema, status.version);
  if (status.version < LATEST_SCHEMA_VERSION) {
    throw new RotaError(
      "SCHEMA_NOT_MIGRATED",
      `Schema "${db.schema}" is at version ${status.version} but this rota needs ${LATEST_SCHEMA_VERSION}. Run \`rota migrate\` (or call rota.migrate()).`,
      { details: { schema: db.schema, version: status.version, latest: LATEST_SCHEMA_VERSION } },
    );
  }
}

/**
 * assertSchemaCurrent for a worker or an orchestrator starting: a schema
 * behind or ahead of this code refuses the start (SCHEMA_NOT_MIGRATED,
 * SCHEMA_TOO_NEW), so nothing runs against tables it does not understand. A
 * database that cannot be asked right now does not: the component starts as
 * before and its loops retry until the database answers.
 */
export async function assertSchemaCurrentToStart(db: Database): Promise<void> {
  try {
    await assertSchemaCurrent(db);
  } catch (error) {
    if (isRotaError(error, "SCHEMA_NOT_MIGRATED") || isRotaError(error, "SCHEMA_TOO_NEW")) {
      throw error;
    }
  }
}

export interface MigrateProgress {
  version: number;
  name: string;
}

/** Applies every pending migration (up to `to`, default the latest); returns the ones this call applied. */
export async function migrate(
  db: Database,
  onApplied: (migration: MigrateProgress) => void = () => {},
  options: { to?: number } = {},
): Promise<MigrateProgress[]> {
  const applied: MigrateProgress[] = [];
  const to = options.to ?? LATEST_SCHEMA_VERSION;
  const wait = new LockWait();
  // Set when this call found the schema at version 0: it creates the
  // tables, and no process uses them yet.
  let fresh: boolean | null = null;
  let lockTimeouts = 0;
  for (;;) {
    const step = await db
      .transaction(async (client) => {
        if (!(await tryLockMigrations(client, db.schema, "xact"))) return "busy" as const;
        await client.query(bindSchema("create schema if not exists {{schema}}", db.schema));
        await client.query(
          bindSchema(
            `create table if not exists {{schema}}.migrations (
             version integer primary key,
             name text not null,
             applied_at timestamptz not null default now(),
             complete boolean not null default true
           )`,
            db.schema,
          ),
        );
        await addCompleteColumn(client, db.schema);
        const { version, building } = await readState(client, db.schema);
        refuseNewerSchema(db.schema, version);
        fresh ??= version === 0;
        // A migration whose concurrent part did not finish (its migrator
        // died, or a statement failed) is finished before anything else.
        if (building !== null) return { migration: migrationAt(building), done: false };
        // A lock a migration cannot get at once (an ALTER TABLE behind a long
        // transaction) is given up after this, and the migration tried again:
        // waiting in the lock queue would hold every enqueue and claim queued
        // behind it.
        await client.query(`set local lock_timeout = '${MIGRATION_LOCK_TIMEOUT_MS}ms'`);
        const migration = migrations.find((m) => m.version === version + 1);
        if (!migration || migration.version > to) return null;
        if (migration.concurrent.length === 0 || fresh) {
          await applyMigration(client, db.schema, migration, [
            migration.sql,
            ...inTransactionForm(migration.concurrent),
          ]);
          await recordVersion(client, db.schema, migration, true);
          return { migration, done: true };
        }
        // The head commits with the version not complete; the concurrent
        // part runs below, on a connection of its own, outside any transaction.
        await applyMigration(client, db.schema, migration, [migration.sql]);
        await recordVersion(client, db.schema, migration, false);
        return { migration, done: false };
      })
      .catch((error: unknown) => {
        if (isLockTimeout(error)) return "lock timeout" as const;
        throw error;
      });
    if (!step) return applied;
    if (step === "lock timeout") {
      if (++lockTimeouts > MIGRATION_LOCK_TRIES) {
        throw new RotaError(
          "MIGRATION_FAILED",
          `A migration could not get its locks within ${MIGRATION_LOCK_TIMEOUT_MS} ms, ${MIGRATION_LOCK_TRIES} times: a long transaction holds the tables (see rota doctor); end it and migrate again.`,
          { details: { schema: db.schema } },
        );
      }
      await wait.next();
      continue;
    }
    if (step === "busy") {
      await wait.next();
      continue;
    }
    wait.reset();
    if (!step.done && !(await applyConcurrentPart(db, step.migration))) continue;
    const { version, name } = step.migration;
    applied.push({ version, name });
    onApplied({ version, name });
  }
}

/**
 * A migration's concurrent part, under the session lock, if its version is
 * still the one being built (another migrator may have finished it
 * meanwhile: false). Each statement commits by itself; the version is
 * marked complete after the last.
 */
async function applyConcurrentPart(db: Database, migration: Migration): Promise<boolean> {
  const client = await db.pool.connect();
  try {
    const wait = new LockWait();
    while (!(await tryLockMigrations(client, db.schema, "session"))) await wait.next();
    try {
      if ((await readState(client, db.schema)).building !== migration.version) return false;
      try {
        for (const statement of migration.concurrent) {
          await client.query(bindSchema(statement, db.schema));
        }
      } catch (cause) {
        throw new RotaError(
          "MIGRATION_FAILED",
          `Migration ${migrationLabel(migration)} failed in its concurrent part, which runs outside a transaction (what ran stays; the next migrate runs that part again, safely, and the schema counts as version ${migration.version - 1} until then): ${(cause as Error).message}`,
          { cause, details: { version: migration.version, name: migration.name } },
        );
      }
      await client.query(
        bindSchema(
          "update {{schema}}.migrations set complete = true where version = $1",
          db.schema,
        ),
        [migration.version],
      );
      return true;
    } finally {
      await client.query("select pg_advisory_unlock(hashtext($1), 7340)", [migrateKey(db.schema)]);
    }
  } finally {
    client.release();
  }
}

/** Runs statements of a migration in the caller's transaction; MIGRATION_FAILED when one fails. */
async function applyMigration(
  client: pg.PoolClient,
  schema: string,
  migration: Migration,
  statements: readonly string[],
): Promise<void> {
  try {
    for (const statement of statements) await client.query(bindSchema(statement, schema));
  } catch (cause) {
    throw new RotaError(
      "MIGRATION_FAILED",
      `Migration ${migrationLabel(migration)} failed and was rolled back: ${(cause as Error).message}`,
      { cause, details: { version: migration.version, name: migration.name } },
    );
  }
}

async function recordVersion(
  client: pg.PoolClient,
  schema: string,
  migration: Migration,
  complete: boolean,
): Promise<void> {
  await client.query(
    bindSchema(
      "insert into {{schema}}.migrations (version, name, complete) values ($1, $2, $3)",
      schema,
    ),
    [migration.version, migration.name, complete],
  );
}

function migrationAt(version: number): Migration {
  const migration = migrations.find((m) => m.version === version);
  if (!migration) throw new Error(`no migration ${version} to finish`);
  return migration;
}

/**
 * The migrations table's `complete` column (false while a migration's
 * concurrent part is owed), added to a table created before it existed.
 * Asked first, so a schema that has it takes no lock for it.
 */
async function addCompleteColumn(client: pg.PoolClient, schema: string): Promise<void> {
  const has = await client.query(
    `select 1 from pg_attribute
      where attrelid = to_regclass($1) and attname = 'complete' and not attisdropped`,
    [`${pg.escapeIdentifier(schema)}.migrations`],
  );
  if (has.rowCount) return;
  await client.query(
    bindSchema(
      "alter table {{schema}}.migrations add column if not exists complete boolean not null default true",
      schema,
    ),
  );
}

function migrateKey(schema: string): string {
  return `rota.migrate:${schema}`;
}

/** How long a migration's statement waits for a lock before the migration is tried again. */
const MIGRATION_LOCK_TIMEOUT_MS = 1_000;
const MIGRATION_LOCK_TRIES = 30;

/** lock_timeout expired (55P03), also as the cause of a MIGRATION_FAILED. */
function isLockTimeout(error: unknown): boolean {
  const code = (e: unknown) => (e as { code?: string } | null)?.code;
  return code(error) === "55P03" || code((error as { cause?: unknown } | null)?.cause) === "55P03";
}

/**
 * The migrators' lock, for a transaction or for the session (a
 * migration's concurrent part), tried rather than waited for: a migrator that
 * waited inside its transaction would deadlock with another's CREATE INDEX
 * CONCURRENTLY, which waits for every open transaction to end. One that
 * does not get it ends its transaction and tries again (LockWait).
 */
async function tryLockMigrations(
  client: pg.PoolClient,
  schema: string,
  scope: "xact" | "session",
): Promise<boolean> {
  const fn = scope === "xact" ? "pg_try_advisory_xact_lock" : "pg_try_advisory_lock";
  const result = await client.query<{ locked: boolean }>(
    `select ${fn}(hashtext($1), 7340) as locked`,
    [migrateKey(schema)],
  );
  return result.rows[0]?.locked === true;
}

/** The pause between tries of the migrators' lock: 20 ms, doubling to a second. */
class LockWait {
  private ms = 20;
  async next(): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, this.ms));
    this.ms = Math.min(1_000, this.ms * 2);
  }
  reset(): void {
    this.ms = 20;
  }
}

/**
 * The schema's version (its last complete migration; 0 when the schema or
 * its migrations table does not exist yet), and the migration whose
 * concurrent part is still owed, if any.
 */
async function readState(
  client: pg.PoolClient,
  schema: string,
): Promise<{ version: number; building: number | null }> {
  const columns = await client.query<{ attname: string }>(
    "select attname from pg_attribute where attrelid = to_regclass($1) and attnum > 0 and not attisdropped",
    [`${pg.escapeIdentifier(schema)}.migrations`],
  );
  if (columns.rowCount === 0) return { version: 0, building: null };
  // A table created before the column: every migration in it is complete.
  const complete = columns.rows.some((row) => row.attname === "complete") ? "complete" : "true";
  const result = await client.query<{ version: number | null; building: number | null }>(
    bindSchema(
      `select max(version) filter (where ${complete}) as version,
              min(version) filter (where not ${complete}) as building
         from {{schema}}.migrations`,
      schema,
    ),
  );
  const row = result.rows[0];
  return { version: row?.version ?? 0, building: row?.building ?? null };
}

async function readVersion(client: pg.PoolClient, schema: string): Promise<number> {
  return (await readState(client, schema)).version;
}

function refuseNewerSchema(schema: string, version: number): void {
  if (version > LATEST_SCHEMA_VERSION) {
    throw new RotaError(
      "SCHEMA_TOO_NEW",
      `Schema "${schema}" is at version ${version}, newer than the ${LATEST_SCHEMA_VERSION} this rota knows: a newer rota has migrated it. Upgrade this process's rota package; it refuses to run against a schema it does not understand.`,
      { details: { schema, version, latest: LATEST_SCHEMA_VERSION } },
    );
  }
}
