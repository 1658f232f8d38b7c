// The rule HeldJobs keeps: one attempt of a job at a time in a worker, never
// more handlers than the concurrency, and the jobs it passes over never
// crowd out the others.
import { describe, expect, it } from "vitest";
import { jobQueries } from "../../src/db/queries/jobs.js";
import { silentLogger } from "../../src/logger.js";
import { migratedSchema, type TestSchema, withClient } from "../helpers/database.js";
import { deferred } from "../helpers/events.js";
import { useWorkerHarness } from "../helpers/worker-harness.js";

let t: TestSchema;
const { startWorker } = useWorkerHarness((schema) => {
  t = schema;
});

describe("a job claimed again by the worker whose earlier attempt still runs", () => {
  it("waits for that attempt's handler to return: never more handlers than the concurrency", async () => {
    let active = 0;
    let most = 0;
    const log: string[] = [];
    const track = async (name: string, ms: number) => {
      active++;
      most = Math.max(most, active);
      log.push(`${name} start`);
      await new Promise((resolve) => setTimeout(resolve, ms));
      log.push(`${name} end`);
      active--;
    };
    await startWorker({
      queues: ["reclaim"],
      concurrency: 2,
      tasks: {
        // Attempt 1 times out at once but ignores its signal for a while;
        // its retry (no backoff) is claimed by this same worker.
        slow: (_payload, ctx) => track(`attempt ${ctx.attempt}`, ctx.attempt === 1 ? 500 : 10),
        filler: () => track("filler", 300),
      },
    });
    const slow = await t.rota.enqueue(
      "slow",
      {},
      { queue: "reclaim", timeoutMs: 50, maxAttempts: 3, backoff: { kind: "fixed", delayMs: 0 } },
    );
    // Attempt 1 timed out and its retry waits in the queue while the handler
    // runs on ...
    await expect.poll(async () => (await t.rota.getJob(slow.id))?.state).toBe("available");
    // ... and two more jobs want the slots.
    await t.rota.enqueueMany([
      { task: "filler", payload: {}, options: { queue: "reclaim" } },
      { task: "filler", payload: {}, options: { queue: "reclaim" } },
    ]);
    await expect
      .poll(() => log.filter((l) => l.endsWith("end")).length, { timeout: 10_000 })
      .toBe(4);
    expect(log[0]).toBe("attempt 1 start");
    expect(log.indexOf("attempt 2 start")).toBeGreaterThan(log.indexOf("attempt 1 end"));
    expect(most).toBeLessThanOrEqual(2);
    await expect.poll(async () => t.rota.getJob(slow.id), { timeout: 10_000 }).toBeNull();
  });

  it("an attempt rescued from a live worker loses its lease there once; the new attempt runs after it", async () => {
    const lost: string[] = [];
    const fenced: number[] = [];
    const offLost = t.rota.events.on("job:lease:lost", (e) => void lost.push(e.id));
    const offFenced = t.rota.events.on("job:fenced", (e) => void fenced.push(e.attempt));
    const release = deferred();
    const attempts: number[] = [];
    try {
      await startWorker({
        queues: ["relost"],
        concurrency: 4,
        leaseMs: 60_000,
        heartbeatMs: 100,
        tasks: {
          stalled: async (_payload, ctx) => {
            attempts.push(ctx.attempt);
            if (ctx.attempt === 1) await release.promise;
          },
        },
      });
      const { id } = await t.rota.enqueue("stalled", {}, { queue: "relost", maxAttempts: 5 });
      await expect.poll(() => attempts).toEqual([1]);
      // As if the worker had stalled past its lease: expired, then rescued.
      // A heartbeat (every 100 ms) landing between the two renews the lease
      // and the rescue finds nothing: the stall is staged again until one
      // rescue takes the job, as it would after a real stall.
      let retried = 0;
      for (let round = 0; round < 20 && retried === 0; round++) {
        await withClient((c) =>
          c.query(
            `update "${t.schema}".jobs set lease_expires_at = now() - interval '1 second' where id = $1`,
            [id],
          ),
        );
        retried = (await t.rota.rescueExpired()).retried;
      }
      expect(retried).toBe(1);
      await expect.poll(() => lost).toEqual([id]);
      release.resolve();
      await expect.poll(() => attempts, { timeout: 10_000 }).toEqual([1, 2]);
      await expect.poll(async () => t.rota.getJob(id), { timeout: 10_000 }).toBeNull();
      expect(fenced).toEqual([1]);
      // Reported once, not at every heartbeat while the old handler ran on.
      expect(lost).toEqual([id]);
    } finally {
      offLost();
      offFenced();
    }
  });
});

