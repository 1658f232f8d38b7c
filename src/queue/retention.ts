import { validateMillis } from "../config.js";
import type { Database } from "../db/database.js";
import { batchQueries } from "../db/queries/batches.js";
import { jobQueries } from "../db/queries/jobs.js";
import { workerStatsQueries } from "../db/queries/worker-stats.js";

/**
 * How long finished jobs stay in the jobs table. Succeeded jobs leave at once
 * by default (the worker deletes them on completion); failed jobs stay, as the
 * dead-letter queue, until pruned.
 */
export interface RetentionOptions {
  /** Keep succeeded jobs this long; 0 (default) deletes them on completion. */
  succeededMs?: number;
  /** Keep failed jobs this long; default 14 days. */
  failedMs?: number;
  /** Keep cancelled (and skipped, superseded, missed) jobs this long; default 1 day. */
  cancelledMs?: number;
  /**
   * Keep finished schedule executions (any outcome) and finished batches this
   * long, for their history; default 7 days.
   */
  historyMs?: number;
}

export const DEFAULT_RETENTION = {
  succeededMs: 0,
  failedMs: 14 * 24 * 3_600_000,
  cancelledMs: 24 * 3_600_000,
  historyMs: 7 * 24 * 3_600_000,
} as const;

export function resolveRetention(options: RetentionOptions = {}): Required<RetentionOptions> {
  return {
    succeededMs: validateMillis(
      "retention.succeededMs",
      options.succeededMs ?? DEFAULT_RETENTION.succeededMs,
    ),
    failedMs: validateMillis("retention.failedMs", options.failedMs ?? DEFAULT_RETENTION.failedMs),
    cancelledMs: validateMillis(
      "retention.cancelledMs",
      options.cancelledMs ?? DEFAULT_RETENTION.cancelledMs,
    ),
    historyMs: validateMillis(
      "retention.historyMs",
      options.historyMs ?? DEFAULT_RETENTION.historyMs,
    ),
  };
}

/**
 * How long workers' reports stay (migration 0018): queue_minutes rows, and
 * workers stopped or unseen. A day, the longest span throughput() reads.
 */
const WORKER_STATS_KEEP_MS = 24 * 3_600_000;

/**
 * Deletes finished jobs past their retention, in bounded batches, then the
 * finished batches (job sets, batches.ts) past historyMs, and workers'
 * reports a day old; returns how many rows went.
 */
export async function pruneFinishedJobs(
  db: Database,
  options: RetentionOptions & {
    batchSize?: number;
    maxBatches?: number;
    /** Called with the rows deleted so far after each statement. */
    onProgress?: (deleted: number) => void;
  } = {},
): Promise<number> {
  const retention = resolveRetention(options);
  const q = jobQueries(db.schema);
  const limit = options.batchSize ?? 5_000;
  const maxBatches = options.maxBatches ?? 20;
  const finished = ["succeeded", "failed", "cancelled", "skipped", "superseded", "missed"];
  const classes: [string[], number, boolean][] = [
    [["succeeded"], retention.succeededMs, false],
    [["failed"], retention.failedMs, false],
    [["cancelled", "skipped", "superseded", "missed"], retention.cancelledMs, false],
    [finished, retention.historyMs, true],
  ];
  let deleted = 0;
  // Each statement deletes up to `limit` rows; it runs again while it fills them.
  const repeat = async (run: () => Promise<{ rowCount: number | null }>) => {
    let these = 0;
    for (let batch = 0; batch < maxBatches; batch++) {
      const count = (await run()).rowCount ?? 0;
      these += count;
      options.onProgress?.(deleted + these);
      if (count < limit) break;
    }
    return these;
  };
  for (const [states, keepMs, executions] of classes) {
    const statement = executions ? q.PruneExecutions : q.PruneJobs;
    deleted += await repeat(() => db.run(statement, { states, keepMs, limit }));
  }
  const batches = batchQueries(db.schema);
  deleted += await repeat(() => db.run(batches.Prune, { keepMs: retention.historyMs, limit }));
  // Here, on the pruning tick of every worker and the leading orchestrator,
  // rather than in each worker's report: the report runs every few seconds
  // on every worker, and stays one small upsert; a day-old minute can wait
  // for the next tick (or rota.prune()).
  const stats = workerStatsQueries(db.schema);
  const keepMs = WORKER_STATS_KEEP_MS;
  deleted += await repeat(() => db.run(stats.PruneMinutes, { keepMs, limit }));
  deleted += await repeat(() => db.run(stats.PruneWorkers, { keepMs, limit }));
  return deleted;
}
