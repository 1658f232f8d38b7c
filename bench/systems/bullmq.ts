import { type WorkerOptions as BullWorkerOptions, type JobsOptions, Queue, Worker } from "bullmq";
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

/**
 * BullMQ on Redis (through ioredis), the non-PostgreSQL reference.
 *
 * default: its defaults (completed and failed jobs are kept), with the
 * worker's `concurrency` set to the workload's.
 *
 * tuned: the documented production advice, auto-removal of finished jobs
 * (`removeOnComplete`/`removeOnFail` on the jobs and the worker), so Redis does
 * not keep every finished job.
 */
export function bullmq(config: ConfigName) {
  return (env: BenchEnvironment): BenchSystem => new BullmqSystem(env, config);
}

const TUNED_JOB_OPTIONS: JobsOptions = { removeOnComplete: true, removeOnFail: true };

class BullmqSystem implements BenchSystem {
  readonly system = "bullmq" as const;
  private readonly prefix: string;
  private queue: Queue | null = null;
  private owner = false;

  constructor(
    private readonly env: BenchEnvironment,
    readonly config: ConfigName,
  ) {
    this.prefix = `rota_bench_bullmq_${config}`;
  }

  private get connection() {
    return { host: this.env.redis.host, port: this.env.redis.port, maxRetriesPerRequest: null };
  }

  async setup(): Promise<void> {
    await this.attach();
    this.owner = true;
    await this.requireQueue().obliterate({ force: true });
  }

  async attach(): Promise<void> {
    const queue = new Queue(QUEUE, {
      connection: this.connection,
      prefix: this.prefix,
      ...(this.config === "tuned" ? { defaultJobOptions: TUNED_JOB_OPTIONS } : {}),
    });
    queue.on("error", (error) => process.stderr.write(`bullmq: ${error.message}\n`));
    await queue.waitUntilReady();
    this.queue = queue;
  }

  async enqueueOne(payload: BenchPayload): Promise<void> {
    await this.requireQueue().add(JOB_NAME, payload);
  }

  async enqueueBulk(payloads: BenchPayload[]): Promise<void> {
    await this.requireQueue().addBulk(payloads.map((data) => ({ name: JOB_NAME, data })));
  }

  async startWorker(options: WorkerOptions): Promise<RunningWorker> {
    const workerOptions: BullWorkerOptions = {
      connection: this.connection,
      prefix: this.prefix,
      concurrency: options.concurrency,
      ...(this.config === "tuned"
        ? { removeOnComplete: { count: 0 }, removeOnFail: { count: 0 } }
        : {}),
    };
    const worker = new Worker<BenchPayload>(
      QUEUE,
      async (job) => {
        options.onJob(job.data);
      },
      workerOptions,
    );
    worker.on("error", (error) => process.stderr.write(`bullmq worker: ${error.message}\n`));
    await worker.waitUntilReady();
    return { stop: () => worker.close() };
  }

  async teardown(): Promise<void> {
    const queue = this.queue;
    this.queue = null;
    if (!queue) return;
    if (this.owner) await queue.obliterate({ force: true });
    await queue.close();
  }

  private requireQueue(): Queue {
    if (!this.queue) throw new Error("bullmq: setup() or attach() first");
    return this.queue;
  }
}
