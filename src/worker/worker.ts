import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { validateCount, validateMillis } from "../config.js";
import type { Database } from "../db/database.js";
import { describeThrown, RotaError } from "../errors.js";
import type { RotaEvents } from "../events.js";
import { type BackoffPolicy, backoffDelay } from "../queue/backoff.js";
import { DEFAULT_QUEUE, validateQueueName } from "../queue/job-options.js";
import { jobQueries } from "../queue/job-queries.js";
import { rescueExpiredJobs } from "../queue/rescue.js";
import { pruneFinishedJobs, type RetentionOptions, resolveRetention } from "../queue/retention.js";
import { normalizeTasks, type TaskDefinition, type TaskList, validatePayload } from "../task.js";
import { Completer, type Failure } from "./completer.js";
import {
  childLogger,
  consoleLogger,
  type JobContext,
  type JobInfo,
  type Logger,
} from "./job-context.js";
import { Listener } from "./listener.js";

/**
 * The worker: claims jobs, runs their handlers, records the outcome.
 *
 *   claim (batch, SKIP LOCKED) ─▶ local buffer ─▶ run (≤ concurrency) ─▶ completer (batched)
 *        ▲ woken by NOTIFY, or by a poll timer          │ heartbeat renews every held lease
 *
 * Claiming: one claim statement in flight at a time. It tops the held jobs up
 * to `concurrency + prefetch` when the buffer runs low (half the prefetch,
 * at least `concurrency`) unless the last claim found the queues empty
 * ("drained"), when a NOTIFY for one of its queues arrives, or when the poll
 * timer fires. A NOTIFY that names one job (a lone enqueue) lets an idle
 * worker start that job through its primary key first (ClaimOne); one that
 * says the queue's new jobs are due later ("<queue> +<ms>") only sets the
 * timer for then. The prefetch adapts: it doubles (up to
 * `maxPrefetch`) when a full claim comes back to runners that sat idle
 * waiting for it, and halves back toward `prefetch` when a claim comes back
 * to a buffer that still held a round of work. An empty claim asks the
 * database when the next queued job is due and sleeps until then (at most
 * `pollIntervalMs`); while LISTEN is down it polls every `fallbackPollMs`.
 *
 * Leases: every claimed job (buffered, running, or waiting for its outcome to
 * be written) is renewed every `heartbeatMs`. A job missing from the renewal
 * was rescued from this worker: its handler's signal is aborted and its
 * outcome is refused by the completion fence.
 *
 * Stopping: stop claiming, hand buffered jobs back at once, let running jobs
 * finish for `gracefulStopMs`, then abort their signals; jobs still running
 * after that are recorded as failed attempts so they are retried elsewhere.
 */
export interface WorkerOptions {
  /** Task definitions, or a map of task name to handler (or definition). */
  tasks: TaskList;
  /** Queues to serve; default the tasks' queues, or ["default"]. */
  queues?: string[];
  /** Handlers running at once; default 10. */
  concurrency?: number;
  /**
   * Extra jobs claimed ahead and held in the local buffer, at least; default 3
   * × concurrency. The buffer is handed back at once on a graceful stop.
   */
  prefetch?: number;
  /**
   * The most the buffer grows to. When handlers finish faster than a claim
   * comes back (the runners sit idle waiting for it), the worker doubles its
   * prefetch, up to this; when the buffer is not needed it halves back
   * toward `prefetch`, so slow jobs are never hoarded. Default
   * max(prefetch, min(1000, 50 × concurrency)).
   */
  maxPrefetch?: number;
  /** Lease length; a job whose worker stops heartbeating is rescued after this. Default 30 s. */
  leaseMs?: number;
  /** Default leaseMs / 3. */
  heartbeatMs?: number;
  /** Longest sleep between polls while LISTEN works; default 2 s. */
  pollIntervalMs?: number;
  /** Poll interval while LISTEN is unavailable; default 250 ms. */
  fallbackPollMs?: number;
  /** Use LISTEN/NOTIFY wake-ups; default true. */
  listen?: boolean;
  /** How long stop() lets running jobs finish before aborting them; default 10 s. */
  gracefulStopMs?: number;
  /** Also rescue expired leases (of any worker) every this many ms; 0 disables. Default leaseMs. */
  rescueIntervalMs?: number;
  /**
   * How long finished jobs stay (see RetentionOptions); default the Rota's
   * `retention`. Succeeded jobs are deleted on completion unless
   * succeededMs > 0; on each rescue tick the worker also prunes the whole
   * table's finished jobs past this retention, so every process should be
   * given the same.
   */
  retention?: RetentionOptions;
  /** Stop gracefully on SIGINT/SIGTERM; default false (the CLI turns it on). */
  handleSignals?: boolean;
  workerId?: string;
  logger?: Logger;
}

interface ClaimedRow {
  id: string;
  /** 'running', or what the claim made of a schedule execution it did not start. */
  state: string;
  queue: string;
  task: string;
  payload: unknown;
  priority: number;
  run_at: Date;
  attempts: number;
  max_attempts: number;
  backoff: BackoffPolicy | null;
  timeout_ms: number | null;
  created_at: Date;
  unique_key: string | null;
  schedule_id: string | null;
  target_key: string | null;
  occurrence_at: Date | null;
  /** Null for a job claimed into the buffer: its start is recorded when it comes (MarkStarted). */
  started_at: Date | null;
  claimed_at: Date;
}

