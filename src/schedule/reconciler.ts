/**
 * Reconcile: keeps the planned executions true to the schedules (see
 * docs/scheduling.md).
 *
 * Drift: a schedule whose configuration changed since its executions were
 * made (its generated `version` differs from `materialized_version`: an
 * UPDATE written by hand, or anything else that bypassed rota's API). Its
 * stale future executions are superseded and new ones materialized from a
 * baseline, in one transaction per schedule.
 *
 * Watchdog: a schedule whose future executions vanished (deleted by hand) or
 * whose cursor is not past its latest planned occurrence gets its cursor
 * recomputed from the grid (the first occurrence after its latest live one,
 * or after now) so the next pass re-creates what is missing. It scans the
 * schedules a bounded slice per call, resuming where it stopped.
 */

import type { Database } from "../db/database.js";
import { type LockedScheduleRow, scheduleQueries } from "../db/queries/schedules.js";
import { isRotaError } from "../errors.js";
import { type RotaEvents, transactionWithEvents } from "../events.js";
import { materializeOne, quiesce, setAside, supersedeExecutions } from "./materializer.js";
import { compileSpec, specOf } from "./spec.js";

export interface ReconcileResult {
  /** Drifted schedules re-planned. */
  reconciled: number;
  /** Schedules disabled for a spec that does not parse, or data the database refuses. */
  quiesced: number;
  /** Schedules whose reconcile failed for another reason (left for the next tick). */
  failed: number;
}

export async function reconcileDrifted(
  db: Database,
  events: RotaEvents,
  options: { limit?: number } = {},
): Promise<ReconcileResult> {
  const q = scheduleQueries(db.schema);
  const total: ReconcileResult = { reconciled: 0, quiesced: 0, failed: 0 };
  const drifted = await db.run(q.Drifted, { limit: options.limit ?? 500 });
  for (const { id, name, version } of drifted.rows) {
    // Each schedule in its own transaction, and a failure is this schedule's
    // alone: the loop goes on (guarantee 5).
    try {
      await reconcileOne(db, events, id, total);
    } catch (error) {
      total.failed++;
      if (await setAside(db, events, { id, name, version }, error)) total.quiesced++;
    }
  }
  return total;
}

async function reconcileOne(
  db: Database,
  events: RotaEvents,
  id: string,
  total: ReconcileResult,
): Promise<void> {
  const q = scheduleQueries(db.schema);
  // Its events are heard once the transaction commits (none if it rolls back).
  await transactionWithEvents(db, events, async (client, events) => {
    const row = (await db.run(q.Lock, { name: null, id }, client)).rows[0];
    if (!row || row.materialized_version === row.version || !row.enabled || row.paused) return;
    try {
      compileSpec(specOf(row));
    } catch (error) {
      if (!isRotaError(error)) throw error;
      if (await quiesce(db, events, row.id, row.name, row.version, error.message, client)) {
        total.quiesced++;
      }
      return;
    }
    await supersedeExecutions(db, events, client, row.id, row.version, "the schedule changed");
    await db.run(
      q.SetState,
      { id: row.id, paused: null, enabled: null, owner: null, resetCursor: true },
      client,
    );
    const fresh = (await db.run(q.Lock, { name: null, id }, client)).rows[0] as LockedScheduleRow;
    await materializeOne(db, events, client, fresh, { openCadence: true });
    total.reconciled++;
  });
}

/** One slice of the watchdog scan; returns the id to resume after ("0" once it wrapped). */
export async function watchdogSlice(
  db: Database,
  options: { after?: string; limit?: number } = {},
): Promise<{ repaired: number; resumeAfter: string }> {
  const q = scheduleQueries(db.schema);
  const limit = options.limit ?? 2_000;
  const after = options.after ?? "0";
  const rows = await db.run(q.WatchdogSlice, { after, limit });
  let repaired = 0;
  for (const c of rows.rows) {
    if (c.id === null) continue; // only the slice's end: no candidate in it
    let grid: ReturnType<typeof compileSpec>;
    try {
      grid = compileSpec(specOf(c));
    } catch {
      continue; // the materialization pass quiesces it
    }
    // The first occurrence after the latest planned one, or after now.
    const from =
      c.last_occurrence !== null && c.last_occurrence > c.now ? c.last_occurrence : c.now;
    const cursor = grid.next(from);
    if (cursor?.getTime() === c.cursor_at?.getTime()) continue;
    // Compare-and-set: a pass that moved the cursor meanwhile wins.
    const fixed = await db.run(q.RepairCursor, {
      id: c.id,
      expectedCursor: c.cursor_at,
      cursor,
    });
    repaired += fixed.rowCount ?? 0;
  }
  // The scan covers `limit` schedules per slice, candidates or not.
  const end = rows.rows[0];
  const last = end && end.slice_size === limit ? end.slice_last : null;
  return { repaired, resumeAfter: last === null ? "0" : last };
}
