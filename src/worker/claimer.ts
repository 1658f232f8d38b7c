import type { Database } from "../db/database.js";
import { type ClaimRow, jobQueries } from "../db/queries/jobs.js";
import { isConcurrencyRace } from "../db/sqlstate.js";
import type { RotaEvents } from "../events.js";
import { ClaimTimer } from "./claim-timer.js";
import type { ClaimedRow, HeldJobs } from "./held-jobs.js";
import type { WorkerSettings } from "./worker-options.js";

/** What the claimer needs from its worker. */
export interface ClaimerEnvironment {
  /** The claim's own connection (one, with a cached generic plan). */
  claimDb: Database;
  /** The worker's bookkeeping connections (NextDue). */
  db: Database;
  events: RotaEvents;
  /** The worker has telemetry on: claims bring each job's trace context. */
  traced: boolean;
  /** Whether the worker still runs (claims stop when it stops). */
  running(): boolean;
  /** Whether LISTEN works (the idle poll is longer then). */
  listening(): boolean;
  /** Starts what it can of the buffer. */
  startBuffered(): void;
  /** Hands back the buffered jobs of these queues (paused while a claim was in flight). */
  handBackQueues(queues: readonly string[]): void;
  reportError(during: string, error: unknown): void;
}

/**
 * Keeps a worker's HeldJobs topped up with claimed jobs (River calls this
 * the producer). One claim statement in flight at a time. It tops the held jobs up
 * to `jobSlots + prefetch` when the buffer runs low (half the prefetch, at
 * least `jobSlots`: the concurrency, times the largest batch size of its
 * tasks). Two kinds of reasons ask for a claim:
 * - something may have brought jobs (a wake-up for one of its queues, the
 *   timer, a rescue, a written retry, LISTEN back): claimSoon(), which claims
 *   even when the last claim found the queues empty;
 * - room freed up (a handler returned, an outcome was written):
 *   claimForRoom(), which does not claim while the last claim found the
 *   queues empty ("found empty") or a claim is in flight.
 * A wake-up that names one job (a lone enqueue) lets an idle worker start
 * that job through its primary key first (ClaimOne); one that says the
 * queue's new jobs are due later ("<queue> +<ms>") only sets the timer for
 * then. The prefetch adapts: it doubles (up to `maxPrefetch`) when a full
 * claim comes back to runners that sat idle waiting for it, and halves back
 * toward `prefetch` when a claim comes back to a buffer that still held a
 * round of work. An empty claim asks the database when the next queued job
 * is due and sleeps until then (at most `pollIntervalMs`); while LISTEN is
 * down it polls every `fallbackPollMs`. A claim that fails (the database
 * unreachable, most often) is tried again after max(fallbackPollMs, 1 s),
 * doubling per failure in a row up to CLAIM_RETRY_MAX_MS, so an outage costs
 * a claim every few seconds, not a tight loop; LISTEN coming back claims at
 * once.
 */
export class Claimer {
  /** The current prefetch, between the settings' prefetchFloor and prefetchCap. */
  private prefetchNow: number;
  /** Set when runners sat idle for want of jobs while a claim was in flight. */
  private starved = false;
  private readonly q;
  private readonly timer: ClaimTimer;
  private claiming: Promise<void> | null = null;
  private claimAgain = false;
  /**
   * The last claim found nothing: the queues are empty for this worker, so
   * room that frees up does not claim again (claimForRoom); whatever may
   * have brought jobs does (claimSoon).
   */
  private foundEmpty = false;
  /** A job a wake-up named, to be claimed by id when this worker sits idle (ClaimOne). */
  private namedJob: string | null = null;
  private claimCount = 0;
  private claimOneCount = 0;
  /** Claim statements failed in a row (0 once one returns). */
  private failuresInARow = 0;
  private lastClaimAt: Date | null = null;
  private lastClaimError: { error: unknown; at: Date } | null = null;
  /** The pause before claiming again a due job another transaction holds (see sleepUntilNextDue). */
  private lockedBackoffMs = LOCKED_BACKOFF_MIN_MS;
  /**
   * From a claim statement's start until its rows are taken (null at any
   * other time): the queues paused meanwhile (see queuePaused).
   */
  private pausedDuringStatement: string[] | null = null;

  constructor(
    private readonly settings: WorkerSettings,
    private readonly held: HeldJobs,
    private readonly env: ClaimerEnvironment,
  ) {
    this.prefetchNow = settings.prefetchFloor;
    this.q = jobQueries(env.db.schema);
    this.timer = new ClaimTimer(() => this.claimSoon());
  }

  /** Claim statements run so far. */
  get claims(): number {
    return this.claimCount;
  }