interface Running {
  row: ClaimedRow;
  controller: AbortController;
  /** Set once the outcome was handed to the completer (a timeout may do it early). */
  settled: boolean;
  /** Set when a heartbeat found the job rescued from this worker: no lease left to renew. */
  leaseLost: boolean;
  /** Set when the attempt timed out while the handler kept running. */
  timedOut: boolean;
  done: Promise<void>;
}

export class Worker {
  readonly id: string;
  private readonly tasks: Map<string, TaskDefinition>;
  private readonly queues: string[];
  private readonly taskNames: string[];
  private readonly concurrency: number;
  private readonly prefetchFloor: number;
  private readonly prefetchCap: number;
  /** The current prefetch, between prefetchFloor and prefetchCap (see maxPrefetch). */
  private prefetchNow: number;
  /** Set when runners sat idle for want of jobs while a claim was in flight. */
  private starved = false;
  private readonly leaseMs: number;
  private readonly heartbeatMs: number;
  private readonly pollIntervalMs: number;
  private readonly fallbackPollMs: number;
  private readonly gracefulStopMs: number;
  private readonly rescueIntervalMs: number;
  private readonly useListen: boolean;
  private readonly handleSignals: boolean;
  private readonly logger: Logger;
  private readonly q;
  private readonly completer: Completer;
  private readonly listener: Listener | null;
  private readonly retention: Required<RetentionOptions>;

  private buffer: ClaimedRow[] = [];
  private readonly running = new Map<string, Running>();
  /** Jobs whose outcome is with the completer, not yet written: id to attempt. */
  private readonly completing = new Map<string, number>();
  private claiming: Promise<void> | null = null;
  private claimAgain = false;
  /**
   * The last claim found nothing: the queues are empty for this worker, so a
   * freed slot or a written outcome does not claim again (topUp); a wake-up,
   * a poll, a rescue, or a retry it scheduled does.
   */
  private drained = false;
  /** A job a wake-up named, to be claimed by id when this worker sits idle (ClaimOne). */
  private namedJob: string | null = null;
  private pollTimer: NodeJS.Timeout | null = null;
  private claimCount = 0;
  private claimOneCount = 0;
  private starting: string[] = [];
  private startTimer: NodeJS.Timeout | null = null;
  private recordingStarts: Promise<void> | null = null;
  /** The pause before claiming again a due job another transaction holds (see sleepUntilNextDue). */
  private lockedBackoffMs = LOCKED_BACKOFF_MIN_MS;
  /** When the next scheduled job is due (process clock), as last asked of the database or announced by a wake-up. */
  private nextDueAt: number | null = null;
  /** When the poll timer fires (performance.now() time), while it is set. */
  private pollAt: number | null = null;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private rescueTimer: NodeJS.Timeout | null = null;
  private state: "new" | "running" | "stopping" | "stopped" = "new";
  private stopPromise: Promise<void> | null = null;
  private readonly onSignal = () => void this.stop();

  /**
   * The worker's own connections. Its bookkeeping (claim, heartbeat,
   * completion, failure) commits with synchronous_commit off: a database
   * crash can then forget the last moments of bookkeeping, which only makes a
   * job run again (its lease expires and it is rescued), never lose one.
   * Enqueues keep full durability on the caller's connections.
   */
  private readonly db: Database;
  /** The claim's own connection (see the constructor). */
  private readonly claimDb: Database;

