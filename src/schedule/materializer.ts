/**
 * Materialization: turns due schedule occurrences into execution rows (see
 * docs/scheduling.md). The orchestrator's pass (`materializeDue`) plans every
 * due schedule in the process, then writes them all in one statement that
 * inserts the executions and advances each cursor together, compare-and-set
 * on the cursor and version and fenced on the leader's lease epoch. API calls
 * that change a schedule use `materializeOne` inside their own transaction.
 *
 * Isolation: a spec that does not parse disables that schedule only
 * (quiesce); a batch the server refuses is retried one schedule per
 * statement, so one bad row cannot stop the others.
 */

import type { Database, Executor } from "../db/database.js";
import {
  type DueRow,
  type FanOutColumns,
  type LiveFuture,
  type LockedScheduleRow,
  type MaterializeRow,
  scheduleQueries,
  type WrittenExecution,
} from "../db/queries/schedules.js";
import { targetQueries } from "../db/queries/targets.js";
import { isDataException, isStatementError } from "../db/sqlstate.js";
import { isRotaError } from "../errors.js";
import { type RotaEvents, transactionWithEvents } from "../events.js";
import { requireDistribution } from "./distribution.js";
import {
  type FanOutSchedule,
  fanOutCadence,
  fanOutLive,
  joinPlannedCadences,
  openCadence,
  refreshFromSource,
} from "./fan-out.js";
import { type Plan, planExecutions } from "./plan.js";
import { compileSpec, type Grid, specOf } from "./spec.js";

export interface LeaseFence {
  name: string;
  holder: string;
  epoch: number;
}

export interface MaterializeResult {
  /** Schedules whose cursor advanced. */
  schedules: number;
  /** Execution rows written (including 'missed' ones). */
  executions: number;
  /** Schedules disabled for a spec that does not parse. */
  quiesced: number;
  /** Schedules whose write failed (left for the next pass). */
  failed: number;
}

interface Planned {
  id: string;
  name: string;
  version: string;
  expectedCursor: Date | null;
  plan: Plan;
  fillAt: Date;
  /** The last occurrence planned, when not the plan's last execution (a fan-out's). */
  lastPlannedAt?: Date | null;
  /** A schedule that fans out to targets: its row and grid (null: its own grid). */
  fanOut: { schedule: FanOutSchedule; grid: Grid; now: Date } | null;
}

const NEVER = new Date(8_640_000_000_000_000);

/** One pass over the schedules whose horizon needs filling, `batchSize` at a time. */
export async function materializeDue(
  db: Database,
  events: RotaEvents,
  options: {
    batchSize?: number;
    maxBatches?: number;
    lease?: LeaseFence | null;
    /** Called before each batch: keeps the lease renewed; false stops the pass. */
    keepLease?: () => Promise<boolean>;
  } = {},
): Promise<MaterializeResult> {
  const q = scheduleQueries(db.schema);
  const batchSize = options.batchSize ?? 5_000;
  const maxBatches = options.maxBatches ?? 10;
  const total: MaterializeResult = { schedules: 0, executions: 0, quiesced: 0, failed: 0 };
  for (let batch = 0; batch < maxBatches; batch++) {
    // A long pass (a first baseline of many schedules) outlasts a lease TTL.
    if (options.keepLease && !(await options.keepLease())) break;
    const due = await db.run(q.DueForFill, { limit: batchSize });
    if (due.rows.length === 0) break;
    const planned: Planned[] = [];
    for (const row of due.rows) {
      const item = await planRow(db, events, row, total);
      if (item) planned.push(item);
    }
    const lease = options.lease ?? null;
    let result = await writeIsolated(
      db,
      events,
      planned.filter((p) => p.fanOut === null),
      lease,
      total,
    );
    // A fanned-out schedule writes a cadence per transaction of its own;
    // a large one takes a while, so the lease is renewed before each.
    for (const item of planned) {
      if (item.fanOut === null) continue;
      if (options.keepLease && !(await options.keepLease())) return total;
      try {
        result += await writeFanOut(db, events, item, lease, total);
      } catch (error) {
        total.failed++;
        if (await setAside(db, events, item, error)) total.quiesced++;
      }
    }
    // Schedules whose write was refused stay due; stop rather than spin on them.
    if (due.rows.length < batchSize || result === 0) break;
  }
  return total;
}