  /** Jobs claimed by id from a wake-up that named them (ClaimOne), so far. */
  get claimedById(): number {
    return this.claimOneCount;
  }

  get prefetch(): number {
    return this.prefetchNow;
  }

  /** When a claim last returned, the last one that failed, and how many failed in a row since. */
  get record(): {
    lastClaimAt: Date | null;
    lastClaimError: { error: unknown; at: Date } | null;
    failuresInARow: number;
  } {
    return {
      lastClaimAt: this.lastClaimAt,
      lastClaimError: this.lastClaimError,
      failuresInARow: this.failuresInARow,
    };
  }

  /**
   * LISTEN was lost: notifications may have been missed, so claim soon,
   * unless claims are failing already (the database is unreachable: the
   * retry after the last failure comes in its time).
   */
  listenLost(): void {
    if (this.failuresInARow === 0) this.pollIn(this.settings.fallbackPollMs);
  }

  /** The claim in flight, if any. */
  get inFlight(): Promise<void> | null {
    return this.claiming;
  }

  /** True while the last claim found the queues empty, no claim is in flight, and nothing has asked for one since. */
  get idle(): boolean {
    return this.foundEmpty && this.claiming === null;
  }

  /** Jobs a claim may top the worker up to. */
  private get capacity(): number {
    return this.settings.jobSlots + this.prefetchNow;
  }

  /** Claim again once the buffer is down to this. */
  private get lowWater(): number {
    return Math.max(this.settings.jobSlots, Math.floor(this.prefetchNow / 2));
  }

  /** A wake-up named a job of one of this worker's queues, due now. */
  named(jobId: string): void {
    this.namedJob = jobId;
  }

  /** Room freed up (a handler returned): claim when the buffer ran low. */
  roomFreed(): void {
    if (this.held.buffered <= this.lowWater) this.claimForRoom();
  }

  /** The buffer ran dry while a claim was out: the runners waited for it. */
  noteStarved(): void {
    if (this.claiming) this.starved = true;
  }

  /**
   * A wake-up said `queue` was paused. A claim statement in flight read the
   * queue before the pause and may bring jobs of it: they are handed back as
   * it returns. Later claims pass the queue over by themselves.
   */
  queuePaused(queue: string): void {
    if (this.pausedDuringStatement !== null) this.pausedDuringStatement.push(queue);
  }

  /** No more claims by timer (the worker stops). */
  stopTimer(): void {
    this.timer.clear();
  }

  /**
   * A claim for room that freed up (a slot, a written outcome), unless the
   * queues were found empty or a claim is in flight: the loop claims again
   * after a full claim, and a short one is followed by a claim when the next
   * room frees.
   */
  claimForRoom(): void {
    if (!this.foundEmpty && !this.claiming) this.claimSoon();
  }

  /**
   * A claim now, or once the one in flight returns. Called for what may have
   * brought jobs (a wake-up, the timer, a rescue, LISTEN back), so the
   * queues are no longer taken to be empty.
   */
  claimSoon(): void {
    this.foundEmpty = false;
    if (!this.env.running()) return;
    if (this.claiming) {
      this.claimAgain = true;
      return;
    }
    this.claiming = this.claimLoop().finally(() => {
      this.claiming = null;
    });
  }