  constructor(
    parentDb: Database,
    private readonly events: RotaEvents,
    options: WorkerOptions,
  ) {
    if (!options || typeof options !== "object" || !options.tasks) {
      throw new RotaError(
        "INVALID_OPTION",
        "worker() needs { tasks }: task definitions or a map of name to handler.",
        {
          details: { field: "tasks" },
        },
      );
    }
    this.tasks = normalizeTasks(options.tasks);
    if (this.tasks.size === 0) {
      throw new RotaError("INVALID_OPTION", "worker() was given no tasks.", {
        details: { field: "tasks" },
      });
    }
    this.taskNames = [...this.tasks.keys()];
    const taskQueues = [...new Set([...this.tasks.values()].map((t) => t.queue ?? DEFAULT_QUEUE))];
    this.queues = (options.queues ?? taskQueues).map((q) => validateQueueName(q, "queues"));
    if (this.queues.length === 0) {
      throw new RotaError("INVALID_OPTION", "worker() needs at least one queue.", {
        details: { field: "queues" },
      });
    }
    this.concurrency = validateCount("concurrency", options.concurrency ?? 10);
    this.prefetchFloor = validateCount("prefetch", options.prefetch ?? 3 * this.concurrency, 0);
    this.prefetchCap = Math.max(
      this.prefetchFloor,
      validateCount(
        "maxPrefetch",
        options.maxPrefetch ?? Math.min(1_000, 50 * this.concurrency),
        0,
      ),
    );
    this.prefetchNow = this.prefetchFloor;
    this.leaseMs = validateMillis("leaseMs", options.leaseMs ?? 30_000, 100);
    this.heartbeatMs = validateMillis(
      "heartbeatMs",
      options.heartbeatMs ?? Math.floor(this.leaseMs / 3),
      10,
    );
    if (this.heartbeatMs >= this.leaseMs) {
      throw new RotaError(
        "INVALID_OPTION",
        "heartbeatMs must be shorter than leaseMs (a third of it is usual).",
        {
          details: { field: "heartbeatMs" },
        },
      );
    }
    this.pollIntervalMs = validateMillis("pollIntervalMs", options.pollIntervalMs ?? 2_000, 1);
    this.fallbackPollMs = validateMillis("fallbackPollMs", options.fallbackPollMs ?? 250, 1);
    this.gracefulStopMs = validateMillis("gracefulStopMs", options.gracefulStopMs ?? 10_000);
    this.rescueIntervalMs = validateMillis(
      "rescueIntervalMs",
      options.rescueIntervalMs ?? this.leaseMs,
    );
    this.useListen = options.listen ?? true;
    this.handleSignals = options.handleSignals ?? false;
    const retention = resolveRetention(options.retention);
    this.retention = retention;
    this.id = options.workerId ?? `${hostname()}:${process.pid}:${randomBytes(3).toString("hex")}`;
    this.logger = childLogger(options.logger ?? consoleLogger, { worker: this.id });
    this.db = parentDb.derive({
      poolSize: 4,
      settings: { synchronous_commit: "off" },
      applicationName: "rota worker",
    });
    // Claims run one at a time on a connection of their own that keeps one
    // cached plan: PostgreSQL otherwise re-plans the claim every time (about
    // 0.5 ms of planning for 0.25 ms of execution), which is most of the
    // time between a job's NOTIFY and its start.
    this.claimDb = parentDb.derive({
      poolSize: 1,
      settings: { synchronous_commit: "off", plan_cache_mode: "force_generic_plan" },
      applicationName: "rota worker claims",
    });
    const db = this.db;
    this.q = jobQueries(db.schema);
    this.completer = new Completer(
      db,
      events,
      this.id,
      retention.succeededMs > 0,
      (written, retried) => {
        for (const { id, attempt } of written) {
          if (this.completing.get(id) === attempt) this.completing.delete(id);
        }
        // A retry waits in the table now: claim, so the worker finds it
        // (due, or not yet: then it sleeps until it is, NextDue).
        if (retried) this.fill();
        else this.topUp();
      },
      (error) => this.reportError("completion", error),
    );
    this.listener = this.useListen
      ? new Listener(db, {
          onJobs: ({ queue, jobId, dueInMs }) => {
            if (queue !== "*" && !this.queues.includes(queue)) return;
            // Jobs due later: no claim now, only a timer for when they are.
            if (dueInMs > 0) {
              this.wakeIn(dueInMs);
              return;
            }
            // Taken by id when the claim loop next finds this worker idle;
            // other jobs, and a named one a claim took first, go as usual.
            if (jobId !== null) this.namedJob = jobId;
            this.fill();
          },
          onCancel: (jobId) => this.cancelHeld(jobId),
          onStatus: (listening, error) => {
            if (!listening && this.state === "running") {
              this.events.emit("worker:listen:lost", { workerId: this.id, error });
              this.schedulePoll(this.fallbackPollMs);
            }
            if (listening) this.fill();
          },
        })
      : null;
  }

  /** Claim statements run so far (an idle worker runs about one per poll interval). */
  get claims(): number {
    return this.claimCount;
  }

  /**
   * True while the last claim found the queues empty, no claim is in flight,
   * and nothing has woken the worker since.
   */
  get idle(): boolean {
    return this.drained && this.claiming === null;
  }

  /** Jobs claimed by id from a wake-up that named them (ClaimOne), so far. */
  get claimedById(): number {
    return this.claimOneCount;
  }

  /** The current prefetch (it adapts between `prefetch` and `maxPrefetch`). */
  get prefetch(): number {
    return this.prefetchNow;
  }

  /** Jobs a claim may top the worker up to. */
  private get capacity(): number {
    return this.concurrency + this.prefetchNow;
  }

  /** Claim again once the buffer is down to this. */
  private get lowWater(): number {
    return Math.max(this.concurrency, Math.floor(this.prefetchNow / 2));
  }

  /** Jobs currently held: claimed and buffered, running, or being recorded. */
  get held(): number {
    return this.buffer.length + this.running.size + this.completing.size;
  }

  async start(): Promise<void> {
    if (this.state !== "new")
      throw new RotaError("INVALID_OPTION", "A worker can be started once.");
    this.state = "running";
    if (this.handleSignals) {
      process.once("SIGINT", this.onSignal);
      process.once("SIGTERM", this.onSignal);
    }
    // The timers first: a stop() while LISTEN connects clears them.
    this.heartbeatTimer = setInterval(() => void this.heartbeat(), this.heartbeatMs);
    this.heartbeatTimer.unref();
    if (this.rescueIntervalMs > 0) {
      this.rescueTimer = setInterval(() => void this.rescue(), this.rescueIntervalMs);
      this.rescueTimer.unref();
    }
    if (this.listener) await this.listener.start();
    // LISTEN's connecting already asked for the first claim, unless it failed.
    if (this.claiming === null) this.fill();
  }

  /** Graceful stop; resolves when every held job is finished or handed back. */
  stop(): Promise<void> {
    this.stopPromise ??= this.shutdown();
    return this.stopPromise;
  }

  /** Ask for a claim now (tests and embedders; NOTIFY does this on its own). */
  wake(): void {
    this.fill();
  }

  // ── claiming ────────────────────────────────────────────────────────────

  /**
   * A claim for room that freed up (a slot, a written outcome), unless the
   * queues are empty or a claim is in flight: the loop claims again after a
   * full claim, and a short one is followed by a claim when the next room
   * frees.
   */
  private topUp(): void {
    if (!this.drained && !this.claiming) this.fill();
  }

