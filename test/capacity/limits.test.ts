// Global concurrency limits: per queue and per concurrency key, enforced in
// the claim across every worker process, under racing claims, a worker
// killed mid-job (its jobs rescued) and retries. The handlers record when
// they ran in a side table; the test computes from it how many ran at once.
import type { ChildProcess } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jobQueries } from "../../src/db/queries/jobs.js";
import { silentLogger } from "../../src/logger.js";
import { collect, runCli, startCli, waitForOutput, withoutDatabaseUrl } from "../helpers/cli.js";
import { migratedSchema, type TestSchema, withClient } from "../helpers/database.js";

const LIMIT_TASKS = new URL("../fixtures/limit-tasks.mjs", import.meta.url).pathname;

let t: TestSchema;
beforeAll(async () => {
  t = await migratedSchema();
  await withClient((c) =>
    c.query(`create table "${t.schema}".intervals (
      id bigint generated always as identity primary key,
      job_id bigint not null, attempt int not null, pid int not null, key text,
      started_at timestamptz not null default clock_timestamp(), ended_at timestamptz)`),
  );
});
afterAll(() => t.drop());

/**
 * The most handlers that ran at once, overall and per key, from their
 * recorded start and end; a handler whose process was killed ended at
 * `killedAt`. At a tie an end counts before a start.
 */
async function maxConcurrent(
  where: string,
  killedAt: Date | null,
): Promise<{ overall: number; byKey: Record<string, number> }> {
  return withClient(async (c) => {
    const result = await c.query(
      `with runs as (select * from "${t.schema}".intervals where ${where}),
       edges as (
         select key, started_at as at, 1 as step from runs
         union all
         select key, coalesce(ended_at, $1::timestamptz), -1 from runs
       ),
       running as (
         select key, sum(step) over (partition by key order by at, step) as by_key,
                sum(step) over (order by at, step) as overall
         from edges
       )
       select (select max(overall)::int from running) as overall,
              coalesce((select jsonb_object_agg(key, max) from (
                select key, max(by_key)::int as max from running where key is not null group by key
              ) as k), '{}'::jsonb) as by_key`,
      [killedAt],
    );
    return { overall: result.rows[0].overall, byKey: result.rows[0].by_key };
  });
}

