// The worker's prefetch adapts: it grows while handlers outpace the claims,
// and a worker with slow jobs never hoards more than it can start.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../src/logger.js";
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
    let most = 0;
    t.rota.events.on("job:run:success", () => {
      most = Math.max(most, worker.prefetch);
    });
    await worker.start();
    await done;
    expect(most).toBeGreaterThan(2);
    expect(most).toBeLessThanOrEqual(64);
    // The queue ran dry: the claim that finds it so (it may follow the last
    // outcome's write) puts the prefetch back at its floor for whatever comes next.
    await expect.poll(() => worker.prefetch).toBe(2);
    await worker.stop();
  });

  it("a worker whose prefetch grew on fast jobs does not hoard the slow jobs that follow", async () => {
    await t.rota.enqueueMany(
      Array.from({ length: 3_000 }, (_, n) => ({
        task: "mixed",
        payload: { n, slow: false },
        options: { queue: "mixed" },
      })),
    );
    const fastDone = events(t.rota.events, "job:run:success", 3_000);
    const release = deferred();
    const make = () =>
      t.rota.worker({
        logger: silentLogger,
        queues: ["mixed"],
        concurrency: 2,
        prefetch: 2,
        maxPrefetch: 64,
        rescueIntervalMs: 0,
        gracefulStopMs: 0,
        tasks: {
          mixed: async (payload: { slow: boolean }) => {
            if (payload.slow) await release.promise;
          },
        },
      });
    const a = make();
    await a.start();
    await fastDone;
    const b = make();
    await b.start();
    const started = events(t.rota.events, "job:run:start", 4);
    await t.rota.enqueueMany(
      Array.from({ length: 40 }, (_, n) => ({
        task: "mixed",
        payload: { n, slow: true },
        options: { queue: "mixed" },
      })),
    );
    await started;
    const held = await t.db.pool.query<{ holder: string; n: number }>(
      `select lease_holder as holder, count(*)::int as n from "${t.schema}".jobs
       where state = 'running' and queue = 'mixed' group by lease_holder`,
    );
    const byHolder = Object.fromEntries(held.rows.map((r) => [r.holder, r.n]));
    expect(byHolder[a.id]).toBeLessThanOrEqual(4);
    expect(byHolder[b.id]).toBeLessThanOrEqual(4);
    release.resolve();
    await Promise.all([a.stop(), b.stop()]);
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
    const held = await t.db.pool.query<{ holder: string; n: number }>(
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

describe("outcomes being written", () => {
  it("count toward what a worker holds only beyond concurrency + prefetch: claims go on while a write is slow, and stop at twice that", async () => {
    const s = `"${t.schema}"`;
    // Every outcome's write (the row's delete) waits for advisory lock 7301,
    // held here: the handlers return at once, their outcomes pile up.
    const locker = await t.db.dedicatedClient();
    await locker.query("select pg_advisory_lock(7301)");
    await t.db.pool.query(`
      create function ${s}.slow_outcome() returns trigger language plpgsql as $$
      begin
        if old.queue = 'writes.slow' then perform pg_advisory_lock_shared(7301); end if;
        return old;
      end $$;
      create trigger slow_outcome before delete on ${s}.jobs
        for each row execute function ${s}.slow_outcome();`);
    try {
      await t.rota.enqueueMany(
        Array.from({ length: 60 }, (_, n) => ({
          task: "quick",
          payload: { n },
          options: { queue: "writes.slow" },
        })),
      );
      const worker = t.rota.worker({
        logger: silentLogger,
        queues: ["writes.slow"],
        concurrency: 2,
        prefetch: 2,
        maxPrefetch: 2,
        rescueIntervalMs: 0,
        tasks: { quick: async () => {} },
      });
      let ran = 0;
      const off = t.rota.events.on("job:run:start", () => void ran++);
      await worker.start();
      // concurrency + prefetch is 4: the first write holds its outcomes
      // (a few), and the worker goes on claiming and running up to 8 held.
      await expect.poll(() => worker.held, { timeout: 10_000 }).toBe(8);
      const leased = await t.db.pool.query<{ n: number }>(
        `select count(*)::int as n from ${s}.jobs where lease_holder = $1`,
        [worker.id],
      );
      expect(leased.rows[0]?.n).toBe(8);
      // ... and no further, however long the write takes.
      const runs = ran;
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(worker.held).toBe(8);
      expect(ran).toBe(runs);
      expect(ran).toBeGreaterThan(4);
      await locker.query("select pg_advisory_unlock(7301)");
      await expect.poll(() => ran, { timeout: 10_000 }).toBe(60);
      await expect.poll(() => worker.held, { timeout: 10_000 }).toBe(0);
      off();
      await worker.stop();
    } finally {
      await locker.query("select pg_advisory_unlock_all()");
      await locker.end();
      await t.db.pool.query(
        `drop trigger slow_outcome on ${s}.jobs; drop function ${s}.slow_outcome()`,
      );
    }
  });
});

describe("claiming when there is nothing to claim", () => {
  it("an idle worker does not claim in a loop, nor one facing a due job another transaction holds", async () => {
    const worker = t.rota.worker({
      logger: silentLogger,
      queues: ["idle"],
      pollIntervalMs: 2_000,
      rescueIntervalMs: 0,
      tasks: { idle: async () => {} },
    });
    await worker.start();
    // Real time, briefly: nothing here depends on the database clock.
    await new Promise((r) => setTimeout(r, 300));
    expect(worker.claims).toBeLessThanOrEqual(2);

    // A due job held by another transaction: the claim skips it, and the
    // worker backs off (5, 10, 20 … ms) instead of claiming again at once.
    const { id } = await t.rota.enqueue("idle", {}, { queue: "idle", delayMs: 60_000 });
    const locker = await t.db.pool.connect();
    try {
      await locker.query("begin");
      await locker.query(`select id from "${t.schema}".jobs where id = $1 for update`, [id]);
      // Now it comes due (the shift wakes the worker), held by the locker.
      await t.rota.clock.shift(61_000);
      const before = worker.claims;
      await new Promise((r) => setTimeout(r, 300));
      expect(worker.claims - before).toBeLessThanOrEqual(10);
      const ran = events(t.rota.events, "job:run:success", 1);
      await locker.query("rollback");
      await ran;
    } finally {
      locker.release();
      await worker.stop();
    }
  });
});