  /**
   * A claim now, or once the one in flight returns. Called for what may have
   * brought jobs (a wake-up, a poll, a rescue, LISTEN back), so the queues are
   * no longer taken to be empty; room that freed up goes through topUp().
   */
  private fill(): void {
    this.drained = false;
    if (this.state !== "running") return;
    if (this.claiming) {
      this.claimAgain = true;
      return;
    }
    this.claiming = this.claimLoop().finally(() => {
      this.claiming = null;
    });
  }

  private async claimLoop(): Promise<void> {
    do {
      this.claimAgain = false;
      const named = this.namedJob;
      this.namedJob = null;
      if (
        named !== null &&
        this.state === "running" &&
        this.buffer.length === 0 &&
        this.running.size < this.concurrency
      ) {
        // Idle, and a lone enqueue named its job: start it through its
        // primary key first, then claim as usual for the other free slots.
        await this.claimOne(named);
      }
      // Top up only when the buffer is running low, so claims come in batches.
      const room = this.capacity - this.held;
      if (room <= 0 || this.buffer.length > this.lowWater || this.state !== "running") return;
      let rows: ClaimedRow[];
      let claimed: number;
      let putBack: boolean;
      this.starved = false;
      try {
        this.claimCount++;
        // This claim takes any job a wake-up named before it.
        this.namedJob = null;
        const result = await this.claimDb.run<ClaimedRow>(this.q.Claim, [
          this.queues,
          this.taskNames,
          room,
          this.id,
          this.leaseMs,
          // The rows that start at once (the buffer is dispatched first); the
          // rest wait in the buffer and are marked started when they leave it.
          Math.max(0, this.concurrency - this.running.size - this.buffer.length),
          // Jobs this worker still runs or has an outcome to write for:
          // never two attempts of one job at once.
          [...this.running.keys(), ...this.completing.keys()],
        ]);
        claimed = result.rows.length;
        putBack = result.rows.some((row) => row.state === "scheduled");
        rows = this.startedOnly(result.rows);
      } catch (error) {
        if (isConcurrencyRace(error)) {
          // Another claim started a job with the same concurrency key at the
          // same moment; claiming again sees it running.
          this.claimAgain = true;
          continue;
        }
        this.reportError("claim", error);
        this.schedulePoll(Math.max(this.fallbackPollMs, 1_000));
        return;
      }
      if (this.state !== "running") {
        // stop() began while the claim was in flight: these never start.
        this.takeIntoBuffer(rows);
        return;
      }
      // Only an empty claim: a short one may have been cut by rows another
      // worker's claim held locked at that moment, with more still waiting.
      this.drained = claimed === 0;
      this.adaptPrefetch(claimed === room);
      if (claimed > 0) this.lockedBackoffMs = LOCKED_BACKOFF_MIN_MS;
      this.takeIntoBuffer(rows);
      // Not dispatch's own top-up: that would mark this loop to claim again
      // at once after every claim, an idle worker claiming in a tight loop.
      this.dispatch(false);
      if (claimed === room) this.claimAgain = true;
      // Nothing found, or some executions put back to wait (overlap 'queue'):
      // sleep until the next one is due rather than a whole poll interval.
      else if (rows.length === 0 || putBack) await this.sleepUntilNextDue();
      else this.schedulePoll(this.idlePollMs());
    } while (this.claimAgain);
  }

  /**
   * Claimed rows join the buffer. A job rescued from this worker with its
   * attempt refunded and claimed again by it has the same id, attempt and
   * holder as the copy this worker already had, so the fence cannot tell the
   * two apart: only one may run. A buffered copy is replaced by the new row;
   * a copy that started while the claim was in flight (running, or waiting
   * for its outcome to be written) keeps the job, and its outcome settles it.
   */
  private takeIntoBuffer(rows: ClaimedRow[]): void {
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
  }

  /** ClaimOne: the named job, if it is still there for this worker; started at once. */
  private async claimOne(jobId: string): Promise<void> {
    // An earlier attempt of it still runs here, or waits for its outcome to
    // be written: never two at once.
    if (this.running.has(jobId) || this.completing.has(jobId)) return;
    let row: ClaimedRow | undefined;
    try {
      const result = await this.claimDb.run<ClaimedRow>(this.q.ClaimOne, [
        jobId,
        this.queues,
        this.taskNames,
        this.id,
        this.leaseMs,
      ]);
      row = result.rows[0];
    } catch (error) {
      // The usual claim that follows takes the job if it is still there.
      this.reportError("claim", error);
      return;
    }
    if (row === undefined) return;
    this.claimOneCount++;
    this.takeIntoBuffer([row]);
    // stop() may have begun meanwhile: then the job is handed back with the buffer.
    if (this.state === "running") this.dispatch(false);
  }

