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
  isDistributionRegistered,
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

/** How long one statement reading a target source may take. */
export const TARGET_SOURCE_TIMEOUT_MS = 10_000;

/**
 * Reads the schedule's target source for this cadence, inside a savepoint
 * and under a statement and lock timeout: the operator's query runs alone,
 * as a cursor (DeclareSource), its keys are paged in (MarkSeen) and the
 * targets it no longer returns leave (RemoveSourceTargets). A query that fails or
 * takes too long leaves the targets as they were and says why on the
 * schedule (last_error), and the cadence goes ahead with them. Returns the
 * keys that were new.
 */
export async function refreshFromSource(
  db: Database,
  events: RotaEvents,
  client: Executor,
  schedule: FanOutSchedule,
): Promise<string[]> {
  if (schedule.target_source === null) return [];
  const q = targetQueries(db.schema);
  const scheduleId = schedule.id;
  let error: string | null = null;
  const counts = { added: 0, removed: 0, invalid: 0 };
  const added: string[] = [];
  await client.query({ text: "savepoint rota_target_source" });
  try {
    // SET LOCAL inside the savepoint: released, it stays for the rest of
    // the transaction, so the previous values are put back below.
    const previous = await client.query<{ statement: string; lock: string }>({
      text: `select current_setting('statement_timeout') as statement, current_setting('lock_timeout') as lock,
                    set_config('statement_timeout', $1, true), set_config('lock_timeout', $1, true)`,
      values: [`${TARGET_SOURCE_TIMEOUT_MS}ms`],
    });
    await db.runSpliced(q.DeclareSource, {}, { target_source: schedule.target_source }, client);
    for (;;) {
      const page = (await db.run(q.FetchSource, {}, client)).rows.map((r) => r.key);
      if (page.length === 0) break;
      const seen = (await db.run(q.MarkSeen, { scheduleId, keys: page }, client)).rows[0];
      counts.invalid += seen?.invalid ?? 0;
      for (const key of seen?.added ?? []) added.push(key);
      if (page.length < FAN_OUT_PAGE) break;
    }
    await db.run(q.CloseSource, {}, client);
    const swept = (await db.run(q.RemoveSourceTargets, { scheduleId, unseenOnly: true }, client))
      .rows[0];
    counts.removed = swept?.removed ?? 0;
    counts.added = added.length;
    const before = previous.rows[0];
    await client.query({
      text: "select set_config('statement_timeout', $1, true), set_config('lock_timeout', $2, true)",
      values: [before?.statement ?? "0", before?.lock ?? "0"],
    });
    await client.query({ text: "release savepoint rota_target_source" });
  } catch (cause) {
    await client.query({ text: "rollback to savepoint rota_target_source" });
    error = `target source failed: ${(cause as Error).message}`;
    added.length = 0;
    counts.added = 0;
    counts.removed = 0;
  }
  const note =
    error ??
    (counts.invalid > 0
      ? `target source: ${counts.invalid} key(s) were empty or longer than 200 bytes and were left out`
      : null);
  await db.run(q.NoteSource, { scheduleId, note }, client);
  events.emit("schedule:targets:refreshed", {
    scheduleId,
    name: schedule.name,
    ...counts,
    error,
  });
  return added;
}

/**
 * Targets that just joined (`keys`) get their run in the cadences already
 * planned, where their slot is still ahead: the cadence in progress and
 * those before the cursor. Only for strategies that place a target by its
 * key alone (random, custom): a ranked one (spread, batches) would have to
 * move the others to keep its promise, so there they join at the next
 * cadence planned. Returns the executions written.
 */
export async function joinPlannedCadences(
  db: Database,
  executor: Executor,
  schedule: FanOutSchedule,
  grid: Grid,
  keys: readonly string[],
  now: Date,
  cursor: Date | null,
): Promise<number> {
  if (keys.length === 0 || cursor === null) return 0;
  if (schedule.distribution === "spread" || schedule.distribution === "batches") return 0;
  if (!isDistributionRegistered(schedule.distribution)) return 0;
  const q = targetQueries(db.schema);
  const seed = seedOf(schedule);
  let written = 0;
  let occurrence = openCadence(grid, schedule, now)?.occurrenceAt ?? grid.next(now);
  for (let n = 0; occurrence !== null && occurrence < cursor && n < 1_000; n++) {
    const next = grid.next(occurrence);
    const placement = placeCadence(choiceOf(schedule), {
      occurrence,
      next,
      windowMs: schedule.window_ms,
      seed,
      total: keys.length,
    });
    const deadlineAt = deadline(
      { catchUp: schedule.catch_up, catchUpWindowMs: schedule.catch_up_window_ms },
      occurrence,
      next,
    );
    for (let from = 0; from < keys.length; from += FAN_OUT_PAGE) {
      const page = keys.slice(from, from + FAN_OUT_PAGE);
      const result = await db.run(
        q.FanOut,
        {
          scheduleId: schedule.id,
          occurrence,
          deadline: deadlineAt,
          keys: [...page],
          offsets: page.map((key, i) => placement.offset(key, from + i)),
          distribution: schedule.distribution,
          aheadOnly: true,
        },
        executor,
      );
      written += result.rows[0]?.inserted ?? 0;
    }
    occurrence = next;
  }
  return written;
}
