import type { BackoffPolicy } from "../../queue/backoff.js";
import type { StoredTraceContext } from "../../telemetry/trace-context.js";
import { defineQueries, statement } from "../sql.js";

/** A job as Claim and ClaimOne lease it to a worker. */
export interface ClaimedRow {
  id: string;
  /** 'running', or what the claim made of a schedule execution it did not start. */
  state: string;
  queue: string;
  task: string;
  payload: unknown;
  priority: number;
  run_at: Date;
  attempts: number;
  max_attempts: number;
  backoff: BackoffPolicy | null;
  timeout_ms: number | null;
  created_at: Date;
  unique_key: string | null;
  schedule_id: string | null;
  target_key: string | null;
  occurrence_at: Date | null;
  /** Null for a job claimed into the buffer: its start is recorded when it comes (MarkStarted). */
  started_at: Date | null;
  /** The claim's clock, for a schedule execution (its lateness); null for other jobs. */
  claimed_at: Date | null;
  /** Under a concurrency limit (its queue's or its key's): its outcome frees a slot others wait for. */
  limited: boolean;
  /** Its enqueue's trace context (migration 0021); always null for a claim without `traced`. */
  trace_context: StoredTraceContext | null;
}

/**
 * A row of Claim: a claimed job, or (id null) the one row of a claim that
 * took nothing. The first row says what the limits held back (null on the
 * others).
 */
export type ClaimRow = (ClaimedRow | { [K in keyof ClaimedRow]: null }) & {
  claim_rank: string | null;
  /** Candidates held back because their concurrency key had its limit running. */
  held_by_key: number | null;
  /** The worker's queues at their concurrency limit when it claimed. */
  queues_at_limit: string[] | null;
  /** Limited work put off for want of a free slot of the worker (never buffered). */
  deferred: number | null;
};

/** A job row as the API shows it. */
export interface JobRecord {
  id: string;
  queue: string;
  task: string;
  payload: unknown;
  state: string;
  priority: number;
  run_at: Date;
  attempts: number;
  max_attempts: number;
  backoff: unknown;
  timeout_ms: number | null;
  lease_holder: string | null;
  lease_expires_at: Date | null;
  cancel_requested_at: Date | null;
  unique_key: string | null;
  concurrency_key: string | null;
  concurrency_limit: number | null;
  batch_id: string | null;
  last_error: JobError | null;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  schedule_id: string | null;
  target_key: string | null;
  occurrence_at: Date | null;
  /** Its failed attempts' errors, oldest first (the last 20). */
  errors: JobError[];
}

/** A failed attempt's error as rota records it. */
export interface JobError {
  message: string;
  stack?: string | null;
  attempt?: number;
  worker?: string;
  /** When, by the database clock (ISO). */
  at?: string;
  /** Set when the job's lease expired and it was rescued. */
  rescued?: boolean;
}

export interface JobSummary {
  id: string;
  queue: string;
  task: string;
  state: string;
  priority: number;
  run_at: Date;
  attempts: number;
  max_attempts: number;
  last_error: string | null;
  created_at: Date;
  finished_at: Date | null;
}

/** Finished attempts, fenced on (id, attempt, worker): the lease holder's current attempt only. */
interface Attempts {
  ids: readonly string[];
  attempts: readonly number[];
  workerId: string;
}

/** Outcomes written: also the queues whose limited slots they free (woken in the statement). */
interface Outcomes extends Attempts {
  wake: readonly string[];
}

/** The queues and tasks a worker takes. */
interface Takes {
  queues: readonly string[];
  tasks: readonly string[];
}

/** A claim's: to whom and for how long, and whether the jobs' trace contexts come back. */
interface Leases {
  workerId: string;
  leaseMs: number;
  /** The worker has telemetry on: the rows carry trace_context. */
  traced: boolean;
}

/** `done`: selected only so that the statement's NOTIFY runs. */
type Notified = { done: unknown };

/** Find's filters (null: any), below the keyset cursor `before` (an id). */
interface FindParams {
  before: string;
  state: string | null;
  queue: string | null;
  task: string | null;
  createdFrom: Date | null;
  createdTo: Date | null;
  limit: number;
}

/** A finished job's retention: states, age and batch size. */
type Prune = { states: readonly string[]; keepMs: number; limit: number };

/**
 * Every statement on the jobs table, from jobs.sql, bound per schema.
 */
export const jobQueries = defineQueries("jobs", {
  Claim: statement<
    Takes &
      Leases & {
        limit: number;
        /** How many of the claimed jobs start at once (the worker's free slots). */
        startNow: number;
        passOver: readonly string[];
      },
    ClaimRow
  >(),
  ClaimOne: statement<Takes & Leases & { id: string }, ClaimedRow>(),
  /** due_in_ms is numeric: text from pg. */
  NextDue: statement<Takes, { due_in_ms: string | null }>(),
  CompleteByDelete: statement<Outcomes, { id: string }>(),
  CompleteByKeep: statement<Outcomes, { id: string }>(),
  Fail: statement<
    Outcomes & {
      /** JSON text per job. */
      errors: readonly string[];
      retryMs: readonly (number | null)[];
      cancelled: readonly boolean[];
    },
    { id: string; state: string; run_at: Date }
  >(),
  Heartbeat: statement<
    Attempts & { leaseMs: number },
    { id: string; attempts: number; cancel_requested: boolean }
  >(),
  ExtendLease: statement<
    { id: string; attempt: number; workerId: string; leaseMs: number },
    { lease_expires_at: Date }
  >(),
  MarkStarted: statement<{ ids: readonly string[]; workerId: string }>(),
  ReleaseUnstarted: statement<Attempts, Notified & { id: string; queue: string }>(),
  Rescue: statement<
    { limit: number },
    Notified & { id: string; queue: string; task: string; state: string; attempts: number }
  >(),
  /** notified is a count: text from pg. */
  Cancel: statement<
    { id: string },
    { id: string; state: string; previous_state: string | null; notified: string }
  >(),
  Replay: statement<
    {
      /** The states put back: failed, and cancelled for a single retry. */
      states: readonly string[];
      queue: string | null;
      task: string | null;
      from: Date | null;
      to: Date | null;
      ids: readonly string[] | null;
      /** At most this many candidates a statement (null: all). */
      limit: number | null;
      /** The cursor: only candidates that finished before this one (null: from the last). */
      beforeAt: Date | null;
      beforeId: string | null;
    },
    Notified & {
      /** Null on the one row of a statement that put nothing back. */
      id: string | null;
      previous_state: string | null;
      bottom_at: Date;
      bottom_id: string;
    }
  >(),
  PruneJobs: statement<Prune>(),
  PruneExecutions: statement<Prune>(),
  Get: statement<{ id: string }, JobRecord>(),
  // Planned at each call: a rare state's page takes jobs_ended_by_state, a
  // common one's the primary key (migration 0018).
  Find: statement<FindParams, JobSummary>({ planEachCall: true }),
  FindContaining: statement<
    FindParams & {
      /** JSON text: payload @> it. */
      payload: string;
      /** The most rows read. */
      scan: number;
    },
    JobSummary & { matched: boolean; scanned_to: boolean; bottom: boolean }
  >(),
});
