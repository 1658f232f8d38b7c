import type { Database, Executor } from "../db/database.js";
import { type CaptureListRow, type CaptureRow, captureQueries } from "../db/queries/captures.js";
import { sqlstate } from "../db/sqlstate.js";
import { RotaError } from "../errors.js";
import type { TaskDefinition } from "../task.js";
import {
  CAPTURE_EVENTS,
  type CaptureEvent,
  type CaptureInput,
  validateCaptureInput,
  validateCaptureName,
} from "./capture-input.js";
import { installCapture, uninstallCapture } from "./install.js";
import { checkTable } from "./table-check.js";

/**
 * What list() says of a capture's triggers: "ok"; "table_missing" (dropped
 * or renamed: remove() still cleans up); "function_missing" (dropped by
 * hand: add() again reinstalls it); "trigger_missing" or "trigger_disabled"
 * (an event's trigger dropped or disabled by hand; see `missing`).
 */
export type CaptureStatus =
  | "ok"
  | "table_missing"
  | "function_missing"
  | "trigger_missing"
  | "trigger_disabled";

/** A capture as rota reports it. */
export interface CaptureInfo {
  name: string;
  /** Its table, schema-qualified. */
  table: string;
  /** The columns captured; null: all of them. */
  columns: string[] | null;
  on: CaptureEvent[];
  task: string;
  /** The columns that key its coalescing. */
  key: string[];
  queue: string;
  /** Whether its triggers are all in place (see CaptureStatus). */
  status: CaptureStatus;
  /** Events whose trigger is missing or disabled. */
  missing: CaptureEvent[];
  /** Its jobs waiting in the queue (at most one per row key). */
  queued: number;
  /** Its queue is paused: changes are captured and wait, coalesced, until it is resumed. */
  paused: boolean;
  createdAt: Date;
  updatedAt: Date;
}

/** What remove() dropped. */
export interface CaptureRemoved {
  name: string;
  /** The triggers dropped with the capture's function (`schema.table.trigger`). */
  droppedTriggers: string[];
}

/** Where add() and remove() run: rota's own transaction, or the caller's. */
export interface CaptureTransactionOption {
  /**
   * A client inside the caller's transaction (a pg client, or an ORM's
   * transaction through rota/kysely, rota/drizzle, rota/knex, rota/prisma):
   * the capture is installed (or removed) if and only if it commits, with
   * the caller's own DDL (a migration that creates the table and its capture).
   */
  client?: Executor;
}

/**
 * Change capture (docs/capture.md): a trigger on your table that enqueues a
 * job for each changed row in the change's own transaction, however the
 * change was made (your application, raw SQL, a bulk UPDATE, another
 * service), coalesced to one queued job per row key. Pausing the capture's
 * queue is its kill switch: changes still become jobs, which wait, coalesced,
 * until it is resumed.
 */
export class Captures {
  private readonly q;

  constructor(
    private readonly db: Database,
    private readonly tasks: ReadonlyMap<string, TaskDefinition>,
  ) {
    this.q = captureQueries(db.schema);
  }

