/**
 * Fan-out materialization (docs/scheduling.md, "Targets, windows and
 * strategies"): one cadence of a schedule with targets becomes an execution
 * per enabled target, at occurrence + offset, the offset placed by the
 * schedule's distribution strategy (distribution.ts).
 *
 * Set-based and bounded in memory: the targets are read through a cursor in
 * placement order, 10,000 at a time; each page's offsets are computed here
 * (the same code `rota simulate` runs) and written by one statement (FanOut).
 * All of it runs in the transaction that advanced the schedule's cursor, so
 * a cadence is written whole or not at all, and jobs_execution_once keeps
 * one execution per (schedule, target, occurrence) whatever races.
 */

import type { Database, Executor } from "../db/database.js";
import type { FanOutColumns, LiveFuture } from "../db/queries/schedules.js";
import { targetQueries } from "../db/queries/targets.js";
import type { RotaEvents } from "../events.js";
import {
  cappedWindowMs,
  type DistributionChoice,
  hashSalt,
  placeCadence,
  seedOf,
} from "./distribution.js";
import type { PlannedExecution } from "./plan.js";
import { deadline } from "./plan.js";
import type { Grid } from "./spec.js";

/** What fan-out needs of a schedule row. */
export type FanOutSchedule = FanOutColumns & {
  id: string;
  name: string;
  catch_up: "all" | "latest" | "none";
  catch_up_window_ms: number | null;
};

/** Targets read and written per statement. */
export const FAN_OUT_PAGE = 10_000;

export function choiceOf(row: FanOutColumns): DistributionChoice {
  return { name: row.distribution, batchSize: row.batch_size, batchEveryMs: row.batch_every_ms };
}

/**
 * A fanned-out schedule's planned occurrences, from the grid: those after
 * now and before the cursor (each one's executions were written when the
 * cursor passed it). Its own grid has no rows to count.
 */
export function fanOutLive(grid: Grid, cursor: Date | null, now: Date): LiveFuture {
  const live: LiveFuture = { count: 0, first_run_at: null, last_occurrence: null, now };
  if (cursor === null) return live;
  for (let at = grid.next(now); at !== null && at < cursor && live.count < 1_000; ) {
    live.count++;
    live.first_run_at ??= at;
    live.last_occurrence = at;
    at = grid.next(at);
  }
  return live;
}

/**
 * Places one cadence of the schedule's enabled targets, a page at a time:
 * reads them through a cursor in the strategy's order (inside the caller's
 * transaction) and hands `onPage` each page's keys with their offsets.
 * Returns the capped window. A target added after the count joins at the
 * next cadence: ranks stop at the count, so a strategy that ranks never
 * overflows its window.
 */
export async function placeTargets(
  db: Database,
  executor: Executor,
  schedule: FanOutSchedule,
  grid: Grid,
  occurrence: Date,
  onPage: (keys: string[], offsets: number[]) => Promise<void>,
): Promise<{ windowMs: number; total: number }> {
  const q = targetQueries(db.schema);
  const scheduleId = schedule.id;
  const counted = await db.run(q.Count, { scheduleId }, executor);
  const total = counted.rows[0]?.enabled ?? 0;
  const seed = seedOf(schedule);
  const placement = placeCadence(choiceOf(schedule), {
    occurrence,
    next: grid.next(occurrence),
    windowMs: schedule.window_ms,
    seed,
    total,
  });
  if (total === 0) return { windowMs: placement.windowMs, total };
  if (placement.order === "hash") {
    await db.run(q.DeclareByHash, { scheduleId, salt: hashSalt(seed) }, executor);
  } else {
    await db.run(q.DeclareByKey, { scheduleId }, executor);
  }
  let rank = 0;
  while (rank < total) {
    const page = (await db.run(q.FetchTargets, {}, executor)).rows;
    const keys = page.slice(0, total - rank).map((r) => r.target_key);
    if (keys.length === 0) break;
    const offsets = keys.map((key, i) => placement.offset(key, rank + i));
    rank += keys.length;
    await onPage(keys, offsets);
    if (page.length < FAN_OUT_PAGE) break;
  }
  await db.run(q.CloseTargets, {}, executor);
  return { windowMs: placement.windowMs, total };
}

