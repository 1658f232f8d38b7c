import type { Database } from "../db/database.js";
import type { RotaEventMap, RotaEvents } from "../events.js";
import { jobQueries } from "../queue/job-queries.js";

export interface Success {
  id: string;
  attempt: number;
  /** Keep the row as 'succeeded' (schedule executions stay for their history). */
  keep: boolean;
  /** Emitted once the outcome is written (not if the fence refused it). */
  event: RotaEventMap["job:run:success"];
}

export interface Failure {
  id: string;
  attempt: number;
  /** JSON text: { message, stack, attempt, at } */
  error: string;
  /** Delay before the next attempt; null when no attempt is left. */
  retryMs: number | null;
  cancelled: boolean;
  /** Emitted once the outcome is written (not if the fence refused it). */
  event:
    | { name: "job:run:retry"; payload: RotaEventMap["job:run:retry"] }
    | { name: "job:failed"; payload: RotaEventMap["job:failed"] }
    | { name: "job:cancelled"; payload: RotaEventMap["job:cancelled"] };
}

/**
 * Records finished attempts in batches: whatever finished while the previous
 * batch was being written goes in the next one, so a busy worker spends one
 * round trip on many jobs and an idle one records each job at once (no
 * batching delay). A batch that fails to write is kept and retried; the jobs
 * stay leased (the worker keeps heartbeating them) until it is written.
 */
export class Completer {
  private successes: Success[] = [];
  private failures: Failure[] = [];
  private flushing: Promise<void> | null = null;
  private readonly q;

  constructor(
    private readonly db: Database,
    private readonly events: RotaEvents,
    private readonly workerId: string,
    private readonly keepSucceeded: boolean,
    /** `retried`: some of these were failures written back to wait for their next attempt. */
    private readonly onWritten: (ids: string[], retried: boolean) => void,
    private readonly onWriteError: (error: unknown) => void,
  ) {
    this.q = jobQueries(db.schema);
  }

  /** Ids handed to the completer and not yet written. */
  pendingIds(): string[] {
    return [...this.successes.map((s) => s.id), ...this.failures.map((f) => f.id)];
  }

  succeed(success: Success): void {
    this.successes.push(success);
    this.schedule();
  }

  fail(failure: Failure): void {
    this.failures.push(failure);
    this.schedule();
  }

  /** Resolves once everything handed over so far is written. */
  async drain(): Promise<void> {
    while (this.flushing) await this.flushing;
  }

  private schedule(): void {
    this.flushing ??= this.flushLoop().finally(() => {
      this.flushing = null;
    });
  }

  private async flushLoop(): Promise<void> {
    let failuresInARow = 0;
    while (this.successes.length > 0 || this.failures.length > 0) {
      const successes = this.successes;
      const failures = this.failures;
      this.successes = [];
      this.failures = [];
      // The writes are independent: only the one that failed is retried, so
      // a written outcome is never written twice. Plain jobs are deleted;
      // schedule executions are kept for their history (one more statement,
      // only when a batch holds both).
      const deleted = this.keepSucceeded ? [] : successes.filter((s) => !s.keep);
      const kept = this.keepSucceeded ? successes : successes.filter((s) => s.keep);
      const [wroteDeleted, wroteKept, wroteFailures] = await Promise.allSettled([
        this.writeSuccesses(deleted, false),
        this.writeSuccesses(kept, true),
        this.writeFailures(failures),
      ]);
      const written: string[] = [];
      let error: unknown = null;
      for (const [outcome, items] of [
        [wroteDeleted, deleted],
        [wroteKept, kept],
      ] as const) {
        if (outcome.status === "fulfilled") written.push(...items.map((s) => s.id));
        else {
          this.successes = [...items, ...this.successes];
          error = outcome.reason;
        }
      }
      if (wroteFailures.status === "fulfilled") written.push(...failures.map((f) => f.id));
      else {
        this.failures = [...failures, ...this.failures];
        error = wroteFailures.reason;
      }
      if (written.length > 0) {
        const retried =
          wroteFailures.status === "fulfilled" && failures.some((f) => f.retryMs !== null);
        this.onWritten(written, retried);
      }
      if (error === null) {
        failuresInARow = 0;
        continue;
      }
      // Kept and retried after a pause: a completion is never dropped.
      this.onWriteError(error);
      failuresInARow++;
      await new Promise((r) => setTimeout(r, Math.min(5_000, 50 * 2 ** failuresInARow)));
    }
  }

  private async writeSuccesses(batch: Success[], keep: boolean): Promise<void> {
    if (batch.length === 0) return;
    const result = await this.db.run<{ id: string }>(
      keep ? this.q.CompleteByKeep : this.q.CompleteByDelete,
      [batch.map((s) => s.id), batch.map((s) => s.attempt), this.workerId],
    );
    for (const success of this.accepted(batch, result.rows)) {
      this.events.emit("job:run:success", success.event);
    }
  }

  private async writeFailures(batch: Failure[]): Promise<void> {
    if (batch.length === 0) return;
    const result = await this.db.run<{ id: string }>(this.q.Fail, [
      batch.map((f) => f.id),
      batch.map((f) => f.attempt),
      batch.map((f) => f.error),
      batch.map((f) => f.retryMs),
      batch.map((f) => f.cancelled),
      this.workerId,
    ]);
    for (const failure of this.accepted(batch, result.rows)) {
      const { name, payload } = failure.event;
      (this.events.emit as (n: string, p: unknown) => void)(name, payload);
    }
  }

  /**
   * The items the fence let through. The others were rescued from this worker
   * meanwhile (their lease expired): a 'job:fenced' event says so.
   */
  private accepted<T extends { id: string; attempt: number }>(
    batch: T[],
    written: { id: string }[],
  ): T[] {
    if (written.length === batch.length) return batch;
    const ok = new Set(written.map((r) => r.id));
    for (const item of batch) {
      if (!ok.has(item.id)) {
        this.events.emit("job:fenced", {
          id: item.id,
          attempt: item.attempt,
          workerId: this.workerId,
        });
      }
    }
    return batch.filter((item) => ok.has(item.id));
  }
}