async function planRow(
  db: Database,
  events: RotaEvents,
  row: DueRow,
  total: MaterializeResult,
): Promise<Planned | null> {
  try {
    // Planning is deterministic: whatever it throws for this row it would
    // throw every pass, so the schedule is disabled once, with the reason.
    return planSchedule(row, {
      count: row.live_future,
      first_run_at: row.first_run_at,
      last_occurrence: row.last_occurrence,
      now: row.now,
    });
  } catch (error) {
    const reason = isRotaError(error)
      ? error.message
      : `the schedule cannot be planned: ${(error as Error).message}`;
    if (await quiesce(db, events, row.id, row.name, row.version, reason)) total.quiesced++;
    return null;
  }
}

/**
 * The next executions of one schedule, given what it has planned already
 * (`live`). A fanned-out schedule counts its planned occurrences from its
 * grid, and keeps one cadence ahead (besides its time horizon): each
 * cadence is an execution per target, and a target added meanwhile joins
 * at the next one.
 */
function planSchedule(
  row: Pick<
    LockedScheduleRow,
    | "id"
    | "name"
    | "version"
    | "cron"
    | "every"
    | "anchor"
    | "timezone"
    | "cursor_at"
    | "horizon"
    | "horizon_ms"
    | "catch_up"
    | "catch_up_window_ms"
  > &
    FanOutColumns,
  given: LiveFuture,
): Planned {
  const grid = compileSpec(specOf(row));
  const live = row.fan_out ? fanOutLive(grid, row.cursor_at, given.now) : given;
  const plan = planExecutions({
    grid,
    cursor: row.cursor_at,
    now: live.now,
    horizon: row.fan_out ? 1 : row.horizon,
    horizonMs: row.horizon_ms,
    liveFuture: live.count,
    lastLiveOccurrence: live.last_occurrence,
    catchUp: row.catch_up,
    catchUpWindowMs: row.catch_up_window_ms,
    // A fanned-out run's deadline moves with its offset: an occurrence is
    // missed whole only once the last offset's deadline has passed (each
    // run past its own is marked missed when claimed).
    missedSlackMs: row.fan_out ? (row.window_ms ?? 0) : 0,
  });
  return {
    id: row.id,
    name: row.name,
    version: row.version,
    expectedCursor: row.cursor_at,
    plan,
    fillAt: fillAt(plan, live.first_run_at, live.now),
    fanOut: row.fan_out ? { schedule: row, grid, now: live.now } : null,
  };
}

/**
 * When the schedule needs the next visit: once its earliest future execution
 * comes due (a horizon slot frees, and the time horizon has moved on), or at
 * once when the pass stopped early.
 */
function fillAt(plan: Plan, firstLiveRunAt: Date | null, now: Date): Date {
  if (plan.more) return new Date(-8_640_000_000_000_000);
  let first = firstLiveRunAt?.getTime() ?? NEVER.getTime();
  for (const e of plan.executions) {
    const at = e.occurrenceAt.getTime();
    if (e.state === "scheduled" && at > now.getTime() && at < first) first = at;
  }
  if (plan.cursor === null && first === NEVER.getTime()) return NEVER;
  return new Date(first);
}

/** How long a schedule whose write failed for another reason waits before the next try. */
export const FAILED_WRITE_DELAY_MS = 60_000;

/**
 * After one schedule's write failed on its own: bad data disables it (once,
 * with the reason); anything else (a trigger that refused it, a lost
 * connection) records the reason and retries it after FAILED_WRITE_DELAY_MS,
 * so it cannot stay first in line ahead of the others. Returns true when it
 * was disabled.
 */
export async function setAside(
  db: Database,
  events: RotaEvents,
  schedule: { id: string; name: string; version: string },
  error: unknown,
): Promise<boolean> {
  const message = (error as Error).message ?? String(error);
  // A strategy this orchestrator lacks, or one that cannot fit the targets
  // now, may be fine elsewhere or later: the schedule says why and waits.
  const distribution = isRotaError(error) && error.code.startsWith("DISTRIBUTION_");
  if (!distribution && (isDataException(error) || isRotaError(error))) {
    return quiesce(db, events, schedule.id, schedule.name, schedule.version, message);
  }
  await db
    .run(scheduleQueries(db.schema).Delay, {
      id: schedule.id,
      reason: message,
      delayMs: FAILED_WRITE_DELAY_MS,
    })
    .catch(() => {});
  return false;
}

/** Disables a schedule whose spec does not parse, once (the version must still match). */
export async function quiesce(
  db: Database,
  events: RotaEvents,
  id: string,
  name: string,
  version: string,
  reason: string,
  executor?: Executor,
): Promise<boolean> {
  const result = await db.run(
    scheduleQueries(db.schema).Quiesce,
    { id, version, reason },
    executor,
  );
  if (result.rowCount === 0) return false;
  events.emit("schedule:quiesced", { scheduleId: id, name, error: reason });
  return true;
}

