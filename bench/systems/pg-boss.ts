import PgBoss from "pg-boss";
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

/**
 * pg-boss 10 (the last major that runs on Node 20). Its workers poll: each
 * `work()` call adds one worker that fetches `batchSize` jobs, runs them, and
 * then waits out the rest of `pollingIntervalSeconds` before fetching again.
 * There is no LISTEN/NOTIFY wake-up in this version. A concurrency of N is N
 * `work()` calls ("each call to work() will add a new worker").
 *
 * default: `work()` with its defaults, "1 job every 2 seconds" per worker.
 *
 * tuned: the fastest settings version 10 documents: the minimum polling
 * interval (0.5 s) and a batch per fetch (`batchSize`, 100 unless
 * BENCH_PGBOSS_BATCH_SIZE says otherwise). `localConcurrency` and
 * `burstWhenBatchFull` are pg-boss 11+/12+ options, which need Node 22.
 */
export function pgBoss(config: ConfigName) {
  return (env: BenchEnvironment): BenchSystem => new PgBossSystem(env, config);
}

export const PG_BOSS_TUNED = {
  pollingIntervalSeconds: 0.5,
  batchSize: Number(process.env.BENCH_PGBOSS_BATCH_SIZE ?? 100),
};

class PgBossSystem implements BenchSystem {
  readonly system = "pg-boss" as const;
  private readonly schema: string;
  private boss: PgBoss | null = null;
  private owner = false;

  constructor(
    private readonly env: BenchEnvironment,
    readonly config: ConfigName,
  ) {
    this.schema = `rota_bench_pgboss_${config}`;
  }

  async setup(): Promise<void> {
    await dropSchema(this.env.databaseUrl, this.schema);
    this.owner = true;
    await this.attach();
    await this.requireBoss().createQueue(QUEUE);
  }

  async attach(): Promise<void> {
    const boss = new PgBoss({ connectionString: this.env.databaseUrl, schema: this.schema });
    boss.on("error", (error) => process.stderr.write(`pg-boss: ${error.message}\n`));
    await boss.start();
    this.boss = boss;
  }

  async enqueueOne(payload: BenchPayload): Promise<void> {
    await this.requireBoss().send(QUEUE, payload);
  }

  async enqueueBulk(payloads: BenchPayload[]): Promise<void> {
    await this.requireBoss().insert(payloads.map((data) => ({ name: QUEUE, data })));
  }

  async startWorker(options: WorkerOptions): Promise<RunningWorker> {
    const boss = this.requireBoss();
    const workOptions = this.config === "tuned" ? PG_BOSS_TUNED : {};
    const ids: string[] = [];
    for (let n = 0; n < options.concurrency; n++) {
      ids.push(
        await boss.work<BenchPayload>(QUEUE, workOptions, async (jobs) => {
          for (const job of jobs) options.onJob(job.data);
        }),
      );
    }
    return {
      stop: async () => {
        for (const id of ids) await boss.offWork({ id });
      },
    };
  }

  async teardown(): Promise<void> {
    const boss = this.boss;
    this.boss = null;
    if (boss) await boss.stop({ graceful: true, wait: true, timeout: 5_000 });
    if (this.owner) await dropSchema(this.env.databaseUrl, this.schema);
  }

  private requireBoss(): PgBoss {
    if (!this.boss) throw new Error("pg-boss: setup() or attach() first");
    return this.boss;
  }
}