/**
 * Writes one cadence: an execution per enabled target of `schedule` for
 * `execution.occurrenceAt`. With `aheadOnly`, only runs still ahead of now
 * (a cadence in progress, re-planned after a change). Returns how many were
 * written. Throws the strategy's errors (DISTRIBUTION_*), which roll the
 * pass back for this schedule.
 */
export async function fanOutCadence(
  db: Database,
  events: RotaEvents,
  executor: Executor,
  schedule: FanOutSchedule,
  grid: Grid,
  execution: Pick<PlannedExecution, "occurrenceAt" | "deadlineAt">,
  aheadOnly = false,
): Promise<number> {
  const q = targetQueries(db.schema);
  const occurrence = execution.occurrenceAt;
  let written = 0;
  const { windowMs } = await placeTargets(
    db,
    executor,
    schedule,
    grid,
    occurrence,
    async (keys, offsets) => {
      const result = await db.run(
        q.FanOut,
        {
          scheduleId: schedule.id,
          occurrence,
          deadline: execution.deadlineAt,
          keys,
          offsets,
          distribution: schedule.distribution,
          aheadOnly,
        },
        executor,
      );
      written += result.rows[0]?.inserted ?? 0;
    },
  );
  events.emit("schedule:cadence:materialized", {
    scheduleId: schedule.id,
    name: schedule.name,
    occurrenceAt: occurrence,
    executions: written,
    windowMs,
    distribution: schedule.distribution,
  });
  return written;
}

/**
 * The cadence in progress at `now` (its occurrence passed, its window has
 * not), if any: after a change, its targets that have not run get their new
 * slot while it is still ahead.
 */
export function openCadence(
  grid: Grid,
  schedule: FanOutSchedule,
  now: Date,
): Pick<PlannedExecution, "occurrenceAt" | "deadlineAt"> | null {
  if (schedule.window_ms === null) return null;
  let occurrence = grid.next(new Date(now.getTime() - schedule.window_ms));
  if (occurrence === null || occurrence > now) return null;
  // The last occurrence at or before now (several fit in a window longer
  // than the period, which the cap then shortens).
  for (let next = grid.next(occurrence); next !== null && next <= now; next = grid.next(next)) {
    occurrence = next;
  }
  const next = grid.next(occurrence);
  const windowMs = cappedWindowMs(schedule.window_ms, occurrence, next);
  if (occurrence.getTime() + windowMs <= now.getTime()) return null;
  return {
    occurrenceAt: occurrence,
    deadlineAt: deadline(
      { catchUp: schedule.catch_up, catchUpWindowMs: schedule.catch_up_window_ms },
      occurrence,
      next,
    ),
  };
}

/**
 * Reads the schedule's target source for this cadence, inside a savepoint:
 * a query that fails leaves the targets as they were and says why on the
 * schedule (last_error), and the cadence goes ahead with them.
 */
export async function refreshFromSource(
  db: Database,
  events: RotaEvents,
  client: Executor,
  schedule: FanOutSchedule,
): Promise<void> {
  if (schedule.target_source === null) return;
  const q = targetQueries(db.schema);
  let error: string | null = null;
  let counts = { added: 0, removed: 0, invalid: 0 };
  await client.query({ text: "savepoint rota_target_source" });
  try {
    const result = await db.runSpliced(
      q.RefreshFromSource,
      { scheduleId: schedule.id },
      { target_source: schedule.target_source },
      client,
    );
    const row = result.rows[0];
    if (row) counts = { added: row.added, removed: row.removed, invalid: row.invalid };
    await client.query({ text: "release savepoint rota_target_source" });
  } catch (cause) {
    await client.query({ text: "rollback to savepoint rota_target_source" });
    error = `target source failed: ${(cause as Error).message}`;
  }
  const note =
    error ??
    (counts.invalid > 0
      ? `target source: ${counts.invalid} key(s) were empty or longer than 200 bytes and were left out`
      : null);
  await db.run(q.NoteSource, { scheduleId: schedule.id, note }, client);
  events.emit("schedule:targets:refreshed", {
    scheduleId: schedule.id,
    name: schedule.name,
    ...counts,
    error,
  });
}
