import type { QueueMinute } from "../../capacity/queues.js";
import { defineQueries, statement } from "../sql.js";

/** A worker's row as ListWorkers reads it. */
export interface WorkerRow {
  id: string;
  host: string;
  pid: number;
  queues: string[];
  tasks: string[];
  concurrency: number;
  started_at: Date;
  last_seen_at: Date;
  stopped_at: Date | null;
  running: number;
}

/** Rows older than keepMs, at most limit per statement. */
type Prune = { keepMs: number; limit: number };

/** Every statement on the workers and queue_minutes tables, from worker-stats.sql, bound per schema. */
export const workerStatsQueries = defineQueries("worker-stats", {
  Flush: statement<
    {
      id: string;
      host: string;
      pid: number;
      queues: readonly string[];
      tasks: readonly string[];
      concurrency: number;
      running: number;
      starting: boolean;
      stopping: boolean;
      /** Per queue, in step: the outcomes to add to its current minute. */
      countQueues: readonly string[];
      succeeded: readonly number[];
      failed: readonly number[];
      retried: readonly number[];
      cancelled: readonly number[];
    },
    { seen: number; counted: number }
  >(),
  ListWorkers: statement<{ seenWithinMs: number }, WorkerRow>(),
  /** Rows as the API returns them. */
  Throughput: statement<{ minutes: number; queue: string | null }, QueueMinute>(),
  PruneMinutes: statement<Prune>(),
  PruneWorkers: statement<Prune>(),
});
