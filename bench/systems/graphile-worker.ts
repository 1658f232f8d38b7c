import {
  Logger,
  makeWorkerUtils,
  type Runner,
  run,
  type TaskList,
  type WorkerUtils,
} from "graphile-worker";
import { dropSchema, quoteIdent } from "./schema.js";
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
 * graphile-worker 0.16 (the last line that runs on Node 20).
 *
 * default: its defaults (pool of 10, polling 2 s as a LISTEN/NOTIFY fallback),
 * with `concurrentJobs` set to the workload's concurrency.
 *
 * tuned: what 0.16 offers for speed. Its batching options (`localQueue`,
 * `completeJobBatchDelay`, `failJobBatchDelay`) arrived in 0.17, which needs
 * Node 22, so the tuning left is the performance page's pool sizing: a pool of
 * concurrency + 1 connections, so the LISTEN connection never makes a worker
 * wait for a client. Prepared statements stay on (the default). Both configs
 * enqueue in bulk through `add_jobs`, its documented batch API.
 */
export function graphileWorker(config: ConfigName) {
  return (env: BenchEnvironment): BenchSystem => new GraphileWorkerSystem(env, config);
}

class GraphileWorkerSystem implements BenchSystem {
  readonly system = "graphile-worker" as const;
  private readonly schema: string;
  private utils: WorkerUtils | null = null;
  private owner = false;

  constructor(
    private readonly env: BenchEnvironment,
    readonly config: ConfigName,
  ) {
    this.schema = `rota_bench_graphile_${config}`;
  }

  async setup(): Promise<void> {
    await dropSchema(this.env.databaseUrl, this.schema);
    this.owner = true;
    await this.attach();
    await this.utils?.migrate();
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
    const specs = payloads.map((payload) => ({ identifier: TASK, payload }));
    const schema = quoteIdent(this.schema);
    await this.requireUtils().withPgClient((client) =>
      client.query(
        `select count(*) from ${schema}.add_jobs(array(select json_populate_recordset(null::${schema}.job_spec, $1::json)))`,
        [JSON.stringify(specs)],
      ),
    );
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
      ...(this.config === "tuned" ? { maxPoolSize: options.concurrency + 1 } : {}),
    });
    return { stop: () => runner.stop() };
  }

  async teardown(): Promise<void> {
    await this.utils?.release();
    this.utils = null;
    if (this.owner) await dropSchema(this.env.databaseUrl, this.schema);
  }

  private requireUtils(): WorkerUtils {
    if (!this.utils) throw new Error("graphile-worker: setup() or attach() first");
    return this.utils;
  }
}
