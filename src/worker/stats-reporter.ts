import { hostname } from "node:os";
import type { Database } from "../db/database.js";
import { workerStatsQueries } from "../db/queries/worker-stats.js";
import type { WorkerSettings } from "./worker-options.js";

/** How a written outcome counts in queue_minutes (migration 0018). */
export type OutcomeKind = "succeeded" | "failed" | "retried" | "cancelled";

type Counts = Record<OutcomeKind, number>;

/**
 * A worker's report of itself (rota.workers.list, rota.queues.throughput):
 * its outcomes are counted here in memory as the completer writes them, and
 * every `statsIntervalMs` one statement (worker-stats.sql Flush) upserts the
 * worker's row and adds the counts to the current minute of their queues.
 * Nothing is written per job, so the hot path pays a map increment.
 *
 * Counts taken for a report that fails are put back and go with the next
 * one: none is lost, and one written is never added again (a report that
 * commits but whose reply is lost with the connection is the exception: its
 * counts are sent once more).
 *
 * Reports once at start (an idle worker is seen), then on the interval, and
 * once at stop with stopped_at set.
 */
export class StatsReporter {
  private counts = new Map<string, Counts>();
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> | null = null;
  /** Whether a report reached the database since start: until then each report (re)sets started_at. */
  private reported = false;
  private stopped = false;
  private readonly q;
  private readonly host = hostname();

  constructor(
    private readonly db: Database,
    private readonly settings: WorkerSettings,
    /** Jobs running now, for the worker's row. */
    private readonly running: () => number,
    private readonly onError: (error: unknown) => void,
  ) {
    this.q = workerStatsQueries(db.schema);
  }

  /** `n` outcomes (one by default) written for jobs of `queue`. */
  count(queue: string, kind: OutcomeKind, n = 1): void {
    let counts = this.counts.get(queue);
    if (counts === undefined) {
      counts = { succeeded: 0, failed: 0, retried: 0, cancelled: 0 };
      this.counts.set(queue, counts);
    }
    counts[kind] += n;
  }

  /** The first report, then one every interval. */
  async start(): Promise<void> {
    if (this.stopped) return;
    await this.flush(false);
    if (this.stopped) return;
    this.timer = setInterval(() => {
      // One report at a time: a slow one is not overtaken by the next.
      if (this.flushing === null) void this.flush(false);
    }, this.settings.statsIntervalMs);
    this.timer.unref();
  }

  /** The last report, the worker stopped (call once its outcomes are written). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.flushing;
    await this.flush(true);
  }

  private flush(stopping: boolean): Promise<void> {
    const flushing = this.write(stopping).finally(() => {
      if (this.flushing === flushing) this.flushing = null;
    });
    this.flushing = flushing;
    return flushing;
  }

  private async write(stopping: boolean): Promise<void> {
    const taken = this.counts;
    this.counts = new Map();
    const queues = [...taken.keys()];
    const column = (kind: OutcomeKind) => queues.map((queue) => (taken.get(queue) as Counts)[kind]);
    const { id, queues: served, taskNames, concurrency } = this.settings;
    try {
      await this.db.run(this.q.Flush, {
        id,
        host: this.host,
        pid: process.pid,
        queues: served,
        tasks: taskNames,
        concurrency,
        running: this.running(),
        starting: !this.reported,
        stopping,
        countQueues: queues,
        succeeded: column("succeeded"),
        failed: column("failed"),
        retried: column("retried"),
        cancelled: column("cancelled"),
      });
      this.reported = true;
    } catch (error) {
      // Back with what was counted meanwhile, for the next report.
      for (const [queue, counts] of taken) {
        for (const kind of Object.keys(counts) as OutcomeKind[]) {
          this.count(queue, kind, counts[kind]);
        }
      }
      this.onError(error);
    }
  }
}
