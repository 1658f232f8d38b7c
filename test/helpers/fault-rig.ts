import { afterAll, beforeAll, expect } from "vitest";
import { Rota } from "../../src/client.js";
import { silentLogger } from "../../src/logger.js";
import type { Orchestrator } from "../../src/orchestrator/orchestrator.js";
import type { Worker } from "../../src/worker/worker.js";
import { migratedSchema, type TestSchema } from "./database.js";
import { deferred } from "./events.js";
import { startTcpProxy, type TcpProxy, targetOf } from "./tcp-proxy.js";

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
  /** enqueue(count), then waits until all of them run (held at the gate). */
  running(count: number): Promise<string[]>;
  /** Waits until the worker's health shows the outage: not ok, the database unreachable, LISTEN down. */
  expectOutageSeen(): Promise<void>;
  /** Waits until every job is 'succeeded' (kept by the retention). */
  settled(ids: string[]): Promise<void>;
  /** Each job ran once and its success was written once. */
  expectOnceEach(ids: string[]): void;
  /**
   * A lone enqueue names its job in the NOTIFY, and an idle listening
   * worker claims it by id (ClaimOne): proof that LISTEN works again.
   */
  expectWokenByNotify(): Promise<void>;
  /**
   * All is well again: every job of `ids` succeeded once and ran once, no
   * outcome was fenced, LISTEN works, the orchestrator leads, the worker's
   * health is ok, and nothing was rejected unhandled.
   */
  expectRecovered(ids: string[]): Promise<void>;
  stop(): Promise<void>;
}

/**
 * For one test file: a migrated schema of its own and a TCP proxy in front
 * of the suite's database (only what connects through it is affected by a
 * fault). Read them in tests, after beforeAll.
 */
export function useProxiedSchema(): { readonly t: TestSchema; readonly proxy: TcpProxy } {
  let t: TestSchema | undefined;
  let proxy: TcpProxy | undefined;
  beforeAll(async () => {
    t = await migratedSchema();
    proxy = await startTcpProxy(targetOf(t.url));
  });
  afterAll(async () => {
    await proxy?.close();
    await t?.drop();
  });
  return {
    get t() {
      return t as TestSchema;
    },
    get proxy() {
      return proxy as TcpProxy;
    },
  };
}

export const FAULT_TIMEOUTS = {
  /** The Rota's connectTimeoutMs. */
  connectMs: 1_000,
  /**
   * The worker's and the orchestrator's queryTimeoutMs (and so the LISTEN
   * check's interval): short, so a silent connection is given up quickly,
   * and not so short that a loaded test machine trips it.
   */
  queryMs: 2_000,
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

  const rig: FaultRig = {
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
    async running(count) {
      const ids = await rig.enqueue(count);
      await expect.poll(() => ids.every((id) => ran.has(id))).toBe(true);
      return ids;
    },
    async expectOutageSeen() {
      await expect
        .poll(() => worker.health(), { timeout: 10_000 })
        .toMatchObject({
          ok: false,
          state: "running",
          databaseReachable: false,
          listening: false,
        });
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
      // Tried again only when LISTEN was made anew meanwhile: on a loaded
      // machine a check can miss this rig's short timeout, and a job whose
      // NOTIFY came while LISTEN reconnected is found by the poll instead.
      for (let tries = 1; ; tries++) {
        await expect.poll(() => worker.health().listening, { timeout: 20_000 }).toBe(true);
        await expect.poll(() => worker.idle, { timeout: 10_000 }).toBe(true);
        const before = { byId: worker.claimedById, listens: worker.health().listenAttempts };
        const { id } = await options.direct.enqueue("work", { lone: true });
        await expect.poll(() => successes.get(id), { timeout: 10_000 }).toBe(1);
        if (worker.claimedById > before.byId) return;
        expect(
          worker.health().listenAttempts,
          "the lone job was not claimed by id although LISTEN was up all along",
        ).toBeGreaterThan(before.listens);
        if (tries === 3) throw new Error("LISTEN was made anew during each of 3 tries");
      }
    },
    async expectRecovered(ids) {
      await rig.settled(ids);
      rig.expectOnceEach(ids);
      expect(fenced).toEqual([]);
      await rig.expectWokenByNotify();
      await expect.poll(() => orchestrator.isLeader, { timeout: 10_000 }).toBe(true);
      await expect.poll(() => worker.health().ok, { timeout: 10_000 }).toBe(true);
      expect(rejections).toEqual([]);
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
  return rig;
}
