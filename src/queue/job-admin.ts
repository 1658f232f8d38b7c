import type { Database, Executor } from "../db/database.js";
import { type JobRecord, type JobSummary, jobQueries } from "../db/queries/jobs.js";
import { RotaError, type RotaErrorCode } from "../errors.js";
import type { RotaEvents } from "../events.js";

export type { JobRecord, JobSummary };

/**
 * A row id (a job's, a batch's) as the API takes it: a positive integer, as
 * a number or text. Anything else can name no row: `notFound`, naming `what`.
 */
export function rowId(id: unknown, notFound: RotaErrorCode, what: string): string {
  const text = typeof id === "number" || typeof id === "bigint" ? String(id) : id;
  if (typeof text !== "string" || !/^\d{1,19}$/.test(text)) {
    throw new RotaError(
      notFound,
      `${JSON.stringify(id)} is not a ${what} id (${what} ids are positive integers).`,
      { details: { id } },
    );
  }
  return text;
}

function jobId(id: unknown): string {
  return rowId(id, "JOB_NOT_FOUND", "job");
}

export async function getJob(db: Database, id: string | number): Promise<JobRecord | null> {
  const result = await db.run(jobQueries(db.schema).Get, { id: jobId(id) });
  return result.rows[0] ?? null;
}

export interface CancelResult {
  id: string;
  /** 'cancelled' for a queued job; 'running' when the running job was asked to stop. */
  state: string;
  previousState: string | null;
}

/**
 * Cancels a job. A queued one is cancelled at once; a running one has its
 * handler's signal aborted (through NOTIFY, or at the next heartbeat) and is
 * recorded 'cancelled' when the handler returns. A finished job is left as is.
 */
export async function cancelJob(
  db: Database,
  events: RotaEvents,
  id: string | number,
  options: { client?: Executor } = {},
): Promise<CancelResult> {
  const result = await db.run(jobQueries(db.schema).Cancel, { id: jobId(id) }, options.client);
  const row = result.rows[0];
  if (!row) throw new RotaError("JOB_NOT_FOUND", `No job with id ${id}.`, { details: { id } });
  if (row.previous_state !== null && row.previous_state !== "running") {
    events.emit("job:cancelled", { id: row.id, previousState: row.previous_state });
  }
  return { id: row.id, state: row.state, previousState: row.previous_state };
}

export interface ReplayFilter {
  queue?: string;
  task?: string;
  /** Failed at or after this time. */
  from?: Date;
  /** Failed before this time. */
  to?: Date;
  ids?: (string | number)[];
}

/** Puts failed (dead-lettered) jobs back in their queues with fresh attempts; returns their ids. */
export async function replayFailedJobs(db: Database, filter: ReplayFilter = {}): Promise<string[]> {
  for (const key of ["from", "to"] as const) {
    const value = filter[key];
    if (value !== undefined && (!(value instanceof Date) || Number.isNaN(value.getTime()))) {
      throw new RotaError("INVALID_OPTION", `replay filter ${key} must be a valid Date.`, {
        details: { field: key },
      });
    }
  }
  const result = await db.run(jobQueries(db.schema).Replay, {
    states: ["failed"],
    queue: filter.queue ?? null,
    task: filter.task ?? null,
    from: filter.from ?? null,
    to: filter.to ?? null,
    ids: filter.ids ? filter.ids.map(jobId) : null,
  });
  return result.rows.map((row) => row.id);
}

export interface RetryResult {
  id: string;
  /** 'failed' or 'cancelled': what it was before it went back to its queue. */
  previousState: string;
}

/** The states a single job can be retried from. */
const RETRYABLE_STATES = ["failed", "cancelled"];

/**
 * Puts one failed or cancelled job back in its queue, available now, with a
 * fresh set of attempts (replayFailed's statement). JOB_NOT_FOUND for no such
 * job; JOB_NOT_RETRYABLE for a job in another state, or one whose unique key
 * another queued job holds now (at most one queued job per key).
 */
export async function retryJob(db: Database, id: string | number): Promise<RetryResult> {
  const text = jobId(id);
  const result = await db.run(jobQueries(db.schema).Replay, {
    states: RETRYABLE_STATES,
    queue: null,
    task: null,
    from: null,
    to: null,
    ids: [text],
  });
  const row = result.rows[0];
  if (row) return { id: row.id, previousState: row.previous_state };
  // Not put back: say why, from the job as it is now.
  const job = await getJob(db, text);
  if (!job) throw new RotaError("JOB_NOT_FOUND", `No job with id ${text}.`, { details: { id } });
  const details = { id: text, state: job.state };
  if (!RETRYABLE_STATES.includes(job.state)) {
    throw new RotaError(
      "JOB_NOT_RETRYABLE",
      `Job ${text} is ${job.state}: only a failed or cancelled job can be retried${retryHint(job.state)}.`,
      { details },
    );
  }
  throw new RotaError(
    "JOB_NOT_RETRYABLE",
    `Job ${text} cannot go back to its queue: another queued job holds its unique key ${JSON.stringify(job.unique_key)}. Let that one run, or cancel it and retry this one.`,
    { details: { ...details, uniqueKey: job.unique_key } },
  );
}

/** What to do instead, for a job in a state retry does not take. */
function retryHint(state: string): string {
  if (state === "running") return " (cancel it first, or let its attempt end)";
  if (state === "available" || state === "scheduled") return " (it is queued already)";
  return " (enqueue a new job to run it again)";
}

export interface ListJobsFilter {
  state?: string;
  queue?: string;
  task?: string;
  /** Default 100, at most 10,000. */
  limit?: number;
}

/** Every job state (docs/job-states.md). */
export const JOB_STATES = [
  "scheduled",
  "available",
  "running",
  "succeeded",
  "failed",
  "cancelled",
  "skipped",
  "superseded",
  "missed",
];

/** A listing's limit: default 100, at most 10,000. */
export function listLimit(limit: unknown = 100): number {
  if (typeof limit !== "number" || !Number.isInteger(limit) || limit < 1 || limit > 10_000) {
    throw new RotaError("INVALID_OPTION", "limit must be a whole number from 1 to 10000.", {
      details: { field: "limit", value: limit },
    });
  }
  return limit;
}

/** Jobs, newest first. */
export async function listJobs(db: Database, filter: ListJobsFilter = {}): Promise<JobSummary[]> {
  if (filter.state !== undefined && !JOB_STATES.includes(filter.state)) {
    throw new RotaError(
      "INVALID_OPTION",
      `Unknown job state "${filter.state}": use one of ${JOB_STATES.join(", ")}.`,
      {
        details: { field: "state", value: filter.state },
      },
    );
  }
  const limit = listLimit(filter.limit);
  const result = await db.run(jobQueries(db.schema).List, {
    state: filter.state ?? null,
    queue: filter.queue ?? null,
    task: filter.task ?? null,
    limit,
  });
  return result.rows;
}
