// Completion is fenced on the job's attempt and lease holder: a slow worker
// whose job was rescued cannot complete or fail it a second time.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isRotaError } from "../../src/errors.js";
import { silentLogger } from "../../src/logger.js";
import { migratedSchema, type TestSchema } from "../helpers/database.js";
import { deferred, nextEvent } from "../helpers/events.js";

let t: TestSchema;
beforeAll(async () => {
  t = await migratedSchema();
});
afterAll(() => t.drop());

describe("fencing", () => {
  it("a rescued job's old worker can neither complete it nor fail it", async () => {
    const slowStarted = deferred();
    const slowRelease = deferred();
    let slowSignal: AbortSignal | undefined;
    // The slow worker renews its lease rarely, so the shifted clock expires it before any renewal.
    const slow = t.rota.worker({
      logger: silentLogger,
      queues: ["fence"],
      // Busy with attempt 1, it has no room to claim the rescued job itself.
      concurrency: 1,
      prefetch: 0,
      leaseMs: 60_000,
      heartbeatMs: 50_000,
      rescueIntervalMs: 0,
      gracefulStopMs: 0,
      tasks: {
        fenced: async (_p, ctx) => {
          slowSignal = ctx.signal;
          slowStarted.resolve();
          await slowRelease.promise;
        },
      },
    });
    await slow.start();
    const { id } = await t.rota.enqueue("fenced", {}, { queue: "fence" });
    await slowStarted.promise;

    await t.rota.clock.shift(61_000);
    try {
      expect((await t.rota.rescueExpired()).retried).toBe(1);
      // A second worker takes the job (attempt 2) and holds it.
      const fastStarted = deferred();
      const fastRelease = deferred();
      const fast = t.rota.worker({
        logger: silentLogger,
        queues: ["fence"],
        leaseMs: 60_000,
        rescueIntervalMs: 0,
        tasks: {
          fenced: async (_p, ctx) => {
            expect(ctx.attempt).toBe(2);
            fastStarted.resolve();
            await fastRelease.promise;
          },
        },
      });
      await fast.start();
      await fastStarted.promise;

      // The slow worker finishes now: its success is refused by the fence.
      const fenced = nextEvent(t.rota.events, "job:fenced", (e) => e.id === id && e.attempt === 1);
      slowRelease.resolve();
      expect((await fenced).workerId).toBe(slow.id);
      expect(await t.rota.getJob(id)).toMatchObject({
        state: "running",
        attempts: 2,
        lease_holder: fast.id,
      });
      expect(slowSignal?.aborted).toBe(false);

      const finished = nextEvent(t.rota.events, "job:run:success", (e) => e.id === id);
      fastRelease.resolve();
      expect((await finished).attempt).toBe(2);
      expect(await t.rota.getJob(id)).toBeNull();
      await fast.stop();
    } finally {
      await slow.stop();
      await t.rota.clock.reset();
    }
  });

  it("a worker whose lease was taken sees its handler's signal aborted at the next heartbeat", async () => {
    const started = deferred();
    let reason: unknown;
    const worker = t.rota.worker({
      logger: silentLogger,
      queues: ["lost"],
      leaseMs: 1_000,
      heartbeatMs: 100,
      rescueIntervalMs: 0,
      tasks: {
        lost: (_p, ctx) =>
          new Promise<void>((resolve) => {
            started.resolve();
            ctx.signal.addEventListener("abort", () => {
              reason = ctx.signal.reason;
              resolve();
            });
          }),
      },
    });
    await worker.start();
    const { id } = await t.rota.enqueue("lost", {}, { queue: "lost" });
    await started.promise;
    const lost = nextEvent(t.rota.events, "job:lease:lost", (e) => e.id === id);
    // Another party takes the job over behind the worker's back (as a rescue would).
    await t.db.pool.query(
      `update "${t.schema}".jobs set lease_holder = 'someone-else' where id = $1`,
      [id],
    );
    await lost;
    await expect.poll(() => isRotaError(reason, "LEASE_LOST")).toBe(true);
    await worker.stop();
  });
});
