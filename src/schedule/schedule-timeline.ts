import { wholeNumber } from "../config.js";
import type { Database } from "../db/database.js";
import { clockQueries } from "../db/queries/clock.js";
import { scheduleQueries } from "../db/queries/schedules.js";
import { RotaError } from "../errors.js";
import { JOB_STATES } from "../queue/job-admin.js";
import { validateScheduleName } from "./schedule-options.js";
import { compileSpec, specOf } from "./spec.js";

/**
 * A schedule's timeline, read-only: what runs next (materialized executions,
 * then times computed from the grid) and what ran (its executions, newest
 * first). Schedules.upcoming and Schedules.history call these.
 */

/** The target of a schedule's own grid. */
export const DEFAULT_TARGET = "";

export interface UpcomingRun {
  /** When it is planned to run. */
  runAt: Date;
  occurrenceAt: Date | null;
  targetKey: string;
  /** The execution's job id when it is materialized; null for a computed one. */
  executionId: string | null;
  /** "scheduled" / "available" for materialized executions, "computed" beyond the horizon. */
  state: string;
}

export interface ScheduleExecution {
  id: string;
  state: string;
  runAt: Date;
  occurrenceAt: Date | null;
  targetKey: string;
  version: string | null;
  attempts: number;
  startedAt: Date | null;
  finishedAt: Date | null;
  lastError: unknown;
}

/**
 * The next `limit` planned runs from `from` (default now): the materialized
 * executions, then times computed from the cursor (they need no rows). Empty
 * while the schedule is paused, disabled or owned by another scheduler.
 */
export async function upcomingRuns(
  db: Database,
  name: string,
  options: { limit?: number; from?: Date; target?: string } = {},
): Promise<UpcomingRun[]> {
  const q = scheduleQueries(db.schema);
  const limit = validateLimit(options.limit ?? 10);
  if (
    options.from !== undefined &&
    (!(options.from instanceof Date) || Number.isNaN(options.from.getTime()))
  ) {
    throw new RotaError(
      "INVALID_OPTION",
      `from must be a valid Date, got ${String(options.from)}.`,
      {
        details: { field: "from" },
      },
    );
  }
  const target = options.target ?? DEFAULT_TARGET;
  if (target !== DEFAULT_TARGET) {
    throw new RotaError(
      "INVALID_OPTION",
      `Schedule "${name}" has no target ${JSON.stringify(target)}: schedules without targets have only the default target "".`,
      { details: { field: "target", value: target } },
    );
  }
  const row = await db.run(q.Get, { name: validateScheduleName(name), id: null });
  const schedule = row.rows[0];
  if (!schedule) throw notFound(name);
  if (!schedule.enabled || schedule.paused || schedule.owner !== "rota") return [];
  const now = (await db.run(clockQueries(db.schema).Now)).rows[0]?.now as Date;
  const from = options.from ?? now;
  const planned = await db.run(q.Planned, {
    scheduleId: schedule.id,
    from,
    target,
    limit,
  });
  const runs: UpcomingRun[] = planned.rows.map((r) => ({
    runAt: r.run_at,
    occurrenceAt: r.occurrence_at,
    targetKey: r.target_key,
    executionId: r.id,
    state: r.state,
  }));
  // Computed runs continue the grid where materialization stopped (the
  // cursor, or the first occurrence after now when a baseline is due).
  const grid = compileSpec(specOf(schedule));
  // Computed from the cursor on, or from `from` when that is later (one
  // step, however far ahead `from` is).
  let at: Date | null = schedule.cursor_at ?? grid.next(now);
  if (at !== null && at.getTime() < from.getTime()) at = grid.next(new Date(from.getTime() - 1));
  while (at !== null && runs.length < limit) {
    runs.push({
      runAt: at,
      occurrenceAt: at,
      targetKey: target,
      executionId: null,
      state: "computed",
    });
    at = grid.next(at);
  }
  return runs.sort((a, b) => a.runAt.getTime() - b.runAt.getTime()).slice(0, limit);
}

/** A schedule's executions, newest first, including those that did not run. */
export async function executionHistory(
  db: Database,
  name: string,
  options: { limit?: number; states?: string[] } = {},
): Promise<ScheduleExecution[]> {
  const q = scheduleQueries(db.schema);
  const limit = validateLimit(options.limit ?? 50);
  const states = options.states ?? null;
  if (states !== null) {
    const unknown = states.filter((state) => !JOB_STATES.includes(state));
    if (!Array.isArray(states) || unknown.length > 0) {
      throw new RotaError(
        "INVALID_OPTION",
        `Unknown execution state(s) ${unknown.map((u) => JSON.stringify(u)).join(", ")}: use ${JOB_STATES.join(", ")}.`,
        { details: { field: "states", value: states } },
      );
    }
  }
  const row = await db.run(q.Get, { name: validateScheduleName(name), id: null });
  const schedule = row.rows[0];
  if (!schedule) throw notFound(name);
  const result = await db.run(q.History, {
    scheduleId: schedule.id,
    states,
    limit,
  });
  return result.rows.map((r) => ({
    id: r.id,
    state: r.state,
    runAt: r.run_at,
    occurrenceAt: r.occurrence_at,
    targetKey: r.target_key,
    version: r.schedule_version,
    attempts: r.attempts,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    lastError: r.last_error,
  }));
}

export function validateLimit(limit: unknown): number {
  return wholeNumber("limit", limit, 1, 10_000);
}

export function notFound(name: string): RotaError {
  return new RotaError(
    "SCHEDULE_NOT_FOUND",
    `No schedule named "${name}" (rota schedules list shows them).`,
    {
      details: { name },
    },
  );
}
