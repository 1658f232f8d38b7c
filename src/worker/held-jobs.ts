import type { ClaimedRow } from "../db/queries/jobs.js";
import type { BatchHandlerOptions } from "../task.js";
import type { Attempt } from "./attempt.js";

export type { ClaimedRow };

/**
 * The jobs a worker holds, and the rule about them, kept here and nowhere
 * else: **one attempt of a job at a time in a worker, and never more than
 * `concurrency` handlers running.** A batch task's handler takes up to its
 * batch size of jobs in one call, and that call is one handler.
 *
 *   claimed ─▶ buffered ─▶ running ─▶ completing ─▶ (written: no longer held)
 *                 │            └─ settled early (timeout, lease lost): the
 *                 │               slot stays taken until the handler returns
 *                 └─ handed back (stop), cancelled, or lost to a rescue
 *
 * Every held attempt is leased to the worker and renewed by its heartbeat
 * (leasesToRenew). The rule holds because:
 * - a claim passes over every job with an attempt running or completing here
 *   (passOver), and a claim by id is not made for one (mayClaimById);
 * - a job rescued with its attempt refunded and claimed again by this worker
 *   has the same id, attempt and holder as the copy it already had, so the
 *   fence cannot tell them apart: a buffered copy is replaced by the new row,
 *   and a copy that started meanwhile keeps the job (take);
 * - a buffered job starts only while fewer than `concurrency` run and no
 *   attempt of it runs (nextToStart); a running attempt's slot frees only
 *   when its handler returns (finished), however early its outcome was
 *   recorded.
 */
export class HeldJobs {
  private buffer: ClaimedRow[] = [];
  private readonly running = new Map<string, Attempt>();
  /** Attempts whose outcome is with the completer, not yet written: id to attempt. */
  private readonly completing = new Map<string, number>();
  /** Handler calls running: one per single job, one per batch. */
  private handlers = 0;
  /** When each buffered row was taken, for a batch's wait. */
  private readonly heldSince = new WeakMap<ClaimedRow, number>();

