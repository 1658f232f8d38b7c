// A batch's callback job is enqueued exactly once: when its last member
// finishes, or when the orchestrator expires it with members still open,
// whichever comes first, and never again. Members finish in worker
// processes racing each other, the expiry step races the last member, and
// orchestrators race the expiry step.
import type { ChildProcess } from "node:child_process";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expireBatches } from "../../src/batches/expiry.js";
import { Rota } from "../../src/client.js";
import { batchQueries } from "../../src/db/queries/batches.js";
import { jobQueries } from "../../src/db/queries/jobs.js";
import { silentLogger } from "../../src/logger.js";
import type { Worker } from "../../src/worker/worker.js";
import { collect, startCli, waitForOutput, withoutDatabaseUrl } from "../helpers/cli.js";
import { migratedSchema, type TestSchema } from "../helpers/database.js";

const RACE_TASKS = new URL("../fixtures/batch-race-tasks.mjs", import.meta.url).pathname;

let t: TestSchema;
let pool: pg.Pool;
beforeAll(async () => {
  t = await migratedSchema();
  pool = new pg.Pool({ connectionString: t.url, max: 4 });
  await pool.query(
    `create table "${t.schema}".barrier (round int not null, pid int not null,
       at timestamptz not null default clock_timestamp());
     create table "${t.schema}".gate (round int primary key)`,
  );
});
afterAll(async () => {
  await pool.end();
  await t.drop();
});

/** The callback jobs of task `task` (left in the table: no worker here serves them). */
async function callbacks(
  task: string,
): Promise<{ id: string; payload: Record<string, unknown> }[]> {
  const result = await pool.query(
    `select id::text, payload from "${t.schema}".jobs where task = $1 order by id`,
    [task],
  );
  return result.rows;
}

/** Outcome statements of this schema waiting for a batch's row (to count a member). */
async function waitingToCount(): Promise<number> {
  const waiting = await pool.query(
    `select count(*)::int as n from pg_stat_activity
     where wait_event_type = 'Lock' and query like '%count_batch_outcomes%' and query like $1`,
    [`%${t.schema}%`],
  );
  return waiting.rows[0].n;
}

async function untilFinished(id: string, timeout = 60_000): Promise<void> {
  await expect
    .poll(async () => (await t.rota.batches.get(id))?.state, { timeout, interval: 50 })
    .not.toBe("open");
}

function startWorker(options: Parameters<Rota["worker"]>[0]): Promise<Worker> {
  const worker = t.rota.worker({ logger: silentLogger, rescueIntervalMs: 0, ...options });
  return worker.start().then(() => worker);
}

