import { wholeNumber } from "../config.js";
import type { Database, Executor } from "../db/database.js";
import { unstorableEscape } from "../db/jsonb.js";
import { type JobError, type JobRecord, type JobSummary, jobQueries } from "../db/queries/jobs.js";
import type { RowOf } from "../db/sql.js";
import { describeThrown, RotaError, type RotaErrorCode } from "../errors.js";
import type { RotaEvents } from "../events.js";

export type { JobError, JobRecord, JobSummary };

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
export async function replayFailedJobs(
  db: Database,
  filter: ReplayFilter = {},
  onProgress?: (replayed: number) => void,
): Promise<string[]> {
  for (const key of ["from", "to"] as const) {
    const value = filter[key];
    if (value !== undefined && (!(value instanceof Date) || Number.isNaN(value.getTime()))) {
      throw new RotaError("INVALID_OPTION", `replay filter ${key} must be a valid Date.`, {
        details: { field: key },
      });
    }
  }
  // REPLAY_CHUNK jobs a statement, each its own transaction: a replay of a
  // million failed jobs neither holds a million row locks at once nor
  // loses what it did to a failure half-way (what is back stays back).
  const ids: string[] = [];
  let cursor: { at: Date; id: string } | null = null;
  const q = jobQueries(db.schema);
  for (;;) {
    const before: { at: Date; id: string } | null = cursor;
    const result: { rows: RowOf<typeof q.Replay>[] } = await db.run(q.Replay, {
      states: ["failed"],
      queue: filter.queue ?? null,
      task: filter.task ?? null,
      from: filter.from ?? null,
      to: filter.to ?? null,
      ids: filter.ids ? filter.ids.map(jobId) : null,
      limit: REPLAY_CHUNK,
      beforeAt: before?.at ?? null,
      beforeId: before?.id ?? null,
    });
    const first: RowOf<typeof q.Replay> | undefined = result.rows[0];
    if (first === undefined) break;
    for (const row of result.rows) if (row.id !== null) ids.push(row.id);
    onProgress?.(ids.length);
    cursor = { at: first.bottom_at, id: first.bottom_id };
  }
  return ids;
}

/** How many failed jobs one replay statement takes. */
const REPLAY_CHUNK = 1_000;

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
    limit: null,
    beforeAt: null,
    beforeId: null,
  });
  const row = result.rows[0];
  if (row?.id) return { id: row.id, previousState: row.previous_state as string };
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

/** A state filter: one of JOB_STATES, or undefined for any. */
function stateFilter(state: unknown): string | null {
  if (state === undefined) return null;
  if (typeof state !== "string" || !JOB_STATES.includes(state)) {
    throw new RotaError(
      "INVALID_OPTION",
      `Unknown job state ${JSON.stringify(state)}: use one of ${JOB_STATES.join(", ")}.`,
      { details: { field: "state", value: state } },
    );
  }
  return state;
}

/** The cursor before every job: the largest bigint. */
const NO_CURSOR = "9223372036854775807";

/** Jobs, newest first. */
export async function listJobs(db: Database, filter: ListJobsFilter = {}): Promise<JobSummary[]> {
  const state = stateFilter(filter.state);
  const limit = listLimit(filter.limit);
  const result = await db.run(jobQueries(db.schema).Find, {
    before: NO_CURSOR,
    state,
    queue: filter.queue ?? null,
    task: filter.task ?? null,
    createdFrom: null,
    createdTo: null,
    limit,
  });
  return result.rows;
}

export interface FindJobsFilter {
  state?: string;
  queue?: string;
  task?: string;
  /** Created at or after this time. */
  createdFrom?: Date;
  /** Created before this time. */
  createdTo?: Date;
  /**
   * JSON containment: jobs whose payload holds this (payload @> it). Searched
   * without an index: one call reads at most 100,000 jobs (see JobPage).
   */
  payload?: Record<string, unknown> | unknown[];
  /** Keyset cursor: only jobs with a lower id (a job id as text, as `next` gives it). */
  before?: string;
  /** Default 50, 1 to 500. */
  limit?: number;
}

export interface JobPage {
  /** Newest first (by id). */
  jobs: JobSummary[];
  /** Pass as `before` for the next page; null when there is nothing older. */
  next: string | null;
  /**
   * With `payload`: the search covered the jobs from `before` down to this
   * id. A search stops after 100,000 jobs; when it does with fewer matches
   * than `limit`, `next` is this id, to go on from. Absent when there was no
   * job below `before` to read.
   */
  scannedTo?: string;
}

/** The most jobs one findJobs call with `payload` reads. */
export const FIND_SCAN_LIMIT = 100_000;

const FIND_FIELDS = [
  "state",
  "queue",
  "task",
  "createdFrom",
  "createdTo",
  "payload",
  "before",
  "limit",
] as const;

/**
 * One page of jobs, newest first, below the cursor `before`, filtered by
 * state, queue, task, creation time and payload containment. Pages walk the
 * primary key from the cursor down; with `payload` one call reads at most
 * FIND_SCAN_LIMIT jobs and says where it stopped.
 */
