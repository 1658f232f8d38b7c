/**
 * How one cadence of a schedule falls across its window, per minute
 * (`rota schedules plan`): read from its executions once they are written,
 * computed by the same placement as the orchestrator's before.
 */

import type { Database } from "../db/database.js";
import { clockQueries } from "../db/queries/clock.js";
import { scheduleQueries } from "../db/queries/schedules.js";
import { targetQueries } from "../db/queries/targets.js";
import { RotaError } from "../errors.js";
import { cappedWindowMs } from "./distribution.js";
import { placeTargets } from "./fan-out.js";
import { validateScheduleName } from "./schedule-options.js";
import { notFound } from "./schedule-timeline.js";
import { compileSpec, specOf } from "./spec.js";

export interface CadencePlan {
  occurrence: Date;
  /** The capped window of this cadence (0 without one). */
  windowMs: number;
  /** Executions in the cadence: its targets (1 for a schedule's own grid). */
  targets: number;
  /** Read from written executions (true), or computed from the current targets. */
  materialized: boolean;
  /** Every minute of the window, with the runs starting in it. */
  perMinute: { minute: Date; count: number }[];
}

const MINUTE_MS = 60_000;

export async function cadencePlan(
  db: Database,
  name: string,
  options: { occurrence?: Date } = {},
): Promise<CadencePlan> {
  const row = (
    await db.run(scheduleQueries(db.schema).Get, { name: validateScheduleName(name), id: null })
  ).rows[0];
  if (!row) throw notFound(name);
  const grid = compileSpec(specOf(row));
  const occurrence = await pickOccurrence(db, name, grid, options.occurrence);
  const windowMs = row.fan_out
    ? cappedWindowMs(row.window_ms, occurrence, grid.next(occurrence))
    : 0;
  const counts = new Map<number, number>();
  const add = (at: number, n: number) => {
    const minute = Math.floor(at / MINUTE_MS) * MINUTE_MS;
    counts.set(minute, (counts.get(minute) ?? 0) + n);
  };
  let targets = 1;
  let materialized = false;
  if (!row.fan_out) {
    add(occurrence.getTime(), 1);
  } else {
    const written = await db.run(targetQueries(db.schema).CadenceMinutes, {
      scheduleId: row.id,
      occurrence,
      until: new Date(occurrence.getTime() + Math.max(windowMs, 1)),
    });
    materialized = written.rows.length > 0;
    if (materialized) {
      for (const r of written.rows) add(r.minute.getTime(), r.count);
      targets = written.rows.reduce((n, r) => n + r.count, 0);
    } else {
      // A read-only transaction: the targets are read through a cursor.
      targets = await db.transaction(async (client) => {
        const placed = await placeTargets(
          db,
          client,
          row,
          grid,
          occurrence,
          async (_k, offsets) => {
            for (const offset of offsets) add(occurrence.getTime() + offset, 1);
          },
        );
        return placed.total;
      });
    }
  }
  const first = Math.floor(occurrence.getTime() / MINUTE_MS) * MINUTE_MS;
  const last =
    Math.floor((occurrence.getTime() + Math.max(windowMs - 1, 0)) / MINUTE_MS) * MINUTE_MS;
  const perMinute: CadencePlan["perMinute"] = [];
  for (let minute = first; minute <= last; minute += MINUTE_MS) {
    perMinute.push({ minute: new Date(minute), count: counts.get(minute) ?? 0 });
  }
  return { occurrence, windowMs, targets, materialized, perMinute };
}

/** The occurrence asked for (it must be on the grid), or the next after now. */
async function pickOccurrence(
  db: Database,
  name: string,
  grid: ReturnType<typeof compileSpec>,
  given: Date | undefined,
): Promise<Date> {
  if (given !== undefined) {
    if (!(given instanceof Date) || Number.isNaN(given.getTime())) {
      throw new RotaError(
        "INVALID_OPTION",
        `occurrence must be a valid Date, got ${String(given)}.`,
        {
          details: { field: "occurrence" },
        },
      );
    }
    const on = grid.next(new Date(given.getTime() - 1));
    if (on?.getTime() !== given.getTime()) {
      throw new RotaError(
        "INVALID_OPTION",
        `${given.toISOString()} is not an occurrence of schedule "${name}"; the next one after it is ${on?.toISOString() ?? "none"}.`,
        { details: { field: "occurrence", value: given.toISOString() } },
      );
    }
    return given;
  }
  const now = (await db.run(clockQueries(db.schema).Now)).rows[0]?.now as Date;
  const next = grid.next(now);
  if (next === null) {
    throw new RotaError("INVALID_OPTION", `Schedule "${name}" has no occurrence left to plan.`, {
      details: { name },
    });
  }
  return next;
}
