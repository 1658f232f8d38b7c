import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { validateCount, validateMillis } from "../config.js";
import { RotaError } from "../errors.js";
import { childLogger, defaultLogger, type Logger, validateLogger } from "../logger.js";
import { DEFAULT_QUEUE, validateQueueName } from "../queue/job-options.js";
import { type RetentionOptions, resolveRetention } from "../queue/retention.js";
import { normalizeTasks, type TaskDefinition, type TaskList } from "../task.js";

/** What `rota.worker(options)` takes; every field but `tasks` is optional. */
export interface WorkerOptions {
  /** Task definitions, or a map of task name to handler (or definition). */
  tasks: TaskList;
  /** Queues to serve; default the tasks' queues, or ["default"]. */
  queues?: string[];
  /** Handlers running at once; default 10. */
  concurrency?: number;
  /**
   * Extra jobs claimed ahead and held in the local buffer, at least; default 3
   * × concurrency (× the largest batch size of a batch task). The buffer is
   * handed back at once on a graceful stop.
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
  /**
   * Use LISTEN/NOTIFY wake-ups; default true. Through a transaction pooler
   * (RotaOptions.transactionPooler) LISTEN needs the Rota's
   * `listenConnection`; without one, give `listen: false` (the worker then
   * polls every `pollIntervalMs`).
   */
  listen?: boolean;
  /**
   * Give up on one of the worker's statements after this many ms without
   * an answer, and on its LISTEN connection when a check (`select 1`, sent
   * this often) goes unanswered as long; 0 waits for ever. A client-side
   * limit: it also ends a statement whose connection went silent (a
   * network that drops packets), which the server's statement_timeout
   * cannot. Default 30 s. See docs/connections.md.
   */
  queryTimeoutMs?: number;
  /** How long stop() lets running jobs finish before aborting them; default 10 s. */
  gracefulStopMs?: number;
  /** Also rescue expired leases (of any worker) every this many ms; 0 disables. Default leaseMs. */
  rescueIntervalMs?: number;
  /**
   * How long finished jobs stay (see RetentionOptions); default the Rota's
   * `retention`. Succeeded jobs are deleted on completion unless
   * succeededMs > 0; on each upkeep tick the worker also prunes the whole
   * table's finished jobs past this retention, so every process should be
   * given the same.
   */
  retention?: RetentionOptions;
  /**
   * How often the worker reports itself and its outcomes per queue and
   * minute (rota.workers.list, rota.queues.throughput), in one statement;
   * also once at start and once at stop. 0 disables reporting. Default 5 s.
   */
  statsIntervalMs?: number;
  /** Stop gracefully on SIGINT/SIGTERM; default false (the CLI turns it on). */
  handleSignals?: boolean;
  workerId?: string;
  /**
   * Where the worker logs (pino, or anything with debug/info/warn/error taking
   * (fields, message)); every line carries workerId, a job's also jobId,
   * queue, task and attempt. Default the Rota's `logger`, else stderr.
   */
  logger?: Logger;
}

/** The options checked, with every default filled in. */
export interface WorkerSettings {
  id: string;
  tasks: Map<string, TaskDefinition>;
  taskNames: string[];
  queues: string[];
  concurrency: number;
  /**
   * The most jobs running at once: `concurrency`, times the largest batch
   * size of its tasks (a batch task's handler call takes up to that many).
   */
  jobSlots: number;
  /** Whether a task of the worker takes batches (its jobs may wait in the buffer for a batch to fill). */
  batches: boolean;
  /** The least prefetch (`prefetch`) and the most it grows to (`maxPrefetch`). */
  prefetchFloor: number;
  prefetchCap: number;
  leaseMs: number;
  heartbeatMs: number;
  pollIntervalMs: number;
  fallbackPollMs: number;
  gracefulStopMs: number;
  rescueIntervalMs: number;
  /** 0: the worker does not report itself. */
  statsIntervalMs: number;
  listen: boolean;
  /** 0: no limit, and the LISTEN connection is not checked. */
  queryTimeoutMs: number;
  handleSignals: boolean;
  retention: Required<RetentionOptions>;
  logger: Logger;
}

/** Checks a worker's options, naming the field at fault, and fills in the defaults. */
export function resolveWorkerOptions(options: WorkerOptions): WorkerSettings {
  if (!options || typeof options !== "object" || !options.tasks) {
    throw new RotaError(
      "INVALID_OPTION",
      "worker() needs { tasks }: task definitions or a map of name to handler.",
      { details: { field: "tasks" } },
    );
  }
  const tasks = normalizeTasks(options.tasks);
  if (tasks.size === 0) {
    throw new RotaError("INVALID_OPTION", "worker() was given no tasks.", {
      details: { field: "tasks" },
    });
  }
  const taskQueues = [...new Set([...tasks.values()].map((t) => t.queue ?? DEFAULT_QUEUE))];
  const queues = (options.queues ?? taskQueues).map((q) => validateQueueName(q, "queues"));
  if (queues.length === 0) {
    throw new RotaError("INVALID_OPTION", "worker() needs at least one queue.", {
      details: { field: "queues" },
    });
  }
  const concurrency = validateCount("concurrency", options.concurrency ?? 10);
  const largestBatch = Math.max(1, ...[...tasks.values()].map((t) => t.batch?.size ?? 1));
  const jobSlots = concurrency * largestBatch;
  const prefetchFloor = validateCount("prefetch", options.prefetch ?? 3 * jobSlots, 0);
  const prefetchCap = Math.max(
    prefetchFloor,
    validateCount("maxPrefetch", options.maxPrefetch ?? Math.min(1_000, 50 * concurrency), 0),
  );
  const leaseMs = validateMillis("leaseMs", options.leaseMs ?? 30_000, 100);
  const heartbeatMs = validateMillis(
    "heartbeatMs",
    options.heartbeatMs ?? Math.floor(leaseMs / 3),
    10,
  );
  if (heartbeatMs >= leaseMs) {
    throw new RotaError(
      "INVALID_OPTION",
      "heartbeatMs must be shorter than leaseMs (a third of it is usual).",
      { details: { field: "heartbeatMs" } },
    );
  }
  const id = options.workerId ?? `${hostname()}:${process.pid}:${randomBytes(3).toString("hex")}`;
  return {
    id,
    tasks,
    taskNames: [...tasks.keys()],
    queues,
    concurrency,
    jobSlots,
    batches: [...tasks.values()].some((t) => t.batch !== undefined),
    prefetchFloor,
    prefetchCap,
    leaseMs,
    heartbeatMs,
    pollIntervalMs: validateMillis("pollIntervalMs", options.pollIntervalMs ?? 2_000, 1),
    fallbackPollMs: validateMillis("fallbackPollMs", options.fallbackPollMs ?? 250, 1),
    gracefulStopMs: validateMillis("gracefulStopMs", options.gracefulStopMs ?? 10_000),
    rescueIntervalMs: validateMillis("rescueIntervalMs", options.rescueIntervalMs ?? leaseMs),
    statsIntervalMs: validateMillis("statsIntervalMs", options.statsIntervalMs ?? 5_000),
    listen: options.listen ?? true,
    queryTimeoutMs: validateMillis("queryTimeoutMs", options.queryTimeoutMs ?? 30_000),
    handleSignals: options.handleSignals ?? false,
    retention: resolveRetention(options.retention),
    logger: childLogger(validateLogger("logger", options.logger) ?? defaultLogger, {
      workerId: id,
    }),
  };
}
