import {
  type WorkerOptions as BullWorkerOptions,
  createPostgresBackend,
  type JobsOptions,
  Queue,
  Worker,
} from "bullmq";
import { dropSchema } from "./schema.js";
import type {
  BenchEnvironment,
  BenchPayload,
  BenchSystem,
  ConfigName,
  RunningWorker,
  WorkerOptions,
} from "./types.js";

const QUEUE = "bench";
const JOB_NAME = "bench_noop";

export type BullmqBackend = "redis" | "postgres";

/**
 * BullMQ 6, on either of its backends: Redis (through ioredis; the
 * non-PostgreSQL reference) or PostgreSQL (`createPostgresBackend`, new in
 * 6.7: jobs in one table claimed with SKIP LOCKED, workers woken by
 * LISTEN/NOTIFY, each completion fused with the next claim in one
 * transaction). The same Queue and Worker code drives both.
 *
 * default: its defaults (completed and failed jobs are kept), with the
 * worker's `concurrency` set to the workload's.
 *
 * tuned: the documented production advice, auto-removal of finished jobs
 * (`removeOnComplete`/`removeOnFail` on the jobs and the worker), so the
 * store does not keep every finished job.
 */
export function bullmq(backend: BullmqBackend, config: ConfigName) {
  return (env: BenchEnvironment): BenchSystem => new BullmqSystem(env, backend, config);
}

const TUNED_JOB_OPTIONS: JobsOptions = { removeOnComplete: true, removeOnFail: true };

/** What the adapter uses of a Queue, whichever backend it has. */
interface BenchQueue {
  add(name: string, data: BenchPayload): Promise<unknown>;
  addBulk(jobs: { name: string; data: BenchPayload }[]): Promise<unknown>;
  obliterate(options: { force: boolean }): Promise<void>;
  close(): Promise<void>;
  waitUntilReady(): Promise<unknown>;
  on(event: "error", listener: (error: Error) => void): unknown;
}

class BullmqSystem implements BenchSystem {
  readonly system: "bullmq" | "bullmq-postgres";
  /** Redis: the key prefix; PostgreSQL: the schema. */
  private readonly namespace: string;
  private queue: BenchQueue | null = null;
  private owner = false;

  constructor(
    private readonly env: BenchEnvironment,
    private readonly backend: BullmqBackend,
    readonly config: ConfigName,
  ) {
    this.system = backend === "redis" ? "bullmq" : "bullmq-postgres";
    this.namespace = `rota_bench_${backend === "redis" ? "bullmq" : "bullmq_pg"}_${config}`;
  }

  private get tuned(): boolean {
    return this.config === "tuned";
  }

  async setup(): Promise<void> {
    if (this.backend === "postgres") await dropSchema(this.env.databaseUrl, this.namespace);
    this.owner = true;
    await this.attach();
    if (this.backend === "redis") await this.requireQueue().obliterate({ force: true });
  }

  async attach(): Promise<void> {
    const options = this.tuned ? { defaultJobOptions: TUNED_JOB_OPTIONS } : {};
    const queue: BenchQueue =
      this.backend === "redis"
        ? new Queue(QUEUE, {
            connection: this.redisConnection(),
            prefix: this.namespace,
            ...options,
          })
        : new Queue(
            QUEUE,
            // The process that sets up creates the schema; the others only check it.
            { connection: this.postgresConnection(this.owner), ...options },
            createPostgresBackend,
          );
    queue.on("error", (error) => process.stderr.write(`${this.system}: ${error.message}\n`));
    await queue.waitUntilReady();
    this.queue = queue;
  }

  private redisConnection() {
    return { host: this.env.redis.host, port: this.env.redis.port, maxRetriesPerRequest: null };
  }

  private postgresConnection(migrate: boolean) {
    return { connectionString: this.env.databaseUrl, schema: this.namespace, migrate };
  }

  async enqueueOne(payload: BenchPayload): Promise<void> {
    await this.requireQueue().add(JOB_NAME, payload);
  }

  async enqueueBulk(payloads: BenchPayload[]): Promise<void> {
    await this.requireQueue().addBulk(payloads.map((data) => ({ name: JOB_NAME, data })));
  }

  async startWorker(options: WorkerOptions): Promise<RunningWorker> {
    const common = {
      concurrency: options.concurrency,
      ...(this.tuned ? { removeOnComplete: { count: 0 }, removeOnFail: { count: 0 } } : {}),
    } satisfies Partial<BullWorkerOptions>;
    const processor = async (job: { data: BenchPayload }) => {
      options.onJob(job.data);
    };
    const worker =
      this.backend === "redis"
        ? new Worker(QUEUE, processor, {
            connection: this.redisConnection(),
            prefix: this.namespace,
            ...common,
          })
        : new Worker(
            QUEUE,
            processor,
            { connection: this.postgresConnection(false), ...common },
            createPostgresBackend,
          );
    worker.on("error", (error) =>
      process.stderr.write(`${this.system} worker: ${error.message}\n`),
    );
    await worker.waitUntilReady();
    return { stop: () => worker.close() };
  }

  async teardown(): Promise<void> {
    const queue = this.queue;
    this.queue = null;
    if (queue) {
      if (this.owner && this.backend === "redis") await queue.obliterate({ force: true });
      await queue.close();
    }
    if (this.owner && this.backend === "postgres") {
      await dropSchema(this.env.databaseUrl, this.namespace);
    }
  }

  private requireQueue(): BenchQueue {
    if (!this.queue) throw new Error(`${this.system}: setup() or attach() first`);
    return this.queue;
  }
}
