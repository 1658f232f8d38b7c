import type { Database } from "../db/database.js";
import { jobQueries } from "../db/queries/jobs.js";
import type { RotaEvents } from "../events.js";

export interface RescueResult {
  /** Jobs made claimable again (their attempt stays counted). */
  retried: number;
  /** Jobs whose expired attempt was their last: now 'failed'. */
  failed: number;
  /** Jobs cancelled while running whose worker vanished. */
  cancelled: number;
}

/**
 * Rescues jobs whose lease expired: their worker stopped heartbeating
 * (kill -9, a hang, a lost connection). Safe to run from any number of
 * processes at once (rows are taken with SKIP LOCKED). The orchestrator runs
 * it each tick; workers run it too, so a crashed worker's jobs come back
 * within about one lease even with no orchestrator.
 */
export async function rescueExpiredJobs(
  db: Database,
  events: RotaEvents,
  options: { limit?: number } = {},
): Promise<RescueResult> {
  const result = await db.run(jobQueries(db.schema).Rescue, { limit: options.limit ?? 1000 });
  const counts: RescueResult = { retried: 0, failed: 0, cancelled: 0 };
  for (const row of result.rows) {
    if (row.state === "available") counts.retried++;
    else if (row.state === "failed") counts.failed++;
    else counts.cancelled++;
    events.emit("job:rescued", {
      id: row.id,
      queue: row.queue,
      task: row.task,
      attempt: row.attempts,
      state: row.state,
    });
  }
  return counts;
}
