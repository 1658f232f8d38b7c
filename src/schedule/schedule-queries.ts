import { defineQueries } from "../db/sql.js";
import type { CatchUp } from "./plan.js";
import type { ScheduleSpec } from "./spec.js";

/** Every statement on schedules and their executions, from src/db/queries/schedules.sql. */
export const scheduleQueries = defineQueries("schedules", [
  "GetByName",
  "Lock",
  "List",
  "Upsert",
  "SetState",
  "Delete",
  "DueForFill",
  "LiveFuture",
  "Materialize",
  "Supersede",
  "RemoveUnstarted",
  "Skip",
  "Trigger",
  "Planned",
  "History",
  "Quiesce",
  "Delay",
  "Drifted",
  "WatchdogSlice",
  "RepairCursor",
  "HandoverCandidates",
]);

export type Overlap = "allow" | "skip" | "queue";
export type Owner = "rota" | "external";

/** A row of the schedules table as the statements return it. */
export interface ScheduleRow {
  id: string;
  name: string;
  task: string;
  payload: unknown;
  queue: string;
  priority: number;
  max_attempts: number | null;
  cron: string | null;
  every: string | null;
  anchor: Date | null;
  timezone: string;
  catch_up: CatchUp;
  catch_up_window_ms: number | null;
  overlap: Overlap;
  horizon: number;
  enabled: boolean;
  paused: boolean;
  owner: Owner;
  handover: boolean;
  next_run_at: Date | null;
  fill_at: Date;
  last_run_at: Date | null;
  version: string;
  materialized_version: string | null;
  last_error: string | null;
  quiesced_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

/** The spec a row describes (not validated: compileSpec does that). */
export function specOf(
  row: Pick<ScheduleRow, "cron" | "every" | "anchor" | "timezone">,
): ScheduleSpec {
  return row.cron !== null
    ? { cron: row.cron, timezone: row.timezone }
    : { every: row.every as string, anchor: row.anchor, timezone: row.timezone };
}
