import type { ScheduleRow } from "../db/queries/schedules.js";
import type { NormalizedSchedule } from "./schedule-options.js";

/** A schedule as rota reports it: its input as stored, and its state. */
export interface Schedule extends Omit<NormalizedSchedule, "payload"> {
  id: string;
  payload: unknown;
  enabled: boolean;
  paused: boolean;
  /** When its next planned execution runs (null: none is planned: paused, disabled, external). */
  nextPlannedAt: Date | null;
  /**
   * When its last execution that ran started (null: none within the
   * executions' history retention).
   */
  lastRunAt: Date | null;
  /**
   * The planning cursor: the first occurrence not materialized yet, past the
   * planned ones (null: the next pass takes a baseline from now).
   */
  cursorAt: Date | null;
  /** The last occurrence materialized (the latest planned, or past). */
  lastPlannedAt: Date | null;
  version: string;
  /** Why the schedule was disabled, when rota disabled it (a spec that does not parse). */
  lastError: string | null;
  createdAt: Date;
  updatedAt: Date;
}

export function toSchedule(row: ScheduleRow): Schedule {
  return {
    id: row.id,
    name: row.name,
    task: row.task,
    payload: row.payload,
    queue: row.queue,
    priority: row.priority,
    maxAttempts: row.max_attempts,
    cron: row.cron,
    every: row.every,
    anchor: row.anchor,
    timezone: row.timezone,
    catchUp: row.catch_up,
    catchUpWindowMs: row.catch_up_window_ms,
    overlap: row.overlap,
    horizon: row.horizon,
    horizonMs: row.horizon_ms,
    enabled: row.enabled,
    paused: row.paused,
    owner: row.owner,
    nextPlannedAt: row.next_planned_at,
    lastRunAt: row.last_run_at,
    cursorAt: row.cursor_at,
    lastPlannedAt: row.last_planned_at,
    version: row.version,
    lastError: row.last_error,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}
