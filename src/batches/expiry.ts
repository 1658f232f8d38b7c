import type { Database } from "../db/database.js";
import { batchQueries } from "../db/queries/batches.js";
import type { RotaEvents } from "../events.js";

export interface ExpiryResult {
  /** Batches finished at their expiry this pass (each with its callback enqueued). */
  expired: number;
}

/** Batches finished per statement; the step repeats while it fills one. */
const EXPIRE_LIMIT = 500;
/** Statements per pass at most, so one tick cannot be held by a backlog. */
const MAX_STATEMENTS = 20;

/**
 * The orchestrator's expiry step (tick step 2, after the rescue, so a member
 * whose worker died is counted first if its last attempt is gone): open
 * batches past their expiry are finished as they stand, and each one's
 * callback is enqueued once, with the counts so far, `expired: true` and the
 * ids of the members still open. Those members go on; when one finishes
 * later, its batch is already finished and it counts for nothing.
 *
 * Safe to run from several processes at once: a batch is taken with SKIP
 * LOCKED and finished only while its finished_at is null (batches.sql
 * Expire), so two orchestrators, or the step racing a batch's last member,
 * enqueue one callback.
 */
export async function expireBatches(
  db: Database,
  events: RotaEvents,
  options: { limit?: number } = {},
): Promise<ExpiryResult> {
  const q = batchQueries(db.schema);
  const limit = options.limit ?? EXPIRE_LIMIT;
  let expired = 0;
  for (let statement = 0; statement < MAX_STATEMENTS; statement++) {
    const result = await db.run(q.Expire, { limit });
    for (const row of result.rows) {
      events.emit("batch:expired", {
        batchId: row.id,
        callbackJobId: row.callback_job_id,
        open: row.open,
      });
    }
    expired += result.rows.length;
    if (result.rows.length < limit) break;
  }
  return { expired };
}
