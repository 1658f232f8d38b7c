import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { type ExpiryResult, expireBatches } from "../batches/expiry.js";
import { validateCount, validateMillis } from "../config.js";
import type { Database } from "../db/database.js";
import { assertSchemaCurrentToStart } from "../db/migrate.js";
import { RotaError } from "../errors.js";
import type { RotaEvents } from "../events.js";
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
  /** Steps that failed in this tick (the others still ran). */
  errors: { step: string; error: unknown }[];
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
 */
export class Orchestrator {
  readonly holder: string;
  private readonly lease: LeaderLease;
  private readonly tickMs: number;
  private readonly watchdogIntervalMs: number;
  private readonly pruneIntervalMs: number;
  private readonly retention: Required<RetentionOptions>;
  private readonly batchSize: number;
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

  constructor(
    private readonly db: Database,
    private readonly events: RotaEvents,
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
    this.holder =
      options.holder ?? `${hostname()}:${process.pid}:${randomBytes(3).toString("hex")}`;
    this.lease = new LeaderLease(db, events, options.leaseName ?? "orchestrator", this.holder, ttl);
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
      await this.tick().catch(() => {});
      if (this.running && this.runs === run) {
        this.timer = setTimeout(loop, this.tickMs);
        this.timer.unref();
      }
    };
    this.starting = assertSchemaCurrentToStart(this.db).then(
      () => void loop(),
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

  /** Stops ticking, waits for a tick in progress, and releases the lease. */
  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.releaseProcess();
    await this.starting.catch(() => {});
    if (this.ticking) await this.ticking.catch(() => {});
    await this.lease.release().catch(() => {});
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
    };
    try {
      report.leader = await this.lease.acquireOrRenew();
    } catch (error) {
      // Leadership lasts only while the last renewal is known valid.
      report.leader = this.lease.isLeader;
      this.fail(report, "lease", error);
    }
    if (!report.leader) return report;
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
    report.errors.push({ step, error });
    this.events.emit("orchestrator:error", { holder: this.holder, step, error });
  }
}
