// Limited-capacity sweeps (the stale-row refresh): at most maxRunning
// instances at once across workers, each row refreshed exactly once, the
// sweep stops when nothing remains, a paused queue stops it and resuming
// finishes it; the cron kick, the CLI, and bad definitions.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SweepDefinition } from "../../src/capacity/sweeps.js";
import { silentLogger } from "../../src/logger.js";
import type { Worker } from "../../src/worker/worker.js";
import { collect, runCli, startCli, waitForOutput, withoutDatabaseUrl } from "../helpers/cli.js";
import { migratedSchema, type TestSchema, withClient } from "../helpers/database.js";

let t: TestSchema;
beforeAll(async () => {
  t = await migratedSchema();
});
afterAll(() => t.drop());

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A user table of rows to refresh (the seed's projects with stale data). */
async function staleRows(table: string, count: number): Promise<void> {
  await withClient((c) =>
    c.query(`create table "${t.schema}".${table} (
      id int primary key, stale boolean not null default true,
      refreshed_at timestamptz, refresh_count int not null default 0);
      insert into "${t.schema}".${table} (id) select g from generate_series(1, ${count}) as g`),
  );
}

async function refreshCounts(
  table: string,
): Promise<{ stale: number; once: number; more: number }> {
  return withClient(async (c) => {
    const r = await c.query(
      `select count(*) filter (where stale)::int as stale,
              count(*) filter (where refresh_count = 1)::int as once,
              count(*) filter (where refresh_count > 1)::int as more
       from "${t.schema}".${table}`,
    );
    return r.rows[0];
  });
}

/** The seed's refresh as a sweep over `table`, counting how many instances perform at once. */
function refreshSweep(name: string, table: string, options: { failOnce?: number } = {}) {
  const concurrency = { now: 0, peak: 0, failed: false };
  const sweep: SweepDefinition<{ id: number }> = {
    name,
    queue: `${name}-q`,
    maxRunning: 10,
    // The stalest row nobody else holds.
    pick: async (client) => {
      const r = await client.query(
        `select id from "${t.schema}".${table} where stale
         order by refreshed_at nulls first, id limit 1 for update skip locked`,
      );
      return r.rows[0];
    },
    perform: async (item, context) => {
      concurrency.now++;
      concurrency.peak = Math.max(concurrency.peak, concurrency.now);
      try {
        await sleep(5);
        await context.client.query(
          `update "${t.schema}".${table}
           set stale = false, refreshed_at = clock_timestamp(), refresh_count = refresh_count + 1
           where id = $1`,
          [item.id],
        );
        if (item.id === options.failOnce && !concurrency.failed) {
          concurrency.failed = true;
          throw new Error("the refresh failed once");
        }
      } finally {
        concurrency.now--;
      }
    },
    remaining: async (client) => {
      const r = await client.query(
        `select count(*)::int as n from "${t.schema}".${table} where stale`,
      );
      return r.rows[0].n;
    },
  };
  return { sweep, concurrency };
}

function workers(queue: string, count: number): Worker[] {
  return Array.from({ length: count }, () =>
    t.rota.worker({
      tasks: {},
      queues: [queue],
      concurrency: 8,
      rescueIntervalMs: 0,
      logger: silentLogger,
    }),
  );
}

async function settled(name: string): Promise<void> {
  await expect
    .poll(
      async () => {
        const info = (await t.rota.sweeps.list()).find((s) => s.name === name);
        return { running: info?.running, waiting: info?.waiting };
      },
      { timeout: 60_000, interval: 50 },
    )
    .toEqual({ running: 0, waiting: 0 });
}

describe("a sweep", () => {
  it("with maxRunning 10 over 1,000 stale rows refreshes each exactly once, never more than 10 at once, then stops", async () => {
    await staleRows("projects", 1_000);
    // One refresh fails: its transaction rolls back, the instance is retried.
    const { sweep, concurrency } = refreshSweep("refresh", "projects", { failOnce: 500 });
    const defined = await t.rota.sweeps.define(sweep);
    expect(defined).toMatchObject({ name: "refresh", queue: "refresh-q", maxRunning: 10 });
    // 2 workers of 8: 16 slots, more than the sweep may use.
    const pool = workers("refresh-q", 2);
    await Promise.all(pool.map((w) => w.start()));
    try {
      expect(await t.rota.sweeps.run("refresh")).toEqual({ name: "refresh", started: 10 });
      // A second kick while 10 are queued or running adds none.
      expect((await t.rota.sweeps.run("refresh")).started).toBe(0);
      await expect
        .poll(() => refreshCounts("projects"), { timeout: 60_000, interval: 100 })
        .toEqual({ stale: 0, once: 1_000, more: 0 });
      await settled("refresh");
      // Never more than 10; and several at once (instances ran side by side:
      // on a busy machine the gaps between an instance and its successor keep
      // some from overlapping the others; a full-suite run on two loaded
      // cores saw a peak of 5).
      expect(concurrency.peak).toBeLessThanOrEqual(10);
      expect(concurrency.peak).toBeGreaterThanOrEqual(3);
      // The failed refresh was rolled back and done again: still once.
      expect(concurrency.failed).toBe(true);
      // Nothing left queued: the sweep stopped.
      expect(
        (await t.rota.listJobs({ queue: "refresh-q", limit: 100 })).filter(
          (j) => j.state !== "succeeded",
        ),
      ).toEqual([]);
    } finally {
      await Promise.all(pool.map((w) => w.stop()));
    }
  }, 90_000);

  it("stops while its queue is paused, and finishes on resume, each row once", async () => {
    await staleRows("accounts", 400);
    const { sweep } = refreshSweep("pausable", "accounts");
    await t.rota.sweeps.define(sweep);
    const pool = workers("pausable-q", 2);
    await Promise.all(pool.map((w) => w.start()));
    try {
      await t.rota.sweeps.run("pausable");
      await expect
        .poll(async () => (await refreshCounts("accounts")).once, { timeout: 20_000, interval: 5 })
        .toBeGreaterThanOrEqual(20);
      await t.rota.queues.pause("pausable-q");
      // Instances running at the pause finish; then nothing moves.
      await sleep(300);
      const atPause = await refreshCounts("accounts");
      await sleep(700);
      expect(await refreshCounts("accounts")).toEqual(atPause);
      expect(atPause.stale).toBeGreaterThan(0);
      const listed = (await t.rota.sweeps.list()).find((s) => s.name === "pausable");
      expect(listed).toMatchObject({ paused: true, running: 0 });
      expect(listed?.waiting).toBeGreaterThan(0);

      await t.rota.queues.resume("pausable-q");
      await expect
        .poll(() => refreshCounts("accounts"), { timeout: 60_000, interval: 100 })
        .toEqual({ stale: 0, once: 400, more: 0 });
      await settled("pausable");
    } finally {
      await Promise.all(pool.map((w) => w.stop()));
    }
  }, 90_000);

  it("with a cron has a kick schedule whose executions top it up; defined without, the schedule goes", async () => {
    await staleRows("reports", 30);
    const { sweep } = refreshSweep("nightly", "reports");
    await t.rota.sweeps.define({ ...sweep, cron: "0 3 * * *", timezone: "Europe/Paris" });
    const schedule = await t.rota.schedules.get("sweep:nightly");
    expect(schedule).toMatchObject({
      task: "sweep:nightly",
      queue: "nightly-q",
      cron: "0 3 * * *",
      timezone: "Europe/Paris",
      payload: { kick: true },
    });
    const pool = workers("nightly-q", 1);
    await pool[0]?.start();
    try {
      // The cron's execution, now rather than at 3 a.m.: it kicks the sweep.
      await t.rota.schedules.trigger("sweep:nightly");
      await expect
        .poll(() => refreshCounts("reports"), { timeout: 30_000, interval: 50 })
        .toEqual({ stale: 0, once: 30, more: 0 });
      await settled("nightly");
      expect(
        (await t.rota.sweeps.list()).find((s) => s.name === "nightly")?.lastKickedAt,
      ).not.toBeNull();
    } finally {
      await pool[0]?.stop();
    }
    await t.rota.sweeps.define(sweep);
    expect(await t.rota.schedules.get("sweep:nightly")).toBeNull();
  }, 60_000);

  it("redefined with another queue and maxRunning, carries its queued instances over", async () => {
    const { sweep } = refreshSweep("moving", "projects");
    await t.rota.sweeps.define({ ...sweep, queue: "m1", maxRunning: 3 });
    expect((await t.rota.sweeps.run("moving")).started).toBe(3);
    await t.rota.sweeps.define({ ...sweep, queue: "m2", maxRunning: 2 });
    expect((await t.rota.sweeps.list()).find((s) => s.name === "moving")).toMatchObject({
      queue: "m2",
      maxRunning: 2,
      waiting: 3,
    });
    const instances = await withClient(
      async (c) =>
        (
          await c.query(
            `select queue, concurrency_limit from "${t.schema}".jobs where task = 'sweep:moving'`,
          )
        ).rows,
    );
    expect(instances).toEqual(Array(3).fill({ queue: "m2", concurrency_limit: 2 }));
    // Three queued already: a kick adds none.
    expect((await t.rota.sweeps.run("moving")).started).toBe(0);
  });

  it("refuses a bad definition with a code, recording nothing", async () => {
    const { sweep } = refreshSweep("bad", "projects");
    for (const bad of [
      { ...sweep, name: "no spaces" },
      { ...sweep, maxRunning: 0 },
      { ...sweep, maxRunning: 2.5 },
      { ...sweep, queue: "bad queue" },
      { ...sweep, pick: "select 1" as unknown as typeof sweep.pick },
      { ...sweep, cron: "not a cron" },
      { ...sweep, maxRuning: 3 } as unknown as typeof sweep,
    ]) {
      await expect(t.rota.sweeps.define(bad)).rejects.toMatchObject({
        code: expect.stringMatching(/^INVALID_/),
      });
    }
    expect((await t.rota.sweeps.list()).some((s) => s.name === "bad")).toBe(false);
    expect(await t.rota.schedules.get("sweep:bad")).toBeNull();
    await expect(t.rota.sweeps.run("missing")).rejects.toMatchObject({ code: "SWEEP_NOT_FOUND" });
  });

  it("rota sweeps list and run, with --json; an unknown sweep is an error", async () => {
    const env = { ...withoutDatabaseUrl(), DATABASE_URL: t.url };
    const args = ["--schema", t.schema];
    const { sweep } = refreshSweep("cli", "projects");
    await t.rota.sweeps.define({ ...sweep, maxRunning: 3 });
    const ran = await runCli(["sweeps", "run", "cli", "--json", ...args], { env });
    expect(ran.code).toBe(0);
    expect(JSON.parse(ran.stdout)).toEqual({ name: "cli", started: 3 });
    const listed = await runCli(["sweeps", "list", "--json", ...args], { env });
    const row = JSON.parse(listed.stdout).find((s: { name: string }) => s.name === "cli");
    expect(row).toMatchObject({ queue: "cli-q", max_running: 3, running: 0, waiting: 3 });
    const table = await runCli(["sweeps", "list", ...args], { env });
    expect(table.stdout.split("\n")[0]).toMatch(/^name\s+queue\s+max_running\s+running\s+waiting/);
    expect((await runCli(["sweeps", "run", "cli", ...args], { env })).stdout).toContain(
      'sweep "cli": 0 instance(s) started',
    );
    const unknown = await runCli(["sweeps", "run", "nope", ...args], { env });
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain("SWEEP_NOT_FOUND");
  });

  it("exported as `sweeps` from a `rota worker --tasks` module, is recorded and run by that worker", async () => {
    await withClient((c) =>
      c.query(`create table "${t.schema}".items (id int primary key, stale boolean not null default true,
                 refreshed_by int);
               insert into "${t.schema}".items (id) select g from generate_series(1, 20) as g`),
    );
    const env = { ...withoutDatabaseUrl(), DATABASE_URL: t.url, ROTA_TEST_SCHEMA: t.schema };
    const tasks = new URL("../fixtures/sweep-tasks.mjs", import.meta.url).pathname;
    const child = startCli(["worker", "--schema", t.schema, "--tasks", tasks], { env });
    const exited = collect(child);
    try {
      await waitForOutput(child, "running");
      expect((await t.rota.sweeps.list()).find((s) => s.name === "items")).toMatchObject({
        queue: "items",
        maxRunning: 2,
      });
      expect(await t.rota.sweeps.run("items")).toEqual({ name: "items", started: 2 });
      await expect
        .poll(
          () =>
            withClient(async (c) => {
              const r = await c.query(
                `select count(*) filter (where not stale)::int as done,
                        count(distinct refreshed_by)::int as processes
                 from "${t.schema}".items`,
              );
              return r.rows[0];
            }),
          { timeout: 20_000, interval: 50 },
        )
        .toEqual({ done: 20, processes: 1 });
      await settled("items");
    } finally {
      child.kill("SIGINT");
      expect((await exited).code).toBe(0);
    }
  });
});
