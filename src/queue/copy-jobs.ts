import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import pg from "pg";
import { from as copyFrom } from "pg-copy-streams";
import type { Database } from "../db/database.js";
import { type DrawnIds, enqueueQueries } from "../db/queries/enqueue.js";
import type { RowOf } from "../db/sql.js";
import { CopyBinaryWriter, textBytes } from "./copy-binary.js";
import type { NormalizedJob } from "./job-options.js";

/**
 * Bulk enqueue by COPY: ids and the statement clock are drawn first
 * (DrawIds), the rows are streamed into the jobs table in binary COPY format
 * (copy-binary.ts), and the queues it filled are woken (Wake), all on
 * one client.
 *
 * Why COPY: for 20,000 jobs the server spends about half as long on a COPY
 * as on an INSERT that reads the same rows from a JSON array or from unnest
 * arrays, and the client sends values it encodes itself instead of a JSON
 * document the server must take apart again. The result (ids and states in
 * input order) is computed on the client, so no result rows come back either.
 *
 * The jobs are checked chunk by chunk as the stream asks for them, so the
 * process checks and encodes while the server inserts. A chunk that fails its
 * checks aborts the COPY: nothing is written (see enqueue.ts for the client).
 *
 * Only lists without unique keys come here: ON CONFLICT needs an INSERT.
 */

/**
 * A client COPY can run on: node-postgres clients only (pg-copy-streams
 * drives their connection). An ORM's transaction through an adapter
 * (src/adapters) is not one, so a long list goes in by InsertPlain instead.
 */
export function canCopy(executor: unknown): executor is pg.ClientBase {
  return executor instanceof pg.Client;
}

export interface CopiedJobs {
  /** The checked jobs, when asked for with keepJobs (for events). */
  jobs: NormalizedJob[] | null;
  ids: string[];
  states: ("available" | "scheduled")[];
}

/** The jobs to copy, checked a chunk at a time; a chunk throws (or rejects) on bad input. */
export interface JobSource {
  count: number;
  prepare(start: number, end: number): NormalizedJob[] | Promise<NormalizedJob[]>;
}

/** Jobs checked and encoded per step of the stream, so the server inserts one step while the next is built. */
const CHUNK_ROWS = 1_000;
/** Fields per row: the columns of CopyJobs (CopyJobsTraced has one more, trace_context). */
const COPY_FIELDS = 14;
/** Most bytes of a row besides its text and JSON fields (lengths, numbers, timestamps). */
const ROW_FIXED_BYTES = 2 + COPY_FIELDS * 4 + 8 + 4 + 8 + 4 + 4 + 8 + 4 + 8;

/**
 * Draws `count` job ids and the statement clock. Sent before the jobs are
 * checked, so the server draws while the process checks; ids drawn for a
 * list that is then refused are only a gap in the sequence, as after any
 * rolled-back insert.
 */
export async function drawIds(
  db: Database,
  count: number,
  client: pg.ClientBase,
): Promise<DrawnIds> {
  const q = enqueueQueries(db.schema);
  const result = await db.run(q.DrawIds, { count }, client);
  const drawn = result.rows[0] as RowOf<typeof q.DrawIds>;
  if (drawn.contiguous) return { first: drawn.first, ids: null, now_us: drawn.now_us };
  return (await db.run(q.DrawIdList, { count }, client)).rows[0] as DrawnIds;
}

/**
 * Inserts the jobs of `source` (none with a unique key) on `client` with ids
 * from `drawing`. Runs no BEGIN/COMMIT: inside the caller's transaction
 * everything commits or rolls back with it (and the NOTIFY is delivered on
 * its commit); on rota's own connection (`ownConnection`) the COPY commits
 * by itself and Wake follows it, telling the workers of a queue whose jobs
 * are all delayed when the first comes due. `batchId`: the batch every job
 * is a member of (inserted before, in the caller's transaction).
 * `traceContext`: the enqueue's send span's, written on every row through
 * CopyJobsTraced; without one the COPY has no such field at all.
 */
