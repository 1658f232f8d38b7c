// Guarantee 2: a committed job runs at least once, across worker crashes
// (kill -9) and database restarts.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { databaseOf, Rota } from "../../src/client.js";
import { type EmbeddedPostgres, freePort, startEmbeddedPostgres } from "../../src/dev/embedded.js";
import { silentLogger } from "../../src/logger.js";
import { collect, startCli, waitForOutput, withoutDatabaseUrl } from "../helpers/cli.js";
import { migratedSchema, type TestSchema } from "../helpers/database.js";
import { events, nextEvent } from "../helpers/events.js";
import { OwnServer } from "../helpers/own-server.js";
import { createSideTable, SIDE_TASKS, sideRuns } from "../helpers/side-table.js";

describe("guarantee 2: nothing lost when a worker is killed with SIGKILL mid-job", () => {
  let t: TestSchema;
  beforeAll(async () => {
    t = await migratedSchema();
    await createSideTable(t.schema);
  });
  afterAll(() => t.drop());

  it("the killed worker's job is rescued once its lease expires, and completed by another worker", async () => {
    const env = { ...withoutDatabaseUrl(), DATABASE_URL: t.url, ROTA_TEST_SCHEMA: t.schema };
    const child = startCli(
      ["worker", "--schema", t.schema, "--tasks", SIDE_TASKS, "--lease-ms", "30000"],
      { env },
    );
    const exited = collect(child);
    await waitForOutput(child, "running");
    const { id } = await t.rota.enqueue("hang", { important: true });
    await expect.poll(async () => (await sideRuns(t.schema)).length, { timeout: 15_000 }).toBe(1);
    expect(await t.rota.getJob(id)).toMatchObject({ state: "running", attempts: 1 });

    child.kill("SIGKILL");
    expect((await exited).signal).toBe("SIGKILL");

    // Before the lease runs out nothing is rescued; 31 s later (by the clock seam) it is.
    expect((await t.rota.rescueExpired()).retried).toBe(0);
    await t.rota.clock.shift(31_000);
    expect(await t.rota.rescueExpired()).toEqual({ retried: 1, failed: 0, cancelled: 0 });
    const rescued = await t.rota.getJob(id);
    expect(rescued).toMatchObject({ state: "available", attempts: 1, lease_holder: null });
    expect(rescued?.last_error?.message).toMatch(/lease expired/);

    const finished = nextEvent(t.rota.events, "job:run:success", (e) => e.id === id);
    const worker = t.rota.worker({
      logger: silentLogger,
      tasks: {
        hang: async (payload: { important: boolean }) => expect(payload.important).toBe(true),
      },
    });
    await worker.start();
    try {
      expect((await finished).attempt).toBe(2);
      expect(await t.rota.getJob(id)).toBeNull();
    } finally {
      await worker.stop();
      await t.rota.clock.reset();
    }
  });

  it("jobs waiting in a killed worker's buffer get their attempt back: on their last attempt they still run", async () => {
    const env = { ...withoutDatabaseUrl(), DATABASE_URL: t.url, ROTA_TEST_SCHEMA: t.schema };
    // One running, three in the buffer (prefetch 3 x concurrency 1).
    const child = startCli(
      [
        "worker",
        "--schema",
        t.schema,
        "--tasks",
        SIDE_TASKS,
        "--queues",
        "buffered",
        "--concurrency",
        "1",
        "--lease-ms",
        "30000",
      ],
      { env },
    );
    const exited = collect(child);
    await waitForOutput(child, "running");
    const jobs = await t.rota.enqueueMany(
      Array.from({ length: 4 }, (_, n) => ({
        task: "hang",
        payload: { n },
        options: { queue: "buffered", maxAttempts: 1 },
      })),
    );
    const ids = jobs.map((j) => j.id);
    await expect
      .poll(async () => (await t.rota.listJobs({ queue: "buffered", state: "running" })).length, {
        timeout: 15_000,
      })
      .toBe(4);
    const ours = async () =>
      (await sideRuns(t.schema)).map((r) => String(r.job_id)).filter((id) => ids.includes(id));
    await expect.poll(async () => (await ours()).length, { timeout: 15_000 }).toBe(1);
    const started = new Set(await ours());
    child.kill("SIGKILL");
    expect((await exited).signal).toBe("SIGKILL");

    await t.rota.clock.shift(31_000);
    try {
      // The started one used its only attempt; the three that never left the buffer did not.
      expect(await t.rota.rescueExpired()).toEqual({ retried: 3, failed: 1, cancelled: 0 });
      for (const id of ids) {
        const job = await t.rota.getJob(id);
        if (started.has(id)) expect(job).toMatchObject({ state: "failed", attempts: 1 });
        else expect(job).toMatchObject({ state: "available", attempts: 0 });
      }
    } finally {
      await t.rota.clock.reset();
    }
  });

  it("a job whose last attempt was lost to a crash ends 'failed', not silently gone", async () => {
    const { id } = await t.rota.enqueue(
      "neverFinishes",
      {},
      { maxAttempts: 1, queue: "lastAttempt" },
    );
    const worker = t.rota.worker({
      logger: silentLogger,
      queues: ["lastAttempt"],
      leaseMs: 60_000,
      heartbeatMs: 50_000,
      rescueIntervalMs: 0,
      gracefulStopMs: 0,
      tasks: { neverFinishes: () => new Promise(() => {}) },
    });
    await worker.start();
    await expect.poll(async () => (await t.rota.getJob(id))?.state).toBe("running");
    await t.rota.clock.shift(61_000);
    try {
      expect((await t.rota.rescueExpired()).failed).toBe(1);
      expect(await t.rota.getJob(id)).toMatchObject({ state: "failed", attempts: 1 });
    } finally {
      await t.rota.clock.reset();
      await worker.stop();
    }
  });
});

