import { defineQueries, statement } from "../sql.js";

/** A job as an insert reports it: its id and state, or nulls for a 'keep' conflict it could not see. */
export interface InsertRow {
  id: string | null;
  state: string | null;
  inserted: boolean;
  replaced: boolean;
}

/** The ids and clock a COPY uses: from DrawIds (first only) or DrawIdList. */
export interface DrawnIds {
  first: string;
  ids: string | null;
  now_us: string;
}

/** The statements that insert jobs, from enqueue.sql. */
export const enqueueQueries = defineQueries("enqueue", {
  InsertPlain: statement<
    {
      /** A JSON array of the jobs (see enqueue.sql). */
      jobs: string;
      notify: boolean;
      commitsAlone: boolean;
      /** The batch every job is a member of; null for none. */
      batchId: string | null;
    },
    InsertRow
  >(),
  Wake: statement<{ queues: readonly string[]; dueInMs: readonly number[] | null }>(),
  DrawIds: statement<{ count: number }, { first: string; contiguous: boolean; now_us: string }>(),
  DrawIdList: statement<{ count: number }, DrawnIds>(),
  /** Run only as a COPY (copy-jobs.ts), through its text. */
  CopyJobs: statement(),
  /** CopyJobs with each row's trace_context (telemetry on). */
  CopyJobsTraced: statement(),
  Insert: statement<{ jobs: string; commitsAlone: boolean }, InsertRow>(),
  QueuedByUniqueKey: statement<{ uniqueKey: string }, { id: string; state: string }>(),
});
