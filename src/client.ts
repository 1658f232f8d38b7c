import type pg from "pg";
import { Batches } from "./batches/batches.js";
import { Queues } from "./capacity/queues.js";
import { Sweeps } from "./capacity/sweeps.js";
import { Captures } from "./capture/captures.js";
import { DatabaseClock } from "./clock.js";
import { validateCount } from "./config.js";
import { type ConnectionOptions, Database } from "./db/database.js";
import { type MigrateProgress, migrate, type SchemaStatus, schemaStatus } from "./db/migrate.js";
import { type DiagnoseOptions, type Diagnosis, diagnose } from "./diagnose.js";
import { describeThrown } from "./errors.js";
import { RotaEvents } from "./events.js";
import { defaultLogger, type Logger, validateLogger } from "./logger.js";
import { Orchestrator, type OrchestratorOptions } from "./orchestrator/orchestrator.js";
import {
  type EnqueueResult,
  Enqueuer,
  type EnqueueSpec,
  type TransactionOption,
} from "./queue/enqueue.js";
import {
  type CancelResult,
  cancelJob,
  type FindJobsFilter,
  findJobs,
  getJob,
  type JobPage,
  type JobRecord,
  type JobSummary,
  type ListJobsFilter,
  listJobs,
  type ReplayFilter,
  type RetryResult,
  replayFailedJobs,
  retryJob,
} from "./queue/job-admin.js";
import { DEFAULT_PAYLOAD_LIMIT_BYTES, type EnqueueOptions } from "./queue/job-options.js";
import { type RescueResult, rescueExpiredJobs } from "./queue/rescue.js";
import { pruneFinishedJobs, type RetentionOptions, resolveRetention } from "./queue/retention.js";
import { Schedules } from "./schedule/schedules.js";
import { normalizeTasks, type TaskDefinition, type TaskList } from "./task.js";
import { Telemetry, type TelemetryOptions } from "./telemetry/telemetry.js";
import { Worker, type WorkerOptions } from "./worker/worker.js";
import { WorkerRegistry } from "./worker/worker-registry.js";

/**
 * With ConnectionOptions: connectTimeoutMs, transactionPooler and
 * listenConnection (see docs/connections.md).
 */
export interface RotaOptions extends ConnectionOptions {
  /** A postgres:// URL, or an existing pg.Pool (rota will not end a pool it did not create). */
  connection: string | pg.Pool;
  /** Schema holding rota's tables; default "rota". */
  schema?: string;
  /** Pool size when rota creates the pool; default 10. */
  poolSize?: number;
  /** Registered tasks: enqueue by name then refuses unknown names and checks payload schemas. */
  tasks?: TaskList;
  /** Largest payload accepted, in bytes of JSON; default 1 MiB. */
  payloadLimitBytes?: number;
  /**
   * How long finished jobs are kept: the default of every worker and
   * orchestrator made from this object, and of prune(). Every worker and the
   * leading orchestrator prune the whole table by their own retention, so
   * give every process the same (the shortest wins).
   */
  retention?: RetentionOptions;
  /**
   * Where rota logs: pino, or any object with debug/info/warn/error taking
   * (fields, message). The default of every worker, orchestrator and
   * dashboard made from this object; default stderr (warnings and errors, as text).
   * See docs/logging.md.
   */
  logger?: Logger;
  /**
   * OpenTelemetry spans and metrics (docs/telemetry.md), after the messaging
   * semantic conventions. Needs @opentelemetry/api installed (an optional
   * peer dependency), which is loaded only when this is given; `{}` uses the
   * tracer and meter providers registered with the API. Without it rota
   * loads nothing and writes no trace context.
   */
  telemetry?: TelemetryOptions;
}

/** Set by Rota's static block: the only way past `#db` (see databaseOf). */
let databaseOfRota: (rota: Rota) => Database;

/**
 * The library's entry point. It owns the database seam and hands it to the
 * parts (queue, worker, orchestrator, schedules) as they are created; the
 * seam itself is not public (databaseOf is for rota's own tests and tools).
 */