describe("a retry whose earlier attempt never returns", () => {
  it("is left for another worker, not held by the one still running that attempt", async () => {
    const hang = deferred();
    const ranBy: string[] = [];
    const tasks = {
      hangs: async (_payload: unknown, ctx: { attempt: number }) => {
        if (ctx.attempt === 1) await hang.promise;
      },
    };
    const a = await startWorker({ queues: ["hangs"], concurrency: 2, workerId: "a", tasks });
    const off = t.rota.events.on(
      "job:run:start",
      (e) => void ranBy.push(`${e.workerId}:${e.attempt}`),
    );
    try {
      const { id } = await t.rota.enqueue(
        "hangs",
        {},
        { queue: "hangs", timeoutMs: 50, maxAttempts: 3, backoff: { kind: "fixed", delayMs: 0 } },
      );
      // Attempt 1 ran on a and timed out; the retry waits in the queue, not in a's buffer.
      await expect.poll(() => ranBy).toEqual(["a:1"]);
      await expect.poll(async () => (await t.rota.getJob(id))?.state).toBe("available");
      a.wake();
      await startWorker({ queues: ["hangs"], workerId: "b", tasks });
      await expect.poll(async () => t.rota.getJob(id), { timeout: 10_000 }).toBeNull();
      expect(ranBy).toEqual(["a:1", "b:2"]);
    } finally {
      off();
      hang.resolve();
    }
  });

  it("a buffered job rescued (its attempt refunded) and claimed again by the same worker runs once", async () => {
    // A schema of its own: nothing else in it wakes the worker or is rescued.
    const own = await migratedSchema();
    const gate = deferred();
    const started = deferred();
    let victimRuns = 0;
    const worker = own.rota.worker({
      logger: silentLogger,
      rescueIntervalMs: 0,
      queues: ["refund.again"],
      concurrency: 1,
      prefetch: 2,
      tasks: {
        block: async () => {
          started.resolve();
          await gate.promise;
        },
        victim: async () => {
          victimRuns++;
        },
      },
    });
    try {
      await worker.start();
      await own.rota.enqueue("block", {}, { queue: "refund.again" });
      await started.promise;
      const victim = await own.rota.enqueue("victim", {}, { queue: "refund.again" });
      await expect.poll(async () => (await own.rota.getJob(victim.id))?.state).toBe("running");
      // As if the worker had stalled past the lease: rescued, and, never
      // started, its attempt refunded. The rescue's wake-up brings the same
      // worker to claim it again: attempt 1 and holder as before.
      await withClient((c) =>
        c.query(
          `update "${own.schema}".jobs set lease_expires_at = now() - interval '1 second', started_at = null
           where id = $1`,
          [victim.id],
        ),
      );
      const rescued = await own.rota.rescueExpired();
      expect(rescued.retried).toBe(1);
      worker.wake();
      await expect
        .poll(async () => {
          const job = await own.rota.getJob(victim.id);
          return [job?.state, job?.attempts];
        })
        .toEqual(["running", 1]);
      gate.resolve();
      await expect.poll(async () => own.rota.getJob(victim.id), { timeout: 10_000 }).toBeNull();
      await expect.poll(() => worker.held).toBe(0);
      expect(victimRuns).toBe(1);
    } finally {
      gate.resolve();
      await worker.stop();
      await own.drop();
    }
  });
});

describe("the claim's passed-over jobs", () => {
  it("count for nothing: another job with the same concurrency key is not skipped because of one", async () => {
    const s = `"${t.schema}"`;
    const [passedOver, next] = await withClient(async (c) => {
      const result = await c.query(
        `insert into ${s}.jobs (queue, task, state, run_at, concurrency_key, overlap)
         values ('passed.over', 'tick', 'available', now() - interval '2 seconds', 'schedule:1:', 'skip'),
                ('passed.over', 'tick', 'available', now() - interval '1 second', 'schedule:1:', 'skip')
         returning id::text`,
      );
      return result.rows.map((r: { id: string }) => r.id);
    });
    const q = jobQueries(t.schema);
    const claimed = await t.db.run(q.Claim, {
      queues: ["passed.over"],
      tasks: ["tick"],
      limit: 10,
      workerId: "w",
      leaseMs: 60_000,
      traced: false,
      startNow: 10,
      passOver: [passedOver as string],
    });
    expect(claimed.rows.map((r) => [r.id, r.state])).toEqual([[next, "running"]]);
    expect((await t.rota.getJob(passedOver as string))?.state).toBe("available");
  });
});