export async function copyJobs(
  db: Database,
  source: JobSource,
  drawing: Promise<DrawnIds>,
  client: pg.ClientBase,
  options: {
    ownConnection?: boolean;
    keepJobs?: boolean;
    batchId?: string | null;
    traceContext?: string | null;
  } = {},
): Promise<CopiedJobs> {
  const q = enqueueQueries(db.schema);
  const count = source.count;
  // Kept only when asked: 20,000 job objects that outlive the stream cost
  // the garbage collector more than checking them did.
  const jobs: NormalizedJob[] | null = options.keepJobs ? new Array(count) : null;
  const states: CopiedJobs["states"] = new Array(count);
  // Per queue filled, when its earliest job is due (microseconds, database clock).
  const woken = new Map<string, number>();
  // The server draws the ids while the first chunk is checked; the COPY is
  // sent once they are in (a client runs one statement at a time).
  let firstChunk: NormalizedJob[];
  try {
    firstChunk = await source.prepare(0, Math.min(CHUNK_ROWS, count));
  } catch (error) {
    // Bad input: nothing is written. The client is idle again before the
    // error goes on (the caller may use it, or release it).
    await drawing.catch(() => {});
    throw error;
  }
  const drawn = await drawing;
  const drawnAt = performance.now();
  // Contiguous ids in the safe integer range are computed, and turned into
  // text as the rows are encoded (while the server inserts); others are
  // listed up front.
  const firstId =
    drawn.ids === null && Number.isSafeInteger(Number(drawn.first) + count)
      ? Number(drawn.first)
      : -1;
  const ids: string[] = firstId >= 0 ? new Array(count) : listedIds(drawn, count);
  const nowUs = Number(drawn.now_us);
  const batchId = options.batchId ?? null;
  const traceContext = options.traceContext ?? null;
  const fields = traceContext === null ? COPY_FIELDS : COPY_FIELDS + 1;
  const traceBytes = traceContext === null ? 0 : textBytes(traceContext);
  async function* encoded(): AsyncGenerator<Buffer> {
    const writer = new CopyBinaryWriter();
    for (let start = 0; start < count; start += CHUNK_ROWS) {
      const end = Math.min(start + CHUNK_ROWS, count);
      const chunk = start === 0 ? firstChunk : await source.prepare(start, end);
      for (let i = start; i < end; i++) {
        const job = chunk[i - start] as NormalizedJob;
        if (jobs !== null) jobs[i] = job;
        // Run times as the INSERT statements compute them (see dueMicros).
        const dueUs = dueMicros(job, nowUs);
        const state = dueUs > nowUs ? "scheduled" : "available";
        states[i] = state;
        const earliest = woken.get(job.queue);
        if (earliest === undefined || dueUs < earliest) woken.set(job.queue, dueUs);
        writer.reserve(
          ROW_FIXED_BYTES +
            textBytes(job.queue) +
            textBytes(job.task) +
            textBytes(job.payload) +
            (job.backoff === null ? 0 : textBytes(job.backoff)) +
            (job.concurrencyKey === null ? 0 : textBytes(job.concurrencyKey)) +
            traceBytes,
        );
        writer.row(fields);
        if (firstId >= 0) {
          writer.int8(firstId + i);
          ids[i] = String(firstId + i);
        } else writer.int8Text(ids[i] as string);
        writer.text(job.queue);
        writer.text(job.task);
        writer.jsonb(job.payload);
        writer.text(state);
        writer.int4(job.priority);
        if (job.runAt !== null) writer.timestampMs(job.runAt.getTime());
        else if (Number.isSafeInteger(dueUs)) writer.timestamp(dueUs);
        else writer.timestampExact(BigInt(nowUs) + BigInt(delayMicros(job.delayMs)));
        writer.int4(job.maxAttempts);
        if (job.backoff === null) writer.null();
        else writer.jsonb(job.backoff);
        if (job.timeoutMs === null) writer.null();
        else writer.int4(job.timeoutMs);
        writer.timestamp(nowUs);
        if (job.concurrencyKey === null) {
          writer.null();
          writer.null();
        } else {
          writer.text(job.concurrencyKey);
          writer.int4(job.concurrencyLimit as number);
        }
        if (batchId === null) writer.null();
        else writer.int8Text(batchId);
        if (traceContext !== null) writer.jsonb(traceContext);
      }
      yield* writer.drain(end === count);
    }
  }
  const copy = traceContext === null ? q.CopyJobs : q.CopyJobsTraced;
  await pipeline(Readable.from(encoded()), client.query(copyFrom(copy.text)));
  if (woken.size > 0) {
    // Inside a caller's transaction the wake-up is delivered at its commit,
    // however late: the queues are woken as due now. On rota's own
    // connection it goes out at once, with the time since the clock was read.
    const sinceDrawnMs = performance.now() - drawnAt;
    const dueInMs = options.ownConnection
      ? [...woken.values()].map((dueUs) => (dueUs - nowUs) / 1000 - sinceDrawnMs)
      : null;
    const waking = db.run(q.Wake, { queues: [...woken.keys()], dueInMs }, client);
    // On rota's own connection the COPY has committed by now: the jobs exist,
    // so a failed wake-up must not report them as not enqueued (a retry would
    // duplicate them); workers find them by polling.
    if (options.ownConnection) await waking.catch(() => {});
    else await waking;
  }
  return { jobs, ids, states };
}

/**
 * When a job is due, in microseconds since the epoch, as the INSERT
 * statements compute it: its runAt, or the statement clock plus
 * make_interval(secs => delay_ms / 1000), which PostgreSQL rounds to the
 * microsecond half to even. Past 2^53 microseconds (after the year 2255) the
 * sum is not exact: it only decides the state there, and the run time is
 * written from exact parts.
 */
function dueMicros(job: Pick<NormalizedJob, "runAt" | "delayMs">, nowUs: number): number {
  if (job.runAt !== null) return job.runAt.getTime() * 1000;
  return nowUs + delayMicros(job.delayMs);
}

/** make_interval(secs => delay_ms / 1000) in whole microseconds, as PostgreSQL computes it. */
function delayMicros(delayMs: number | null): number {
  if (delayMs === null || delayMs <= 0) return 0;
  return roundHalfEven((delayMs / 1000) * 1_000_000);
}

/** PostgreSQL's rint(): to the nearest integer, ties to the even one. */
function roundHalfEven(value: number): number {
  const floor = Math.floor(value);
  const rest = value - floor;
  if (rest < 0.5) return floor;
  if (rest > 0.5) return floor + 1;
  return floor % 2 === 0 ? floor : floor + 1;
}

/** Ids DrawIds handed out that are not contiguous safe integers: its list, or a run past 2^53. */
function listedIds(drawn: DrawnIds, count: number): string[] {
  if (drawn.ids !== null) return drawn.ids.split(",");
  const first = BigInt(drawn.first);
  return Array.from({ length: count }, (_, i) => String(first + BigInt(i)));
}
