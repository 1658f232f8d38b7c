import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { type ExpiryResult, expireBatches } from "../batches/expiry.js";
import { validateCount, validateMillis } from "../config.js";
import type { Database } from "../db/database.js";
import { assertSchemaCurrentToStart } from "../db/migrate.js";
import { isConnectionLoss } from "../db/sqlstate.js";
import { describeThrown, RotaError } from "../errors.js";
import { type EventTaps, type RotaEvents, tapEvents } from "../events.js";
import { childLogger, defaultLogger, type Logger, validateLogger } from "../logger.js";
import { holdProcess } from "../process-hold.js";
import { type RescueResult, rescueExpiredJobs } from "../queue/rescue.js";
import { pruneFinishedJobs, type RetentionOptions, resolveRetention } from "../queue/retention.js";
import { type MaterializeResult, materializeDue } from "../schedule/materializer.js";
import { type ReconcileResult, reconcileDrifted, watchdogSlice } from "../schedule/reconciler.js";
import { LeaderLease } from "./leader.js";

export interface OrchestratorOptions {
  /** Time between ticks; default 1 s. */
  tickMs?: number;
  /** Leader lease length; default 15 s. Renewed every tick; tickMs must be at most a third of it. */
  leaseTtlMs?: number;
  /** How often the watchdog looks at a slice of the schedules; default 10 s. */
  watchdogIntervalMs?: number;
  /** How often finished jobs are pruned; default 60 s. */
  pruneIntervalMs?: number;
  retention?: RetentionOptions;
  /** Schedules planned per materialization statement; default 5,000. */
  batchSize?: number;
  /** This orchestrator's name in the lease; default host:pid:random. */
  holder?: string;
  /** The lease row's name; default "orchestrator". */
  leaseName?: string;
  /**
   * Where the orchestrator logs (pino, or anything with debug/info/warn/error
   * taking (fields, message)): leadership with its epoch, failed steps,
   * rescued jobs, schedules disabled or missing runs (scheduleId), each line
   * with holder. Default the Rota's `logger`, else stderr.
   */
  logger?: Logger;
  /**
   * Give up on one of the orchestrator's statements after this many ms
   * without an answer (0: wait for ever). Client-side, so it also ends a
   * statement whose connection went silent; without it such a statement
   * would hold the tick, and so the loop, for good. Default 30 s.
   */
  queryTimeoutMs?: number;
}

export interface TickReport {
  leader: boolean;
  epoch: number | null;
  rescued: RescueResult | null;
  /** Batches finished at their expiry (see batches/expiry.ts). */
  batches: ExpiryResult | null;
  materialized: MaterializeResult | null;
  reconciled: ReconcileResult | null;
  /** Cursors the watchdog repaired (null when its slice did not run this tick). */
  watchdog: { repaired: number } | null;
  pruned: number | null;
  /** Steps that failed in this tick (the others still ran, unless the database was unreachable). */
  errors: { step: string; error: unknown }[];
  /**
   * A statement failed for want of a connection (refused, cut, timed out,
   * the server shutting down): the steps after it were not run, since they
   * would fail the same way, and the next tick waits longer (see the loop).
   */
  databaseUnreachable: boolean;
}

/**
 * The orchestrator: a loop that only the leader runs (see
 * docs/leadership.md). Each tick, in this order, each step isolated so an
 * error in one cannot starve the next:
 *
 *   1. rescue    jobs whose lease expired become claimable again
 *   2. batches   finish batches past their expiry with members still open,
 *                enqueuing each one's callback once
 *   3. fill      materialize due schedule occurrences, keep each horizon
 *   4. reconcile supersede and re-plan drifted schedules; the watchdog
 *                repairs missing executions and wrong cursors (a slice per
 *                `watchdogIntervalMs`)
 *   5. prune     finished jobs past their retention (every `pruneIntervalMs`)
 *
 * Standbys try to take the lease each tick, so one takes over within one
 * lease TTL (plus a tick) of the leader dying; a leader that stops releases
 * the lease, and a standby takes over at its next tick.
 *
 * Connections: a pool of its own (two connections, made when first needed,
 * ended by stop()) whose statements give up after `queryTimeoutMs`. While
 * the database cannot be reached, a tick ends at the first statement that
 * fails so, and the next comes after twice the wait of the last, from
 * tickMs up to a third of the lease TTL (it is renewed in time once the
 * database is back); the first tick that reaches it goes back to tickMs.
 */
