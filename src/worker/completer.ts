import type { Database } from "../db/database.js";
import { jobQueries } from "../db/queries/jobs.js";
import { isRefusal } from "../db/sqlstate.js";
import { RotaError } from "../errors.js";
import type { RotaEventMap, RotaEvents } from "../events.js";
import type { OutcomeKind } from "./stats-reporter.js";

export interface Success extends Written {
  /** Keep the row as 'succeeded' (schedule executions stay for their history). */
  keep: boolean;
  /** Emitted once the outcome is written (not if the fence refused it). */
  event: RotaEventMap["job:run:success"];
}

export interface Failure extends Written {
  /** JSON text: { message, stack, attempt, worker } (the database adds "at"). */
  error: string;
  /** Delay before the next attempt; null when no attempt is left. */
  retryMs: number | null;
  cancelled: boolean;
  /** Emitted once the outcome is written (not if the fence refused it); a retry's time is the one written. */
  event:
    | { name: "job:run:retry"; payload: Omit<RotaEventMap["job:run:retry"], "retryAt"> }
    | { name: "job:failed"; payload: RotaEventMap["job:failed"] }
    | { name: "job:cancelled"; payload: RotaEventMap["job:cancelled"] };
}

/** One attempt whose outcome was written (or given up on). */
export interface Written {
  id: string;
  attempt: number;
  /** The job's queue: its written outcome is counted there (worker stats). */
  queue: string;
  /**
   * The job's queue when it ran under a concurrency limit: its written
   * outcome frees a slot that other jobs may wait for, and the statement that
   * writes it wakes the queue (null otherwise).
   */
  frees: string | null;
}

/** Times the database may refuse one outcome written alone before it is given up on. */
const REFUSALS_BEFORE_GIVING_UP = 3;

/**
 * Records finished attempts in batches: whatever finished while the previous
 * batch was being written goes in the next one, so a busy worker spends one
 * round trip on many jobs and an idle one records each job at once (no
 * batching delay). A batch that fails to write is kept and retried; the jobs
 * stay leased (the worker keeps heartbeating them) until it is written.
 *
 * A batch the database refuses (bad data, a constraint, a trigger that
 * raised: not a lost connection or a lock timeout) is written again one
 * outcome at a time, so one outcome it
 * cannot take never holds back the others; one refused alone a few times is
 * given up on (reported, and its job left to be rescued when its lease
 * expires) instead of being retried forever.
 */
export class Completer {
  private successes: Success[] = [];
  private failures: Failure[] = [];
  private flushing: Promise<void> | null = null;
  private closed = false;
  /** Times each attempt's outcome was refused when written alone. */
  private readonly refusals = new Map<string, number>();
  private readonly q;