  private async claimLoop(): Promise<void> {
    const { queues, taskNames, leaseMs, fallbackPollMs } = this.settings;
    do {
      this.claimAgain = false;
      const named = this.namedJob;
      this.namedJob = null;
      if (
        named !== null &&
        this.env.running() &&
        this.held.buffered === 0 &&
        this.held.freeSlots > 0
      ) {
        // Idle, and a lone enqueue named its job: start it through its
        // primary key first, then claim as usual for the other free slots.
        await this.claimOne(named);
      }
      // Top up only when the buffer is running low, so claims come in batches.
      // Outcomes still being written count only beyond a capacity's worth
      // (docs/claiming.md, "Buffer"): with fast jobs nearly all held jobs wait
      // for their write, and counted whole they starved the claims.
      const room =
        this.capacity -
        this.held.buffered -
        this.held.runningCount -
        Math.max(0, this.held.completingCount - this.capacity);
      if (room <= 0 || this.held.buffered > this.lowWater || !this.env.running()) return;
      let rows: ClaimedRow[];
      let claimed: number;
      let putBack: boolean;
      let summary: ClaimRow | undefined;
      this.starved = false;
      try {
        this.claimCount++;
        // This claim takes any job a wake-up named before it.
        this.namedJob = null;
        this.pausedDuringStatement = [];
        const result = await this.env.claimDb.run(this.q.Claim, {
          queues,
          tasks: taskNames,
          limit: room,
          workerId: this.settings.id,
          leaseMs,
          traced: this.env.traced,
          // The rows that start at once (the buffer starts first); the rest
          // wait in the buffer and are marked started when they leave it.
          // A batch task's rows may wait for their batch to fill: all of a
          // worker with batch tasks are marked when they leave the buffer.
          startNow: this.settings.batches
            ? 0
            : Math.max(0, this.held.freeSlots - this.held.buffered),
          passOver: this.held.passOver(),
        });
        this.lastClaimAt = new Date();
        this.failuresInARow = 0;
        const claimedRows = result.rows.filter(
          (row): row is ClaimRow & ClaimedRow => row.id !== null,
        );
        summary = result.rows[0];
        this.noteLimits(summary);
        claimed = claimedRows.length;
        putBack = claimedRows.some((row) => row.state === "scheduled");
        rows = this.runnable(claimedRows);
      } catch (error) {
        this.pausedDuringStatement = null;
        if (isConcurrencyRace(error)) {
          // Another claim started a job with the same concurrency key at the
          // same moment; claiming again sees it running.
          this.claimAgain = true;
          continue;
        }
        this.failuresInARow++;
        this.lastClaimError = { error, at: new Date() };
        this.env.reportError("claim", error);
        const first = Math.max(fallbackPollMs, 1_000);
        this.pollIn(
          Math.min(
            Math.max(first, CLAIM_RETRY_MAX_MS),
            first * 2 ** Math.min(this.failuresInARow - 1, 10),
          ),
        );
        return;
      }
      if (!this.env.running()) {
        // stop() began while the claim was in flight: these never start.
        this.takeClaimed(rows);
        return;
      }
      // Only an empty claim: a short one may have been cut by rows another
      // worker's claim held locked at that moment, with more still waiting.
      // Nor one that put limited work off for want of a free slot: room that
      // frees claims it (claimForRoom).
      const deferred = (summary?.deferred ?? 0) > 0;
      this.foundEmpty = claimed === 0 && !deferred;
      this.adaptPrefetch(claimed === room);
      if (claimed > 0) this.lockedBackoffMs = LOCKED_BACKOFF_MIN_MS;
      this.takeClaimed(rows);
      // Not roomFreed: that would mark this loop to claim again at once
      // after every claim, an idle worker claiming in a tight loop.
      this.env.startBuffered();
      // A full claim, or one that started jobs of a key and held back others
      // of it (they took candidates' places): claim again; the next claim
      // passes over the keys now at their limit.
      if (claimed === room || (claimed > 0 && (summary?.held_by_key ?? 0) > 0))
        this.claimAgain = true;
      else if (deferred) this.pollIn(this.idlePollMs());
      // Nothing found, or some executions put back to wait (overlap 'queue'):
      // sleep until the next one is due rather than a whole poll interval.
      else if (rows.length === 0 || putBack) await this.sleepUntilNextDue();
      else this.pollIn(this.idlePollMs());
    } while (this.claimAgain);
  }

  /**
   * What the limits held back, announced (claim:limited). Nothing more: the
   * worker that frees a slot wakes the queue (the statement writing its outcome), and a
   * claim held back waits for that, as after an empty claim.
   */
  private noteLimits(row: ClaimRow | undefined): void {
    const heldByKey = row?.held_by_key ?? 0;
    const queuesAtLimit = row?.queues_at_limit ?? [];
    if (heldByKey === 0 && queuesAtLimit.length === 0) return;
    if (this.env.events.wants("claim:limited")) {
      this.env.events.emit("claim:limited", {
        workerId: this.settings.id,
        heldByKey,
        queuesAtLimit,
      });
    }
  }

  /** ClaimOne: the named job, if it is still there for this worker; started at once. */
  private async claimOne(jobId: string): Promise<void> {
    if (!this.held.mayClaimById(jobId)) return;
    const { queues, taskNames, leaseMs } = this.settings;
    let row: ClaimedRow | undefined;
    try {
      this.pausedDuringStatement = [];
      const result = await this.env.claimDb.run(this.q.ClaimOne, {
        id: jobId,
        queues,
        tasks: taskNames,
        workerId: this.settings.id,
        leaseMs,
        traced: this.env.traced,
      });
      row = result.rows[0];
    } catch (error) {
      this.pausedDuringStatement = null;
      // The usual claim that follows takes the job if it is still there.
      this.env.reportError("claim", error);
      return;
    }
    if (row === undefined) {
      this.pausedDuringStatement = null;
      return;
    }
    this.claimOneCount++;
    this.takeClaimed([row]);
    // stop() may have begun meanwhile: then the job is handed back with the buffer.
    if (this.env.running()) this.env.startBuffered();
  }

