import { defineQueries, type NoParams, statement } from "../sql.js";

/** A queue as List reports it. */
export interface QueueRow {
  name: string;
  paused: boolean;
  /** Jobs by state. */
  counts: Record<string, number>;
  /** How long its oldest available job has waited since it came due; null with none. */
  oldest_available_ms: number | null;
  concurrency_limit: number | null;
  /** Available jobs a concurrency limit holds back (see List). */
  waiting_for_limit: number;
}

/** Every statement on the queues table, from queues.sql, bound per schema. */
export const queueQueries = defineQueries("queues", {
  SetPaused: statement<
    { name: string; paused: boolean },
    { name: string; paused: boolean; notified: boolean }
  >(),
  SetLimit: statement<
    { name: string; limit: number | null },
    { name: string; paused: boolean; concurrency_limit: number | null; notified: boolean }
  >(),
  List: statement<NoParams, QueueRow>(),
});