async function writeIsolated(
  db: Database,
  events: RotaEvents,
  planned: Planned[],
  lease: LeaseFence | null,
  total: MaterializeResult,
): Promise<number> {
  if (planned.length === 0) return 0;
  try {
    return await write(db, events, planned, lease, total);
  } catch (error) {
    // Only a statement the server refused is split; one schedule per
    // statement then isolates the bad one.
    if (planned.length === 1 || !isStatementError(error)) {
      total.failed += planned.length;
      throw error;
    }
    let written = 0;
    for (const item of planned) {
      try {
        written += await write(db, events, [item], lease, total);
      } catch (itemError) {
        total.failed++;
        if (await setAside(db, events, item, itemError)) total.quiesced++;
      }
    }
    return written;
  }
}

async function write(
  db: Database,
  events: RotaEvents,
  planned: Planned[],
  lease: LeaseFence | null,
  total: MaterializeResult,
  executor?: Executor,
): Promise<number> {
  const schedules = planned.map((p) => ({
    id: p.id,
    expected_cursor: p.expectedCursor,
    version: p.version,
    cursor: p.plan.cursor,
    fill_at: isoOrInfinity(p.fillAt),
    last_planned_at: p.lastPlannedAt !== undefined ? p.lastPlannedAt : lastOccurrence(p.plan),
  }));
  const executions = planned.flatMap((p) =>
    p.plan.executions.map((e) => ({
      schedule_id: p.id,
      occurrence_at: e.occurrenceAt,
      deadline_at: e.deadlineAt,
      state: e.state,
      last_error:
        e.state === "missed"
          ? (e.note ?? { message: "missed: past its catch-up deadline when materialized" })
          : null,
    })),
  );
  const wanted =
    events.wants("schedule:execution:materialized") || events.wants("schedule:execution:missed");
  const result = await db.run(
    scheduleQueries(db.schema).Materialize,
    {
      schedules: JSON.stringify(schedules),
      executions: JSON.stringify(executions),
      leaseName: lease?.name ?? null,
      leaseHolder: lease?.holder ?? null,
      leaseEpoch: lease?.epoch ?? null,
      returnExecutions: wanted,
      // Without an executor the statement commits by itself, and its
      // wake-up may say when the executions come due (see Materialize).
      commitsAlone: executor === undefined,
    },
    executor,
  );
  const row = result.rows[0] as MaterializeRow;
  total.schedules += row.advanced;
  total.executions += row.inserted;
  if (row.executions !== null) emitWritten(events, row.executions, planned);
  return row.advanced;
}

function emitWritten(events: RotaEvents, written: WrittenExecution[], planned: Planned[]): void {
  const counts = new Map<string, number>();
  for (const p of planned) {
    for (const e of p.plan.executions) {
      if (e.note) counts.set(`${p.id}@${e.occurrenceAt.getTime()}`, e.note.count);
    }
  }
  for (const e of written) {
    const ref = {
      scheduleId: e.schedule_id,
      executionId: e.id,
      occurrenceAt: new Date(e.occurrence_at),
    };
    if (e.state === "missed") {
      const count = counts.get(`${e.schedule_id}@${ref.occurrenceAt.getTime()}`) ?? 1;
      events.emit("schedule:execution:missed", { ...ref, count });
    } else {
      events.emit("schedule:execution:materialized", {
        ...ref,
        runAt: new Date(e.run_at),
        state: e.state,
      });
    }
  }
}

function lastOccurrence(plan: Plan): Date | null {
  const last = plan.executions[plan.executions.length - 1];
  return last ? last.occurrenceAt : null;
}

function isoOrInfinity(at: Date): string {
  if (at.getTime() >= NEVER.getTime()) return "infinity";
  if (at.getTime() <= -NEVER.getTime()) return "-infinity";
  return at.toISOString();
}

/**
 * Marks a schedule's not-yet-started executions superseded (all of them, or
 * those not of `keepVersion`) and announces each; returns how many.
 */
