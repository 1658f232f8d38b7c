import { wholeNumber } from "../config.js";
import type { Database } from "../db/database.js";
import { type QueueRow, queueQueries } from "../db/queries/queues.js";
import { workerStatsQueries } from "../db/queries/worker-stats.js";
import { INT32_MAX, validateQueueName } from "../queue/job-options.js";

/** What pause() and resume() set. */
export interface QueueState {
  name: string;
  paused: boolean;
}

/** What setLimit() set. */
export interface QueueLimit {
  name: string;
  /** At most this many of its jobs run at once across all workers; null: no limit. */
  limit: number | null;
}

/** A queue as rota reports it. */
export interface QueueInfo {
  name: string;
  /** Paused: nothing of it is claimed until it is resumed. */
  paused: boolean;
  /** At most this many of its jobs run at once, across all workers; null: no limit. */
  limit: number | null;
  /** Its jobs by state (states with none are left out). */
  counts: Record<string, number>;
  /**
   * Available jobs a concurrency limit holds back: beyond the room the
   * queue's limit leaves, or of keys with their limit running (the larger).
   */
  waitingForLimit: number;
  /** How long its oldest available job has waited since it came due; null with none. */
  oldestAvailableMs: number | null;
}

/** One queue's outcomes in one minute, summed over the workers' reports. */
export interface QueueMinute {
  queue: string;
  /** The minute's start (by the database clock). */
  minute: Date;
  succeeded: number;
  /** Failed for good: no attempt left. */
  failed: number;
  /** Failed attempts with another to come. */
  retried: number;
  /** Cancelled while a worker held them (jobs cancelled while queued are not counted). */
  cancelled: number;
}

/**
 * Queues: the kill switch, and the concurrency limit per queue. A paused queue keeps accepting jobs, and its
 * running jobs finish, but no worker claims from it (planned executions that
 * come due wait too, and their catch-up policy applies on resume). Workers
 * hear of a pause at once through a wake-up and hand back the jobs of that
 * queue they hold but have not started; a worker that misses the wake-up
 * stops at its next claim, which reads the queue's row. See docs/capacity.md.
 */
export class Queues {
  constructor(private readonly db: Database) {}

  /** Pauses `queue` (it need not have jobs yet). */
  pause(queue: string): Promise<QueueState> {
    return this.setPaused(queue, true);
  }

  /** Resumes `queue`: workers claim from it again at once. */
  resume(queue: string): Promise<QueueState> {
    return this.setPaused(queue, false);
  }

  /**
   * Sets `queue`'s concurrency limit: at most `limit` of its jobs run at once
   * across all workers and hosts (null lifts it). Enforced in the claim: a
   * job the limit holds back stays available and starts when a running one
   * finishes. Lowering it stops no running job; none starts until the queue
   * is under the new limit.
   */
  async setLimit(queue: string, limit: number | null): Promise<QueueLimit> {
    const name = validateQueueName(queue);
    if (limit !== null)
      wholeNumber("A queue's concurrency limit (or null for none)", limit, 1, INT32_MAX);
    await this.db.run(queueQueries(this.db.schema).SetLimit, { name, limit });
    return { name, limit };
  }

  /** Every queue that has jobs or a setting (paused, a limit), by name. */
  async list(): Promise<QueueInfo[]> {
    const result = await this.db.run(queueQueries(this.db.schema).List);
    return result.rows.map(toQueueInfo);
  }

  /**
   * Outcomes per queue and minute over the last `minutes` (default 60, at
   * most 1440; the current minute included), of `queue` only when given, by
   * queue then minute. Only minutes in which something finished have a row:
   * the caller fills the others with zeros. Counted by the workers and
   * written with their reports (every statsIntervalMs), so the current
   * minute lags by up to that.
   */
  async throughput({
    minutes = 60,
    queue,
  }: {
    minutes?: number;
    queue?: string;
  } = {}): Promise<QueueMinute[]> {
    wholeNumber("minutes", minutes, 1, 1_440);
    const name = queue === undefined ? null : validateQueueName(queue);
    const result = await this.db.run(workerStatsQueries(this.db.schema).Throughput, {
      minutes,
      queue: name,
    });
    return result.rows;
  }

  private async setPaused(queue: string, paused: boolean): Promise<QueueState> {
    const name = validateQueueName(queue);
    await this.db.run(queueQueries(this.db.schema).SetPaused, { name, paused });
    return { name, paused };
  }
}

function toQueueInfo(row: QueueRow): QueueInfo {
  return {
    name: row.name,
    paused: row.paused,
    limit: row.concurrency_limit,
    counts: row.counts,
    waitingForLimit: row.waiting_for_limit,
    oldestAvailableMs:
      row.oldest_available_ms === null ? null : Math.round(row.oldest_available_ms),
  };
}