describe("a queue's concurrency limit and a key's", () => {
  it("a claim that waited for another's lock counts the jobs that claim started (not its own older snapshot)", async () => {
    const q = jobQueries(t.schema);
    await t.rota.queues.setLimit("race", 1);
    const [first, second] = await t.rota.enqueueMany([
      { task: "x", payload: {}, options: { queue: "race" } },
      { task: "x", payload: {}, options: { queue: "race" } },
    ]);
    // Another claimer, in the middle of its claim: it holds the queue's row
    // and has started the first job, not yet committed.
    await withClient(async (other) => {
      await other.query("begin");
      await other.query(`select 1 from "${t.schema}".queues where name = 'race' for no key update`);
      await other.query(
        `update "${t.schema}".jobs set state = 'running', lease_holder = 'other',
           lease_expires_at = now() + interval '1 minute', attempts = 1 where id = $1`,
        [first?.id],
      );
      // This claim starts now, so its statement's snapshot predates the
      // other's commit; it waits for the queue's row.
      const claim = t.db.run(q.Claim, {
        queues: ["race"],
        tasks: ["x"],
        limit: 10,
        workerId: "me",
        leaseMs: 60_000,
        traced: false,
        startNow: 10,
        passOver: [],
      });
      await expect
        .poll(async () => {
          const waiting = await t.db.pool.query(
            `select count(*)::int as n from pg_stat_activity
             where wait_event_type = 'Lock' and query like '%queue_room%'`,
          );
          return waiting.rows[0].n;
        })
        .toBe(1);
      await other.query("commit");
      const rows = (await claim).rows;
      // Nothing claimed: the one slot is taken by the job the other started.
      expect(rows.filter((r) => r.id !== null)).toEqual([]);
      expect(rows[0]?.queues_at_limit).toEqual(["race"]);
    });
    expect((await t.rota.getJob(second?.id as string))?.state).toBe("available");
    const listed = (await t.rota.queues.list()).find((row) => row.name === "race");
    expect(listed).toMatchObject({ limit: 1, waitingForLimit: 1 });
    expect(listed?.counts).toMatchObject({ running: 1, available: 1 });
  });

  it("queues list counts the jobs of a key at its limit as waiting for it", async () => {
    const jobs = await t.rota.enqueueMany(
      Array.from({ length: 4 }, () => ({
        task: "x",
        payload: {},
        options: { queue: "per-key", concurrencyKey: "tenant-9", concurrencyLimit: 2 },
      })),
    );
    const waiting = async () =>
      (await t.rota.queues.list()).find((q) => q.name === "per-key")?.waitingForLimit;
    expect(await waiting()).toBe(0);
    // Two of them running: the key is at its limit, the other two wait for it.
    await withClient((c) =>
      c.query(
        `update "${t.schema}".jobs set state = 'running', lease_holder = 'w',
           lease_expires_at = now() + interval '1 minute' where id = any($1)`,
        [jobs.slice(0, 2).map((j) => j.id)],
      ),
    );
    expect(await waiting()).toBe(2);
  });

  it("4 `rota worker` processes never run more than the queue's limit (3) or a key's (1, 2), with a worker killed mid-job and retries", async () => {
    await t.rota.queues.setLimit("limited", 3);
    const env = { ...withoutDatabaseUrl(), DATABASE_URL: t.url, ROTA_TEST_SCHEMA: t.schema };
    const children: ChildProcess[] = [];
    const exits: ReturnType<typeof collect>[] = [];
    try {
      for (let n = 0; n < 4; n++) {
        const child = startCli(
          [
            "worker",
            "--schema",
            t.schema,
            "--tasks",
            LIMIT_TASKS,
            "--queues",
            "limited,keyed",
            "--concurrency",
            "4",
            "--lease-ms",
            "10000",
          ],
          { env },
        );
        children.push(child);
        exits.push(collect(child));
      }
      await Promise.all(children.map((child) => waitForOutput(child, "running")));
      const backoff = { kind: "fixed", delayMs: 20 } as const;
      await t.rota.enqueueMany([
        // The limited queue: 40 jobs, every fifth failing its first attempt,
        // and the first two long enough (1.5 s) for the kill below to land
        // mid-job on a loaded machine.
        ...Array.from({ length: 40 }, (_, n) => ({
          task: "interval",
          payload: { ms: n < 2 ? 1_500 : 60, failFirst: n % 5 === 0 },
          options: { queue: "limited", backoff, maxAttempts: 3 },
        })),
        // An unlimited queue with two keys: "a" one at a time, "b" two.
        ...Array.from({ length: 16 }, (_, n) => ({
          task: "interval",
          payload: { ms: 40, key: "a", failFirst: n % 4 === 0 },
          options: { queue: "keyed", concurrencyKey: "a", backoff, maxAttempts: 3 },
        })),
        ...Array.from({ length: 16 }, () => ({
          task: "interval",
          payload: { ms: 40, key: "b" },
          options: { queue: "keyed", concurrencyKey: "b", concurrencyLimit: 2, backoff },
        })),
      ]);

      // Kill the process running a job of the limited queue, mid-job.
      let victim: number | undefined;
      await expect
        .poll(
          async () => {
            victim = await withClient(async (c) => {
              const r = await c.query(
                `select i.pid from "${t.schema}".intervals as i
                 join "${t.schema}".jobs as j on j.id = i.job_id and j.queue = 'limited'
                 where i.ended_at is null and (j.payload->>'ms')::int >= 1000 limit 1`,
              );
              return r.rows[0]?.pid as number | undefined;
            });
            return victim;
          },
          { timeout: 15_000, interval: 5 },
        )
        .toBeDefined();
      const killed = children.find((child) => child.pid === victim);
      expect(killed).toBeDefined();
      killed?.kill("SIGKILL");
      const killedAt = new Date();
      await exits[children.indexOf(killed as ChildProcess)];
      // Its leases would run out in 10 s; they run out now (as if that time
      // had passed for the dead worker alone), and a rescue gives its jobs back.
      const held = await withClient(async (c) => {
        const r = await c.query(
          `update "${t.schema}".jobs set lease_expires_at = now() - interval '1 second'
           where state = 'running' and lease_holder in (
             select j.lease_holder from "${t.schema}".jobs as j
             join "${t.schema}".intervals as i on i.job_id = j.id
             where i.pid = $1 and i.ended_at is null)
           returning id`,
          [victim],
        );
        return r.rowCount ?? 0;
      });
      expect(held).toBeGreaterThan(0);
      expect((await t.rota.rescueExpired()).retried).toBe(held);

      // Every job ends, done: none is left in the table (successes are deleted).
      await expect
        .poll(
          async () =>
            (await t.rota.listJobs({ limit: 1000 }))
              .filter((j) => j.queue === "limited" || j.queue === "keyed")
              .map((j) => j.state),
          {
            timeout: 20_000,
            interval: 100,
          },
        )
        .toEqual([]);

      // Reached, never passed (a limit that held everything to one would
      // pass the "never more" half alone).
      const limited = await maxConcurrent("key is null", killedAt);
      expect(limited.overall).toBe(3);
      const keyed = await maxConcurrent("key is not null", killedAt);
      expect(keyed.byKey).toEqual({ a: 1, b: 2 });
      // Different keys ran side by side: a key's limit is its own.
      expect(keyed.overall).toBe(3);

      // Each job succeeded once: one ended attempt past its planned failure,
      // the killed one's excepted (it has a second, successful attempt).
      const perJob = await withClient(async (c) => {
        const r = await c.query(
          `select job_id, count(*) filter (where ended_at is not null)::int as ended,
                  count(*)::int as attempts
           from "${t.schema}".intervals group by job_id`,
        );
        return r.rows as { job_id: string; ended: number; attempts: number }[];
      });
      expect(perJob).toHaveLength(72);
      for (const job of perJob) {
        expect(job.attempts).toBeLessThanOrEqual(3);
        // Every job's handler ran to its end at least once.
        expect(job.ended).toBeGreaterThanOrEqual(1);
      }
    } finally {
      for (const child of children) if (child.exitCode === null) child.kill("SIGINT");
      const ends = await Promise.all(exits);
      // A live worker stopped gracefully (exit 0), with nothing to report.
      for (const end of ends) if (end.signal !== "SIGKILL") expect(end.code).toBe(0);
    }
  }, 120_000);

  it("a job held back by a limit starts as soon as the running one's outcome is written, not at the next poll", async () => {
    await t.rota.queues.setLimit("prompt", 1);
    const started: number[] = [];
    const worker = t.rota.worker({
      queues: ["prompt"],
      concurrency: 4,
      // A poll would come only after 30 s: a start sooner is the wake-up's.
      pollIntervalMs: 30_000,
      fallbackPollMs: 30_000,
      rescueIntervalMs: 0,
      logger: silentLogger,
      tasks: {
        step: async () => {
          started.push(Date.now());
          await new Promise((resolve) => setTimeout(resolve, 50));
        },
      },
    });
    const limited: number[] = [];
    const off = t.rota.events.on("claim:limited", (e) => {
      if (e.queuesAtLimit.includes("prompt")) limited.push(1);
    });
    await worker.start();
    try {
      await t.rota.enqueueMany(
        Array.from({ length: 5 }, () => ({
          task: "step",
          payload: {},
          options: { queue: "prompt" },
        })),
      );
      await expect.poll(() => started.length, { timeout: 10_000 }).toBe(5);
      const gaps = started.slice(1).map((at, i) => at - (started[i] as number));
      for (const gap of gaps) expect(gap).toBeLessThan(5_000);
      expect(limited.length).toBeGreaterThan(0);
    } finally {
      off();
      await worker.stop();
    }
  });

  it("a worker facing a due job whose key is at its limit waits for the wake-up, not claiming in a loop", async () => {
    const [running, due] = await t.rota.enqueueMany([
      { task: "held", payload: {}, options: { queue: "no-loop", concurrencyKey: "busy" } },
      { task: "held", payload: {}, options: { queue: "no-loop", concurrencyKey: "busy" } },
    ]);
    // One runs (elsewhere); the other is a retry that has come due.
    await withClient((c) =>
      c.query(
        `update "${t.schema}".jobs set state = case when id = $1 then 'running' else 'scheduled' end,
           lease_holder = case when id = $1 then 'elsewhere' end,
           lease_expires_at = case when id = $1 then now() + interval '1 minute' end,
           run_at = now() - interval '1 second'
         where id = any(array[$1, $2]::bigint[])`,
        [running?.id, due?.id],
      ),
    );
    const worker = t.rota.worker({
      queues: ["no-loop"],
      pollIntervalMs: 30_000,
      fallbackPollMs: 30_000,
      rescueIntervalMs: 0,
      logger: silentLogger,
      tasks: { held: async () => {} },
    });
    await worker.start();
    try {
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      // The start's claim, and perhaps one more: not a claim every few ms
      // growing to the poll (5, 10, 20 … 640 ms: eight in 1.5 s).
      expect(worker.claims).toBeLessThanOrEqual(2);
      expect((await t.rota.getJob(due?.id as string))?.state).toBe("scheduled");
    } finally {
      await worker.stop();
    }
  });

  it("a held-back job starts when another worker's outcome frees the slot: that worker wakes the queue", async () => {
    await t.rota.queues.setLimit("handoff", 1);
    let release = () => {};
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    let secondAt = 0;
    const common = {
      queues: ["handoff"],
      // A poll would come only after 30 s: a start sooner is the wake-up's.
      pollIntervalMs: 30_000,
      fallbackPollMs: 30_000,
      rescueIntervalMs: 0,
      logger: silentLogger,
    };
    // Each worker serves one task: the held job can only be the other's.
    const first = t.rota.worker({ ...common, tasks: { first: () => released } });
    const second = t.rota.worker({
      ...common,
      tasks: {
        second: () => {
          secondAt = Date.now();
        },
      },
    });
    await first.start();
    await second.start();
    try {
      const [running] = await t.rota.enqueueMany([
        { task: "first", payload: {}, options: { queue: "handoff" } },
      ]);
      await expect
        .poll(async () => (await t.rota.getJob(running?.id as string))?.state)
        .toBe("running");
      await t.rota.enqueue("second", {}, { queue: "handoff" });
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(secondAt).toBe(0);
      const freedAt = Date.now();
      release();
      await expect.poll(() => secondAt, { timeout: 10_000 }).toBeGreaterThan(0);
      expect(secondAt - freedAt).toBeLessThan(5_000);
    } finally {
      await first.stop();
      await second.stop();
    }
  });

  it("a limited job is never buffered: ranked behind unlimited ones past the free slots, it is put off, and the claim says so", async () => {
    const q = jobQueries(t.schema);
    await t.rota.queues.setLimit("lim-b", 5);
    await t.rota.enqueueMany([
      { task: "x", payload: {}, options: { queue: "unl-a", priority: 2 } },
      { task: "x", payload: {}, options: { queue: "lim-b", priority: 1 } },
      { task: "x", payload: {}, options: { queue: "lim-b", priority: 1 } },
    ]);
    const claim = (queues: string[], startNow: number) =>
      t.db.run(q.Claim, {
        queues,
        tasks: ["x"],
        limit: 10,
        workerId: `buffer-${startNow}`,
        leaseMs: 60_000,
        traced: false,
        startNow,
        passOver: [],
      });
    // Two free slots: the unlimited job and one limited start; the other
    // limited job is not claimed into the buffer.
    const rows = (await claim(["unl-a", "lim-b"], 2)).rows.filter((r) => r.id !== null);
    expect(rows.filter((r) => r.queue === "unl-a")).toHaveLength(1);
    const limited = rows.filter((r) => r.queue === "lim-b");
    expect(limited).toHaveLength(1);
    expect(limited[0]?.started_at).not.toBeNull();
    // No free slot: nothing limited is taken (an unlimited job ranked after
    // it goes to the buffer), and the claim's first row reports it put off.
    await t.rota.enqueue("x", {}, { queue: "unl-a", priority: 0 });
    const buffered = (await claim(["unl-a", "lim-b"], 0)).rows;
    expect(buffered.map((r) => r.queue)).toEqual(["unl-a"]);
    expect(buffered[0]?.started_at).toBeNull();
    expect(buffered[0]?.deferred).toBeGreaterThan(0);
    const none = (await claim(["lim-b"], 0)).rows;
    expect(none.filter((r) => r.id !== null)).toEqual([]);
    expect(none[0]?.deferred).toBeGreaterThan(0);
    expect(limited[0]?.limited).toBe(true);
  });

  it("one key's backlog does not hold back the jobs of other keys", async () => {
    const started: string[] = [];
    let release = () => {};
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    // The busy key's jobs come first (enqueued first), then five other keys.
    await t.rota.enqueueMany([
      ...Array.from({ length: 5 }, () => ({
        task: "crowd",
        payload: { key: "crowded" },
        options: { queue: "crowd", concurrencyKey: "crowded" },
      })),
      ...Array.from({ length: 5 }, (_, n) => ({
        task: "crowd",
        payload: { key: `other-${n}` },
        options: { queue: "crowd", concurrencyKey: `other-${n}` },
      })),
    ]);
    const worker = t.rota.worker({
      queues: ["crowd"],
      // Claims of 5: the first takes the crowded key's five, of which one
      // may start.
      concurrency: 5,
      prefetch: 0,
      pollIntervalMs: 30_000,
      fallbackPollMs: 30_000,
      rescueIntervalMs: 0,
      logger: silentLogger,
      tasks: {
        crowd: async (payload: { key: string }) => {
          started.push(payload.key);
          await released;
        },
      },
    });
    await worker.start();
    try {
      // One of the crowded key, and four of the others: five at once, soon
      // (the claim after one that held jobs back passes over the full key;
      // without it the others would wait for the 30-second poll).
      await expect.poll(() => started.length, { timeout: 5_000 }).toBe(5);
      expect(started.filter((key) => key === "crowded")).toHaveLength(1);
    } finally {
      release();
      await worker.stop();
    }
  });

  it("a task's default key, computed from the payload, limits its jobs per key; enqueue's own option wins", async () => {
    const running = new Map<string, number>();
    const peak = new Map<string, number>();
    const worker = t.rota.worker({
      queues: ["tenants"],
      concurrency: 8,
      rescueIntervalMs: 0,
      logger: silentLogger,
      tasks: [
        {
          name: "sync",
          queue: "tenants",
          concurrencyKey: (payload: { tenant: string }) => `tenant-${payload.tenant}`,
          handler: async (payload: { tenant: string }) => {
            const key = `tenant-${payload.tenant}`;
            running.set(key, (running.get(key) ?? 0) + 1);
            peak.set(key, Math.max(peak.get(key) ?? 0, running.get(key) as number));
            await new Promise((resolve) => setTimeout(resolve, 30));
            running.set(key, (running.get(key) as number) - 1);
          },
        },
      ],
    });
    const rota = t.rota;
    const sync = {
      name: "sync",
      queue: "tenants",
      concurrencyKey: (payload: { tenant: string }) => `tenant-${payload.tenant}`,
      handler: async () => {},
    };
    await worker.start();
    try {
      const jobs = await rota.enqueueMany([
        ...Array.from({ length: 6 }, () => ({ task: sync, payload: { tenant: "1" } })),
        ...Array.from({ length: 6 }, () => ({ task: sync, payload: { tenant: "2" } })),
        {
          task: sync,
          payload: { tenant: "3" },
          options: { concurrencyKey: "own", concurrencyLimit: 2 },
        },
      ]);
      const own = await withClient(async (c) =>
        c.query(`select concurrency_key, concurrency_limit from "${t.schema}".jobs where id = $1`, [
          jobs[12]?.id,
        ]),
      );
      expect(own.rows[0]).toEqual({ concurrency_key: "own", concurrency_limit: 2 });
      // Thirteen jobs, one at a time per tenant: longer than poll's default
      // second on a loaded machine.
      await expect
        .poll(async () => (await rota.listJobs({ queue: "tenants" })).length, { timeout: 15_000 })
        .toBe(0);
      expect(peak.get("tenant-1")).toBe(1);
      expect(peak.get("tenant-2")).toBe(1);
    } finally {
      await worker.stop();
    }
  });

  it("refuses bad limits and keys with a code, and writes nothing", async () => {
    const before = (await t.rota.listJobs({ limit: 1000 })).length;
    for (const options of [
      { concurrencyKey: "" },
      { concurrencyKey: 42 as unknown as string },
      { concurrencyKey: "schedule:7:" },
      { concurrencyKey: "k", concurrencyLimit: 0 },
      { concurrencyLimit: 1.5 },
      { concurrencyLimit: "3" as unknown as number },
    ]) {
      await expect(t.rota.enqueue("x", {}, options)).rejects.toMatchObject({
        code: "INVALID_OPTION",
      });
    }
    expect((await t.rota.listJobs({ limit: 1000 })).length).toBe(before);
    await expect(t.rota.queues.setLimit("q", 0)).rejects.toMatchObject({ code: "INVALID_OPTION" });
    await expect(t.rota.queues.setLimit("bad name!", 3)).rejects.toMatchObject({
      code: "INVALID_QUEUE_NAME",
    });
    expect((await t.rota.queues.list()).find((q) => q.name === "q")).toBeUndefined();
  });

  it("rota queues limit sets and lifts a limit; list shows it, with --json", async () => {
    const args = ["--schema", t.schema];
    const env = { ...withoutDatabaseUrl(), DATABASE_URL: t.url };
    const set = await runCli(["queues", "limit", "cli-q", "5", "--json", ...args], { env });
    expect(set.code).toBe(0);
    expect(JSON.parse(set.stdout)).toEqual({ name: "cli-q", limit: 5 });
    const listed = await runCli(["queues", "list", "--json", ...args], { env });
    const row = JSON.parse(listed.stdout).find((q: { name: string }) => q.name === "cli-q");
    expect(row).toMatchObject({ limit: 5, waiting_for_limit: 0, paused: false });
    const table = await runCli(["queues", "list", ...args], { env });
    expect(table.stdout).toMatch(/waiting_for_limit/);
    expect(table.stdout).toMatch(/cli-q\s+false\s+5/);
    const lifted = await runCli(["queues", "limit", "cli-q", "none", ...args], { env });
    expect(lifted.stdout).toMatch(/no concurrency limit/);
    const bad = await runCli(["queues", "limit", "cli-q", "0", ...args], { env });
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/INVALID_OPTION/);
    expect((await t.rota.queues.list()).find((q) => q.name === "cli-q")?.limit).toBeNull();
  });
});
