import pg from "pg";
import type { BenchEnvironment, ConfigName } from "./types.js";

/** Double-quotes an identifier for SQL text. */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** Drops a schema and everything in it, if it exists. */
export async function dropSchema(databaseUrl: string, schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query("set client_min_messages = warning");
    // A worker that failed to stop may still hold locks; do not wait on it forever.
    await client.query("set lock_timeout = '20s'");
    await client.query(`drop schema if exists ${quoteIdent(schema)} cascade`);
  } finally {
    await client.end();
  }
}

/**
 * A system whose state is one PostgreSQL schema of its own: setup() drops it,
 * connects and installs the system's tables; teardown() disconnects and,
 * in the process that set it up, drops it again.
 */
export abstract class SchemaSystem {
  private owner = false;

  constructor(
    protected readonly env: BenchEnvironment,
    readonly config: ConfigName,
    protected readonly schema: string,
  ) {}

  async setup(): Promise<void> {
    await dropSchema(this.env.databaseUrl, this.schema);
    this.owner = true;
    await this.attach();
    await this.install();
  }

  async teardown(): Promise<void> {
    await this.close();
    if (this.owner) await dropSchema(this.env.databaseUrl, this.schema);
  }

  abstract attach(): Promise<void>;
  /** Creates the system's tables (and queue) in the fresh schema. */
  protected abstract install(): Promise<void>;
  /** Releases the connections attach() made, if any. */
  protected abstract close(): Promise<void>;
}
