// The worker's prefetch adapts: it grows while handlers outpace the claims,
// and a worker with slow jobs never hoards more than it can start.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../src/worker/job-context.js";
import { migratedSchema, type TestSchema } from "../helpers/database.js";
import { deferred, events } from "../helpers/events.js";

let t: TestSchema;
beforeAll(async () => {
  t = await migratedSchema();
});
afterAll(() => t.drop());

describe("adaptive prefetch", () => {
  it("grows (up to maxPrefetch) while fast handlers sit idle waiting for claims", async () => {
    await t.rota.enqueueMany(
      Array.from({ length: 3_000 }, (_, n) => ({
        task: "fast",
        payload: { n },
        options: { queue: "fast" },
      })),
    );
    const done = events(t.rota.events, "job:run:success", 3_000);
    const worker = t.rota.worker({
      logger: silentLogger,
      queues: ["fast"],
      concurrency: 2,
      prefetch: 2,
      maxPrefetch: 64,
      tasks: { fast: async () => {} },
    });
    expect(worker.prefetch).toBe(2);
    await worker.start();
    await done;
    expect(worker.prefetch).toBeGreaterThan(2);
    expect(worker.prefetch).toBeLessThanOrEqual(64);
    await worker.stop();
  });

  it("with slow handlers a worker holds no more than concurrency + prefetch, leaving the rest to others", async () => {
    await t.rota.enqueueMany(
      Array.from({ length: 40 }, (_, n) => ({
        task: "slow",
        payload: { n },
        options: { queue: "slow" },
      })),
    );
    const release = deferred();
    const started = events(t.rota.events, "job:run:start", 4);
    const make = () =>
      t.rota.worker({
        logger: silentLogger,
        queues: ["slow"],
        concurrency: 2,
        prefetch: 2,
        maxPrefetch: 64,
        rescueIntervalMs: 0,
        gracefulStopMs: 0,
        tasks: { slow: () => release.promise },
      });
    const a = make();
    const b = make();
    await a.start();
    await b.start();
    await started;
    const held = await t.rota.db.pool.query<{ holder: string; n: number }>(
      `select lease_holder as holder, count(*)::int as n from "${t.schema}".jobs
       where state = 'running' group by lease_holder`,
    );
    const byHolder = Object.fromEntries(held.rows.map((r) => [r.holder, r.n]));
    // Each runs 2 and buffers at most 2 more: neither grew its prefetch, both work.
    expect(byHolder[a.id]).toBeLessThanOrEqual(4);
    expect(byHolder[b.id]).toBeLessThanOrEqual(4);
    expect(a.prefetch).toBe(2);
    expect(b.prefetch).toBe(2);
    release.resolve();
    await Promise.all([a.stop(), b.stop()]);
  });
});
