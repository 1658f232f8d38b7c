import { readdirSync, readFileSync } from "node:fs";
import type pg from "pg";
import { isRotaError, RotaError } from "../errors.js";
import type { Database } from "./database.js";
import { bindSchema } from "./sql.js";

/**
 * Forward-only, numbered SQL migrations (`migrations/0001_name.sql`).
 *
 * Each migration runs in its own transaction that first takes a
 * transaction-scoped advisory lock keyed on the schema name. Concurrent
 * migrators therefore queue behind each other, and each re-reads the applied
 * version after getting the lock, so five `rota migrate` processes started at
 * once apply every file exactly once and all succeed. Transaction-scoped
 * locks (not session locks) keep this safe behind PgBouncer in transaction mode.
 */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

const FILE = /^(\d{4})_([a-z0-9_]+)\.sql$/;

/** A migration as its file is named: 0012_concurrency_limits. */
export function migrationLabel(migration: { version: number; name: string }): string {
  return `${String(migration.version).padStart(4, "0")}_${migration.name}`;
}

export function loadMigrations(): Migration[] {
  const dir = new URL("./migrations/", import.meta.url);
  const migrations = readdirSync(dir)
    .filter((file) => file.endsWith(".sql"))
    .map((file) => {
      const match = FILE.exec(file);
      if (!match) throw new Error(`migration file name ${file} is not NNNN_name.sql`);
      return {
        version: Number(match[1]),
        name: match[2] as string,
        sql: readFileSync(new URL(file, dir), "utf8"),
      };
    })
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

/** Applies every pending migration; returns the ones this call applied. */
export async function migrate(
  db: Database,
  onApplied: (migration: MigrateProgress) => void = () => {},
): Promise<MigrateProgress[]> {
  const applied: MigrateProgress[] = [];
  for (;;) {
    const next = await db.transaction(async (client) => {
      await client.query("select pg_advisory_xact_lock(hashtext($1), 7340)", [
        `rota.migrate:${db.schema}`,
      ]);
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
      const migration = migrations.find((m) => m.version === version + 1);
      if (!migration) return null;
      try {
        await client.query(bindSchema(migration.sql, db.schema));
      } catch (cause) {
        throw new RotaError(
          "MIGRATION_FAILED",
          `Migration ${migrationLabel(migration)} failed and was rolled back: ${(cause as Error).message}`,
          { cause, details: { version: migration.version, name: migration.name } },
        );
      }
      await client.query(
        bindSchema("insert into {{schema}}.migrations (version, name) values ($1, $2)", db.schema),
        [migration.version, migration.name],
      );
      return { version: migration.version, name: migration.name };
    });
    if (!next) return applied;
    applied.push(next);
    onApplied(next);
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
