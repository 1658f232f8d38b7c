import { defineQueries, type NoParams, statement } from "../sql.js";

/** A capture as recorded (Get, Upsert). */
export interface CaptureRow {
  name: string;
  table_schema: string;
  table_name: string;
  columns: string[] | null;
  events: string[];
  task: string;
  key_columns: string[];
  queue: string;
  created_at: Date;
  updated_at: Date;
}

/** A capture as List reports it: recorded, and checked against the catalog. */
export interface CaptureListRow extends CaptureRow {
  table_exists: boolean;
  function_exists: boolean;
  /** Events with no trigger calling the capture's function on its table. */
  missing_events: string[];
  /** Events whose trigger is disabled. */
  disabled_events: string[];
  paused: boolean;
  queued: number;
}

/** What the catalog says of a table (Inspect). */
export interface TableRow {
  table_schema: string;
  table_name: string;
  kind: string;
  columns: { name: string; notNull: boolean }[];
  /** Column sets that identify a row: the primary key first, then unique indexes. */
  unique_keys: string[][];
  primary_key: string[];
}

/** Every statement of captures.sql, bound per schema. */
export const captureQueries = defineQueries("captures", {
  Lock: statement<{ name: string }, { locked: boolean }>(),
  Inspect: statement<{ table: string }, TableRow>(),
  Get: statement<{ name: string }, CaptureRow>(),
  Upsert: statement<
    {
      name: string;
      tableSchema: string;
      tableName: string;
      columns: string[] | null;
      events: string[];
      task: string;
      keyColumns: string[];
      queue: string;
    },
    CaptureRow
  >(),
  Delete: statement<{ name: string }>(),
  Triggers: statement<
    { name: string },
    { name: string; table_schema: string; table_name: string }
  >(),
  List: statement<{ name: string | null }, CaptureListRow>(),
  CreateFunction: statement<NoParams>(),
  RevokeFunction: statement<NoParams>(),
  CreateTrigger: statement<NoParams>(),
  DropFunction: statement<NoParams>(),
});
