import type { Rota } from "../../src/index.js";
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
const QUEUE = "bench";

/** rota has one configuration: its defaults. */
export function rota(config: ConfigName) {
  return (env: BenchEnvironment): BenchSystem => new RotaSystem(env, config);
}

class RotaSystem extends SchemaSystem implements BenchSystem {
  readonly system = "rota" as const;
  private client: Rota | null = null;

  constructor(env: BenchEnvironment, config: ConfigName) {
    super(env, config, "rota_bench");
  }

  protected async install(): Promise<void> {
    await this.requireClient().migrate();
  }

  async attach(): Promise<void> {
    // Loaded here, not at the top, so that a rota that does not load (while
    // it is being changed) is skipped with a note instead of stopping the run.
    const { createRota } = await import("../../src/index.js");
    this.client = createRota({ connection: this.env.databaseUrl, schema: this.schema });
  }

  async enqueueOne(payload: BenchPayload): Promise<void> {
    await this.requireClient().enqueue(TASK, payload, { queue: QUEUE });
  }

  async enqueueBulk(payloads: BenchPayload[]): Promise<void> {
    await this.requireClient().enqueueMany(
      payloads.map((payload) => ({ task: TASK, payload, options: { queue: QUEUE } })),
    );
  }

  async setQueueLimit(limit: number): Promise<void> {
    await this.requireClient().queues.setLimit(QUEUE, limit);
  }

  async startWorker(options: WorkerOptions): Promise<RunningWorker> {
    const worker = this.requireClient().worker({
      tasks: {
        // Returned, not awaited: a no-op onJob costs no extra turn of the microtask queue.
        [TASK]: async (payload) => options.onJob(payload as BenchPayload),
      },
      queues: [QUEUE],
      concurrency: options.concurrency,
    });
    await worker.start();
    return {
      stop: async () => {
        await worker.stop();
      },
    };
  }

  protected async close(): Promise<void> {
    const client = this.client;
    this.client = null;
    await client?.close();
  }

  private requireClient(): Rota {
    if (!this.client) throw new Error("rota: setup() or attach() first");
    return this.client;
  }
}