  constructor(
    private readonly db: Database,
    private readonly events: RotaEvents,
    private readonly workerId: string,
    private readonly keepSucceeded: boolean,
    /**
     * Outcomes settled: written, fenced, or given up on. `retried`: some were
     * failures written back to wait for their next attempt.
     */
    private readonly onWritten: (written: Written[], retried: boolean) => void,
    private readonly onWriteError: (error: unknown) => void,
    /** Each outcome the database took (not those the fence refused), once. */
    private readonly onCounted: (queue: string, kind: OutcomeKind) => void = () => {},
  ) {
    this.q = jobQueries(db.schema);
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

  /** Stops writing (the worker is closing); what is not written is left to a rescue. */
  abandon(): void {
    this.closed = true;
    this.successes = [];
    this.failures = [];
  }

  private schedule(): void {
    this.flushing ??= this.flushLoop().finally(() => {
      this.flushing = null;
    });
  }

  private async flushLoop(): Promise<void> {
    let failuresInARow = 0;
    while (!this.closed && (this.successes.length > 0 || this.failures.length > 0)) {
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
      const batches = [
        { items: deleted, write: (b: Success[]) => this.writeSuccesses(b, false) },
        { items: kept, write: (b: Success[]) => this.writeSuccesses(b, true) },
        { items: failures, write: (b: Failure[]) => this.writeFailures(b) },
      ] as const;
      const outcomes = await Promise.allSettled(
        batches.map(({ items, write }) => (write as (b: typeof items) => Promise<void>)(items)),
      );
      const written: Written[] = [];
      let error: unknown = null;
      let retried = false;
      for (const [i, outcome] of outcomes.entries()) {
        const { items, write } = batches[i] as (typeof batches)[number];
        if (outcome.status === "fulfilled") {
          written.push(...items);
          if (items === failures) retried ||= failures.some((f) => f.retryMs !== null);
          continue;
        }
        if (!isRefusal(outcome.reason)) {
          // The connection or a passing state of the server (a restart, a
          // lock timeout), not the outcomes: all of them are tried again.
          this.requeue(items);
          error = outcome.reason;
          continue;
        }
        for (const item of items) {
          const settled = await this.writeAlone(
            item,
            write as (b: (typeof items)[number][]) => Promise<void>,
          );
          if (settled === "requeued") error = outcome.reason;
          else {
            written.push(item);
            if (settled === "written" && "retryMs" in item && item.retryMs !== null) retried = true;
          }
        }
      }
      if (written.length > 0) this.onWritten(written, retried);
      if (error === null) {
        failuresInARow = 0;
        continue;
      }
      // Kept and retried after a pause: a completion is not dropped while
      // the database may yet take it.
      this.onWriteError(error);
      failuresInARow++;
      await new Promise((r) => setTimeout(r, Math.min(5_000, 50 * 2 ** failuresInARow)));
    }
  }

  /**
   * Writes one outcome of a batch the database refused. Returns whether it
   * was written, given up on (refused alone too often), or put back.
   */
  private async writeAlone<T extends Success | Failure>(
    item: T,
    write: (batch: T[]) => Promise<void>,
  ): Promise<"written" | "given up" | "requeued"> {
    const key = `${item.id}/${item.attempt}`;
    try {
      await write([item]);
      this.refusals.delete(key);
      return "written";
    } catch (error) {
      const refused = (this.refusals.get(key) ?? 0) + 1;
      if (!isRefusal(error) || refused < REFUSALS_BEFORE_GIVING_UP) {
        if (isRefusal(error)) this.refusals.set(key, refused);
        this.requeue([item]);
        return "requeued";
      }
      this.refusals.delete(key);
      this.onWriteError(
        new RotaError(
          "OUTCOME_NOT_WRITTEN",
          `The database refused the outcome of job ${item.id} (attempt ${item.attempt}) ${refused} times: ${(error as Error).message}. It is left running; it is rescued once its lease expires.`,
          { cause: error, details: { id: item.id, attempt: item.attempt } },
        ),
      );
      return "given up";
    }
  }

  private requeue(items: readonly (Success | Failure)[]): void {
    for (const item of items) {
      if ("retryMs" in item) this.failures.push(item);
      else this.successes.push(item);
    }
  }

  private async writeSuccesses(batch: Success[], keep: boolean): Promise<void> {
    if (batch.length === 0) return;
    const result = await this.db.run(keep ? this.q.CompleteByKeep : this.q.CompleteByDelete, {
      ids: batch.map((s) => s.id),
      attempts: batch.map((s) => s.attempt),
      workerId: this.workerId,
      wake: freedQueues(batch),
    });
    for (const success of this.accepted(batch, result.rows)) {
      this.onCounted(success.queue, "succeeded");
      this.events.emit("job:run:success", success.event);
    }
  }

  private async writeFailures(batch: Failure[]): Promise<void> {
    if (batch.length === 0) return;
    const result = await this.db.run(this.q.Fail, {
      ids: batch.map((f) => f.id),
      attempts: batch.map((f) => f.attempt),
      errors: batch.map((f) => f.error),
      retryMs: batch.map((f) => f.retryMs),
      cancelled: batch.map((f) => f.cancelled),
      workerId: this.workerId,
      wake: freedQueues(batch),
    });
    const rows = new Map(result.rows.map((row) => [row.id, row]));
    for (const failure of this.accepted(batch, result.rows)) {
      const row = rows.get(failure.id);
      this.onCounted(failure.queue, outcomeKind(row?.state));
      const { name, payload } = failure.event;
      if (row?.state === "cancelled" && name !== "job:cancelled") {
        // A cancel request the worker had not heard of: written as cancelled.
        this.events.emit("job:cancelled", { id: failure.id, previousState: "running" });
        continue;
      }
      // A retry's time as written, by the database clock.
      const event = name === "job:run:retry" ? { ...payload, retryAt: row?.run_at } : payload;
      (this.events.emit as (n: string, p: unknown) => void)(name, event);
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

/** What a failure written as `state` counts as: failed for good, cancelled, or retried. */
function outcomeKind(state: string | undefined): OutcomeKind {
  return state === "failed" || state === "cancelled" ? state : "retried";
}

/** The queues whose limited slots a batch's outcomes free (Written.frees), once each. */
function freedQueues(batch: readonly Written[]): string[] {
  const queues: string[] = [];
  for (const { frees } of batch) if (frees !== null && !queues.includes(frees)) queues.push(frees);
  return queues;
}
