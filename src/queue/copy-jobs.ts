import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import pg from "pg";
import { from as copyFrom } from "pg-copy-streams";
import type { Database } from "../db/database.js";
import type { NormalizedJob } from "./job-options.js";
import { enqueueQueries } from "./job-queries.js";

/**
 * Bulk enqueue by COPY: ids and the statement clock are drawn first
 * (DrawIds), the rows are streamed into the jobs table in COPY text format,
 * and the queues with jobs due now are woken (Wake), all on one client.
 *
 * Why COPY: for 20,000 jobs the server spends about half as long on a COPY
 * as on an INSERT that reads the same rows from a JSON array or from unnest
 * arrays, and the client sends text it builds with string concatenation
 * instead of a JSON document the server must take apart again. The result
 * (ids and states in input order) is computed on the client, so no result
 * rows come back either.
 *
 * Only lists without unique keys come here: ON CONFLICT needs an INSERT.
 */

/** A client COPY can run on: node-postgres clients only (pg-copy-streams drives their connection). */
export function canCopy(executor: unknown): executor is pg.ClientBase {
  return executor instanceof pg.Client;
}

export interface CopiedJobs {
  ids: string[];
  states: ("available" | "scheduled")[];
}

/** What DrawIds returns. */
export interface DrawnIds {
  first: string;
  ids: string | null;
  now_us: string;
}

/** Rows per chunk handed to the COPY stream, so the server parses one chunk while the next is built. */
const CHUNK_ROWS = 1_000;

/**
 * Draws `count` job ids and the statement clock. Sent before the jobs are
 * checked, so the server draws while the process validates; ids drawn for a
 * list that is then refused are only a gap in the sequence, as after any
 * rolled-back insert.
 */
export async function drawIds(
  db: Database,
  count: number,
  client: pg.ClientBase,
): Promise<DrawnIds> {
  const result = await db.run<DrawnIds>(enqueueQueries(db.schema).DrawIds, [count], client);
  return result.rows[0] as DrawnIds;
}

/**
 * Inserts `jobs` (none with a unique key) on `client` with ids from `drawn`.
 * Runs no BEGIN/COMMIT: inside the caller's transaction everything commits or
 * rolls back with it (and the NOTIFY is delivered on its commit); on an idle
 * pool client the COPY commits by itself and Wake follows it.
 */
export async function copyJobs(
  db: Database,
  jobs: readonly NormalizedJob[],
  drawn: DrawnIds,
  client: pg.ClientBase,
  options: { wakeMayFail?: boolean } = {},
): Promise<CopiedJobs> {
  const q = enqueueQueries(db.schema);
  const ids = drawnIds(drawn.first, drawn.ids, jobs.length);
  const nowUs = Number(drawn.now_us);
  const nowText = timestampText(nowUs);
  const states: CopiedJobs["states"] = new Array(jobs.length);
  const woken = new Set<string>();
  const rowText = (index: number): string => {
    const job = jobs[index] as NormalizedJob;
    let runAt = nowText;
    let state: "available" | "scheduled" = "available";
    if (job.runAt !== null) {
      const dueUs = job.runAt.getTime() * 1000;
      runAt = timestampText(dueUs);
      if (dueUs > nowUs) state = "scheduled";
    } else if (job.delayMs !== null && job.delayMs > 0) {
      // The INSERT statements add make_interval(secs => delay_ms / 1000),
      // which keeps microseconds; so does this.
      const dueUs = nowUs + Math.round(job.delayMs * 1000);
      runAt = timestampText(dueUs);
      if (dueUs > nowUs) state = "scheduled";
    }
    states[index] = state;
    if (state === "available") woken.add(job.queue);
    // Queue and task names are checked against [A-Za-z0-9_.:/-]; JSON text has
    // no raw tab or newline (JSON.stringify escapes them) but its backslashes
    // must be doubled for COPY's text format.
    return `${ids[index]}\t${job.queue}\t${job.task}\t${copyText(job.payload)}\t${state}\t${job.priority}\t${runAt}\t${job.maxAttempts}\t${job.backoff === null ? "\\N" : copyText(job.backoff)}\t${job.timeoutMs === null ? "\\N" : job.timeoutMs}\t${nowText}\n`;
  };
  function* chunks(): Generator<string> {
    for (let start = 0; start < jobs.length; start += CHUNK_ROWS) {
      const end = Math.min(start + CHUNK_ROWS, jobs.length);
      let text = "";
      for (let i = start; i < end; i++) text += rowText(i);
      yield text;
    }
  }
  await pipeline(Readable.from(chunks()), client.query(copyFrom(q.CopyJobs.text)));
  if (woken.size > 0) {
    const waking = db.run(q.Wake, [[...woken]], client);
    // On rota's own connection the COPY has committed by now: the jobs exist,
    // so a failed wake-up must not report them as not enqueued (a retry would
    // duplicate them); workers find them by polling.
    if (options.wakeMayFail) await waking.catch(() => {});
    else await waking;
  }
  return { ids, states };
}

/** The ids DrawIds handed out, in draw order: from the first when contiguous, else its list. */
function drawnIds(first: string, list: string | null, count: number): string[] {
  if (list !== null) return list.split(",");
  const ids: string[] = new Array(count);
  const start = Number(first);
  if (Number.isSafeInteger(start + count)) {
    for (let i = 0; i < count; i++) ids[i] = String(start + i);
  } else {
    const big = BigInt(first);
    for (let i = 0; i < count; i++) ids[i] = String(big + BigInt(i));
  }
  return ids;
}

/** Microseconds since the epoch as an ISO timestamp PostgreSQL reads back exactly. */
function timestampText(us: number): string {
  const ms = Math.floor(us / 1000);
  const iso = new Date(ms).toISOString(); // …:SS.mmmZ
  const micros = String(us - ms * 1000).padStart(3, "0");
  return `${iso.slice(0, -1)}${micros}Z`;
}

function copyText(text: string): string {
  return text.includes("\\") ? text.replaceAll("\\", "\\\\") : text;
}
