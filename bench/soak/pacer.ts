import type { Rota } from "../../src/client.js";
import { nowMs, sleep } from "../time.js";
import { SOAK_QUEUE, SOAK_TASK } from "./load.js";

/** How often the pacer enqueues: every 10 ms, the jobs that came due since. */
export const PACE_MS = 10;

/**
 * A catch-up batch at most this big: under 500, where enqueueMany would
 * switch to COPY, so every batch is the same kind of statement.
 */
const MAX_BATCH = 400;

/**
 * Enqueues `rate` jobs a second from `at` on, paced: every PACE_MS it sends
 * the jobs due by then (rate × elapsed, less those sent) in one enqueueMany,
 * a single INSERT of about rate/100 rows (20 at 2,000 jobs/s). Why batches
 * and not single enqueue calls: the soak is about the tables over time, not
 * the enqueue path, and one commit per job at 2,000 jobs/s would want twice
 * the fsyncs this machine's disk does (about 1,000 a second) and a core of
 * its own; rota groups concurrent single enqueues into one statement anyway,
 * so the database sees batches from a busy application too. A batch waits
 * for the previous one, so a slow commit makes the next batch bigger rather
 * than the rate lower. Each payload carries the time taken right before its
 * batch's call (the workers' latency is measured from it, commit included).
 */
export class Pacer {
  private sent = 0;
  private running = false;
  private loop: Promise<void> | null = null;
  /** Why the pacer stopped on its own (an enqueue failed), if it did. */
  error: unknown = null;

  constructor(
    private readonly rota: Rota,
    private readonly rate: number,
    /** Called after each batch commits: how many, stamped when. */
    private readonly onBatch: (count: number, stampedAt: number) => void,
  ) {}

  start(at: number): void {
    this.running = true;
    this.loop = this.run(at).catch((error: unknown) => {
      this.error = error;
    });
  }

  /** Stops sending; resolves once the batch in flight has committed, rejects if an enqueue failed. */
  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
    if (this.error !== null) throw this.error;
  }

  private async run(at: number): Promise<void> {
    let tick = 0;
    while (this.running) {
      const due = Math.floor(((nowMs() - at) / 1000) * this.rate) - this.sent;
      if (due > 0) {
        const count = Math.min(due, MAX_BATCH);
        const t = nowMs();
        const first = this.sent;
        await this.rota.enqueueMany(
          Array.from({ length: count }, (_, i) => ({
            task: SOAK_TASK,
            payload: { t, i: first + i },
            options: { queue: SOAK_QUEUE },
          })),
        );
        this.sent += count;
        this.onBatch(count, t);
      }
      tick++;
      await sleep(at + tick * PACE_MS - nowMs());
      // Fell behind by more than a tick (a stall): go on from now, not in a burst of ticks.
      if (nowMs() - (at + tick * PACE_MS) > PACE_MS) tick = Math.ceil((nowMs() - at) / PACE_MS);
    }
  }
}
