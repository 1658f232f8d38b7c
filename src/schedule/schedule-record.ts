import type { ScheduleRow } from "../db/queries/schedules.js";
import { cappedWindowMs } from "./distribution.js";
import type { NormalizedSchedule } from "./schedule-options.js";
import { compileSpec, specOf } from "./spec.js";

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
  /** Runs for its targets (schedules.targets, targetSource) instead of its own grid. */
  fanOut: boolean;
  /**
   * The window as it applies: `windowMs` capped at the gap to the next
   * occurrence (from the cursor on), null without a window.
   */
  effectiveWindowMs: number | null;
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
    fanOut: row.fan_out,
    windowMs: row.window_ms,
    effectiveWindowMs: effectiveWindow(row),
    distribution: row.distribution,
    batchSize: row.batch_size,
    batchEveryMs: row.batch_every_ms,
    seed: row.seed,
    targetSource: row.target_source,
  };
}

/** A schedule's window capped at the gap between its next two occurrences. */
export function effectiveWindow(
  row: Pick<ScheduleRow, "window_ms" | "cron" | "every" | "anchor" | "timezone"> & {
    cursor_at?: Date | null;
  },
): number | null {
  if (row.window_ms === null) return null;
  try {
    const grid = compileSpec(specOf(row));
    const first = row.cursor_at ?? grid.next(new Date());
    if (first === null) return row.window_ms;
    return cappedWindowMs(row.window_ms, first, grid.next(first));
  } catch {
    return row.window_ms; // a spec that does not parse: the schedule says why in lastError
  }
}