export async function supersedeExecutions(
  db: Database,
  events: RotaEvents,
  executor: Executor,
  scheduleId: string,
  keepVersion: string | null,
  reason: string,
): Promise<number> {
  const returnRows = events.wants("schedule:execution:superseded");
  const result = await db.run(
    scheduleQueries(db.schema).Supersede,
    { scheduleId, keepVersion, reason, returnRows },
    executor,
  );
  if (!returnRows) return result.rows[0]?.count ?? 0;
  for (const r of result.rows) {
    events.emit("schedule:execution:superseded", {
      scheduleId,
      executionId: r.id as string,
      occurrenceAt: r.occurrence_at,
      reason,
    });
  }
  return result.rowCount ?? 0;
}

/**
 * Plans one schedule inside the caller's transaction (a create, change,
 * resume, enable, skip or hand-over), from its cursor, or from a baseline
 * when the cursor is null. Stale future executions must already be
 * superseded, and the caller must hold the row's lock. `openCadence` (a
 * change of a fanned-out schedule): the cadence in progress is re-planned
 * too, for its targets whose new slot is still ahead.
 */
export async function materializeOne(
  db: Database,
  events: RotaEvents,
  executor: Executor,
  row: LockedScheduleRow,
  options: { openCadence?: boolean } = {},
): Promise<MaterializeResult> {
  const total: MaterializeResult = { schedules: 0, executions: 0, quiesced: 0, failed: 0 };
  if (!row.enabled || row.paused || row.owner !== "rota") return total;
  const live = await db.run(
    scheduleQueries(db.schema).LiveFuture,
    { scheduleId: row.id, version: row.version },
    executor,
  );
  const item = planSchedule(row, live.rows[0] as LiveFuture);
  if (item.fanOut === null) {
    await write(db, events, [item], null, total, executor);
    return total;
  }
  try {
    await writeFanOut(db, events, item, null, total, executor);
  } catch (error) {
    // A strategy registered only where the orchestrators run: the API call
    // goes through, and an orchestrator that has it plans the schedule (one
    // that lacks it says so on the schedule).
    if (!isRotaError(error) || error.code !== "DISTRIBUTION_NOT_REGISTERED") throw error;
    await db.run(
      scheduleQueries(db.schema).AwaitPlanner,
      { id: row.id, reason: error.message },
      executor,
    );
    return total;
  }
  const open = options.openCadence
    ? openCadence(item.fanOut.grid, item.fanOut.schedule, item.fanOut.now)
    : null;
  if (open !== null) {
    total.executions += await fanOutCadence(
      db,
      events,
      executor,
      item.fanOut.schedule,
      item.fanOut.grid,
      open,
      true,
    );
    const restored = await db.run(
      targetQueries(db.schema).RestoreUnplaced,
      { scheduleId: row.id, occurrence: open.occurrenceAt },
      executor,
    );
    total.executions += restored.rowCount ?? 0;
  }
  return total;
}

/**
 * Writes a fanned-out schedule's plan in one transaction (the caller's, or
 * its own): the cursor advances with compare-and-set and any missed
 * occurrences are recorded once each (target ''), as for any schedule; then
 * the target source is read, and each planned cadence gets an execution per
 * target. Returns 1 when the cursor advanced.
 */
async function writeFanOut(
  db: Database,
  events: RotaEvents,
  item: Planned,
  lease: LeaseFence | null,
  total: MaterializeResult,
  executor?: Executor,
): Promise<number> {
  const fan = item.fanOut as NonNullable<Planned["fanOut"]>;
  // Refused before anything is written: a strategy this process lacks.
  requireDistribution(fan.schedule.distribution);
  // In a transaction of its own, its events are heard once it commits.
  const work = async (client: Executor, events: RotaEvents): Promise<number> => {
    const missed = item.plan.executions.filter((e) => e.state === "missed");
    const advanced = await write(
      db,
      events,
      [
        {
          ...item,
          plan: { ...item.plan, executions: missed },
          lastPlannedAt: lastOccurrence(item.plan),
        },
      ],
      lease,
      total,
      client,
    );
    if (advanced === 0) return 0;
    // Keys the source returns for the first time also take their slot in
    // the cadences planned before this one, where it is still ahead.
    const joined = await refreshFromSource(db, events, client, fan.schedule);
    total.executions += await joinPlannedCadences(
      db,
      client,
      fan.schedule,
      fan.grid,
      joined,
      fan.now,
      item.expectedCursor,
    );
    for (const execution of item.plan.executions) {
      if (execution.state !== "scheduled") continue;
      total.executions += await fanOutCadence(
        db,
        events,
        client,
        fan.schedule,
        fan.grid,
        execution,
      );
    }
    return advanced;
  };
  return executor ? work(executor, events) : transactionWithEvents(db, events, work);
}