export class Orchestrator {
  readonly holder: string;
  private readonly lease: LeaderLease;
  private readonly tickMs: number;
  private readonly watchdogIntervalMs: number;
  private readonly pruneIntervalMs: number;
  private readonly retention: Required<RetentionOptions>;
  private readonly batchSize: number;
  private readonly queryTimeoutMs: number;
  /** The longest wait between ticks while the database is unreachable. */
  private readonly retryMaxMs: number;
  /** Ticks in a row that found the database unreachable. */
  private unreachableTicks = 0;
  /** The orchestrator's own connections (see `db`). */
  private ownDb: Database | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** Lets the process go once the orchestrator has stopped (see start()). */
  private releaseHold: (() => void) | null = null;
  private ticking: Promise<TickReport> | null = null;
  private running = false;
  /** The last start(): its schema check, then the loop begun. */
  private starting: Promise<void> = Promise.resolve();
  private runs = 0;
  private lastWatchdog = Number.NEGATIVE_INFINITY;
  private lastPrune = Number.NEGATIVE_INFINITY;
  private watchdogAfter = "0";
  private readonly logger: Logger;
  /** The Rota's events as this orchestrator's steps emit them, the rare ones logged (see logTaps). */
  private readonly events: RotaEvents;

  constructor(
    private readonly parentDb: Database,
    sharedEvents: RotaEvents,
    options: OrchestratorOptions = {},
  ) {
    this.tickMs = validateMillis("tickMs", options.tickMs ?? 1_000, 1);
    const ttl = validateMillis("leaseTtlMs", options.leaseTtlMs ?? 15_000, 1_000);
    // The lease is renewed once per tick, so a tick must come at least three
    // times per TTL: a late renewal would hand leadership to a standby.
    if (this.tickMs * 3 > ttl) {
      throw new RotaError(
        "INVALID_OPTION",
        `tickMs (${this.tickMs}) must be at most a third of leaseTtlMs (${ttl}), so the leader renews its lease in time: lower tickMs or raise leaseTtlMs.`,
        { details: { field: "tickMs", value: this.tickMs, leaseTtlMs: ttl } },
      );
    }
    this.watchdogIntervalMs = validateMillis(
      "watchdogIntervalMs",
      options.watchdogIntervalMs ?? 10_000,
    );
    this.pruneIntervalMs = validateMillis("pruneIntervalMs", options.pruneIntervalMs ?? 60_000);
    this.retention = resolveRetention(options.retention);
    this.batchSize = validateCount("batchSize", options.batchSize ?? 5_000);
    this.queryTimeoutMs = validateMillis("queryTimeoutMs", options.queryTimeoutMs ?? 30_000);
    this.retryMaxMs = Math.max(this.tickMs, Math.floor(ttl / 3));
    this.holder =
      options.holder ?? `${hostname()}:${process.pid}:${randomBytes(3).toString("hex")}`;
    this.logger = childLogger(validateLogger("logger", options.logger) ?? defaultLogger, {
      holder: this.holder,
    });
    this.events = tapEvents(
      sharedEvents,
      logTaps(this.logger, () => this.lease.epoch),
    );
    this.lease = new LeaderLease(
      () => this.db,
      this.events,
      options.leaseName ?? "orchestrator",
      this.holder,
      ttl,
    );
  }

  /**
   * The orchestrator's connections: two, with its query timeout, made when
   * first needed (tick() may run without start()) and ended by stop(). Its
   * own rather than the Rota's pool, whose statements (a caller's COPY of a
   * million jobs, a migration) may rightly take longer than any timeout.
   */
  private get db(): Database {
    this.ownDb ??= this.parentDb.derive({
      poolSize: 2,
      settings: {},
      applicationName: "rota orchestrator",
      queryTimeoutMs: this.queryTimeoutMs,
    });
    return this.ownDb;
  }

