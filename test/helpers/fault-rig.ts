import { expect } from "vitest";
import { Rota } from "../../src/client.js";
import type { Orchestrator } from "../../src/orchestrator/orchestrator.js";
import { silentLogger } from "../../src/worker/job-context.js";
import type { Worker } from "../../src/worker/worker.js";
import { deferred } from "./events.js";

/**
 * What the fault tests (test/faults/) run while they take the database away:
 * a Rota on `url` (the proxy, or a server the test restarts) with a worker
 * and an orchestrator on short timeouts, a task `work` whose handlers wait
 * for openGate(), and everything the assertions need counted: each job's
 * runs and written successes, fenced outcomes, and unhandled rejections.
 * Jobs are enqueued and read through `direct`, which the fault leaves alone
 * where it can (the proxy tests).
 */
export interface FaultRig {
  rota: Rota;
  worker: Worker;
  orchestrator: Orchestrator;
  /** Handler runs per job id. */
  ran: Map<string, number>;
  /** job:run:success events per job id (written successes only). */
  successes: Map<string, number>;
  /** job:fenced events: late outcomes the fence refused. */
  fenced: { id: string; attempt: number }[];
  /** unhandledRejection seen while the rig ran. */
  rejections: unknown[];
  /** Lets every handler, waiting or still to start, return. */
  openGate(): void;
  /** Enqueues `count` jobs of `work` through `direct`; their ids. */
  enqueue(count: number): Promise<string[]>;
  /** Waits until every job is 'succeeded' (kept by the retention). */
  settled(ids: string[]): Promise<void>;
  /** Each job ran once and its success was written once. */
  expectOnceEach(ids: string[]): void;
  /**
   * A lone enqueue names its job in the NOTIFY, and an idle listening
   * worker claims it by id (ClaimOne): proof that LISTEN works again.
   */
  expectWokenByNotify(): Promise<void>;
  stop(): Promise<void>;
}

export const FAULT_TIMEOUTS = {
  /** The Rota's connectTimeoutMs. */
  connectMs: 1_000,
  /** The worker's and the orchestrator's queryTimeoutMs. */
  queryMs: 1_000,
} as const;

export async function startFaultRig(options: {
  url: string;
  direct: Rota;
  leaseMs?: number;
}): Promise<FaultRig> {
  const rejections: unknown[] = [];
  const onRejection = (reason: unknown) => void rejections.push(reason);
  process.on("unhandledRejection", onRejection);
  const rota = new Rota({
    connection: options.url,
    schema: options.direct.schema,
    connectTimeoutMs: FAULT_TIMEOUTS.connectMs,
    // Succeeded jobs stay, so each one's end state can be read.
    retention: { succeededMs: 3_600_000 },
  });
  const ran = new Map<string, number>();
  const successes = new Map<string, number>();
  const fenced: { id: string; attempt: number }[] = [];
  rota.events.on(
    "job:run:success",
    (e) => void successes.set(e.id, (successes.get(e.id) ?? 0) + 1),
  );
  rota.events.on("job:fenced", (e) => void fenced.push({ id: e.id, attempt: e.attempt }));
  const gate = deferred();
  const worker = rota.worker({
    logger: silentLogger,
    concurrency: 10,
    queryTimeoutMs: FAULT_TIMEOUTS.queryMs,
    gracefulStopMs: 1_000,
    ...(options.leaseMs === undefined ? {} : { leaseMs: options.leaseMs }),
    tasks: {
      work: async (_payload: unknown, ctx) => {
        ran.set(ctx.job.id, (ran.get(ctx.job.id) ?? 0) + 1);
        await gate.promise;
      },
    },
  });
  const orchestrator = rota.orchestrator({
    tickMs: 200,
    leaseTtlMs: 3_000,
    queryTimeoutMs: FAULT_TIMEOUTS.queryMs,
  });
  await worker.start();
  await orchestrator.start();
  await expect.poll(() => orchestrator.isLeader).toBe(true);
  await expect.poll(() => worker.health().listening).toBe(true);

  return {
    rota,
    worker,
    orchestrator,
    ran,
    successes,
    fenced,
    rejections,
    openGate: () => gate.resolve(),
    async enqueue(count) {
      const jobs = await options.direct.enqueueMany(
        Array.from({ length: count }, (_, n) => ({ task: "work", payload: { n } })),
      );
      return jobs.map((j) => j.id);
    },
    async settled(ids) {
      await expect
        .poll(
          async () => {
            const states = await Promise.all(ids.map((id) => options.direct.getJob(id)));
            return states.filter((job) => job?.state === "succeeded").length;
          },
          { timeout: 30_000, interval: 200 },
        )
        .toBe(ids.length);
    },
    expectOnceEach(ids) {
      for (const id of ids) {
        expect({ id, runs: ran.get(id), successes: successes.get(id) }).toEqual({
          id,
          runs: 1,
          successes: 1,
        });
      }
    },
    async expectWokenByNotify() {
      await expect.poll(() => worker.health().listening, { timeout: 20_000 }).toBe(true);
      await expect.poll(() => worker.idle, { timeout: 10_000 }).toBe(true);
      const before = worker.claimedById;
      const { id } = await options.direct.enqueue("work", { lone: true });
      await expect.poll(() => worker.claimedById, { timeout: 10_000 }).toBeGreaterThan(before);
      await expect.poll(() => successes.get(id), { timeout: 10_000 }).toBe(1);
    },
    async stop() {
      gate.resolve();
      try {
        await Promise.all([worker.stop(), orchestrator.stop()]);
        await rota.close();
      } finally {
        process.off("unhandledRejection", onRejection);
      }
    },
  };
}