  /** Claimed rows join the buffer; those of a queue paused meanwhile go back. */
  private takeClaimed(rows: ClaimedRow[]): void {
    this.held.take(rows);
    const paused = this.pausedDuringStatement;
    this.pausedDuringStatement = null;
    if (paused !== null && paused.length > 0) this.env.handBackQueues(paused);
  }

  /**
   * The claimed rows that run. A claim may also settle schedule executions
   * without running them (past their deadline: 'missed'; overlap 'skip':
   * 'skipped'), or put one back (overlap 'queue'); those are reported here.
   */
  private runnable(rows: ClaimedRow[]): ClaimedRow[] {
    const started: ClaimedRow[] = [];
    for (const row of rows) {
      if (row.state === "running") {
        started.push(row);
        if (
          row.schedule_id !== null &&
          row.claimed_at !== null &&
          this.env.events.wants("schedule:execution:fired")
        ) {
          this.env.events.emit("schedule:execution:fired", {
            scheduleId: row.schedule_id,
            executionId: row.id,
            occurrenceAt: row.occurrence_at,
            runAt: row.run_at,
            // Both times come from the database clock.
            lateMs: row.claimed_at.getTime() - row.run_at.getTime(),
          });
        }
        continue;
      }
      const ref = {
        scheduleId: row.schedule_id ?? "",
        executionId: row.id,
        occurrenceAt: row.occurrence_at,
      };
      if (row.state === "missed")
        this.env.events.emit("schedule:execution:missed", { ...ref, count: 1 });
      else if (row.state === "skipped")
        this.env.events.emit("schedule:execution:skipped", { ...ref, reason: "overlap" });
    }
    return started;
  }

  /**
   * Grows the prefetch when a full claim came back to runners that had run
   * dry (the handlers outpace the claims), and shrinks it when a claim came
   * back to a buffer still holding a full round of work (it was not needed).
   */
  private adaptPrefetch(full: boolean): void {
    const { prefetchFloor, prefetchCap, jobSlots } = this.settings;
    if (!full) {
      // The queue ran dry: a grown prefetch has nothing left to serve, and
      // the next jobs may be slow ones that must not be hoarded.
      this.prefetchNow = prefetchFloor;
    } else if (this.starved) {
      this.prefetchNow = Math.min(prefetchCap, Math.max(1, this.prefetchNow * 2));
    } else if (this.held.buffered >= jobSlots) {
      this.prefetchNow = Math.max(prefetchFloor, Math.floor(this.prefetchNow / 2));
    }
  }

  private idlePollMs(): number {
    const { pollIntervalMs, fallbackPollMs } = this.settings;
    return this.env.listening() ? pollIntervalMs : fallbackPollMs;
  }

  private async sleepUntilNextDue(): Promise<void> {
    let wait = this.idlePollMs();
    try {
      const result = await this.env.db.run(this.q.NextDue, {
        queues: this.settings.queues,
        tasks: this.settings.taskNames,
      });
      const dueIn = result.rows[0]?.due_in_ms;
      if (dueIn !== null && dueIn !== undefined)
        wait = Math.max(0, Math.min(wait, Math.ceil(Number(dueIn))));
    } catch (error) {
      this.env.reportError("poll", error);
    }
    if (wait === 0) {
      // The claim found nothing although a job is due: another transaction
      // holds it locked (a claim, a cancel, a caller's own transaction).
      // Claim again after a short pause that grows, not in a tight loop.
      wait = this.lockedBackoffMs;
      this.lockedBackoffMs = Math.min(this.idlePollMs(), this.lockedBackoffMs * 2);
    } else {
      this.lockedBackoffMs = LOCKED_BACKOFF_MIN_MS;
    }
    this.timer.noteDueAt(performance.now() + wait);
    this.pollIn(wait);
  }

  /**
   * A wake-up said this worker's queues have jobs due in `ms`: claim then.
   * While a claim is in flight its loop sets the next wake-up itself, and
   * that heeds this time (the timer keeps the earliest).
   */
  wakeIn(ms: number): void {
    this.timer.noteDueAt(performance.now() + ms);
    if (this.claiming || !this.env.running()) return;
    this.pollIn(Math.max(0, this.timer.remaining() ?? this.idlePollMs()));
  }

  /** Claims after `ms`, or sooner when a job is known to come due before that. */
  pollIn(ms: number): void {
    if (this.env.running()) this.timer.set(ms);
  }
}

/** The longest pause between claims that fail in a row (see Claimer). */
const CLAIM_RETRY_MAX_MS = 5_000;
/** The first pause before claiming again a due job that another transaction holds. */
const LOCKED_BACKOFF_MIN_MS = 5;
