import type { Database } from "../db/database.js";
import { type QueueRow, queueQueries } from "../db/queries/queues.js";
import { validateQueueName } from "../queue/job-options.js";

/** What pause() and resume() set. */
export interface QueueState {
  name: string;
  paused: boolean;
}

/** A queue as rota reports it. */
export interface QueueInfo {
  name: string;
  /** Paused: nothing of it is claimed until it is resumed. */
  paused: boolean;
  /** Its jobs by state (states with none are left out). */
  counts: Record<string, number>;
  /** How long its oldest available job has waited since it came due; null with none. */
  oldestAvailableMs: number | null;
}

/**
 * Queues: the kill switch. A paused queue keeps accepting jobs, and its
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

  /** Every queue that has jobs or was paused or resumed, by name. */
  async list(): Promise<QueueInfo[]> {
    const result = await this.db.run(queueQueries(this.db.schema).List);
    return result.rows.map(toQueueInfo);
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
    counts: row.counts,
    oldestAvailableMs:
      row.oldest_available_ms === null ? null : Math.round(row.oldest_available_ms),
  };
}
