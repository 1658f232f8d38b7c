import pg from "pg";
import type { CaptureEvent } from "./capture-input.js";

/**
 * The names and the {{fragments}} of the DDL a capture installs
 * (captures.sql: CreateFunction, CreateTrigger, …). Pure: every identifier
 * goes through pg.escapeIdentifier and every value through pg.escapeLiteral,
 * and both come from a capture whose names the catalog has confirmed.
 */

/** The capture's trigger function, in rota's schema (quoted). */
export function functionName(schema: string, name: string): string {
  return `${pg.escapeIdentifier(schema)}.${pg.escapeIdentifier(`capture_${name}`)}`;
}

/** The trigger of one event (unquoted; unique per table, which is all PostgreSQL asks). */
export function triggerName(name: string, event: CaptureEvent): string {
  return `rota_capture_${name}_${event}`;
}

/** The prefix of the capture's jobs' unique keys; the key's jsonb text follows. */
export function uniqueKeyPrefix(name: string): string {
  return `capture:${name}:`;
}

export interface FunctionSpec {
  name: string;
  task: string;
  queue: string;
  /** null: the whole row image. */
  columns: string[] | null;
  key: string[];
}

/** The fragments of CreateFunction. */
export function functionFragments(schema: string, spec: FunctionSpec): Record<string, string> {
  return {
    function: functionName(schema, spec.name),
    name: pg.escapeLiteral(spec.name),
    task: pg.escapeLiteral(spec.task),
    queue: pg.escapeLiteral(spec.queue),
    keyPrefix: pg.escapeLiteral(uniqueKeyPrefix(spec.name)),
    key: jsonObject(spec.key),
    image: spec.columns === null ? "to_jsonb(r)" : jsonObject(spec.columns),
  };
}

/** The fragments of CreateTrigger for one event. */
export function triggerFragments(
  schema: string,
  spec: { name: string; tableSchema: string; tableName: string },
  event: CaptureEvent,
): Record<string, string> {
  return {
    trigger: pg.escapeIdentifier(triggerName(spec.name, event)),
    event,
    table: qualifiedTable(spec.tableSchema, spec.tableName),
    transitions:
      event === "insert"
        ? "new table as rota_new"
        : event === "delete"
          ? "old table as rota_old"
          : "new table as rota_new old table as rota_old",
    function: functionName(schema, spec.name),
  };
}

export function qualifiedTable(tableSchema: string, tableName: string): string {
  return `${pg.escapeIdentifier(tableSchema)}.${pg.escapeIdentifier(tableName)}`;
}

/**
 * `jsonb_build_object('a', r."a", …)` over the row aliased r. A function
 * takes at most 100 arguments in PostgreSQL, so past 50 columns the objects
 * are built in groups and joined with ||.
 */
export function jsonObject(columns: readonly string[]): string {
  const groups: string[] = [];
  for (let i = 0; i < columns.length; i += 50) {
    const pairs = columns
      .slice(i, i + 50)
      .map((c) => `${pg.escapeLiteral(c)}, r.${pg.escapeIdentifier(c)}`);
    groups.push(`jsonb_build_object(${pairs.join(", ")})`);
  }
  return groups.join(" || ");
}
