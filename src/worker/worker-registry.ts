import { wholeNumber } from "../config.js";
import type { Database } from "../db/database.js";
import { type WorkerRow, workerStatsQueries } from "../db/queries/worker-stats.js";

/** A worker as it last reported itself (see the worker's statsIntervalMs). */
export interface WorkerInfo {
  id: string;
  host: string;
  pid: number;
  queues: string[];
  tasks: string[];
  concurrency: number;
  startedAt: Date;
  /** Its last report, by the database clock: it stops moving when the worker dies. */
  lastSeenAt: Date;
  /** Set by the report of a graceful stop; null while it runs (or after it died). */
  stoppedAt: Date | null;
  /** Jobs it was running at its last report. */
  running: number;
}

/** The longest window list() takes: a year (rows a day old are pruned anyway). */
const MAX_SEEN_WITHIN_MS = 366 * 24 * 3_600_000;

/**
 * The workers that report themselves (every worker does, every
 * statsIntervalMs, unless it is 0), read from their rows: no worker is
 * asked anything, so a dead one shows as not seen lately.
 */
export class WorkerRegistry {
  constructor(private readonly db: Database) {}

  /**
   * Workers seen within the last `seenWithinMs` (default a minute), the last
   * seen first; a stopped one is listed while its last report is that recent.
   */
  async list({ seenWithinMs = 60_000 }: { seenWithinMs?: number } = {}): Promise<WorkerInfo[]> {
    wholeNumber("seenWithinMs", seenWithinMs, 1, MAX_SEEN_WITHIN_MS);
    const result = await this.db.run(workerStatsQueries(this.db.schema).ListWorkers, {
      seenWithinMs,
    });
    return result.rows.map(toWorkerInfo);
  }
}

function toWorkerInfo(row: WorkerRow): WorkerInfo {
  return {
    id: row.id,
    host: row.host,
    pid: row.pid,
    queues: row.queues,
    tasks: row.tasks,
    concurrency: row.concurrency,
    startedAt: row.started_at,
    lastSeenAt: row.last_seen_at,
    stoppedAt: row.stopped_at,
    running: row.running,
  };
}
