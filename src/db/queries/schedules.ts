import type { CatchUp } from "../../schedule/plan.js";
import type { NormalizedSchedule } from "../../schedule/schedule-options.js";
import { defineQueries, statement } from "../sql.js";

export type Overlap = "allow" | "skip" | "queue";
export type Owner = "rota" | "external";

/** A row of the schedules table as Lock returns it (what planning and changes read). */
export interface LockedScheduleRow {
  id: string;
  name: string;
  task: string;
  payload: unknown;
  queue: string;
  priority: number;
  max_attempts: number | null;
  cron: string | null;
  every: string | null;
  anchor: Date | null;
  timezone: string;
  catch_up: CatchUp;
  catch_up_window_ms: number | null;
  overlap: Overlap;
  horizon: number;
  /** Plan at least this far ahead of now, besides `horizon` executions (migration 0010). */
  horizon_ms: number;
  enabled: boolean;
  paused: boolean;
  owner: Owner;
  handover: boolean;
  /** The planning cursor: the first occurrence not materialized yet (null: take a baseline). */
  cursor_at: Date | null;
  fill_at: Date;
  /** The last occurrence materialized. */
  last_planned_at: Date | null;
  version: string;
  materialized_version: string | null;
  last_error: string | null;
  quiesced_at: Date | null;
  created_at: Date;
  updated_at: Date;
  /** Runs for its targets instead of its own grid (migration 0014). */
  fan_out: boolean;
  window_ms: number | null;
  distribution: string;
  batch_size: number | null;
  batch_every_ms: number | null;
  seed: number | null;
  target_source: string | null;
}

/** The fan-out settings of a schedule row (migration 0014). */
export type FanOutColumns = Pick<
  LockedScheduleRow,
  | "fan_out"
  | "window_ms"
  | "distribution"
  | "batch_size"
  | "batch_every_ms"
  | "seed"
  | "target_source"
>;

/** A schedule's row with its times read from its executions, as Get returns it. */
export interface ScheduleRow extends LockedScheduleRow {
  /** Read from the executions: the earliest still planned ('scheduled'). */
  next_planned_at: Date | null;
  /** Read from the executions: when the last one that started started. */
  last_run_at: Date | null;
}

/** A schedule's live executions of future occurrences, and the statement clock. */
export interface LiveFuture {
  count: number;
  first_run_at: Date | null;
  last_occurrence: Date | null;
  now: Date;
}

/** A schedule whose horizon needs filling, with its live executions (DueForFill). */
export type DueRow = Pick<
  ScheduleRow,
  | "id"
  | "name"
  | "cron"
  | "every"
  | "anchor"
  | "timezone"
  | "catch_up"
  | "catch_up_window_ms"
  | "horizon"
  | "horizon_ms"
  | "cursor_at"
  | "version"
> &
  FanOutColumns & {
    live_future: number;
    first_run_at: Date | null;
    last_occurrence: Date | null;
    now: Date;
  };

/** An execution Materialize wrote, as JSON. */
export interface WrittenExecution {
  id: string;
  schedule_id: string;
  queue: string;
  task: string;
  state: string;
  run_at: string;
  occurrence_at: string;
}

/** What Materialize returns: counts, and the executions when asked for. */
export interface MaterializeRow {
  advanced: number;
  inserted: number;
  executions: WrittenExecution[] | null;
  notified: unknown;
}

/** A watchdog candidate (all null but the slice's end when the slice has none). */
export type WatchdogRow = Pick<
  ScheduleRow,
  "id" | "cursor_at" | "cron" | "every" | "anchor" | "timezone"
> & {
  slice_last: string | null;
  slice_size: number;
  last_occurrence: Date | null;
  now: Date;
};

/** An execution row as the schedule API shows it. */
export interface ExecutionRow {
  id: string;
  state: string;
  run_at: Date;
  occurrence_at: Date | null;
  target_key: string;
  schedule_version: string | null;
}