  /**
   * The claimed rows that run. A claim may also settle schedule executions
   * without running them (past their deadline: 'missed'; overlap 'skip':
   * 'skipped'), or put one back (overlap 'queue'); those are reported here.
   */
  private startedOnly(rows: ClaimedRow[]): ClaimedRow[] {
    const started: ClaimedRow[] = [];
    for (const row of rows) {
      if (row.state === "running") {
        started.push(row);
        if (row.schedule_id !== null && this.events.wants("schedule:execution:fired")) {
          this.events.emit("schedule:execution:fired", {
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
        this.events.emit("schedule:execution:missed", { ...ref, count: 1 });
      else if (row.state === "skipped")
        this.events.emit("schedule:execution:skipped", { ...ref, reason: "overlap" });
    }
    return started;
  }

  /**
   * Grows the prefetch when a full claim came back to runners that had run
   * dry (the handlers outpace the claims), and shrinks it when a claim came
   * back to a buffer still holding a full round of work (it was not needed).
   */
  private adaptPrefetch(full: boolean): void {
    if (!full) {
      // The queue ran dry: a grown prefetch has nothing left to serve, and
      // the next jobs may be slow ones that must not be hoarded.
      this.prefetchNow = this.prefetchFloor;
    } else if (this.starved) {
      this.prefetchNow = Math.min(this.prefetchCap, Math.max(1, this.prefetchNow * 2));
    } else if (this.buffer.length >= this.concurrency) {
      this.prefetchNow = Math.max(this.prefetchFloor, Math.floor(this.prefetchNow / 2));
    }
  }

  private idlePollMs(): number {
    return this.listener?.listening ? this.pollIntervalMs : this.fallbackPollMs;
  }

  private async sleepUntilNextDue(): Promise<void> {
    let wait = this.idlePollMs();
    try {
      const result = await this.db.run<{ due_in_ms: number | null }>(this.q.NextDue, [
        this.queues,
        this.taskNames,
      ]);
      const dueIn = result.rows[0]?.due_in_ms;
      if (dueIn !== null && dueIn !== undefined)
        wait = Math.max(0, Math.min(wait, Math.ceil(Number(dueIn))));
    } catch (error) {
      this.reportError("poll", error);
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
    this.noteDueAt(performance.now() + wait);
    this.schedulePoll(wait);
  }

  /**
   * A wake-up said this worker's queues have jobs due in `ms`: claim then.
   * While a claim is in flight its loop sets the next wake-up itself, and
   * that heeds this time (noteDueAt keeps the earliest).
   */
  private wakeIn(ms: number): void {
    this.noteDueAt(performance.now() + ms);
    if (this.claiming || this.state !== "running") return;
    const pollIn = this.pollAt === null ? this.idlePollMs() : this.pollAt - performance.now();
    this.schedulePoll(Math.max(0, pollIn));
  }

  /**
   * Remembers that a job comes due at `at` (performance.now() time), unless an
   * earlier time still to come is known: NextDue may have been read just
   * before a wake-up announced an earlier job, and must not push it back.
   */
  private noteDueAt(at: number): void {
    const known = this.nextDueAt;
    if (known === null || known <= performance.now() || at < known) this.nextDueAt = at;
  }

  /**
   * Wakes the claim loop after `ms`, or sooner when a scheduled job is known
   * to come due before that (a busy worker's polls must not push a planned
   * execution's start back by a poll interval).
   */
  private schedulePoll(ms: number): void {
    if (this.state !== "running") return;
    if (this.nextDueAt !== null) {
      const dueIn = this.nextDueAt - performance.now();
      if (dueIn <= 0) this.nextDueAt = null;
      else ms = Math.min(ms, Math.ceil(dueIn));
    }
    if (this.pollTimer) clearTimeout(this.pollTimer);
    this.pollAt = performance.now() + ms;
    this.pollTimer = setTimeout(() => {
      this.pollTimer = null;
      this.pollAt = null;
      this.fill();
    }, ms);
    this.pollTimer.unref();
  }

  // ── running ─────────────────────────────────────────────────────────────

  /**
   * Starts buffered jobs while slots are free. `topUp` (not from the claim
   * loop itself, which decides on its own whether to claim again) asks for a
   * claim when the buffer is low.
   */
  private dispatch(topUp = true): void {
    while (this.running.size < this.concurrency && this.state === "running") {
      // Never two attempts of one job at once: claims pass over jobs still
      // running here, but one may have started while a claim was in flight.
      const next = this.buffer.findIndex((row) => !this.running.has(row.id));
      if (next < 0) break;
      this.run(this.buffer.splice(next, 1)[0] as ClaimedRow);
    }
    if (this.buffer.length === 0 && this.running.size < this.concurrency && this.claiming) {
      this.starved = true;
    }
    if (topUp && this.buffer.length <= this.lowWater) this.topUp();
  }

  private run(row: ClaimedRow): void {
    if (row.started_at === null) this.recordStart(row.id);
    const controller = new AbortController();
    const entry: Running = {
      row,
      controller,
      settled: false,
      leaseLost: false,
      timedOut: false,
      done: Promise.resolve(),
    };
    this.running.set(row.id, entry);
    entry.done = this.execute(entry).finally(() => {
      if (this.running.get(row.id) === entry) this.running.delete(row.id);
      this.dispatch();
      // Its retry was passed over by this worker's claims while the handler
      // outlived the attempt: claim now, it may be waiting.
      if (entry.timedOut || entry.leaseLost) this.fill();
    });
  }

  /**
   * Records that buffered jobs started: until then a rescue (this worker
   * died) gives such a job the attempt it was charged at claim back, once.
   * The handler does not wait for it, and a job that finishes within
   * START_RECORD_DELAY_MS is never written here (its outcome shows it ran),
   * so short jobs cost no extra statement.
   */
  private recordStart(id: string): void {
    this.starting.push(id);
    if (this.startTimer) return;
    this.startTimer = setTimeout(() => {
      this.startTimer = null;
      const ids = this.starting.filter((jobId) => {
        const entry = this.running.get(jobId);
        return entry !== undefined && !entry.settled;
      });
      this.starting = [];
      if (ids.length === 0) return;
      const previous = this.recordingStarts ?? Promise.resolve();
      this.recordingStarts = previous
        .then(() => this.db.run(this.q.MarkStarted, [ids, this.id]))
        .then(
          () => {},
          // Not fatal: at worst a rescue gives these jobs an attempt back once.
          (error: unknown) => this.reportError("start", error),
        );
    }, START_RECORD_DELAY_MS);
    this.startTimer.unref();
  }

  private async execute(entry: Running): Promise<void> {
    const { row, controller } = entry;
    const task = this.tasks.get(row.task) as TaskDefinition;
    const started = performance.now();
    this.events.emit("job:run:start", {
      id: row.id,
      queue: row.queue,
      task: row.task,
      attempt: row.attempts,
      workerId: this.id,
    });
    let timeout: NodeJS.Timeout | null = null;
    let timedOut: Promise<never> | null = null;
    const timeoutMs = row.timeout_ms ?? task.timeoutMs ?? null;
    if (timeoutMs !== null) {
      timedOut = new Promise<never>((_, reject) => {
        timeout = setTimeout(() => {
          const reason = new RotaError(
            "JOB_TIMEOUT",
            `Job ${row.id} (${row.task}) timed out after ${timeoutMs} ms.`,
          );
          entry.timedOut = true;
          controller.abort(reason);
          reject(reason);
        }, timeoutMs);
      });
      timedOut.catch(() => {});
    }
    try {
      const payload = await validatePayload(task, row.payload).catch((error: unknown) => {
        // A payload that fails its schema will fail every attempt: no retry.
        throw new PayloadRefused(error);
      });
      const context = this.contextFor(row, controller.signal);
      const handling = Promise.resolve().then(() => task.handler(payload, context));
      try {
        // On timeout the attempt is recorded at once ...
        await (timedOut ? Promise.race([handling, timedOut]) : handling);
        this.settle(entry, SUCCEEDED, performance.now() - started);
      } catch (error) {
        this.settle(entry, { thrown: error }, performance.now() - started);
      }
      // ... but the slot stays taken until the handler really returns, so
      // no more than `concurrency` handlers ever run at once.
      await handling.catch(() => {});
    } catch (error) {
      this.settle(entry, { thrown: error }, performance.now() - started);
    } finally {
      if (timeout) clearTimeout(timeout);
    }
  }

  private contextFor(row: ClaimedRow, signal: AbortSignal): JobContext {
    const job: JobInfo = {
      id: row.id,
      queue: row.queue,
      task: row.task,
      priority: row.priority,
      runAt: row.run_at,
      createdAt: row.created_at,
      attempt: row.attempts,
      maxAttempts: row.max_attempts,
      uniqueKey: row.unique_key,
      scheduleId: row.schedule_id,
      targetKey: row.target_key,
      occurrenceAt: row.occurrence_at,
    };
    return {
      job,
      attempt: row.attempts,
      signal,
      logger: childLogger(this.logger, { job: row.id, task: row.task, attempt: row.attempts }),
      extendLease: async (ms = this.leaseMs) => {
        validateMillis("extendLease(ms)", ms, 1);
        if (ms > MAX_RETRY_DELAY_MS) {
          throw new RotaError(
            "INVALID_OPTION",
            `extendLease(ms) takes at most ${MAX_RETRY_DELAY_MS} ms (100 years), got ${ms}.`,
            { details: { field: "extendLease(ms)", value: ms } },
          );
        }
        const result = await this.db.run(this.q.ExtendLease, [row.id, row.attempts, this.id, ms]);
        if (result.rowCount === 0) {
          throw new RotaError(
            "LEASE_LOST",
            `Job ${row.id} is no longer leased to this worker (it was rescued).`,
          );
        }
      },
    };
  }

  /** Hands one attempt's outcome to the completer, once. */
  private settle(entry: Running, outcome: Outcome, durationMs: number): void {
    if (entry.settled) return;
    entry.settled = true;
    const { row } = entry;
    const ref = { id: row.id, queue: row.queue, task: row.task, attempt: row.attempts };
    if (outcome === SUCCEEDED) {
      this.completing.set(row.id, row.attempts);
      this.completer.succeed({
        id: row.id,
        attempt: row.attempts,
        keep: row.schedule_id !== null,
        event: { ...ref, durationMs },
      });
      return;
    }
    // Everything below is computed before the job counts as completing: a
    // user's retryDelay that throws must not leave it held for good.
    const failure = this.failureOf(entry, outcome.thrown, ref);
    this.completing.set(row.id, row.attempts);
    this.completer.fail(failure);
  }

  private failureOf(
    entry: Running,
    thrown: unknown,
    ref: { id: string; queue: string; task: string; attempt: number },
  ): Failure {
    const { row, controller } = entry;
    const reason = controller.signal.aborted ? controller.signal.reason : null;
    const cancelled = reason instanceof RotaError && reason.code === "JOB_CANCELLED";
    const noRetry = thrown instanceof PayloadRefused;
    const error = noRetry ? thrown.cause : thrown;
    const described = describeThrown(error);
    let retryMs: number | null = null;
    if (!cancelled && !noRetry && row.attempts < row.max_attempts) {
      retryMs = this.retryDelay(row, error);
    }
    return {
      id: row.id,
      attempt: row.attempts,
      error: this.errorJson(described.message, described.stack, row.attempts),
      retryMs,
      cancelled,
      event: cancelled
        ? { name: "job:cancelled", payload: { id: row.id, previousState: "running" } }
        : retryMs === null
          ? { name: "job:failed", payload: { ...ref, error: described.message } }
          : {
              name: "job:run:retry",
              payload: { ...ref, error: described.message },
            },
    };
  }

  /**
   * The failure as last_error stores it (the database adds when). As jsonb
   * takes it: without NUL characters or unpaired surrogates, which it
   * refuses (and the write with them).
   */
  private errorJson(message: string, stack: string | null, attempt: number): string {
    return storableJson({ message, stack, attempt, worker: this.id });
  }

  /**
   * The pause before the next attempt: the task's retryDelay, or the job's
   * backoff when there is none or it throws or gives no usable number; at
   * most MAX_RETRY_DELAY_MS, so the run time stays a valid timestamp.
   */
  private retryDelay(row: ClaimedRow, error: unknown): number {
    const task = this.tasks.get(row.task);
    let ms = Number.NaN;
    if (task?.retryDelay) {
      try {
        ms = task.retryDelay(row.attempts, error);
      } catch (retryDelayError) {
        this.reportError("retryDelay", retryDelayError);
      }
    }
    if (typeof ms !== "number" || !Number.isFinite(ms) || ms < 0) {
      ms = backoffDelay(row.backoff, row.attempts);
    }
    return Math.min(ms, MAX_RETRY_DELAY_MS);
  }

  private abortJob(
    jobId: string,
    code: "JOB_CANCELLED" | "LEASE_LOST" | "SHUTTING_DOWN",
    why: string,
  ): void {
    const entry = this.running.get(jobId);
    if (!entry || entry.controller.signal.aborted) return;
    entry.controller.abort(new RotaError(code, `Job ${jobId}: ${why}.`));
  }

  // ── leases ──────────────────────────────────────────────────────────────

  private async heartbeat(): Promise<void> {
    // A running entry whose outcome was already handed over (a timed-out
    // handler still returning) is covered by `completing` until written, and
    // holds no lease after that. Leases are renewed per attempt: an attempt
    // this worker still runs after the job was rescued and claimed again
    // (maybe by this worker) is not kept alive by the new one.
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
    if (ids.length === 0) return;
    try {
      const result = await this.db.run<{
        id: string;
        attempts: number;
        cancel_requested: boolean;
      }>(this.q.Heartbeat, [ids, attempts, this.id, this.leaseMs]);
      const kept = new Set<string>();
      for (const row of result.rows) {
        kept.add(`${row.id}/${row.attempts}`);
        if (row.cancel_requested) this.cancelHeld(row.id);
      }
      ids.forEach((id, i) => {
        const attempt = attempts[i] as number;
        if (kept.has(`${id}/${attempt}`) || this.completing.get(id) === attempt) return;
        // Settled while the heartbeat was out: not lost, only done.
        if (!this.holds(id, attempt)) return;
        // Rescued from this worker: stop its handler; the fence refuses its outcome.
        this.events.emit("job:lease:lost", { id, workerId: this.id });
        const entry = this.running.get(id);
        if (entry?.row.attempts === attempt) {
          entry.leaseLost = true;
          this.abortJob(id, "LEASE_LOST", "its lease expired and it was rescued");
        }
        this.buffer = this.buffer.filter((r) => r.id !== id || r.attempts !== attempt);
      });
    } catch (error) {
      this.reportError("heartbeat", error);
    }
  }

  /** Whether this attempt of the job is still buffered or running unsettled here. */
  private holds(id: string, attempt: number): boolean {
    const entry = this.running.get(id);
    if (entry !== undefined && !entry.settled && !entry.leaseLost && entry.row.attempts === attempt)
      return true;
    return this.buffer.some((r) => r.id === id && r.attempts === attempt);
  }

  /**
   * The job was cancelled while this worker holds it: a running handler's
   * signal is aborted; a job still waiting in the buffer never starts and is
   * recorded cancelled.
   */
  private cancelHeld(jobId: string): void {
    const buffered = this.buffer.find((r) => r.id === jobId);
    if (buffered === undefined) {
      this.abortJob(jobId, "JOB_CANCELLED", "the job was cancelled");
      return;
    }
    this.buffer = this.buffer.filter((r) => r !== buffered);
    this.completing.set(buffered.id, buffered.attempts);
    this.completer.fail({
      id: buffered.id,
      attempt: buffered.attempts,
      error: this.errorJson("cancelled before it started", null, buffered.attempts),
      retryMs: null,
      cancelled: true,
      event: { name: "job:cancelled", payload: { id: buffered.id, previousState: "running" } },
    });
  }

  /** Leader-free upkeep any worker may do: rescue expired leases, prune old finished jobs. */
  private async rescue(): Promise<void> {
    try {
      const rescued = await rescueExpiredJobs(this.db, this.events);
      if (rescued.retried > 0) this.fill();
      await pruneFinishedJobs(this.db, { ...this.retention, maxBatches: 1 });
    } catch (error) {
      this.reportError("rescue", error);
    }
  }

  // ── stopping ────────────────────────────────────────────────────────────

  private async shutdown(): Promise<void> {
    if (this.state === "new") {
      this.state = "stopped";
      await this.atMost(
        Promise.all([this.db.close(), this.claimDb.close()]),
        "its connections to close",
      );
      return;
    }
    this.state = "stopping";
    process.off("SIGINT", this.onSignal);
    process.off("SIGTERM", this.onSignal);
    if (this.pollTimer) clearTimeout(this.pollTimer);
    if (this.rescueTimer) clearInterval(this.rescueTimer);
    // Each wait on the database is bounded: stop() ends even when the
    // database does not answer (what is left undone, a rescue mends).
    await this.atMost(this.listener?.stop(), "the LISTEN connection to close");
    await this.atMost(this.claiming, "the claim in flight");

    // Buffered jobs never started: hand them back at once for others to run.
    await this.atMost(this.releaseBuffered(), "the buffered jobs to be handed back");

    const allDone = () => Promise.all([...this.running.values()].map((r) => r.done));
    if (this.running.size > 0) {
      const graceful = await Promise.race([
        allDone().then(() => true),
        delay(this.gracefulStopMs).then(() => false),
      ]);
      if (!graceful) {
        for (const id of this.running.keys())
          this.abortJob(id, "SHUTTING_DOWN", "the worker is stopping");
        await Promise.race([allDone(), delay(1_000)]);
        for (const entry of this.running.values()) {
          // Still running after its signal was aborted: record the attempt as
          // failed so the job is retried elsewhere instead of waiting for rescue.
          this.settle(
            entry,
            {
              thrown: new RotaError("SHUTTING_DOWN", "The worker stopped before the job finished."),
            },
            0,
          );
        }
      }
    }
    // Outcomes are written, or given up on after a while (the database is
    // gone, or refuses a write): those jobs' leases expire and they are
    // rescued, so a stop always ends.
    const written = await within(
      this.completer.drain(),
      Math.max(this.gracefulStopMs, STOP_STEP_LIMIT_MS),
    );
    if (!written) {
      this.completer.abandon();
      // Those in a write still in flight too, not only those waiting for one.
      const abandoned = [...this.completing.keys()];
      this.reportError(
        "stop",
        new RotaError(
          "OUTCOMES_NOT_WRITTEN",
          `The worker stopped with ${abandoned.length} outcome(s) it could not write (jobs ${abandoned.join(", ")}); they are rescued once their leases expire.`,
        ),
      );
    }
    if (this.startTimer) clearTimeout(this.startTimer);
    await this.atMost(this.recordingStarts, "job starts to be recorded");
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.state = "stopped";
    await this.atMost(
      Promise.all([this.db.close(), this.claimDb.close()]),
      "its connections to close",
    );
  }

  /** Waits for `work` (its failure is reported where it happens), at most STOP_STEP_LIMIT_MS. */
  private async atMost(work: Promise<unknown> | null | undefined, what: string): Promise<void> {
    if (!work) return;
    if (!(await within(work, STOP_STEP_LIMIT_MS))) {
      this.reportError(
        "stop",
        new RotaError(
          "SHUTTING_DOWN",
          `stop() waited ${STOP_STEP_LIMIT_MS} ms for ${what} and went on: the database does not answer.`,
        ),
      );
    }
  }

  private async releaseBuffered(): Promise<void> {
    const ids = this.buffer.map((r) => r.id);
    const attempts = this.buffer.map((r) => r.attempts);
    this.buffer = [];
    if (ids.length === 0) return;
    try {
      await this.db.run(this.q.ReleaseUnstarted, [ids, attempts, this.id]);
    } catch (error) {
      // Not fatal: their leases expire and they are rescued.
      this.reportError("release", error);
    }
  }

  private reportError(during: string, error: unknown): void {
    this.events.emit("worker:error", { workerId: this.id, error, during });
    this.logger.warn(`worker ${during} failed: ${describeThrown(error).message}`);
  }
}

/** The outcome of a handler that returned. */
const SUCCEEDED = Symbol("succeeded");
/** What settle() records: success, or what the attempt threw (any value, null included). */
type Outcome = typeof SUCCEEDED | { thrown: unknown };

/** A payload its task's schema refused before the handler ran: retrying cannot help. */
class PayloadRefused {
  constructor(readonly cause: unknown) {}
}

/**
 * How long stop() waits for each step that needs the database (closing,
 * handing back; writing outcomes: this or gracefulStopMs, the longer).
 */
const STOP_STEP_LIMIT_MS = 5_000;

/** The longest pause before a retry, or lease extension: 100 years (a time must stay a valid timestamp). */
const MAX_RETRY_DELAY_MS = 100 * 365 * 24 * 3_600_000;

/**
 * JSON that PostgreSQL's jsonb accepts: it refuses the NUL character and
 * unpaired UTF-16 surrogates, which an error message may carry (echoed
 * binary data, a string cut in half); both become U+FFFD.
 */
function storableJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    typeof v === "string" ? v.replace(UNSTORABLE, "\uFFFD") : v,
  );
}
// biome-ignore lint/suspicious/noControlCharactersInRegex: NUL is one of the characters jsonb refuses.
const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/** Whether `work` settled (either way) within `ms`. */
function within(work: Promise<unknown>, ms: number): Promise<boolean> {
  return Promise.race([
    work.then(
      () => true,
      () => true,
    ),
    delay(ms).then(() => false),
  ]);
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/** How long a buffered job runs before its start is written (see recordStart). */
const START_RECORD_DELAY_MS = 50;

/** The first pause before claiming again a due job that another transaction holds. */
const LOCKED_BACKOFF_MIN_MS = 5;

/**
 * A claim that lost a race with another claim: both started a job with the
 * same concurrency key (jobs_running_concurrency), or, with two keys each,
 * they waited on each other (a deadlock the server broke). Claiming again
 * sees the winner's jobs running.
 */
function isConcurrencyRace(error: unknown): boolean {
  if (typeof error !== "object" || error === null) return false;
  const { code, constraint } = error as { code?: string; constraint?: string };
  return (code === "23505" && constraint === "jobs_running_concurrency") || code === "40P01";
}
