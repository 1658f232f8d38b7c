import {
  Logger,
  makeWorkerUtils,
  type Runner,
  run,
  type TaskList,
  type WorkerUtils,
} from "graphile-worker";
import { SchemaSystem } from "./schema.js";
import type {
  BenchEnvironment,
  BenchPayload,
  BenchSystem,
  ConfigName,
  RunningWorker,
  WorkerOptions,
} from "./types.js";

const TASK = "bench_noop";

/** Warnings and errors to stderr; graphile-worker's info lines would otherwise go to stdout. */
const quietLogger = new Logger(() => (level, message) => {
  if (level === "error" || level === "warning")
    process.stderr.write(`graphile-worker: ${message}\n`);
});

/**
 * graphile-worker 0.18 (Node 22; see runtime.ts).
 *
 * default: its defaults (pool of 10, LISTEN/NOTIFY with 2 s polling, one
 * fetch per job and one completion per job), with `concurrency` set to the
 * workload's.
 *
 * tuned: the configuration of its performance page (worker.graphile.org,
 * "Performance"): a pool of concurrency + 1 connections, the local queue
 * (`localQueue: { size: 500 }`: the pool locks a batch of jobs and hands them
 * to its workers without a round trip each) and batched completion
 * (`completeJobBatchDelay: 0`, `failJobBatchDelay: 0`: completions made in
 * the same tick go in one statement). Both configs enqueue in bulk with
 * `addJobs`, its batch API (one `add_jobs` call).
 */
export function graphileWorker(config: ConfigName) {
  return (env: BenchEnvironment): BenchSystem => new GraphileWorkerSystem(env, config);
}

const TUNED_PRESET = {
  worker: { localQueue: { size: 500 }, completeJobBatchDelay: 0, failJobBatchDelay: 0 },
};

class GraphileWorkerSystem extends SchemaSystem implements BenchSystem {
  readonly system = "graphile-worker" as const;
  private utils: WorkerUtils | null = null;

  constructor(env: BenchEnvironment, config: ConfigName) {
    super(env, config, `rota_bench_graphile_${config}`);
  }

  protected async install(): Promise<void> {
    await this.requireUtils().migrate();
  }

  async attach(): Promise<void> {
    this.utils = await makeWorkerUtils({
      connectionString: this.env.databaseUrl,
      schema: this.schema,
      logger: quietLogger,
      // Ten concurrent callers need ten clients in both configs.
      maxPoolSize: 10,
    });
  }

  async enqueueOne(payload: BenchPayload): Promise<void> {
    await this.requireUtils().addJob(TASK, payload);
  }

  async enqueueBulk(payloads: BenchPayload[]): Promise<void> {
    await this.requireUtils().addJobs(payloads.map((payload) => ({ identifier: TASK, payload })));
  }

  async startWorker(options: WorkerOptions): Promise<RunningWorker> {
    const taskList: TaskList = {
      [TASK]: async (payload) => {
        options.onJob(payload as BenchPayload);
      },
    };
    const runner: Runner = await run({
      connectionString: this.env.databaseUrl,
      schema: this.schema,
      concurrency: options.concurrency,
      noHandleSignals: true,
      logger: quietLogger,
      taskList,
      ...(this.config === "tuned"
        ? { maxPoolSize: options.concurrency + 1, preset: TUNED_PRESET }
        : {}),
    });
    return { stop: () => runner.stop() };
  }

  protected async close(): Promise<void> {
    await this.utils?.release();
    this.utils = null;
  }

  private requireUtils(): WorkerUtils {
    if (!this.utils) throw new Error("graphile-worker: setup() or attach() first");
    return this.utils;
  }
}
