import { wholeNumber } from "../config.js";
import type { Database } from "../db/database.js";
import { clockQueries } from "../db/queries/clock.js";
import type { ScheduleRow } from "../db/queries/schedules.js";
import { scheduleQueries } from "../db/queries/schedules.js";
import { targetQueries } from "../db/queries/targets.js";
import { RotaError } from "../errors.js";
import { JOB_STATES } from "../queue/job-admin.js";
import { hashSalt, isDistributionRegistered, placeCadence, seedOf } from "./distribution.js";
import { choiceOf } from "./fan-out.js";
import { validateScheduleName } from "./schedule-options.js";
import { compileSpec, type Grid, specOf } from "./spec.js";
import { targetNotFound, validateKey } from "./targets.js";

/**
 * A schedule's timeline, read-only: what runs next (materialized executions,
 * then times computed from the grid) and what ran (its executions, newest
 * first). Schedules.upcoming and Schedules.history call these.
 */

/** The target of a schedule's own grid. */
export const DEFAULT_TARGET = "";

export interface UpcomingRun {
  /** When it is planned to run: when its job becomes claimable. */
  runAt: Date;
  occurrenceAt: Date | null;
  targetKey: string;
  /** Its offset after the occurrence (a fanned-out schedule's window); 0 on a schedule's own grid. */
  offsetMs: number;
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
 *
 * A fanned-out schedule: with `target`, that target's runs, computed ones
 * placed by the schedule's strategy among its current targets (a custom
 * strategy only where it is registered: elsewhere the list stops at the
 * materialized runs); without, the materialized runs of all its targets.
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
  const row = await db.run(q.Get, { name: validateScheduleName(name), id: null });
  const schedule = row.rows[0];
  if (!schedule) throw notFound(name);
  const target = await upcomingTarget(db, schedule, options.target);
  if (!schedule.enabled || schedule.paused || schedule.owner !== "rota") return [];
  const now = (await db.run(clockQueries(db.schema).Now)).rows[0]?.now as Date;
  const from = options.from ?? now;
  const planned = await db.run(q.Planned, {
    scheduleId: schedule.id,
    from,
    target: target?.key ?? null,
    limit,
  });
  const runs: UpcomingRun[] = planned.rows.map((r) => ({
    runAt: r.run_at,
    occurrenceAt: r.occurrence_at,
    targetKey: r.target_key,
    offsetMs: r.offset_ms ?? 0,
    executionId: r.id,
    state: r.state,
  }));
  if (target === null) return runs;
  // Computed runs continue the grid where materialization stopped (the
  // cursor, or the first occurrence after now when a baseline is due).
  const grid = compileSpec(specOf(schedule));
  const place = target.place(grid);
  if (place === null) return runs;
  // Computed from the cursor on, or from `from` when that is later (one
  // step, however far ahead `from` is; a run placed up to a window after
  // its occurrence may still be ahead of `from`).
  const reach = schedule.fan_out ? (schedule.window_ms ?? 0) : 0;
  let at: Date | null = schedule.cursor_at ?? grid.next(now);
  if (at !== null && at.getTime() < from.getTime() - reach) {
    at = grid.next(new Date(from.getTime() - reach - 1));
  }
  let computed = 0;
  while (at !== null && computed < limit) {
    const offsetMs = place(at);
    const runAt = new Date(at.getTime() + offsetMs);
    if (runAt >= from) {
      runs.push({
        runAt,
        occurrenceAt: at,
        targetKey: target.key,
        offsetMs,
        executionId: null,
        state: "computed",
      });
      computed++;
    }
    at = grid.next(at);
  }
  return runs.sort((a, b) => a.runAt.getTime() - b.runAt.getTime()).slice(0, limit);
}

/**
 * The target whose runs `upcoming` lists, with how to place it in a computed
 * cadence; null for all targets of a fanned-out schedule. A schedule of its
 * own grid has only the target "".
 */
async function upcomingTarget(
  db: Database,
  schedule: ScheduleRow,
  given: string | undefined,
): Promise<{ key: string; place: (grid: Grid) => ((occurrence: Date) => number) | null } | null> {
  if (!schedule.fan_out) {
    if (given !== undefined && given !== DEFAULT_TARGET) {
      throw new RotaError(
        "INVALID_OPTION",
        `Schedule "${schedule.name}" has no target ${JSON.stringify(given)}: it has no targets, only its own grid (target "").`,
        { details: { field: "target", value: given } },
      );
    }
    return { key: DEFAULT_TARGET, place: () => () => 0 };
  }
  if (given === undefined) return null;
  const key = validateKey(schedule.name, given);
  const seed = seedOf(schedule);
  const choice = choiceOf(schedule);
  const byHash = choice.name === "spread";
  const rank = (
    await db.run(targetQueries(db.schema).Rank, {
      scheduleId: schedule.id,
      key,
      byHash,
      salt: hashSalt(seed),
    })
  ).rows[0];
  if (!rank?.present) throw targetNotFound(schedule.name, key);
  return {
    key,
    place: (grid) => {
      if (!isDistributionRegistered(choice.name)) return null;
      return (occurrence) =>
        placeCadence(choice, {
          occurrence,
          next: grid.next(occurrence),
          windowMs: schedule.window_ms,
          seed,
          total: rank.total,
        }).offset(key, rank.rank);
    },
  };
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
