/**
 * Materialization planning, pure: given a schedule's grid, its cursor and the
 * database's "now", which executions to write and where the cursor moves.
 *
 *   cursor ──▶ occ₁ (past) ─▶ occ₂ (past) ─▶ occ₃ (due) ─▶ occ₄ (future) ─▶ … horizon
 *              missed or run by the catch-up policy    run     planned
 *
 * Occurrences at or before now came due while nobody materialized them
 * (downtime). Each gets a deadline from the catch-up policy; one whose deadline
 * has passed is written as 'missed' (it never runs, but history shows it), the
 * others as 'scheduled' and run at once. Future occurrences are written until
 * `horizon` of them are live. A NULL cursor is a baseline: the pass starts at
 * the first occurrence after now and fires nothing already due.
 */

import type { Grid } from "./spec.js";

export type CatchUp = "all" | "latest" | "none";

export interface PlanInput {
  grid: Grid;
  /** The first occurrence not materialized yet; null = take a baseline. */
  cursor: Date | null;
  now: Date;
  horizon: number;
  /** Plan at least this far ahead of now too (capped at TIME_HORIZON_CAP executions). */
  horizonMs: number;
  /** Live executions (not started) planned after now. */
  liveFuture: number;
  /** The latest occurrence among those: a baseline starts after it, not at it. */
  lastLiveOccurrence?: Date | null;
  catchUp: CatchUp;
  catchUpWindowMs: number | null;
  /**
   * An occurrence is written 'missed' only once its deadline is this far
   * past (a fanned-out schedule's window: its runs' deadlines move with
   * their offsets). Default 0.
   */
  missedSlackMs?: number;
}

export interface PlannedExecution {
  occurrenceAt: Date;
  /** A run claimed after this becomes 'missed'; null = no deadline. */
  deadlineAt: Date | null;
  state: "scheduled" | "missed";
  /** For a 'missed' row that stands for several occurrences. */
  note: { message: string; count: number; from: string; until: string } | null;
}

export interface Plan {
  executions: PlannedExecution[];
  /** The new cursor: the first occurrence still not materialized (null: the grid ended). */
  cursor: Date | null;
  /** True when the pass stopped early (a long backlog): visit again at once. */
  more: boolean;
}

/** Occurrences looked at in one pass of one schedule (a long downtime takes several passes). */
export const SCAN_LIMIT = 1_000;
/**
 * At most this many 'missed' rows per pass: the latest MISSED_DETAIL - 1
 * missed occurrences get a row each, and any older ones share one summary row.
 */
export const MISSED_DETAIL = 100;
/**
 * The most future executions the time horizon (horizonMs) keeps planned per
 * schedule: a per-second schedule with a long horizonMs plans 5 minutes
 * ahead, not hours. The count horizon (`horizon`, at most 1,000) is kept
 * whatever this says.
 */
export const TIME_HORIZON_CAP = 300;
/** For catch-up 'none' without a window: how late a run may start and still count. */
export const DEFAULT_NONE_GRACE_MS = 60_000;

export function planExecutions(input: PlanInput): Plan {
  const { grid, now, horizon } = input;
  const nowMs = now.getTime();
  const horizonEnd = nowMs + input.horizonMs;
  const last = input.lastLiveOccurrence ?? null;
  let occurrence: Date | null =
    input.cursor ?? grid.next(last !== null && last.getTime() > nowMs ? last : now);
  let future = input.liveFuture;
  let scanned = 0;
  let more = false;
  const run: PlannedExecution[] = [];
  const missed: Date[] = [];
  const planned: PlannedExecution[] = [];
  while (occurrence !== null) {
    // A full horizon, in count and in time (or at the cap), ends the pass
    // before the next occurrence is computed.
    if (
      occurrence.getTime() > nowMs &&
      future >= horizon &&
      (occurrence.getTime() > horizonEnd || future >= TIME_HORIZON_CAP)
    )
      break;
    const next = grid.next(occurrence);
    if (occurrence.getTime() > nowMs) {
      planned.push({
        occurrenceAt: occurrence,
        deadlineAt: deadline(input, occurrence, next),
        state: "scheduled",
        note: null,
      });
      future++;
    } else {
      const due = deadline(input, occurrence, next);
      if (due !== null && due.getTime() + (input.missedSlackMs ?? 0) <= nowMs) {
        missed.push(occurrence);
      } else
        run.push({ occurrenceAt: occurrence, deadlineAt: due, state: "scheduled", note: null });
      if (++scanned >= SCAN_LIMIT && next !== null && next.getTime() <= nowMs) {
        occurrence = next;
        more = true;
        break;
      }
    }
    occurrence = next;
  }
  return { executions: [...summarizeMissed(missed), ...run, ...planned], cursor: occurrence, more };
}

/** When an occurrence stops being worth running, by the catch-up policy. */
export function deadline(
  input: Pick<PlanInput, "catchUp" | "catchUpWindowMs">,
  occurrence: Date,
  next: Date | null,
): Date | null {
  const windowEnd =
    input.catchUpWindowMs === null ? null : occurrence.getTime() + input.catchUpWindowMs;
  const nextMs = next?.getTime() ?? null;
  let end: number | null;
  if (input.catchUp === "all") end = windowEnd;
  else if (input.catchUp === "latest") end = minOf(nextMs, windowEnd);
  else end = minOf(nextMs, windowEnd ?? occurrence.getTime() + DEFAULT_NONE_GRACE_MS);
  return end === null ? null : new Date(end);
}

function minOf(a: number | null, b: number | null): number | null {
  if (a === null) return b;
  if (b === null) return a;
  return Math.min(a, b);
}

/** Missed occurrences as at most MISSED_DETAIL rows (see MISSED_DETAIL). */
function summarizeMissed(missed: Date[]): PlannedExecution[] {
  const rows = (list: Date[]) =>
    list.map(
      (occurrenceAt): PlannedExecution => ({
        occurrenceAt,
        deadlineAt: null,
        state: "missed",
        note: null,
      }),
    );
  if (missed.length <= MISSED_DETAIL) return rows(missed);
  const older = missed.slice(0, missed.length - MISSED_DETAIL + 1);
  const first = older[0] as Date;
  const last = older[older.length - 1] as Date;
  return [
    {
      occurrenceAt: first,
      deadlineAt: null,
      state: "missed",
      note: {
        message: `${older.length} occurrences from ${first.toISOString()} to ${last.toISOString()} were missed while no orchestrator materialized them`,
        count: older.length,
        from: first.toISOString(),
        until: last.toISOString(),
      },
    },
    ...rows(missed.slice(missed.length - MISSED_DETAIL + 1)),
  ];
}
