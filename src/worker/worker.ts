import type { Database } from "../db/database.js";
import { assertSchemaCurrentToStart } from "../db/migrate.js";
import { jobQueries } from "../db/queries/jobs.js";
import { describeThrown, RotaError } from "../errors.js";
import { type EventTaps, type RotaEvents, tapEvents } from "../events.js";
import type { Logger } from "../logger.js";
import { holdProcess } from "../process-hold.js";
import { rescueExpiredJobs } from "../queue/rescue.js";
import { pruneFinishedJobs } from "../queue/retention.js";
import type { TaskDefinition } from "../task.js";
import type { Telemetry } from "../telemetry/telemetry.js";
import {
  Attempt,
  type AttemptEnvironment,
  cancelledBeforeStart,
  type Outcome,
  SUCCEEDED,
} from "./attempt.js";
import { runBatch } from "./batch-run.js";
import { Claimer } from "./claimer.js";
import { Completer } from "./completer.js";
import { type ClaimedRow, HeldJobs } from "./held-jobs.js";
import { Listener } from "./listener.js";
import { StartRecorder } from "./start-recorder.js";
import { StatsReporter } from "./stats-reporter.js";
import { failureOf, latestReach, type WorkerHealth } from "./worker-health.js";
import { resolveWorkerOptions, type WorkerOptions, type WorkerSettings } from "./worker-options.js";

export type { WorkerHealth } from "./worker-health.js";
export type { WorkerOptions } from "./worker-options.js";

/**
 * The worker: claims jobs, runs their handlers, records the outcome.
 *
 *   claim (batch, SKIP LOCKED) ─▶ HeldJobs buffer ─▶ Attempt (≤ concurrency) ─▶ Completer (batched)
 *        ▲ woken by NOTIFY (Listener), or by the ClaimTimer      │ heartbeat renews every held lease
 *
 * This file wires those parts and holds settling an attempt, the heartbeat
 * and shutdown; the claim loop is the Claimer's. Which jobs the worker holds, and the rule that one attempt of a
 * job runs at a time and never more than `concurrency` handlers, live in
 * HeldJobs; one attempt's run (context, timeout, failure, retry delay) in
 * Attempt; options and their defaults in worker-options.ts.
 *
 * Claiming: the Claimer keeps the held jobs topped up, one claim statement
 * in flight at a time, woken by NOTIFY, by its timer, or by room freeing up.
 *
 * Leases: every held job (buffered, running, or waiting for its outcome to
 * be written) is renewed every `heartbeatMs`. A job missing from the renewal
 * was rescued from this worker: its handler's signal is aborted and its
 * outcome is refused by the completion fence.
 *
 * Stopping: stop claiming, hand buffered jobs back at once, let running jobs
 * finish for `gracefulStopMs`, then abort their signals; jobs still running
 * after that are recorded as failed attempts so they are retried elsewhere.
 */