/** An execution that has not started, as Supersede and Skip report it. */
type Unstarted = { id: string; occurrence_at: Date | null; run_at: Date };

type OfSchedule = { scheduleId: string };

/** Every statement on schedules and their executions, from schedules.sql. */
export const scheduleQueries = defineQueries("schedules", {
  Get: statement<{ name: string | null; id: string | null }, ScheduleRow>(),
  Lock: statement<{ name: string | null; id: string | null }, LockedScheduleRow>(),
  List: statement<
    { owner: Owner | null; namePattern: string | null; limit: number },
    Pick<
      ScheduleRow,
      | "id"
      | "name"
      | "task"
      | "queue"
      | "cron"
      | "every"
      | "anchor"
      | "timezone"
      | "enabled"
      | "paused"
      | "owner"
      | "last_error"
      | "horizon"
      | "horizon_ms"
      | "cursor_at"
      | "last_planned_at"
      | "next_planned_at"
      | "last_run_at"
      | "fan_out"
      | "window_ms"
      | "distribution"
      | "batch_size"
      | "batch_every_ms"
    >
  >(),
  /** The schedule as normalizeSchedule returns it. */
  Upsert: statement<
    NormalizedSchedule,
    { id: string; version: string; owner: Owner; inserted: boolean }
  >(),
  SetState: statement<{
    id: string;
    paused: boolean | null;
    enabled: boolean | null;
    owner: Owner | null;
    resetCursor: boolean;
  }>(),
  Delete: statement<{ id: string }>(),
  DueForFill: statement<{ limit: number }, DueRow>(),
  LiveFuture: statement<OfSchedule & { version: string }, LiveFuture>(),
  Materialize: statement<
    {
      /** JSON: per schedule {id, expected_cursor, version, cursor, fill_at, last_planned_at}. */
      schedules: string;
      /** JSON: per execution {schedule_id, occurrence_at, deadline_at, state, last_error}. */
      executions: string;
      leaseName: string | null;
      leaseHolder: string | null;
      leaseEpoch: number | null;
      returnExecutions: boolean;
      commitsAlone: boolean;
    },
    MaterializeRow
  >(),
  Supersede: statement<
    OfSchedule & { keepVersion: string | null; reason: string; returnRows: boolean },
    { id: string | null; occurrence_at: Date | null; run_at: Date | null; count: number }
  >(),
  RemoveUnstarted: statement<OfSchedule, { id: string }>(),
  Skip: statement<
    OfSchedule & { executionId: string | null; target: string | null },
    Unstarted & { target_key: string }
  >(),
  Trigger: statement<
    OfSchedule & { target: string },
    { id: string; run_at: Date; notified: unknown }
  >(),
  Planned: statement<
    OfSchedule & { from: Date; target: string | null; limit: number },
    ExecutionRow & { offset_ms: number | null }
  >(),
  History: statement<
    OfSchedule & { states: readonly string[] | null; limit: number },
    ExecutionRow & {
      attempts: number;
      started_at: Date | null;
      finished_at: Date | null;
      last_error: unknown;
    }
  >(),
  Quiesce: statement<
    { id: string; version: string; reason: string },
    { id: string; name: string }
  >(),
  AwaitPlanner: statement<{ id: string; reason: string }>(),
  Delay: statement<{ id: string; reason: string; delayMs: number }, { id: string }>(),
  Drifted: statement<{ limit: number }, { id: string; name: string; version: string }>(),
  WatchdogSlice: statement<{ after: string; limit: number }, WatchdogRow>(),
  RepairCursor: statement<
    { id: string; expectedCursor: Date | null; cursor: Date | null },
    { id: string }
  >(),
  /** bucket is a bigint: text from pg. */
  HandoverCandidates: statement<
    { names: readonly string[] | null },
    { id: string; name: string; owner: Owner; bucket: string }
  >(),
});