describe("a batch's callback is enqueued exactly once", () => {
  it("a batch of 1,000: once, with the counts, after members succeeded (deleted and kept), retried, failed for good and were cancelled", async () => {
    const retry = { maxAttempts: 2, backoff: { kind: "fixed", delayMs: 1 } } as const;
    const jobs = [
      ...Array.from({ length: 800 }, (_, n) => ({
        task: "big.ok",
        payload: { n },
        options: { queue: "big" },
      })),
      // Fail their first attempt, succeed on the retry: counted once, as succeeded.
      ...Array.from({ length: 100 }, (_, n) => ({
        task: "big.flaky",
        payload: { n },
        options: { queue: "big", ...retry },
      })),
      ...Array.from({ length: 50 }, (_, n) => ({
        task: "big.bad",
        payload: { n },
        options: { queue: "big", maxAttempts: 1 },
      })),
      // Cancelled while queued, before any worker runs.
      ...Array.from({ length: 50 }, (_, n) => ({
        task: "big.ok",
        payload: { n },
        options: { queue: "big", delayMs: 3_600_000 },
      })),
    ];
    const batch = await t.rota.batches.enqueue(jobs, {
      onComplete: { task: "big.done", payload: { report: "nightly" } },
    });
    expect(batch.jobs).toHaveLength(1_000);
    for (const job of batch.jobs.slice(950)) await t.rota.cancel(job.id);

    const handlers = {
      "big.ok": async () => {},
      "big.flaky": async (_: unknown, ctx: { attempt: number }) => {
        if (ctx.attempt === 1) throw new Error("the first attempt fails");
      },
      "big.bad": async () => {
        throw new Error("fails for good");
      },
    };
    // One worker deletes its successes (CompleteByDelete), the other keeps
    // them (CompleteByKeep): both count.
    const workers = await Promise.all([
      startWorker({ tasks: handlers, queues: ["big"], concurrency: 8 }),
      startWorker({
        tasks: handlers,
        queues: ["big"],
        concurrency: 8,
        retention: { succeededMs: 3_600_000 },
      }),
    ]);
    try {
      await untilFinished(batch.id);
    } finally {
      await Promise.all(workers.map((w) => w.stop()));
    }
    const fired = await callbacks("big.done");
    expect(fired).toHaveLength(1);
    expect(fired[0]?.payload).toEqual({
      batch: batch.id,
      succeeded: 900,
      failed: 50,
      cancelled: 50,
      total: 1_000,
      expired: false,
      payload: { report: "nightly" },
    });
    expect(await t.rota.batches.get(batch.id)).toMatchObject({
      state: "finished",
      pending: 0,
      callbackJobId: fired[0]?.id,
    });
  });

  it("the last two members finishing at the same instant in two worker processes: one callback, every round", async () => {
    const env = { ...withoutDatabaseUrl(), DATABASE_URL: t.url, ROTA_TEST_SCHEMA: t.schema };
    const children: ChildProcess[] = [];
    const exits: ReturnType<typeof collect>[] = [];
    try {
      // One process per queue, so each racer of a round runs in its own.
      for (const queue of ["race-a", "race-b"]) {
        const child = startCli(
          ["worker", "--schema", t.schema, "--tasks", RACE_TASKS, "--queues", queue],
          { env },
        );
        children.push(child);
        exits.push(collect(child));
      }
      await Promise.all(children.map((child) => waitForOutput(child, "running")));

      for (let round = 1; round <= 6; round++) {
        const batch = await t.rota.batches.enqueue(
          [
            { task: "race", payload: { round }, options: { queue: "race-a" } },
            { task: "race", payload: { round }, options: { queue: "race-b" } },
            { task: "race.never", payload: {}, options: { queue: "idle" } },
            { task: "race.never", payload: {}, options: { queue: "idle" } },
          ],
          { onComplete: { task: `race.done.${round}`, payload: { round } } },
        );
        await t.rota.cancel(batch.jobs[2]?.id as string);
        await t.rota.cancel(batch.jobs[3]?.id as string);
        // Odd rounds: the batch's row is held here until both racers'
        // outcome statements wait for it (each has written its job's
        // outcome, and both then count at once). Even rounds: the barrier
        // in the handlers alone, with nothing held. Either way the racers
        // leave the barrier only once the round's gate is open.
        const holder = round % 2 === 1 ? await pool.connect() : null;
        try {
          if (holder) {
            await holder.query("begin");
            await holder.query(`select 1 from "${t.schema}".batches where id = $1 for update`, [
              batch.id,
            ]);
          }
          await pool.query(`insert into "${t.schema}".gate (round) values ($1)`, [round]);
          if (holder) {
            await expect.poll(waitingToCount, { timeout: 30_000, interval: 20 }).toBe(2);
            await holder.query("commit");
          }
        } finally {
          holder?.release();
        }
        await untilFinished(batch.id);
        const fired = await callbacks(`race.done.${round}`);
        expect(fired).toHaveLength(1);
        expect(fired[0]?.payload).toMatchObject({ succeeded: 2, cancelled: 2, total: 4 });
        // The racers ran in two processes.
        const pids = await pool.query(
          `select count(distinct pid)::int as n from "${t.schema}".barrier where round = $1`,
          [round],
        );
        expect(pids.rows[0].n).toBe(2);
      }
    } finally {
      for (const child of children) if (child.exitCode === null) child.kill("SIGINT");
      const ends = await Promise.all(exits);
      for (const end of ends) expect(end.stderr).not.toContain("UNEXPECTED");
    }
  });

  it("two orchestrators (and more expiry passes) racing the expiry step: one callback per batch", async () => {
    const other = new Rota({ connection: t.url, schema: t.schema });
    try {
      const ids: string[] = [];
      for (let n = 0; n < 40; n++) {
        const batch = await t.rota.batches.enqueue(
          [
            { task: "stuck", payload: {}, options: { queue: "nobody" } },
            { task: "stuck", payload: {}, options: { queue: "nobody" } },
          ],
          { onComplete: { task: "expiry.done", payload: { n } }, expiresInMs: 1_000 },
        );
        ids.push(batch.id);
      }
      await t.rota.clock.shift(2_000);
      // Two leaders (separate leases), and six bare passes taking 3 at a time.
      const a = t.rota.orchestrator({ holder: "a", leaseName: "expiry-a" });
      const b = other.orchestrator({ holder: "b", leaseName: "expiry-b" });
      const [ra, rb, ...passes] = await Promise.all([
        a.tick(),
        b.tick(),
        ...Array.from({ length: 6 }, () => expireBatches(t.db, t.rota.events, { limit: 3 })),
      ]);
      expect(ra?.errors).toEqual([]);
      expect(rb?.errors).toEqual([]);
      const expired =
        (ra?.batches?.expired ?? 0) +
        (rb?.batches?.expired ?? 0) +
        passes.reduce((sum, p) => sum + p.expired, 0);
      expect(expired).toBe(40);
      // Nothing left to expire.
      expect((await a.tick()).batches).toEqual({ expired: 0 });
      const fired = await callbacks("expiry.done");
      expect(fired).toHaveLength(40);
      expect(new Set(fired.map((f) => f.payload.batch))).toEqual(new Set(ids));
      for (const f of fired) {
        expect(f.payload).toMatchObject({ succeeded: 0, total: 2, expired: true });
        expect(f.payload.open).toHaveLength(2);
      }
      await Promise.all([a.stop(), b.stop()]);
    } finally {
      await other.close();
    }
  });

  describe("the expiry step racing the last member", () => {
    /** A batch of one member, made running under worker "w" (its outcome written by hand below). */
    async function runningMember(task: string) {
      const batch = await t.rota.batches.enqueue([{ task: "last", payload: {} }], {
        onComplete: { task },
        expiresInMs: 1_000,
      });
      const id = batch.jobs[0]?.id as string;
      await pool.query(
        `update "${t.schema}".jobs set state = 'running', attempts = 1, lease_holder = 'w',
           started_at = now(), lease_expires_at = now() + interval '1 hour' where id = $1`,
        [id],
      );
      return { batch, id };
    }
    const complete = (id: string, client?: pg.PoolClient) =>
      t.db.run(
        jobQueries(t.schema).CompleteByDelete,
        { ids: [id], attempts: [1], workerId: "w", wake: [] },
        client,
      );

    it("the member counting first: the step passes the batch over, the callback is the member's", async () => {
      const { batch, id } = await runningMember("race.member-first");
      await t.rota.clock.shift(2_000);
      const member = await pool.connect();
      try {
        await member.query("begin");
        expect((await complete(id, member)).rows).toEqual([{ id }]);
        // The member's statement holds the batch: the step skips it.
        expect(await expireBatches(t.db, t.rota.events)).toEqual({ expired: 0 });
        await member.query("commit");
      } finally {
        member.release();
      }
      expect(await expireBatches(t.db, t.rota.events)).toEqual({ expired: 0 });
      const fired = await callbacks("race.member-first");
      expect(fired).toHaveLength(1);
      expect(fired[0]?.payload).toMatchObject({ batch: batch.id, succeeded: 1, expired: false });
    });

    it("the step first: the member's outcome is written, counts for nothing, and fires nothing", async () => {
      const { batch, id } = await runningMember("race.expiry-first");
      await t.rota.clock.shift(2_000);
      const step = await pool.connect();
      try {
        await step.query("begin");
        const expired = await t.db.run(batchQueries(t.schema).Expire, { limit: 100 }, step);
        expect(expired.rows.map((r) => r.id)).toEqual([batch.id]);
        // The member's outcome waits for the batch's row, then finds it finished.
        const written = complete(id);
        await expect.poll(waitingToCount).toBe(1);
        await step.query("commit");
        expect((await written).rows).toEqual([{ id }]);
      } finally {
        step.release();
      }
      expect(await t.rota.getJob(id)).toBeNull();
      const fired = await callbacks("race.expiry-first");
      expect(fired).toHaveLength(1);
      expect(fired[0]?.payload).toMatchObject({
        batch: batch.id,
        succeeded: 0,
        expired: true,
        open: [id],
      });
      expect(await t.rota.batches.get(batch.id)).toMatchObject({
        state: "expired",
        succeeded: 0,
        openJobIds: [id],
      });
    });
  });

  it("a member stuck past the expiry: one callback with the partial counts and the open ids; the member failing, replayed and succeeding later fires nothing more", async () => {
    const batch = await t.rota.batches.enqueue(
      [
        { task: "quick", payload: {}, options: { queue: "stuck-q" } },
        { task: "quick", payload: {}, options: { queue: "stuck-q" } },
        { task: "slow", payload: {}, options: { queue: "stuck-q", maxAttempts: 1 } },
      ],
      { onComplete: { task: "stuck.done", payload: { run: 7 } }, expiresInMs: 60_000 },
    );
    const slowId = batch.jobs[2]?.id as string;
    const quick = await startWorker({ tasks: { quick: async () => {} }, queues: ["stuck-q"] });
    try {
      await expect.poll(async () => (await t.rota.batches.get(batch.id))?.succeeded).toBe(2);
    } finally {
      await quick.stop();
    }
    await t.rota.clock.shift(61_000);
    const orchestrator = t.rota.orchestrator({ leaseName: "stuck" });
    expect((await orchestrator.tick()).batches).toEqual({ expired: 1 });
    await orchestrator.stop();
    const expected = {
      batch: batch.id,
      succeeded: 2,
      failed: 0,
      cancelled: 0,
      total: 3,
      expired: true,
      payload: { run: 7 },
      open: [slowId],
    };
    expect((await callbacks("stuck.done")).map((c) => c.payload)).toEqual([expected]);

    // The stuck member runs at last: it fails for good, is replayed, succeeds.
    let runs = 0;
    const slow = await startWorker({
      tasks: {
        slow: async () => {
          runs++;
          if (runs === 1) throw new Error("fails for good");
        },
      },
      queues: ["stuck-q"],
    });
    try {
      await expect.poll(async () => (await t.rota.getJob(slowId))?.state).toBe("failed");
      expect(await t.rota.replayFailed({ ids: [slowId] })).toEqual([slowId]);
      await expect.poll(async () => t.rota.getJob(slowId)).toBeNull();
    } finally {
      await slow.stop();
    }
    expect(runs).toBe(2);
    expect((await callbacks("stuck.done")).map((c) => c.payload)).toEqual([expected]);
    expect(await t.rota.batches.get(batch.id)).toMatchObject({
      state: "expired",
      succeeded: 2,
      failed: 0,
      pending: 1,
    });
  });
});
