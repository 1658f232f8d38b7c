import { readdirSync, readFileSync } from "node:fs";
import type pg from "pg";
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
 * A migration that must not run in a transaction (CREATE INDEX CONCURRENTLY
 * on a table live workers write: a plain CREATE INDEX would hold their
 * inserts and updates for the whole build) starts with the line
 * `-- rota:no-transaction`. Its statements, one per `;` at a line's end, run
 * one by one on one connection under a session advisory lock on the same
 * key (so migrators still queue), each written to be safe to run again: a
 * failure half-way leaves the version unrecorded, and the next migrate runs
 * the whole file again. Such a migration needs a session connection: run
 * `rota migrate` on a direct URL, not through a transaction pooler.
 *
 * It may hold only `create index concurrently` and `drop index concurrently
 * if exists` statements (checked when the files are read). On a schema this
 * very call created (migrating from version 0: no process uses it yet) they
 * run as plain index statements in a transaction like any other migration:
 * a CONCURRENTLY build waits for every older transaction of the database,
 * which an empty new table need not.
 */
export interface Migration {
  version: number;
  name: string;
  sql: string;
  /** False for a `-- rota:no-transaction` migration. */
  transactional: boolean;
}

/** The directive that makes a migration run outside a transaction. */
const NO_TRANSACTION = /^-- rota:no-transaction\s*$/m;

/** What a no-transaction migration may hold: index builds and drops, concurrently. */
const CONCURRENT_INDEX_STATEMENT =
  /^(create (unique )?index concurrently |drop index concurrently if exists )/i;

/**
 * A no-transaction migration's statements as a plain transaction runs them
 * (a fresh schema): CONCURRENTLY dropped from each.
 */
export function inTransactionForm(statements: readonly string[]): string[] {
  return statements.map((statement) => statement.replace(/ index concurrently /i, " index "));
}

/** A no-transaction migration's statements: split at each `;` ending a line, comments dropped. */
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

/** A migration file read: its number, name, text, and whether it runs in a transaction (checked). */
export function migrationFromFile(file: string, sql: string): Migration {
  const match = FILE.exec(file);
  if (!match) throw new Error(`migration file name ${file} is not NNNN_name.sql`);
  const transactional = !NO_TRANSACTION.test(sql);
  if (!transactional) {
    for (const statement of migrationStatements(sql)) {
      if (!CONCURRENT_INDEX_STATEMENT.test(statement)) {
        throw new Error(
          `migration ${file} is -- rota:no-transaction and holds "${statement.split("\n")[0]}": such a migration holds only create index concurrently and drop index concurrently if exists`,
        );
      }
    }
  }
  return { version: Number(match[1]), name: match[2] as string, sql, transactional };
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
             applied_at timestamptz not null default now()
           )`,
            db.schema,
          ),
        );
        const version = await readVersion(client, db.schema);
        refuseNewerSchema(db.schema, version);
        fresh ??= version === 0;
        // A lock a migration cannot get at once (an ALTER TABLE behind a long
        // transaction) is given up after this, and the migration tried again:
        // waiting in the lock queue would hold every enqueue and claim queued
        // behind it.
        await client.query(`set local lock_timeout = '${MIGRATION_LOCK_TIMEOUT_MS}ms'`);
        const migration = migrations.find((m) => m.version === version + 1);
        if (!migration || migration.version > to) return null;
        if (migration.transactional) {
          await applyMigration(client, db.schema, migration, [migration.sql]);
        } else if (fresh) {
          await applyMigration(
            client,
            db.schema,
            migration,
            inTransactionForm(migrationStatements(migration.sql)),
          );
        } else {
          // Applied below, on a connection of its own, outside any transaction.
          return { migration, done: false };
        }
        return { migration, done: true };
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
    if (!step.done && !(await applyOutsideTransaction(db, step.migration))) continue;
    const { version, name } = step.migration;
    applied.push({ version, name });
    onApplied({ version, name });
  }
}

/**
 * A `-- rota:no-transaction` migration, under the session lock, if it is
 * still the next one (another migrator may have applied it meanwhile:
 * false). Each statement commits by itself.
 */
async function applyOutsideTransaction(db: Database, migration: Migration): Promise<boolean> {
  const client = await db.pool.connect();
  try {
    const wait = new LockWait();
    while (!(await tryLockMigrations(client, db.schema, "session"))) await wait.next();
    try {
      if ((await readVersion(client, db.schema)) !== migration.version - 1) return false;
      await applyMigration(client, db.schema, migration, migrationStatements(migration.sql));
      return true;
    } finally {
      await client.query("select pg_advisory_unlock(hashtext($1), 7340)", [migrateKey(db.schema)]);
    }
  } finally {
    client.release();
  }
}

/** Runs a migration's statements and records its version; MIGRATION_FAILED when one fails. */
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
      migration.transactional
        ? `Migration ${migrationLabel(migration)} failed and was rolled back: ${(cause as Error).message}`
        : `Migration ${migrationLabel(migration)} failed (it runs outside a transaction: what ran stays, and the next migrate runs it again, safely): ${(cause as Error).message}`,
      { cause, details: { version: migration.version, name: migration.name } },
    );
  }
  await client.query(
    bindSchema("insert into {{schema}}.migrations (version, name) values ($1, $2)", schema),
    [migration.version, migration.name],
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
 * no-transaction migration), tried rather than waited for: a migrator that
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

async function readVersion(client: pg.PoolClient, schema: string): Promise<number> {
  const exists = await client.query<{ exists: boolean }>(
    "select to_regclass($1) is not null as exists",
    [`"${schema}".migrations`],
  );
  if (!exists.rows[0]?.exists) return 0;
  const result = await client.query<{ version: number | null }>(
    bindSchema("select max(version) as version from {{schema}}.migrations", schema),
  );
  return result.rows[0]?.version ?? 0;
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
