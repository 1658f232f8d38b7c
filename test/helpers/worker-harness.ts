import { afterAll, afterEach, beforeAll, expect } from "vitest";
import { silentLogger } from "../../src/logger.js";
import type { Worker, WorkerOptions } from "../../src/worker/worker.js";
import { migratedSchema, type TestSchema } from "./database.js";
import { deferred } from "./events.js";

/**
 * A migrated schema for one test file, with workers that are stopped after
 * each test. `onSchema` receives the schema once it exists (before the tests).
 */
export function useWorkerHarness(onSchema: (t: TestSchema) => void) {
  let t: TestSchema;
  const workers: Worker[] = [];
  beforeAll(async () => {
    t = await migratedSchema();
    onSchema(t);
  });
  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.stop()));
  });
  afterAll(() => t.drop());

  async function startWorker(options: WorkerOptions): Promise<Worker> {
    const worker = t.rota.worker({ logger: silentLogger, rescueIntervalMs: 0, ...options });
    workers.push(worker);
    await worker.start();
    return worker;
  }

  /**
   * A worker with one slot, taken by a job that holds it until release(): jobs
   * enqueued next wait in its buffer (claimed, not started).
   */
  async function busyWorker(
    queue: string,
    options: Omit<WorkerOptions, "tasks"> & { tasks: WorkerOptions["tasks"] },
  ) {
    const gate = deferred();
    const started = deferred();
    const worker = await startWorker({
      queues: [queue],
      concurrency: 1,
      ...options,
      tasks: {
        ...(options.tasks as Record<string, unknown>),
        hold: async () => {
          started.resolve();
          await gate.promise;
        },
      } as WorkerOptions["tasks"],
    });
    await t.rota.enqueue("hold", {}, { queue });
    await started.promise;
    return { worker, release: gate.resolve };
  }

  /** Resolves once the job is claimed (into a worker's buffer, or running). */
  async function claimed(id: string): Promise<void> {
    await expect.poll(async () => (await t.rota.getJob(id))?.state).toBe("running");
  }

  async function finalState(id: string, states = ["failed", "cancelled", "succeeded"]) {
    await expect
      .poll(async () => (await t.rota.getJob(id))?.state, { timeout: 10_000 })
      .toSatisfy((state) => states.includes(state as string));
    return t.rota.getJob(id);
  }

  return { startWorker, busyWorker, claimed, finalState };
}
