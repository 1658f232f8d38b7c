/**
 * The seam every benchmarked queue is driven through. Each workload in
 * bench/workloads/ talks only to this interface, so rota and its peers run the
 * very same code path: same payloads, same pacing, same clocks.
 */
import type { BenchConfigName, BenchSystemName } from "../../src/cli/bench-flags.js";

export type SystemName = BenchSystemName;

/** The queue systems (everything but the plain `pg` reference). */
export type QueueSystemName = Exclude<SystemName, "pg">;

/** "default": the library's defaults; "tuned": its fastest documented configuration. */
export type ConfigName = BenchConfigName;

/** Where the systems keep their state; every system gets its own schema or key prefix. */
export interface BenchEnvironment {
  databaseUrl: string;
  redis: { host: string; port: number };
}

export interface WorkerOptions {
  concurrency: number;
  /**
   * Called at handler start with the job's payload. rota's adapter returns
   * what it returns from the handler, so a promise keeps the job running
   * until it settles (process_limited's handlers take a little time); the
   * peers' adapters do not wait on it (no workload they run returns one).
   */
  onJob: (payload: BenchPayload) => void | Promise<void>;
}

export interface RunningWorker {
  /** Stops fetching, lets running handlers finish, releases the worker's connections. */
  stop(): Promise<void>;
}

/** Payloads are small JSON objects: `i` numbers the job, `t` is the enqueue time (epoch ms). */
export interface BenchPayload {
  i: number;
  t?: number;
}

export interface BenchSystem {
  readonly system: QueueSystemName;
  readonly config: ConfigName;
  /** Fresh, isolated state (drops and recreates its own schema, queue or key prefix), then connects. */
  setup(): Promise<void>;
  /** Connects to the state that a setup() in another process made (the 2-process workload's children). */
  attach(): Promise<void>;
  /** Enqueues one job; resolves once the job is durable (committed). */
  enqueueOne(payload: BenchPayload): Promise<void>;
  /** Enqueues all the payloads with the system's bulk API. */
  enqueueBulk(payloads: BenchPayload[]): Promise<void>;
  /**
   * Limits the queue to `limit` running jobs at once across all workers and
   * processes (rota.queues.setLimit). Only rota's adapter has it: the
   * workloads that need it (process_limited) run on rota alone.
   */
  setQueueLimit?(limit: number): Promise<void>;
  /** Starts consuming; resolves once the worker is running. */
  startWorker(options: WorkerOptions): Promise<RunningWorker>;
  /** Closes connections; after setup() it also drops the state setup() made. */
  teardown(): Promise<void>;
}

export type SystemFactory = (env: BenchEnvironment) => BenchSystem;
