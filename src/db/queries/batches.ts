import { defineQueries, statement } from "../sql.js";

/** A batch as Get reads it. */
export interface BatchRow {
  id: string;
  total: number;
  succeeded: number;
  failed: number;
  cancelled: number;
  callback_task: string;
  callback_queue: string;
  callback_payload: unknown;
  /** Null while the batch is open. */
  callback_job_id: string | null;
  expired: boolean;
  /** The members still open when it expired; null unless it expired. */
  open_job_ids: string[] | null;
  created_at: Date;
  expires_at: Date | null;
  finished_at: Date | null;
}

/** A batch as List reads it (without the payload and the ids). */
export type BatchSummaryRow = Omit<BatchRow, "callback_payload" | "open_job_ids">;

/** Every statement on the batches table, from batches.sql, bound per schema. */
export const batchQueries = defineQueries("batches", {
  Create: statement<
    {
      total: number;
      task: string;
      queue: string;
      /** JSON text. */
      payload: string;
      expiresInMs: number | null;
    },
    { id: string; created_at: Date; expires_at: Date | null }
  >(),
  Expire: statement<{ limit: number }, { id: string; callback_job_id: string; open: number }>(),
  Get: statement<{ id: string }, BatchRow>(),
  List: statement<{ state: string | null; limit: number }, BatchSummaryRow>(),
  Prune: statement<{ keepMs: number; limit: number }>(),
});
