import { PgBoss, type WorkOptions } from "pg-boss";
import { SchemaSystem } from "./schema.js";
import type {
  BenchEnvironment,
  BenchPayload,
  BenchSystem,
  ConfigName,
  RunningWorker,
  WorkerOptions,
} from "./types.js";

const QUEUE = "bench";

/**
 * pg-boss 12 (Node 22; see runtime.ts). A worker polls: it fetches
 * `batchSize` jobs, runs them, and waits out `pollingIntervalSeconds` before
 * fetching again unless woken; `localConcurrency` runs that many such workers
 * in the process.
 *
 * default: `work()` with `localConcurrency` set to the workload's concurrency
 * and everything else its default ("1 job every 2 seconds" per worker, no
 * LISTEN/NOTIFY).
 *
 * tuned: everything version 12 documents for throughput and latency: the
 * instance's LISTEN/NOTIFY listener (`useListenNotify`) and a queue that
 * notifies (`notify: true`), so a new job wakes the workers; a batch per
 * fetch (`batchSize`, 100 unless BENCH_PGBOSS_BATCH_SIZE says otherwise) and
 * `burstWhenBatchFull`, so a worker fetches again at once while its batches
 * come back full; the minimum polling interval (0.5 s) for the rest.
 */
export function pgBoss(config: ConfigName) {
  return (env: BenchEnvironment): BenchSystem => new PgBossSystem(env, config);
}

const TUNED_WORK: WorkOptions = {
  batchSize: Number(process.env.BENCH_PGBOSS_BATCH_SIZE ?? 100),
  burstWhenBatchFull: true,
  pollingIntervalSeconds: 0.5,
};

class PgBossSystem extends SchemaSystem implements BenchSystem {
  readonly system = "pg-boss" as const;
  private boss: PgBoss | null = null;

  constructor(env: BenchEnvironment, config: ConfigName) {
    super(env, config, `rota_bench_pgboss_${config}`);
  }

  private get tuned(): boolean {
    return this.config === "tuned";
  }

  protected async install(): Promise<void> {
    await this.requireBoss().createQueue(QUEUE, this.tuned ? { notify: true } : {});
  }

  async attach(): Promise<void> {
    const boss = new PgBoss({
      connectionString: this.env.databaseUrl,
      schema: this.schema,
      ...(this.tuned ? { useListenNotify: true } : {}),
    });
    boss.on("error", (error) => process.stderr.write(`pg-boss: ${error.message}\n`));
    await boss.start();
    this.boss = boss;
  }

  async enqueueOne(payload: BenchPayload): Promise<void> {
    await this.requireBoss().send(QUEUE, payload);
  }

  async enqueueBulk(payloads: BenchPayload[]): Promise<void> {
    await this.requireBoss().insert(
      QUEUE,
      payloads.map((data) => ({ data })),
    );
  }

  async startWorker(options: WorkerOptions): Promise<RunningWorker> {
    const boss = this.requireBoss();
    const id = await boss.work<BenchPayload>(
      QUEUE,
      { ...(this.tuned ? TUNED_WORK : {}), localConcurrency: options.concurrency },
      async (jobs) => {
        for (const job of jobs) options.onJob(job.data);
      },
    );
    return { stop: () => boss.offWork(QUEUE, { id }) };
  }

  protected async close(): Promise<void> {
    const boss = this.boss;
    this.boss = null;
    await boss?.stop({ graceful: true, timeout: 5_000 });
  }

  private requireBoss(): PgBoss {
    if (!this.boss) throw new Error("pg-boss: setup() or attach() first");
    return this.boss;
  }
}