export class Rota {
  readonly #db: Database;
  /** The database clock for this schema (read, and shift in tests). */
  readonly clock: DatabaseClock;
  /** Job lifecycle events from this process (see RotaEventMap). */
  readonly events = new RotaEvents();
  /** Where this Rota's workers, orchestrators and dashboard log unless given their own. */
  readonly logger: Logger;
  private readonly tasks: Map<string, TaskDefinition>;
  /** Recurring jobs: upsert, pause, skip, trigger, upcoming, history (see Schedules). */
  readonly schedules: Schedules;
  /** Pause and resume queues, set their concurrency limits; list them with their jobs by state; their throughput per minute. */
  readonly queues: Queues;
  /** The workers (of any process) seen lately, as they report themselves (see WorkerRegistry). */
  readonly workers: WorkerRegistry;
  /** Limited-capacity sweeps over your own tables: define, run, list (see Sweeps). */
  readonly sweeps: Sweeps;
  /** Change capture: triggers on your tables that enqueue a job per changed row (see Captures). */
  readonly capture: Captures;
  /** Sets of jobs with a callback enqueued once when all have finished: enqueue, get, list (see Batches). */
  readonly batches: Batches;
  private readonly enqueuer: Enqueuer;
  /** Null without the telemetry option: every part then skips it with one check. */
  private readonly telemetry: Telemetry | null;
  /** Ends what telemetry observes (events, the queue depth gauge): close() calls it. */
  private readonly stopTelemetry: () => void;
  private readonly retention: RetentionOptions;
  /** The workers and orchestrators made here, stopped by close(). */
  private readonly ownWorkers = new Set<Worker>();
  private readonly orchestrators = new Set<Orchestrator>();

  static {
    databaseOfRota = (rota) => rota.#db;
  }

