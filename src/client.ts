import type pg from "pg";
import { DatabaseClock } from "./clock.js";
import { Database } from "./db/database.js";
import { type MigrateProgress, migrate, type SchemaStatus, schemaStatus } from "./db/migrate.js";

export interface RotaOptions {
  /** A postgres:// URL, or an existing pg.Pool (rota will not end a pool it did not create). */
  connection: string | pg.Pool;
  /** Schema holding rota's tables; default "rota". */
  schema?: string;
  /** Pool size when rota creates the pool; default 10. */
  poolSize?: number;
}

/**
 * The library's entry point. It owns the database seam and hands it to the
 * parts (queue, worker, orchestrator, schedules) as they are created.
 */
export class Rota {
  readonly db: Database;
  /** The database clock for this schema (read, and shift in tests). */
  readonly clock: DatabaseClock;

  constructor(options: RotaOptions) {
    this.db = new Database(options);
    this.clock = new DatabaseClock(this.db);
  }

  get schema(): string {
    return this.db.schema;
  }

  /** Applies pending migrations; safe to call from many processes at once. */
  migrate(onApplied?: (migration: MigrateProgress) => void): Promise<MigrateProgress[]> {
    return migrate(this.db, onApplied);
  }

  /** The schema's version and the migrations not yet applied. */
  schemaStatus(): Promise<SchemaStatus> {
    return schemaStatus(this.db);
  }

  /** Ends the pool if rota created it. */
  async close(): Promise<void> {
    await this.db.close();
  }
}

export function createRota(options: RotaOptions): Rota {
  return new Rota(options);
}