describe("guarantee 2: nothing lost across a database restart", () => {
  let server: OwnServer;

  beforeAll(async () => {
    server = await OwnServer.start("restart-test");
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("jobs enqueued before and after a restart all run; the worker reconnects on its own", async () => {
    const rota = new Rota({ connection: server.url, schema: "restart_test" });
    // The data folder is kept between runs: start from an empty schema.
    await databaseOf(rota).pool.query("drop schema if exists restart_test cascade");
    await rota.migrate();
    const ran = new Set<number>();
    const worker = rota.worker({
      logger: silentLogger,
      pollIntervalMs: 200,
      fallbackPollMs: 100,
      tasks: { counted: async (payload: { n: number }) => void ran.add(payload.n) },
    });
    await worker.start();
    try {
      const before = events(rota.events, "job:run:success", 50);
      await rota.enqueueMany(
        Array.from({ length: 50 }, (_, n) => ({ task: "counted", payload: { n } })),
      );
      await before;

      await server.stop();
      await server.start();

      // The pool's dead connections fail once; enqueue again until the pool has reconnected.
      const after = Array.from({ length: 50 }, (_, i) => ({
        task: "counted",
        payload: { n: 50 + i },
      }));
      await expect
        .poll(
          async () => {
            try {
              await rota.enqueueMany(after);
              return true;
            } catch {
              return false;
            }
          },
          { timeout: 30_000, interval: 200 },
        )
        .toBe(true);
      await expect.poll(() => ran.size, { timeout: 30_000 }).toBe(100);
      // Every outcome is written too (the last batch may still be on its way
      // when the last handler returns): no job is left behind.
      await expect
        .poll(
          async () =>
            (await databaseOf(rota).pool.query("select count(*)::int as n from restart_test.jobs"))
              .rows[0]?.n,
          { timeout: 10_000 },
        )
        .toBe(0);
    } finally {
      await worker.stop();
      await rota.close();
    }
  });
});