  /**
   * Installs capture `name` on its table: records it, creates its trigger
   * function and one statement trigger per event, all in one transaction
   * (nothing is written if any check fails). Adding the same name on the same
   * table again updates it (columns, events, task, key, queue); on another
   * table it is refused: remove it first. Creating a trigger takes a lock on
   * the table that waits for the transactions writing it.
   */
  async add(input: CaptureInput, options: CaptureTransactionOption = {}): Promise<CaptureInfo> {
    const request = validateCaptureInput(input);
    if (this.tasks.size > 0 && !this.tasks.has(request.task)) {
      throw new RotaError(
        "UNKNOWN_TASK",
        `Capture "${request.name}": unknown task "${request.task}"; registered tasks are ${[...this.tasks.keys()].map((k) => `"${k}"`).join(", ")}.`,
        { details: { field: "task", task: request.task } },
      );
    }
    await this.inTransaction(options.client, async (client) => {
      await this.db.run(this.q.Lock, { name: request.name }, client);
      const table = (
        await this.db
          .run(this.q.Inspect, { table: request.table }, client)
          .catch((cause: unknown) => {
            // to_regclass refuses a name it cannot parse ("a b", "x.y.z.w",
            // "otherdb.public.t"): invalid_name, syntax_error, feature_not_supported.
            if (!["42602", "42601", "0A000"].includes(sqlstate(cause) ?? "")) throw cause;
            throw new RotaError(
              "INVALID_CAPTURE",
              `Capture "${request.name}": ${JSON.stringify(request.table)} is not a table name (${(cause as Error).message}).`,
              { cause, details: { field: "table", value: request.table } },
            );
          })
      ).rows[0];
      const checked = checkTable(request, table);
      const existing = (await this.db.run(this.q.Get, { name: request.name }, client)).rows[0];
      if (
        existing &&
        (existing.table_schema !== checked.tableSchema || existing.table_name !== checked.tableName)
      ) {
        throw new RotaError(
          "INVALID_CAPTURE",
          `Capture "${request.name}" is already on ${existing.table_schema}.${existing.table_name}; remove it first (rota capture rm ${request.name}) or choose another name.`,
          { details: { field: "name", value: request.name, table: tableOf(existing) } },
        );
      }
      await this.db.run(
        this.q.Upsert,
        {
          name: request.name,
          tableSchema: checked.tableSchema,
          tableName: checked.tableName,
          columns: checked.columns,
          events: request.events,
          task: request.task,
          keyColumns: checked.key,
          queue: request.queue,
        },
        client,
      );
      await installCapture(this.db, client, { ...request, ...checked });
    });
    return (await this.listed(request.name, options.client))[0] as CaptureInfo;
  }

  /**
   * Removes capture `name`: drops its function and, with it, every trigger
   * that calls it (whatever table it is on, renamed or not), and forgets
   * the capture, in one transaction. Its jobs already queued stay and run.
   */
  async remove(name: string, options: CaptureTransactionOption = {}): Promise<CaptureRemoved> {
    const captureName = validateCaptureName(name);
    return this.inTransaction(options.client, async (client) => {
      await this.db.run(this.q.Lock, { name: captureName }, client);
      const existing = (await this.db.run(this.q.Get, { name: captureName }, client)).rows[0];
      if (!existing) {
        throw new RotaError(
          "CAPTURE_NOT_FOUND",
          `No capture named "${captureName}" (rota capture list shows them).`,
          { details: { name: captureName } },
        );
      }
      const droppedTriggers = await uninstallCapture(this.db, client, captureName);
      await this.db.run(this.q.Delete, { name: captureName }, client);
      return { name: captureName, droppedTriggers };
    });
  }

  /** Every capture, by name, checked against the catalog (see CaptureInfo). */
  list(): Promise<CaptureInfo[]> {
    return this.listed(null);
  }

  /** Capture `name`, or null. */
  async get(name: string): Promise<CaptureInfo | null> {
    return (await this.listed(validateCaptureName(name)))[0] ?? null;
  }

  private async listed(name: string | null, client?: Executor): Promise<CaptureInfo[]> {
    const result = await this.db.run(this.q.List, { name }, client);
    return result.rows.map(toCaptureInfo);
  }

  private async inTransaction<T>(
    client: Executor | undefined,
    fn: (client: Executor) => Promise<T>,
  ): Promise<T> {
    if (client) return fn(client);
    return this.db.transaction(fn);
  }
}

function tableOf(row: CaptureRow): string {
  return `${row.table_schema}.${row.table_name}`;
}

function toCaptureInfo(row: CaptureListRow): CaptureInfo {
  const events = CAPTURE_EVENTS.filter((e) => row.events.includes(e));
  const missing = events.filter(
    (e) => row.missing_events.includes(e) || row.disabled_events.includes(e),
  );
  const status: CaptureStatus = !row.table_exists
    ? "table_missing"
    : !row.function_exists
      ? "function_missing"
      : row.missing_events.length > 0
        ? "trigger_missing"
        : row.disabled_events.length > 0
          ? "trigger_disabled"
          : "ok";
  return {
    name: row.name,
    table: tableOf(row),
    columns: row.columns,
    on: events,
    task: row.task,
    key: row.key_columns,
    queue: row.queue,
    status,
    missing: !row.table_exists || !row.function_exists ? events : missing,
    queued: row.queued,
    paused: row.paused,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}