  constructor(options: RotaOptions) {
    // Checked before the pool is made: a bad option leaves nothing to close.
    this.logger = validateLogger("logger", options.logger) ?? defaultLogger;
    this.telemetry = options.telemetry === undefined ? null : new Telemetry(options.telemetry);
    this.#db = new Database(options);
    this.clock = new DatabaseClock(this.#db);
    this.tasks = normalizeTasks(options.tasks ?? []);
    const limit = validateCount(
      "payloadLimitBytes",
      options.payloadLimitBytes ?? DEFAULT_PAYLOAD_LIMIT_BYTES,
    );
    // Checked here, so a bad value is refused when rota is set up.
    resolveRetention(options.retention);
    this.retention = { ...options.retention };
    this.enqueuer = new Enqueuer(this.#db, this.events, this.tasks, limit, this.telemetry);
    this.schedules = new Schedules(this.#db, this.events, this.tasks, limit);
    this.queues = new Queues(this.#db);
    this.workers = new WorkerRegistry(this.#db);
    this.sweeps = new Sweeps(this.#db, this.schedules);
    this.capture = new Captures(this.#db, this.tasks);
    this.batches = new Batches(this.#db, this.enqueuer, limit);
    this.stopTelemetry = this.observeTelemetry();
  }

  /** The metrics read from events and from the queues (see Telemetry.observe). */
  private observeTelemetry(): () => void {
    const telemetry = this.telemetry;
    if (telemetry === null) return () => {};
    const offEvents = telemetry.observe(this.events);
    const offGauge = telemetry.observeQueueDepth(
      () => this.queues.list(),
      (error) =>
        this.logger.warn(
          { error: describeThrown(error).message },
          "the queue depth gauge could not read the queues",
        ),
    );
    return () => {
      offEvents();
      offGauge();
    };
  }

  get schema(): string {
    return this.#db.schema;
  }

  /** Applies pending migrations; safe to call from many processes at once. */
  migrate(onApplied?: (migration: MigrateProgress) => void): Promise<MigrateProgress[]> {
    return migrate(this.#db, onApplied);
  }

  /** The schema's version and the migrations not yet applied. */
  schemaStatus(): Promise<SchemaStatus> {
    return schemaStatus(this.#db);
  }

  /**
   * Checks the database without throwing: reachable, PostgreSQL's version,
   * the schema's version and pending migrations, which orchestrator leads,
   * and the problems found (what `rota doctor` prints).
   */
  diagnose(options?: DiagnoseOptions): Promise<Diagnosis> {
    return diagnose(this.#db, options);
  }

  /**
   * Enqueues one job. With `client`, the insert runs on that client, inside
   * the caller's transaction: the job exists if and only if it commits.
   */
  enqueue<Input>(
    // biome-ignore lint/suspicious/noExplicitAny: any task definition's output type
    task: string | TaskDefinition<Input, any>,
    payload?: Input,
    options?: EnqueueOptions & TransactionOption,
  ): Promise<EnqueueResult> {
    return this.enqueuer.enqueue(task, payload, options);
  }

  /** Enqueues many jobs, all or nothing: one INSERT, or from 500 jobs without unique keys a binary COPY. */
  enqueueMany(jobs: readonly EnqueueSpec[], options?: TransactionOption): Promise<EnqueueResult[]> {
    return this.enqueuer.enqueueMany(jobs, options);
  }

  /**
   * A worker over this database; call start() to begin (it rejects with
   * SCHEMA_NOT_MIGRATED or SCHEMA_TOO_NEW on a schema this rota does not
   * know). stop() is graceful.
   */
  worker(options: WorkerOptions): Worker {
    const worker = new Worker(
      this.#db,
      this.events,
      {
        ...options,
        // The sweeps defined on this Rota run in its workers too.
        tasks: [
          ...normalizeTasks(options.tasks ?? [...this.tasks.values()]).values(),
          ...this.sweeps.tasks(),
        ],
        // Fields a worker does not give come from the Rota's retention.
        retention: { ...this.retention, ...options.retention },
        logger: options.logger ?? this.logger,
      },
      this.telemetry,
    );
    this.ownWorkers.add(worker);
    return worker;
  }

  /**
   * An orchestrator over this database (call start(), which checks the
   * schema as a worker's does; stop() releases the leader lease). Any number
   * may run; one leads at a time.
   */
  orchestrator(options: OrchestratorOptions = {}): Orchestrator {
    const orchestrator = new Orchestrator(this.#db, this.events, {
      ...options,
      retention: { ...this.retention, ...options.retention },
      logger: options.logger ?? this.logger,
    });
    this.orchestrators.add(orchestrator);
    return orchestrator;
  }

  getJob(id: string | number): Promise<JobRecord | null> {
    return getJob(this.#db, id);
  }

  /** Jobs, newest first, filtered by state, queue and task. */
  listJobs(filter?: ListJobsFilter): Promise<JobSummary[]> {
    return listJobs(this.#db, filter);
  }

  /**
   * A page of jobs, newest first, below the cursor `before` (a page's `next`),
   * filtered by state, queue, task, creation time and payload containment.
   * Keyset pages walk the primary key: as fast on page 1,000 as on page 1.
   * With `payload` one call reads at most 100,000 jobs (see JobPage).
   */
  findJobs(filter?: FindJobsFilter): Promise<JobPage> {
    return findJobs(this.#db, filter);
  }

  /** Cancels a queued job, or asks a running one to stop (its signal is aborted). */
  cancel(
    id: string | number,
    options?: { client?: TransactionOption["client"] },
  ): Promise<CancelResult> {
    return cancelJob(this.#db, this.events, id, options);
  }

  /**
   * Puts failed jobs back in their queues (by queue, task, time range or
   * ids); returns their ids. 1,000 jobs a transaction, the last to fail
   * first; `onProgress` hears how many are back after each.
   */
  replayFailed(
    filter?: ReplayFilter,
    options: { onProgress?: (replayed: number) => void } = {},
  ): Promise<string[]> {
    return replayFailedJobs(this.#db, filter, options.onProgress);
  }

  /**
   * Puts one failed or cancelled job back in its queue with fresh attempts.
   * JOB_NOT_FOUND, or JOB_NOT_RETRYABLE for a job in another state (or whose
   * unique key another queued job holds).
   */
  retryJob(id: string | number): Promise<RetryResult> {
    return retryJob(this.#db, id);
  }

  /** Makes jobs whose lease expired claimable again (the orchestrator and workers call this). */
  rescueExpired(options?: { limit?: number }): Promise<RescueResult> {
    return rescueExpiredJobs(this.#db, this.events, options);
  }

  /**
   * Deletes finished jobs (and finished batches, old worker reports) past
   * their retention; returns how many rows. 5,000 rows a statement, until
   * none is left (at most `maxBatches` statements of each kind, default
   * 20); `onProgress` hears the rows deleted so far after each.
   */
  prune(
    options?: RetentionOptions & {
      maxBatches?: number;
      onProgress?: (deleted: number) => void;
    },
  ): Promise<number> {
    return pruneFinishedJobs(this.#db, { ...this.retention, ...options });
  }

  /** Stops this instance's workers (gracefully) and orchestrators, then ends the pool if rota created it. */
  async close(): Promise<void> {
    this.stopTelemetry();
    await Promise.all([
      ...[...this.ownWorkers].map((w) => w.stop()),
      ...[...this.orchestrators].map((o) => o.stop()),
    ]);
    await this.#db.close();
  }
}

export function createRota(options: RotaOptions): Rota {
  return new Rota(options);
}

/**
 * A Rota's database seam. Internal: for rota's own tests, benchmarks and
 * tools; index.ts does not export it, and applications use Rota's methods.
 */
export function databaseOf(rota: Rota): Database {
  return databaseOfRota(rota);
}