  get isLeader(): boolean {
    return this.lease.isLeader;
  }

  /**
   * Starts ticking every `tickMs` (the first tick runs at once) once the
   * schema is at this rota's version; a schema behind or ahead rejects with
   * SCHEMA_NOT_MIGRATED or SCHEMA_TOO_NEW and nothing runs.
   */
  start(): Promise<void> {
    if (this.running) return this.starting;
    this.running = true;
    // A running orchestrator keeps its process alive until stop() (process-hold.ts).
    this.releaseHold ??= holdProcess();
    // A stop() and start() while the check runs start one loop, not two.
    const run = ++this.runs;
    const loop = async () => {
      if (!this.running || this.runs !== run) return;
      const report = await this.tick().catch(() => null);
      this.unreachableTicks = report?.databaseUnreachable ? this.unreachableTicks + 1 : 0;
      if (this.running && this.runs === run) {
        this.timer = setTimeout(loop, this.nextTickInMs());
        this.timer.unref();
      }
    };
    this.starting = assertSchemaCurrentToStart(this.db).then(
      () => {
        this.logger.info(
          { tickMs: this.tickMs, leaseTtlMs: this.lease.ttlMs },
          "orchestrator started",
        );
        void loop();
      },
      (error: unknown) => {
        if (this.runs === run) {
          this.running = false;
          this.releaseProcess();
        }
        throw error;
      },
    );
    return this.starting;
  }

  /** Stops ticking, waits for a tick in progress, releases the lease and ends its connections. */
  async stop(): Promise<void> {
    // Logged for one that ran (started, or ticked as leader), not for each
    // orchestrator close() stops.
    const ran = this.running || this.lease.isLeader;
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.releaseProcess();
    await this.starting.catch(() => {});
    if (this.ticking) await this.ticking.catch(() => {});
    await this.lease.release().catch(() => {});
    const db = this.ownDb;
    this.ownDb = null;
    await db?.close();
    if (ran) this.logger.info({}, "orchestrator stopped");
  }

  /** tickMs, or while the database is unreachable twice the last wait, up to retryMaxMs. */
  private nextTickInMs(): number {
    if (this.unreachableTicks === 0) return this.tickMs;
    const doubled = this.tickMs * 2 ** Math.min(this.unreachableTicks, 20);
    return Math.min(this.retryMaxMs, doubled);
  }

  private releaseProcess(): void {
    this.releaseHold?.();
    this.releaseHold = null;
  }

  /** One tick: take or keep the lease, then, as leader, run the steps. */
  tick(): Promise<TickReport> {
    this.ticking ??= this.runTick().finally(() => {
      this.ticking = null;
    });
    return this.ticking;
  }

  private async runTick(): Promise<TickReport> {
    const report: TickReport = {
      leader: false,
      epoch: null,
      rescued: null,
      batches: null,
      materialized: null,
      reconciled: null,
      watchdog: null,
      pruned: null,
      errors: [],
      databaseUnreachable: false,
    };
    try {
      report.leader = await this.lease.acquireOrRenew();
    } catch (error) {
      // Leadership lasts only while the last renewal is known valid.
      report.leader = this.lease.isLeader;
      this.fail(report, "lease", error);
    }
    if (!report.leader || report.databaseUnreachable) return report;
    const epoch = this.lease.epoch as number;
    report.epoch = epoch;
    const fence = { name: this.lease.name, holder: this.holder, epoch };
    report.rescued = await this.step(report, "rescue", () =>
      rescueExpiredJobs(this.db, this.events),
    );
    report.batches = await this.step(report, "batches", () => expireBatches(this.db, this.events));
    report.materialized = await this.step(report, "materialize", () =>
      materializeDue(this.db, this.events, {
        batchSize: this.batchSize,
        lease: fence,
        keepLease: () => this.lease.keep(),
      }),
    );
    report.reconciled = await this.step(report, "reconcile", () =>
      reconcileDrifted(this.db, this.events),
    );
    if (performance.now() - this.lastWatchdog >= this.watchdogIntervalMs) {
      this.lastWatchdog = performance.now();
      report.watchdog = await this.step(report, "watchdog", async () => {
        const slice = await watchdogSlice(this.db, { after: this.watchdogAfter });
        this.watchdogAfter = slice.resumeAfter;
        return { repaired: slice.repaired };
      });
    }
    if (performance.now() - this.lastPrune >= this.pruneIntervalMs) {
      this.lastPrune = performance.now();
      report.pruned = await this.step(report, "prune", () =>
        pruneFinishedJobs(this.db, this.retention),
      );
    }
    return report;
  }