export class Worker {
  readonly id: string;
  private readonly settings: WorkerSettings;
  private readonly heldJobs: HeldJobs;
  private readonly claimer: Claimer;
  private readonly completer: Completer;
  private readonly listener: Listener | null;
  private readonly starts: StartRecorder;
  /** Reports this worker and its outcomes per queue and minute; null with statsIntervalMs 0. */
  private readonly stats: StatsReporter | null;
  private readonly attemptEnv: AttemptEnvironment;
  private readonly q;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private upkeepTimer: NodeJS.Timeout | null = null;
  /** Starts a partial batch once it has waited its task's waitMs (see HeldJobs.batchDueInMs). */
  private batchTimer: NodeJS.Timeout | null = null;
  /** Lets the process go once the worker has stopped (see start()). */
  private releaseProcess: (() => void) | null = null;
  private state: "new" | "starting" | "running" | "stopping" | "stopped" = "new";
  private stopPromise: Promise<void> | null = null;
  /** The last error reported (worker:error), for health(). */
  private lastError: WorkerHealth["lastError"] = null;
  private readonly onSignal = () => void this.stop();
  /** The Rota's events as this worker emits them, its own rare ones logged (see logTaps). */
  private readonly events: RotaEvents;

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
    sharedEvents: RotaEvents,
    options: WorkerOptions,
    /** The Rota's telemetry; null without (see telemetry.ts). */
    telemetry: Telemetry | null = null,
  ) {
    const settings = resolveWorkerOptions(options);
    this.settings = settings;
    this.id = settings.id;
    const events = tapEvents(sharedEvents, logTaps(settings.logger, settings.fallbackPollMs));
    this.events = events;
    this.heldJobs = new HeldJobs(
      settings.concurrency,
      settings.batches ? (task) => settings.tasks.get(task)?.batch : undefined,
    );
    if (settings.listen && parentDb.transactionPooler && parentDb.listenUrl === null) {
      throw new RotaError(
        "INVALID_OPTION",
        "LISTEN does not work through a transaction pooler (each transaction may run on another server connection): give createRota a listenConnection (a postgres:// URL straight to PostgreSQL), or the worker listen: false to poll every pollIntervalMs.",
        { details: { field: "listen" } },
      );
    }
    // Every statement of the worker's own connections is bounded by
    // queryTimeoutMs, so a connection that goes silent fails its statement
    // (and is dropped) instead of holding the claim loop, the heartbeat or
    // the completer for good.
    this.db = parentDb.derive({
      poolSize: 4,
      settings: { synchronous_commit: "off" },
      applicationName: "rota worker",
      queryTimeoutMs: settings.queryTimeoutMs,
    });
    // Claims run one at a time on a connection of their own that keeps one
    // cached plan: PostgreSQL otherwise re-plans the claim every time (about
    // 0.5 ms of planning for 0.25 ms of execution), which is most of the
    // time between a job's NOTIFY and its start.
    this.claimDb = parentDb.derive({
      poolSize: 1,
      settings: { synchronous_commit: "off", plan_cache_mode: "force_generic_plan" },
      applicationName: "rota worker claims",
      queryTimeoutMs: settings.queryTimeoutMs,
    });
    this.q = jobQueries(this.db.schema);
    this.claimer = new Claimer(settings, this.heldJobs, {
      claimDb: this.claimDb,
      db: this.db,
      events,
      traced: telemetry !== null,
      running: () => this.state === "running",
      listening: () => this.listener?.listening ?? false,
      startBuffered: () => this.startBuffered(),
      handBackQueues: (queues) => {
        for (const queue of queues) this.handBackPaused(queue);
      },
      reportError: (during, error) => this.reportError(during, error),
    });
    this.starts = new StartRecorder(
      (ids) => this.db.run(this.q.MarkStarted, { ids, workerId: this.id }),
      (id) => {
        const attempt = this.heldJobs.runningAttempt(id);
        return attempt !== undefined && !attempt.settled;
      },
      (error) => this.reportError("start", error),
    );
    this.attemptEnv = {
      workerId: this.id,
      leaseMs: settings.leaseMs,
      logger: settings.logger,
      events,
      telemetry,
      extendLease: async (row, ms) => {
        const result = await this.db.run(this.q.ExtendLease, {
          id: row.id,
          attempt: row.attempts,
          workerId: this.id,
          leaseMs: ms,
        });
        return result.rowCount !== 0;
      },
      settle: (attempt, outcome, durationMs) => this.settle(attempt, outcome, durationMs),
      reportError: (during, error) => this.reportError(during, error),
    };
    this.stats =
      settings.statsIntervalMs > 0
        ? new StatsReporter(
            this.db,
            settings,
            () => this.heldJobs.runningCount,
            (error) => this.reportError("stats", error),
          )
        : null;
    this.completer = new Completer(
      this.db,
      events,
      this.id,
      settings.retention.succeededMs > 0,
      (written, retried) => {
        let freed = false;
        for (const { id, attempt, frees } of written) {
          this.heldJobs.written(id, attempt);
          freed ||= frees !== null;
        }
        // A retry waits in the table now: claim, so the worker finds it
        // (due, or not yet: then it sleeps until it is, NextDue). A freed
        // limited slot may start a job the limit held back: the write woke
        // the queue's workers, this one among them while it listens (a claim
        // here as well would be a second one).
        if (retried || (freed && !this.listener?.listening)) this.claimer.claimSoon();
        else if (!freed) this.claimer.claimForRoom();
      },
      (error) => this.reportError("completion", error),
      (queue, kind) => this.stats?.count(queue, kind),
    );
    this.listener = settings.listen
      ? new Listener(
          this.db,
          {
            onJobs: ({ queue, jobId, dueInMs }) => {
              if (queue !== "*" && !settings.queues.includes(queue)) return;
              // Jobs due later: no claim now, only a timer for when they are.
              if (dueInMs > 0) {
                this.claimer.wakeIn(dueInMs);
                return;
              }
              // Taken by id when the claim loop next finds this worker idle;
              // other jobs, and a named one a claim took first, go as usual.
              if (jobId !== null) this.claimer.named(jobId);
              this.claimer.claimSoon();
            },
            onCancel: (jobId) => this.cancelHeld(jobId),
            onPause: (queue) => {
              if (!settings.queues.includes(queue)) return;
              this.claimer.queuePaused(queue);
              this.handBackPaused(queue);
            },
            onStatus: (listening, error) => {
              if (!listening && this.state === "running") {
                this.events.emit("worker:listen:lost", { workerId: this.id, error });
                this.claimer.listenLost();
              }
              if (listening) this.claimer.claimSoon();
            },
          },
          settings.queryTimeoutMs,
        )
      : null;
  }

  /** Claim statements run so far (an idle worker runs about one per poll interval). */
  get claims(): number {
    return this.claimer.claims;
  }

  /**
   * True while the last claim found the queues empty, no claim is in flight,
   * and nothing has woken the worker since.
   */
  get idle(): boolean {
    return this.claimer.idle;
  }

  /** Jobs claimed by id from a wake-up that named them (ClaimOne), so far. */
  get claimedById(): number {
    return this.claimer.claimedById;
  }

  /** The current prefetch (it adapts between `prefetch` and `maxPrefetch`). */
  get prefetch(): number {
    return this.claimer.prefetch;
  }

  /** Jobs currently held: claimed and buffered, running, or being recorded. */
  get held(): number {
    return this.heldJobs.count;
  }

  /**
   * What the worker knows of its own state and its database, without asking
   * the database (so it answers during an outage): whether its last
   * statement reached PostgreSQL, whether LISTEN is up, its last claim and
   * last error. For a readiness probe, `ok`.
   */
  health(): WorkerHealth {
    const claims = this.claimer.record;
    const listening = this.listener === null ? null : this.listener.listening;
    const databaseReachable = latestReach(this.db.reachability, this.claimDb.reachability);
    const listenLoss = this.listener?.lastLoss ?? null;
    return {
      ok:
        this.state === "running" &&
        databaseReachable !== false &&
        listening !== false &&
        claims.failuresInARow === 0,
      state: this.state,
      databaseReachable,
      listening,
      lastListenError: listenLoss && failureOf(listenLoss.error, listenLoss.at),
      listenAttempts: this.listener?.attempts ?? 0,
      lastClaimAt: claims.lastClaimAt,
      lastClaimError:
        claims.lastClaimError && failureOf(claims.lastClaimError.error, claims.lastClaimError.at),
      claimFailures: claims.failuresInARow,
      lastError: this.lastError,
      held: this.heldJobs.count,
    };
  }

  async start(): Promise<void> {
    if (this.state !== "new")
      throw new RotaError("INVALID_OPTION", "A worker can be started once.");
    this.state = "starting";
    // A worker on a schema this rota does not know (not migrated, or newer)
    // refuses to start and claims nothing.
    await assertSchemaCurrentToStart(this.db);
    // stop() came while the schema was checked: there is nothing to start.
    if (this.state !== "starting") return;
    this.state = "running";
    const { handleSignals, heartbeatMs, rescueIntervalMs } = this.settings;
    if (handleSignals) {
      process.once("SIGINT", this.onSignal);
      process.once("SIGTERM", this.onSignal);
    }
    // A running worker keeps its process alive until stop() (process-hold.ts).
    this.releaseProcess = holdProcess();
    // The timers first: a stop() while LISTEN connects clears them.
    this.heartbeatTimer = setInterval(() => void this.heartbeat(), heartbeatMs);
    this.heartbeatTimer.unref();
    if (rescueIntervalMs > 0) {
      this.upkeepTimer = setInterval(() => void this.rescueAndPrune(), rescueIntervalMs);
      this.upkeepTimer.unref();
    }
    // The first claim does not wait for LISTEN to connect (each connection
    // costs PostgreSQL a process start, 10-20 ms here): LISTEN claims again
    // once it is up, for what was enqueued meanwhile and woke nobody.
    this.claimer.claimSoon();
    // The first report goes alongside, so that an idle worker is seen from
    // the start (one that fails is reported as a worker error; start() goes on).
    await Promise.all([this.listener?.start(), this.stats?.start()]);
    this.settings.logger.info(
      {
        queues: this.settings.queues,
        tasks: this.settings.taskNames,
        concurrency: this.settings.concurrency,
      },
      "worker started",
    );
  }

  /** Graceful stop; resolves when every held job is finished or handed back. */
  stop(): Promise<void> {
    this.stopPromise ??= this.shutdown();
    return this.stopPromise;
  }

  /** Ask for a claim now (tests and embedders; NOTIFY does this on its own). */
  wake(): void {
    this.claimer.claimSoon();
  }

  // ── running ─────────────────────────────────────────────────────────────

  /** Starts buffered jobs while slots are free (HeldJobs decides which may start). */
  private startBuffered(): void {
    while (this.state === "running") {
      const rows = this.heldJobs.nextToStart();
      if (rows === undefined) break;
      this.run(rows);
    }
    if (this.heldJobs.buffered === 0 && this.heldJobs.freeSlots > 0) this.claimer.noteStarved();
    this.waitForBatch();
  }

  /** A partial batch waits in the buffer: start it when its wait is over. */
  private waitForBatch(): void {
    if (this.batchTimer) clearTimeout(this.batchTimer);
    this.batchTimer = null;
    const dueInMs = this.heldJobs.batchDueInMs();
    if (dueInMs === null || this.state !== "running") return;
    this.batchTimer = setTimeout(() => {
      this.batchTimer = null;
      this.startBuffered();
    }, dueInMs);
    this.batchTimer.unref();
  }

  /** One handler call: one job, or a batch task's jobs. */
  private run(rows: ClaimedRow[]): void {
    const task = this.settings.tasks.get((rows[0] as ClaimedRow).task) as TaskDefinition;
    const attempts = rows.map((row) => {
      if (row.started_at === null) this.starts.record(row.id);
      return new Attempt(row, task);
    });
    this.heldJobs.started(...attempts);
    const done =
      task.batch === undefined
        ? (attempts[0] as Attempt).run(task.handler, this.attemptEnv)
        : runBatch(attempts, task, this.attemptEnv);
    const finished = done.finally(() => {
      this.heldJobs.finished(...attempts);
      this.startBuffered();
      this.claimer.roomFreed();
      // Its retry was passed over by this worker's claims while the handler
      // outlived the attempt: claim now, it may be waiting.
      if (attempts.some((a) => a.timedOut || a.leaseLost)) this.claimer.claimSoon();
    });
    for (const attempt of attempts) attempt.done = finished;
  }

  /** Hands one attempt's outcome to the completer, once. */
  private settle(attempt: Attempt, outcome: Outcome, durationMs: number): void {
    if (attempt.settled) return;
    attempt.settled = true;
    const { id, attempts } = attempt.row;
    if (outcome === SUCCEEDED) {
      this.heldJobs.completingNow(id, attempts);
      this.completer.succeed(attempt.success(durationMs));
      return;
    }
    // Built before the job counts as completing: a user's retryDelay that
    // throws must not leave it held for good.
    const failure = attempt.failure(outcome.thrown, this.attemptEnv);
    this.heldJobs.completingNow(id, attempts);
    this.completer.fail(failure);
  }

  // ── leases ──────────────────────────────────────────────────────────────

  private async heartbeat(): Promise<void> {
    const { ids, attempts } = this.heldJobs.leasesToRenew();
    if (ids.length === 0) return;
    try {
      const result = await this.db.run(this.q.Heartbeat, {
        ids,
        attempts,
        workerId: this.id,
        leaseMs: this.settings.leaseMs,
      });
      const kept = new Set<string>();
      for (const row of result.rows) {
        kept.add(`${row.id}/${row.attempts}`);
        if (row.cancel_requested) this.cancelHeld(row.id);
      }
      ids.forEach((id, i) => {
        const attempt = attempts[i] as number;
        if (kept.has(`${id}/${attempt}`)) return;
        // Rescued from this worker: stop its handler; the fence refuses its outcome.
        const { lost, running } = this.heldJobs.loseLease(id, attempt);
        if (!lost) return;
        this.events.emit("job:lease:lost", { id, workerId: this.id });
        running?.abort("LEASE_LOST", "its lease expired and it was rescued");
      });
    } catch (error) {
      this.reportError("heartbeat", error);
    }
  }

  /**
   * The job was cancelled while this worker holds it: a running handler's
   * signal is aborted; a job still waiting in the buffer never starts and is
   * recorded cancelled.
   */
  private cancelHeld(jobId: string): void {
    const buffered = this.heldJobs.removeBuffered(jobId);
    if (buffered === undefined) {
      this.heldJobs.runningAttempt(jobId)?.abort("JOB_CANCELLED", "the job was cancelled");
      return;
    }
    this.heldJobs.completingNow(buffered.id, buffered.attempts);
    this.completer.fail(cancelledBeforeStart(buffered, this.id));
  }

  /** Leader-free upkeep any worker does: rescue expired leases (of any worker), prune old finished jobs. */
  private async rescueAndPrune(): Promise<void> {
    try {
      const rescued = await rescueExpiredJobs(this.db, this.events);
      if (rescued.retried > 0) this.claimer.claimSoon();
      await pruneFinishedJobs(this.db, { ...this.settings.retention, maxBatches: 1 });
    } catch (error) {
      this.reportError("rescue", error);
    }
  }

  // ── stopping ────────────────────────────────────────────────────────────

  private async shutdown(): Promise<void> {
    if (this.state === "new" || this.state === "starting") {
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
    this.claimer.stopTimer();
    if (this.upkeepTimer) clearInterval(this.upkeepTimer);
    if (this.batchTimer) clearTimeout(this.batchTimer);
    // Each wait on the database is bounded: stop() ends even when the
    // database does not answer (what is left undone, a rescue mends).
    await this.atMost(this.listener?.stop(), "the LISTEN connection to close");
    await this.atMost(this.claimer.inFlight, "the claim in flight");

    // Buffered jobs never started: hand them back at once for others to run.
    await this.atMost(this.releaseBuffered(), "the buffered jobs to be handed back");

    const running = () => [...this.heldJobs.runningAttempts()];
    const allDone = () => Promise.all(running().map((attempt) => attempt.done));
    if (this.heldJobs.runningCount > 0) {
      const graceful = await Promise.race([
        allDone().then(() => true),
        delay(this.settings.gracefulStopMs).then(() => false),
      ]);
      if (!graceful) {
        for (const attempt of running()) attempt.abort("SHUTTING_DOWN", "the worker is stopping");
        await Promise.race([allDone(), delay(1_000)]);
        for (const attempt of running()) {
          // Still running after its signal was aborted: record the attempt as
          // failed so the job is retried elsewhere instead of waiting for rescue.
          this.settle(
            attempt,
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
      Math.max(this.settings.gracefulStopMs, STOP_STEP_LIMIT_MS),
    );
    if (!written) {
      this.completer.abandon();
      // Those in a write still in flight too, not only those waiting for one.
      const abandoned = this.heldJobs.completingIds();
      this.reportError(
        "stop",
        new RotaError(
          "OUTCOMES_NOT_WRITTEN",
          `The worker stopped with ${abandoned.length} outcome(s) it could not write (jobs ${abandoned.join(", ")}); they are rescued once their leases expire.`,
        ),
      );
    }
    await this.atMost(this.starts.stop(), "job starts to be recorded");
    // After the outcomes, so the last report counts them, and says it stopped.
    await this.atMost(this.stats?.stop(), "the last stats report");
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.releaseProcess?.();
    this.state = "stopped";
    await this.atMost(
      Promise.all([this.db.close(), this.claimDb.close()]),
      "its connections to close",
    );
    this.settings.logger.info({}, "worker stopped");
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

  /** A queue was paused: its jobs held here but not started go back at once, unstarted. */
  private handBackPaused(queue: string): void {
    const rows = this.heldJobs.removeBufferedOf(queue);
    if (rows.length > 0) void this.handBack(rows);
  }

  private releaseBuffered(): Promise<void> {
    return this.handBack(this.heldJobs.releaseBuffer());
  }

  /** Hands claimed jobs that never started back to their queue, their attempt undone. */
  private async handBack(rows: ClaimedRow[]): Promise<void> {
    if (rows.length === 0) return;
    try {
      await this.db.run(this.q.ReleaseUnstarted, {
        ids: rows.map((r) => r.id),
        attempts: rows.map((r) => r.attempts),
        workerId: this.id,
      });
    } catch (error) {
      // Not fatal: their leases expire and they are rescued.
      this.reportError("release", error);
    }
  }

  private reportError(during: string, error: unknown): void {
    this.lastError = { during, ...failureOf(error, new Date()) };
    this.events.emit("worker:error", { workerId: this.id, error, during });
    this.settings.logger.warn(
      { during, error: describeThrown(error).message },
      `worker ${during} failed`,
    );
  }
}

/**
 * What a worker logs of its own events, with the job's fields (its logger
 * adds workerId). Only failures and rarities: a job that succeeds logs
 * nothing, so the hot path builds no log line. Never a payload.
 */
function logTaps(logger: Logger, fallbackPollMs: number): EventTaps {
  return {
    "job:run:retry": (e) =>
      logger.warn(
        {
          jobId: e.id,
          queue: e.queue,
          task: e.task,
          attempt: e.attempt,
          error: e.error,
          retryAt: e.retryAt,
        },
        "job attempt failed; it is retried",
      ),
    "job:failed": (e) =>
      logger.error(
        { jobId: e.id, queue: e.queue, task: e.task, attempt: e.attempt, error: e.error },
        "job failed: no attempts left",
      ),
    "job:cancelled": (e) => logger.info({ jobId: e.id }, "job cancelled while held by this worker"),
    "job:fenced": (e) =>
      logger.warn(
        { jobId: e.id, attempt: e.attempt },
        "outcome not recorded: the job was rescued from this worker meanwhile (its lease had expired)",
      ),
    "job:lease:lost": (e) =>
      logger.warn(
        { jobId: e.id },
        "lost the lease of a held job (it was rescued); its handler's signal is aborted",
      ),
    "job:rescued": (e) =>
      logger.warn(
        { jobId: e.id, queue: e.queue, task: e.task, attempt: e.attempt, state: e.state },
        "rescued a job whose lease expired (its worker stopped heartbeating)",
      ),
    "worker:listen:lost": (e) =>
      logger.warn(
        { error: describeThrown(e.error).message, pollMs: fallbackPollMs },
        "LISTEN connection lost; polling until it is back",
      ),
  };
}

/**
 * How long stop() waits for each step that needs the database (closing,
 * handing back; writing outcomes: this or gracefulStopMs, the longer).
 */
const STOP_STEP_LIMIT_MS = 5_000;

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