export async function findJobs(db: Database, filter: FindJobsFilter = {}): Promise<JobPage> {
  const { payload, ...params } = findParams(filter);
  const q = jobQueries(db.schema);
  const limit = params.limit;
  // One more than the page: whether there is a next one.
  const take = { ...params, limit: limit + 1 };
  if (payload === null) {
    const rows = (await db.run(q.Find, take)).rows;
    const jobs = rows.slice(0, limit);
    return { jobs, next: rows.length > limit ? (jobs.at(-1) as JobSummary).id : null };
  }
  const rows = (await db.run(q.FindContaining, { ...take, payload, scan: FIND_SCAN_LIMIT })).rows;
  const jobs = rows
    .filter((row) => row.matched)
    .map(({ matched, scanned_to, bottom, ...job }) => job);
  if (jobs.length > limit) {
    const next = (jobs[limit - 1] as JobSummary).id;
    return { jobs: jobs.slice(0, limit), next, scannedTo: next };
  }
  // The row where the scan stopped comes last: its limit, or the first job.
  const end = rows.at(-1);
  if (end === undefined || !end.scanned_to) return { jobs, next: null };
  return { jobs, next: end.bottom ? null : end.id, scannedTo: end.id };
}

/** findJobs' filter checked, field by field (INVALID_OPTION naming it), as statement parameters. */
function findParams(filter: FindJobsFilter) {
  if (filter === null || typeof filter !== "object" || Array.isArray(filter)) {
    throw new RotaError("INVALID_OPTION", "findJobs takes a filter object (or nothing).", {
      details: { field: "filter", value: filter },
    });
  }
  for (const key of Object.keys(filter)) {
    if (!(FIND_FIELDS as readonly string[]).includes(key)) {
      throw new RotaError(
        "INVALID_OPTION",
        `findJobs has no filter "${key}": use ${FIND_FIELDS.join(", ")}.`,
        { details: { field: key } },
      );
    }
  }
  const createdFrom = dateFilter("createdFrom", filter.createdFrom);
  const createdTo = dateFilter("createdTo", filter.createdTo);
  if (createdFrom && createdTo && createdFrom >= createdTo) {
    throw new RotaError(
      "INVALID_OPTION",
      "createdTo must be later than createdFrom: the range is [createdFrom, createdTo).",
      { details: { field: "createdTo", value: createdTo } },
    );
  }
  return {
    before: cursor(filter.before),
    state: stateFilter(filter.state),
    queue: nameFilter("queue", filter.queue),
    task: nameFilter("task", filter.task),
    createdFrom,
    createdTo,
    payload: payloadFilter(filter.payload),
    limit: filter.limit === undefined ? 50 : wholeNumber("limit", filter.limit, 1, 500),
  };
}

function nameFilter(field: string, value: unknown): string | null {
  if (value === undefined) return null;
  if (typeof value !== "string" || value === "") {
    throw new RotaError(
      "INVALID_OPTION",
      `${field} must be a non-empty string (a ${field} name).`,
      {
        details: { field, value },
      },
    );
  }
  return value;
}

function dateFilter(field: string, value: unknown): Date | null {
  if (value === undefined) return null;
  if (!(value instanceof Date) || Number.isNaN(value.getTime())) {
    throw new RotaError("INVALID_OPTION", `${field} must be a valid Date.`, {
      details: { field, value },
    });
  }
  return value;
}

/** The keyset cursor: a job id as text (what `next` gives), at most the largest bigint. */
function cursor(value: unknown): string {
  if (value === undefined) return NO_CURSOR;
  if (
    typeof value !== "string" ||
    !/^[1-9][0-9]{0,18}$/.test(value) ||
    BigInt(value) > BigInt(NO_CURSOR)
  ) {
    throw new RotaError(
      "INVALID_OPTION",
      `before must be a job id as text (a positive integer, as a page's next gives it), got ${JSON.stringify(value) ?? String(value)}.`,
      { details: { field: "before", value } },
    );
  }
  return value;
}

/** A containment filter as JSON text: a plain object or an array, storable as jsonb. */
function payloadFilter(value: unknown): string | null {
  if (value === undefined) return null;
  const refuse = (why: string) =>
    new RotaError(
      "INVALID_OPTION",
      `payload ${why}: give a plain object or an array, matched against each job's payload (payload @> it).`,
      { details: { field: "payload" } },
    );
  const plain =
    Array.isArray(value) ||
    (typeof value === "object" &&
      value !== null &&
      [Object.prototype, null].includes(Object.getPrototypeOf(value)));
  if (!plain) {
    const kind =
      value === null
        ? "null"
        : typeof value === "object"
          ? "not a plain object"
          : `a ${typeof value}`;
    throw refuse(`is ${kind}`);
  }
  let text: string;
  try {
    text = JSON.stringify(value);
  } catch (error) {
    throw refuse(`cannot be written as JSON (${describeThrown(error).message})`);
  }
  const unstorable = unstorableEscape(text);
  if (unstorable !== null) throw refuse(`holds ${unstorable}, which no stored payload can`);
  return text;
}