  /** Forces the watchdog and pruning to run at the next tick (tests, `rota orchestrator --once`). */
  runAllStepsNextTick(): void {
    this.lastWatchdog = Number.NEGATIVE_INFINITY;
    this.lastPrune = Number.NEGATIVE_INFINITY;
  }

  private async step<T>(
    report: TickReport,
    name: string,
    run: () => Promise<T>,
  ): Promise<T | null> {
    // The database was found unreachable earlier in this tick.
    if (report.databaseUnreachable) return null;
    // Renewed between steps when due; a tick that lost the lease stops: only
    // materialization is fenced in its statement, so the other steps must
    // not run without leadership.
    if (!(await this.lease.keep())) {
      if (!report.errors.some((e) => e.step === "lease")) {
        this.fail(
          report,
          "lease",
          new RotaError(
            "SHUTTING_DOWN",
            "the leader lease ran out during the tick; its remaining steps were not run",
          ),
        );
      }
      return null;
    }
    try {
      return await run();
    } catch (error) {
      this.fail(report, name, error);
      return null;
    }
  }

  private fail(report: TickReport, step: string, error: unknown): void {
    if (isConnectionLoss(error)) report.databaseUnreachable = true;
    report.errors.push({ step, error });
    this.events.emit("orchestrator:error", { holder: this.holder, step, error });
    this.logger.error(
      { step, epoch: this.lease.epoch, error: describeThrown(error).message },
      `orchestrator step ${step} failed; the other steps still ran`,
    );
  }
}

/**
 * What an orchestrator logs of its own steps' events (its logger adds
 * holder): leadership with its epoch, and per schedule (scheduleId) only
 * what needs a person: disabled, runs missed, a target source that failed.
 * Never the per-execution events, and never a payload.
 */
function logTaps(logger: Logger, epoch: () => number | null): EventTaps {
  return {
    "leader:acquired": (e) => logger.info({ lease: e.lease, epoch: e.epoch }, "became the leader"),
    "leader:lost": (e) =>
      logger.warn({ lease: e.lease, epoch: e.epoch, reason: e.reason }, "no longer the leader"),
    "job:rescued": (e) =>
      logger.warn(
        {
          jobId: e.id,
          queue: e.queue,
          task: e.task,
          attempt: e.attempt,
          state: e.state,
          epoch: epoch(),
        },
        "rescued a job whose lease expired (its worker stopped heartbeating)",
      ),
    "schedule:quiesced": (e) =>
      logger.warn(
        { scheduleId: e.scheduleId, schedule: e.name, error: e.error, epoch: epoch() },
        "schedule disabled: its spec does not parse",
      ),
    "schedule:execution:missed": (e) =>
      logger.warn(
        {
          scheduleId: e.scheduleId,
          executionId: e.executionId,
          occurrenceAt: e.occurrenceAt,
          count: e.count,
          epoch: epoch(),
        },
        "schedule runs missed: past their catch-up window",
      ),
    "schedule:targets:refreshed": (e) => {
      if (e.error === null) return;
      logger.warn(
        { scheduleId: e.scheduleId, schedule: e.name, error: e.error, epoch: epoch() },
        "schedule target source failed; its targets stay as they were",
      );
    },
    "batch:expired": (e) =>
      logger.info(
        { batchId: e.batchId, callbackJobId: e.callbackJobId, open: e.open, epoch: epoch() },
        "batch expired with members still open; its callback was enqueued",
      ),
  };
}