describe("jobs a worker passes over", () => {
  it("never crowd out the others: with a hung attempt's retry first in line, the rest still run", async () => {
    const hang = deferred();
    const hung = deferred();
    const ran: number[] = [];
    try {
      await startWorker({
        queues: ["crowded"],
        concurrency: 2,
        prefetch: 0,
        pollIntervalMs: 300,
        tasks: {
          hangs: async (_payload, ctx) => {
            if (ctx.attempt !== 1) return;
            hung.resolve();
            await hang.promise;
          },
          other: async (payload: { n: number }) => void ran.push(payload.n),
        },
      });
      const { id } = await t.rota.enqueue(
        "hangs",
        {},
        { queue: "crowded", timeoutMs: 50, maxAttempts: 3, backoff: { kind: "fixed", delayMs: 0 } },
      );
      // Its retry, first in line by age, waits for a worker other than this one.
      await hung.promise;
      await expect.poll(async () => (await t.rota.getJob(id))?.state).toBe("available");
      await t.rota.enqueueMany(
        [1, 2, 3].map((n) => ({ task: "other", payload: { n }, options: { queue: "crowded" } })),
      );
      await expect.poll(() => ran.sort(), { timeout: 10_000 }).toEqual([1, 2, 3]);
    } finally {
      hang.resolve();
    }
  });

  it("include a job whose outcome still waits to be written: rescued and refunded meanwhile, it is not claimed again here", async () => {
    const s = `"${t.schema}"`;
    await withClient((c) =>
      c.query(`
        create table ${s}.restarting (on_ boolean);
        insert into ${s}.restarting values (false);
        create function ${s}.refuse_delete() returns trigger language plpgsql as $$
        begin
          if (select on_ from ${s}.restarting) then
            raise exception 'the server is restarting' using errcode = '57P03';
          end if;
          return old;
        end $$;
        create trigger refuse_delete before delete on ${s}.jobs
          for each row execute function ${s}.refuse_delete();`),
    );
    const gate = deferred();
    const runs: number[] = [];
    try {
      const worker = await startWorker({
        queues: ["pending.outcome"],
        concurrency: 1,
        prefetch: 3,
        tasks: {
          block: async () => gate.promise,
          quick: async (_payload, ctx) => void runs.push(ctx.attempt),
        },
      });
      const [, quick] = await t.rota.enqueueMany([
        { task: "block", payload: {}, options: { queue: "pending.outcome" } },
        { task: "quick", payload: {}, options: { queue: "pending.outcome" } },
      ]);
      const id = (quick as { id: string }).id;
      await expect.poll(async () => (await t.rota.getJob(id))?.state).toBe("running");
      // Its success cannot be written for now; it runs from the buffer, too
      // quickly for its start to be written.
      await withClient((c) => c.query(`update ${s}.restarting set on_ = true`));
      gate.resolve();
      await expect.poll(() => runs).toEqual([1]);
      // Its lease runs out meanwhile and a rescue gives the attempt back.
      await withClient((c) =>
        c.query(
          `update ${s}.jobs set lease_expires_at = now() - interval '1 second' where id = $1`,
          [id],
        ),
      );
      expect((await t.rota.rescueExpired()).retried).toBe(1);
      worker.wake();
      await expect.poll(() => worker.idle).toBe(true);
      expect((await t.rota.getJob(id))?.state).toBe("available");
      await withClient((c) => c.query(`update ${s}.restarting set on_ = false`));
      // Its outcome is refused by the fence (the rescue took the job), and the
      // job runs again, attempt 1 once more, from the queue.
      await expect.poll(() => runs, { timeout: 10_000 }).toEqual([1, 1]);
    } finally {
      await withClient((c) =>
        c.query(`drop trigger refuse_delete on ${s}.jobs; drop table ${s}.restarting`),
      );
    }
  });
});