  constructor(
    private readonly concurrency: number,
    /**
     * A task's batch options; undefined for a task that takes one job at a
     * time. None given: the worker has no batch task, and the buffer is
     * never scanned for one.
     */
    private readonly batchOf?: (task: string) => BatchHandlerOptions | undefined,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Jobs held: buffered, running, or being recorded. */
  get count(): number {
    return this.buffer.length + this.running.size + this.completing.size;
  }

  /** Attempts whose outcome waits to be written. */
  get completingCount(): number {
    return this.completing.size;
  }

  get buffered(): number {
    return this.buffer.length;
  }

  get runningCount(): number {
    return this.running.size;
  }

  /** Handler slots free now. */
  get freeSlots(): number {
    return this.concurrency - this.handlers;
  }

  /** Jobs a claim must pass over: an attempt of theirs runs here or has its outcome to write. */
  passOver(): string[] {
    return [...this.running.keys(), ...this.completing.keys()];
  }

  /** Whether a wake-up's named job may be claimed by id now. */
  mayClaimById(id: string): boolean {
    return !this.running.has(id) && !this.completing.has(id);
  }

  /** Claimed rows join the buffer (see the rule above for a job claimed again). */
  take(rows: readonly ClaimedRow[]): void {
    if (rows.length === 0) return;
    const taken = rows.filter(
      (r) =>
        this.running.get(r.id)?.row.attempts !== r.attempts &&
        this.completing.get(r.id) !== r.attempts,
    );
    if (this.buffer.length > 0) {
      const fresh = new Set(taken.map((r) => r.id));
      this.buffer = this.buffer.filter((r) => !fresh.has(r.id));
    }
    this.buffer.push(...taken);
    const at = this.now();
    for (const row of taken) this.heldSince.set(row, at);
  }

  /**
   * What starts next in one handler call, taken out of the buffer: one job,
   * or a batch task's ready batch. None while the slots are full.
   */
  nextToStart(): ClaimedRow[] | undefined {
    if (this.handlers >= this.concurrency) return undefined;
    const batchOf = this.batchOf;
    if (batchOf === undefined) {
      // One job at a time: the first not running here already, most often the first.
      const first = this.buffer[0];
      if (first !== undefined && !this.running.has(first.id))
        return [this.buffer.shift() as ClaimedRow];
      const i = this.buffer.findIndex((r) => !this.running.has(r.id));
      return i < 0 ? undefined : this.buffer.splice(i, 1);
    }
    let notReady: Set<string> | undefined;
    for (let i = 0; i < this.buffer.length; i++) {
      const row = this.buffer[i] as ClaimedRow;
      if (this.running.has(row.id) || notReady?.has(row.task)) continue;
      const batch = batchOf(row.task);
      if (batch === undefined) return this.buffer.splice(i, 1);
      const members = this.buffer.filter(
        (r, j) => j >= i && r.task === row.task && !this.running.has(r.id),
      );
      const waited = this.now() - (this.heldSince.get(row) ?? 0);
      if (members.length >= batch.size || waited >= (batch.waitMs ?? 0)) {
        const taking = new Set(members.slice(0, batch.size));
        this.buffer = this.buffer.filter((r) => !taking.has(r));
        return [...taking];
      }
      notReady ??= new Set();
      notReady.add(row.task);
    }
    return undefined;
  }

  /** In how many ms the first partial batch waiting in the buffer is due to start; null when none waits. */
  batchDueInMs(): number | null {
    const batchOf = this.batchOf;
    if (batchOf === undefined) return null;
    let due: number | null = null;
    const seen = new Set<string>();
    for (const row of this.buffer) {
      if (seen.has(row.task)) continue;
      seen.add(row.task);
      const batch = batchOf(row.task);
      if (batch === undefined) continue;
      const ms = (this.heldSince.get(row) ?? 0) + (batch.waitMs ?? 0) - this.now();
      due = due === null ? ms : Math.min(due, ms);
    }
    return due === null ? null : Math.max(0, due);
  }

  /** One handler call started with these attempts (one, or a batch's). */
  started(...attempts: Attempt[]): void {
    this.handlers++;
    for (const attempt of attempts) this.running.set(attempt.row.id, attempt);
  }

  /** The handler call returned: its slot is free. */
  finished(...attempts: Attempt[]): void {
    this.handlers--;
    for (const attempt of attempts) {
      if (this.running.get(attempt.row.id) === attempt) this.running.delete(attempt.row.id);
    }
  }

  runningAttempt(id: string): Attempt | undefined {
    return this.running.get(id);
  }

  runningAttempts(): IterableIterator<Attempt> {
    return this.running.values();
  }

  /** The attempt's outcome went to the completer. */
  completingNow(id: string, attempt: number): void {
    this.completing.set(id, attempt);
  }

  /** The attempt's outcome was written (or given up on): it is no longer held. */
  written(id: string, attempt: number): void {
    if (this.completing.get(id) === attempt) this.completing.delete(id);
  }

  completingIds(): string[] {
    return [...this.completing.keys()];
  }

  /**
   * The leases the heartbeat renews, per job and attempt: buffered, running
   * and not yet settled, and completing. A running attempt already settled is
   * covered by `completing` until written, and holds no lease after that.
   */
  leasesToRenew(): { ids: string[]; attempts: number[] } {
    const ids: string[] = [];
    const attempts: number[] = [];
    const add = (id: string, attempt: number) => {
      ids.push(id);
      attempts.push(attempt);
    };
    for (const row of this.buffer) add(row.id, row.attempts);
    for (const entry of this.running.values()) {
      if (!entry.settled && !entry.leaseLost) add(entry.row.id, entry.row.attempts);
    }
    for (const [id, attempt] of this.completing) add(id, attempt);
    return { ids, attempts };
  }

  /**
   * A renewal missed this attempt: it was rescued from this worker. Returns
   * false when it is no longer held (it settled while the heartbeat was out:
   * done, not lost). Otherwise a buffered copy is dropped and a running one
   * marked as having lost its lease (the caller aborts its handler).
   */
  loseLease(id: string, attempt: number): { lost: boolean; running?: Attempt } {
    if (this.completing.get(id) === attempt) return { lost: false };
    const entry = this.running.get(id);
    const runs =
      entry !== undefined && !entry.settled && !entry.leaseLost && entry.row.attempts === attempt;
    const buffered = this.buffer.some((r) => r.id === id && r.attempts === attempt);
    if (!runs && !buffered) return { lost: false };
    const running = entry?.row.attempts === attempt ? entry : undefined;
    if (running) running.leaseLost = true;
    if (buffered) this.buffer = this.buffer.filter((r) => r.id !== id || r.attempts !== attempt);
    return { lost: true, running };
  }

  /** Takes a buffered job out (it was cancelled before it started). */
  removeBuffered(id: string): ClaimedRow | undefined {
    const row = this.buffer.find((r) => r.id === id);
    if (row !== undefined) this.buffer = this.buffer.filter((r) => r !== row);
    return row;
  }

  /** Takes the buffered jobs of `queue` out (it was paused: they are handed back). */
  removeBufferedOf(queue: string): ClaimedRow[] {
    const rows = this.buffer.filter((r) => r.queue === queue);
    if (rows.length > 0) this.buffer = this.buffer.filter((r) => r.queue !== queue);
    return rows;
  }

  /** Empties the buffer (the worker stops: these never start). */
  releaseBuffer(): ClaimedRow[] {
    const rows = this.buffer;
    this.buffer = [];
    return rows;
  }
}
