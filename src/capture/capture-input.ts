import { RotaError } from "../errors.js";
import {
  DEFAULT_QUEUE,
  rejectUnknownKeys,
  validateQueueName,
  validateTaskName,
} from "../queue/job-options.js";
import type { TaskDefinition } from "../task.js";

/** A change a capture can listen for. */
export type CaptureEvent = "insert" | "update" | "delete";

export const CAPTURE_EVENTS: readonly CaptureEvent[] = ["insert", "update", "delete"];

/** What `rota.capture.add` takes. */
export interface CaptureInput {
  /**
   * 1-40 lower-case letters, digits, "_" or "-", starting with a letter. It
   * names the capture's trigger function and triggers, and prefixes its
   * jobs' unique keys.
   */
  name: string;
  /**
   * The table, as written in SQL: "public.projects", or "projects" found on
   * the search path of rota's connection. It must exist.
   */
  table: string;
  /**
   * The columns whose change an UPDATE is captured for, and the only ones
   * the payload's `row` carries (as the catalog spells them). Default: every
   * column, and the whole row. (An INSERT or DELETE is captured whatever its
   * columns.)
   */
  columns?: readonly string[];
  /** The events captured: any of "insert", "update", "delete". */
  on: readonly CaptureEvent[];
  /** The task its jobs run (a name, or a definition; its queue is the default queue). */
  // biome-ignore lint/suspicious/noExplicitAny: any task definition
  task: string | TaskDefinition<any, any>;
  /**
   * The columns that identify a row, whose values key the coalescing: NOT
   * NULL and unique (the primary key, or the columns of a unique index).
   * Default: the table's primary key.
   */
  key?: string | readonly string[];
  /** The queue its jobs go to; default the task definition's queue, else "default". */
  queue?: string;
}

/** An add's input, its shape checked (the catalog is checked in the transaction). */
export interface CaptureRequest {
  name: string;
  table: string;
  columns: string[] | null;
  events: CaptureEvent[];
  task: string;
  key: string[] | null;
  queue: string;
}

const INPUT_KEYS = ["name", "table", "columns", "on", "task", "key", "queue"] as const;

/** 40: rota_capture_<name>_<event> then fits PostgreSQL's 63-byte identifiers. */
const CAPTURE_NAME = /^[a-z][a-z0-9_-]{0,39}$/;

export function validateCaptureName(name: unknown): string {
  if (typeof name !== "string" || !CAPTURE_NAME.test(name)) {
    throw invalid(
      "name",
      `Invalid capture name ${JSON.stringify(name)}: use 1-40 lower-case letters, digits, "_" or "-", starting with a letter (for example "sync-projects").`,
      name,
    );
  }
  return name;
}

/** Checks an add's input without the database, naming the field at fault. */
export function validateCaptureInput(input: CaptureInput): CaptureRequest {
  if (input === null || typeof input !== "object") {
    throw invalid("input", "capture.add() needs { name, table, on, task }.", input);
  }
  rejectUnknownKeys(input, INPUT_KEYS, "capture.add()");
  const name = validateCaptureName(input.name);
  if (typeof input.table !== "string" || input.table.trim() === "") {
    throw invalid(
      "table",
      `Capture "${name}" needs a table: its name as written in SQL, such as "public.projects".`,
      input.table,
    );
  }
  const events = validateEvents(name, input.on);
  const columns =
    input.columns === undefined ? null : columnList(name, "columns", input.columns, false);
  const key = input.key === undefined ? null : columnList(name, "key", input.key, true);
  const definition = typeof input.task === "object" && input.task !== null ? input.task : null;
  const task = validateTaskName(definition ? definition.name : input.task);
  const queue = validateQueueName(input.queue ?? definition?.queue ?? DEFAULT_QUEUE);
  return { name, table: input.table.trim(), columns, events, task, key, queue };
}

function validateEvents(name: string, on: unknown): CaptureEvent[] {
  if (!Array.isArray(on) || on.length === 0) {
    throw invalid(
      "on",
      `Capture "${name}" needs at least one event in "on": "insert", "update" and/or "delete".`,
      on,
    );
  }
  for (const event of on) {
    if (!CAPTURE_EVENTS.includes(event)) {
      throw invalid(
        "on",
        `Capture "${name}": unknown event ${JSON.stringify(event)}; use "insert", "update" or "delete".`,
        on,
      );
    }
  }
  // In a fixed order, so the same events always read the same.
  return CAPTURE_EVENTS.filter((event) => on.includes(event));
}

function columnList(
  name: string,
  field: "columns" | "key",
  value: unknown,
  oneAllowed: boolean,
): string[] {
  const list = oneAllowed && typeof value === "string" ? [value] : value;
  if (
    !Array.isArray(list) ||
    list.length === 0 ||
    list.some((c) => typeof c !== "string" || c === "")
  ) {
    throw invalid(
      field,
      `Capture "${name}": ${field} must be a non-empty list of column names${oneAllowed ? " (or one name)" : ""}.`,
      value,
    );
  }
  const unique = [...new Set(list as string[])];
  if (unique.length !== list.length) {
    throw invalid(field, `Capture "${name}": ${field} names a column twice.`, value);
  }
  return unique;
}

function invalid(field: string, message: string, value: unknown): RotaError {
  return new RotaError("INVALID_CAPTURE", message, { details: { field, value } });
}
