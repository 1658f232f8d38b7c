import { randomBytes } from "node:crypto";
import pg from "pg";
import { inject } from "vitest";
import { databaseOf, Rota } from "../../src/client.js";
import type { Database } from "../../src/db/database.js";

/** The suite's database URL: DATABASE_URL, or the embedded server global setup started. */
export function databaseUrl(): string {
  return inject("databaseUrl");
}

/** A fresh schema name, unique per call, so test files can run in parallel. */
export function uniqueSchema(prefix = "t"): string {
  return `${prefix}_${randomBytes(5).toString("hex")}`;
}

export interface TestSchema {
  rota: Rota;
  /** rota's database seam (internal to the library), for statements a test runs behind its back. */
  db: Database;
  schema: string;
  url: string;
  /** Drops the schema and ends the pool. */
  drop(): Promise<void>;
}

/** A migrated schema of its own for one test file (or one test). */
export async function migratedSchema(options: { migrate?: boolean } = {}): Promise<TestSchema> {
  const url = databaseUrl();
  const schema = uniqueSchema();
  const rota = new Rota({ connection: url, schema });
  if (options.migrate !== false) await rota.migrate();
  return {
    rota,
    db: databaseOf(rota),
    schema,
    url,
    drop: async () => {
      await rota.close();
      await dropSchema(url, schema);
    },
  };
}

export interface TestSchemaWithClient extends TestSchema {
  /** A plain pg client on the same database: an application writing behind rota's back. */
  app: pg.Client;
}

/** migratedSchema() with a plain client of its own; drop() ends the client too. */
export async function migratedSchemaWithClient(): Promise<TestSchemaWithClient> {
  const t = await migratedSchema();
  const app = new pg.Client(t.url);
  await app.connect();
  return {
    ...t,
    app,
    drop: async () => {
      await app.end();
      await t.drop();
    },
  };
}

export async function dropSchema(url: string, schema: string): Promise<void> {
  const client = new pg.Client(url);
  await client.connect();
  try {
    await client.query(`drop schema if exists ${pg.escapeIdentifier(schema)} cascade`);
  } finally {
    await client.end();
  }
}

/** A plain client for assertions made behind rota's back. */
export async function withClient<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client(databaseUrl());
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/**
 * Runs `fn` in a transaction on a client of `pool` (the caller's own
 * transaction, as an application holds one), then commits it, or rolls it
 * back when `commit` is false or `fn` throws.
 */
export async function inTransaction<T>(
  pool: pg.Pool,
  fn: (client: pg.PoolClient) => Promise<T>,
  commit: boolean,
): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query("begin");
    const result = await fn(client);
    await client.query(commit ? "commit" : "rollback");
    return result;
  } catch (error) {
    await client.query("rollback");
    throw error;
  } finally {
    client.release();
  }
}

/**
 * A database of its own, for a test whose statements wait on every other
 * transaction of the database (CREATE INDEX CONCURRENTLY does): in the
 * shared one, the other test files' transactions would hold it up. Returns
 * its URL and a drop() that ends its connections first.
 */
export async function ownDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const name = uniqueSchema("rota_db");
  const admin = databaseUrl();
  await withClient((c) => c.query(`create database ${pg.escapeIdentifier(name)}`));
  const url = new URL(admin);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: () =>
      withClient(async (c) => {
        await c.query(`drop database if exists ${pg.escapeIdentifier(name)} with (force)`);
      }),
  };
}
