// The ugly ways an attempt can end: odd thrown values, a user's retryDelay
// that throws, error text the database refuses, a unique key queued again
// while the job ran, a cancel that reaches a job still in the buffer, an
// outcome the database will never take, and a job claimed again by the worker
// whose earlier attempt still runs. Each must leave the job recorded (or to
// be rescued), never stuck, and never stop the others.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { jobQueries } from "../../src/queue/job-queries.js";
import { defineTask } from "../../src/task.js";
import { silentLogger } from "../../src/worker/job-context.js";
import type { Worker, WorkerOptions } from "../../src/worker/worker.js";
import { migratedSchema, type TestSchema, withClient } from "../helpers/database.js";
import { deferred } from "../helpers/events.js";

let t: TestSchema;
const workers: Worker[] = [];
beforeAll(async () => {
  t = await migratedSchema();
});
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop()));
});
afterAll(() => t.drop());

async function startWorker(options: WorkerOptions): Promise<Worker> {
  const worker = t.rota.worker({ logger: silentLogger, rescueIntervalMs: 0, ...options });
  workers.push(worker);
  await worker.start();
  return worker;
}

/**
 * A worker with one slot, taken by a job that holds it until release(): jobs
 * enqueued next wait in its buffer (claimed, not started).
 */
async function busyWorker(
  queue: string,
  options: Omit<WorkerOptions, "tasks"> & { tasks: WorkerOptions["tasks"] },
) {
  const gate = deferred();
  const started = deferred();
  const worker = await startWorker({
    queues: [queue],
    concurrency: 1,
    ...options,
    tasks: {
      ...(options.tasks as Record<string, unknown>),
      hold: async () => {
        started.resolve();
        await gate.promise;
      },
    } as WorkerOptions["tasks"],
  });
  await t.rota.enqueue("hold", {}, { queue });
  await started.promise;
  return { worker, release: gate.resolve };
}

/** Resolves once the job is claimed (into a worker's buffer, or running). */
async function claimed(id: string): Promise<void> {
  await expect.poll(async () => (await t.rota.getJob(id))?.state).toBe("running");
}

async function finalState(id: string, states = ["failed", "cancelled", "succeeded"]) {
  await expect
    .poll(async () => (await t.rota.getJob(id))?.state, { timeout: 10_000 })
    .toSatisfy((state) => states.includes(state as string));
  return t.rota.getJob(id);
}

describe("an attempt that ends badly is still recorded", () => {
  it("a handler that throws null or undefined fails the attempt; it never counts as a success", async () => {
    let succeeded = 0;
    const off = t.rota.events.on("job:run:success", () => void succeeded++);
    try {
      await startWorker({
        queues: ["odd.thrown"],
        tasks: {
          throwsNull: async () => {
            throw null;
          },
          throwsUndefined: () => Promise.reject(undefined),
        },
        retention: { succeededMs: 60_000 },
      });
      const a = await t.rota.enqueue("throwsNull", {}, { queue: "odd.thrown", maxAttempts: 1 });
      const b = await t.rota.enqueue(
        "throwsUndefined",
        {},
        { queue: "odd.thrown", maxAttempts: 1 },
      );
      expect((await finalState(a.id))?.state).toBe("failed");
      expect((await t.rota.getJob(a.id))?.last_error?.message).toBe("non-Error thrown: null");
      expect((await finalState(b.id))?.state).toBe("failed");
      expect((await t.rota.getJob(b.id))?.last_error?.message).toBe("non-Error thrown: undefined");
      expect(succeeded).toBe(0);
    } finally {
      off();
    }
  });

  it("a retryDelay that throws falls back to the job's backoff; one of centuries is capped", async () => {
    const errors: string[] = [];
    const off = t.rota.events.on("worker:error", (e) => void errors.push(e.during));
    try {
      const worker = await startWorker({
        queues: ["odd.retry"],
        tasks: {
          throwingDelay: defineTask({
            name: "throwingDelay",
            handler: async () => {
              throw undefined;
            },
            // Reads a field of what was thrown: a TypeError for `undefined`.
            retryDelay: (_attempt, error) => ((error as { status: number }).status === 429 ? 1 : 2),
          }),
          hugeDelay: defineTask({
            name: "hugeDelay",
            handler: async () => {
              throw new Error("later, much later");
            },
            retryDelay: () => 9e15,
          }),
        },
      });
      const a = await t.rota.enqueue(
        "throwingDelay",
        {},
        { queue: "odd.retry", backoff: { kind: "fixed", delayMs: 3_600_000 } },
      );
      const b = await t.rota.enqueue("hugeDelay", {}, { queue: "odd.retry" });
      const now = (await t.rota.clock.now()).getTime();
      const retriedA = await finalState(a.id, ["scheduled"]);
      // The backoff's hour, not a job stuck 'running'.
      expect(retriedA?.run_at.getTime()).toBeGreaterThan(now + 3_500_000);
      const retriedB = await finalState(b.id, ["scheduled"]);
      const years = (retriedB?.run_at.getTime() ?? 0) - now;
      expect(years / (365 * 24 * 3_600_000)).toBeGreaterThan(99);
      expect(years / (365 * 24 * 3_600_000)).toBeLessThan(101);
      expect(errors).toContain("retryDelay");
      await expect.poll(() => worker.held).toBe(0);
    } finally {
      off();
    }
  });

  it("error text jsonb refuses (NUL, an unpaired surrogate) is stored mended, and other failures go on being written", async () => {
    await startWorker({
      queues: ["odd.text"],
      tasks: {
        nul: async () => {
          throw new Error("bad\u0000byte");
        },
        surrogate: async () => {
          throw new Error("half \ud800 a pair");
        },
        plain: async () => {
          throw new Error("ordinary failure");
        },
      },
    });
    const ids = [];
    for (const task of ["nul", "surrogate", "plain"]) {
      ids.push((await t.rota.enqueue(task, {}, { queue: "odd.text", maxAttempts: 1 })).id);
    }
    const [nul, surrogate, plain] = await Promise.all(ids.map((id) => finalState(id)));
    expect(nul?.last_error?.message).toBe("bad\ufffdbyte");
    expect(surrogate?.last_error?.message).toBe("half \ufffd a pair");
    expect(plain?.last_error?.message).toBe("ordinary failure");
  });
});

describe("times of a failure", () => {
  it("come from the database clock: the error's time and the retry's", async () => {
    await t.rota.clock.shift(86_400_000);
    try {
      const retried = new Promise<Date>((resolve) => {
        const off = t.rota.events.on("job:run:retry", (e) => {
          if (e.task === "clocked") {
            off();
            resolve(e.retryAt);
          }
        });
      });
      await startWorker({
        queues: ["clocked"],
        tasks: {
          clocked: async () => {
            throw new Error("try again in a minute");
          },
        },
      });
      const { id } = await t.rota.enqueue(
        "clocked",
        {},
        { queue: "clocked", backoff: { kind: "fixed", delayMs: 60_000 } },
      );
      const retryAt = await retried;
      const job = await t.rota.getJob(id);
      // A day ahead of the process clock, as the database clock is.
      expect(retryAt.getTime()).toBe(job?.run_at.getTime());
      expect(retryAt.getTime()).toBeGreaterThan(Date.now() + 86_000_000);
      const at = Date.parse(String((job?.last_error as { at?: string } | null)?.at));
      expect(at).toBeGreaterThan(Date.now() + 86_000_000);
    } finally {
      await t.rota.clock.reset();
    }
  });
});

describe("unique keys queued again while their job ran", () => {
  it("a failed attempt's retry gives its key to the queued twin: both are kept, neither blocks the other", async () => {
    const release = deferred();
    const started = deferred();
    const worker = await startWorker({
      queues: ["twin.fail"],
      concurrency: 1,
      prefetch: 0,
      tasks: {
        sync: async (payload: { n: number }) => {
          if (payload.n === 1) {
            started.resolve();
            await release.promise;
            throw new Error("transient");
          }
        },
      },
    });
    const first = await t.rota.enqueue(
      "sync",
      { n: 1 },
      { queue: "twin.fail", uniqueKey: "user:42", backoff: { kind: "fixed", delayMs: 3_600_000 } },
    );
    await started.promise;
    // The key covers queued jobs only: a twin may be queued while the first runs.
    const twin = await t.rota.enqueue(
      "sync",
      { n: 2 },
      { queue: "twin.fail", uniqueKey: "user:42", delayMs: 3_600_000 },
    );
    expect(twin.inserted).toBe(true);
    release.resolve();
    const retried = await finalState(first.id, ["scheduled"]);
    expect(retried?.unique_key).toBeNull();
    expect(retried?.attempts).toBe(1);
    expect((await t.rota.getJob(twin.id))?.unique_key).toBe("user:42");
    await expect.poll(() => worker.held).toBe(0);
  });

  it("a rescue or a graceful stop hands a job back without its key when a twin is queued, and rescues every other job", async () => {
    const s = `"${t.schema}"`;
    const ids = await withClient(async (c) => {
      const result = await c.query(
        `insert into ${s}.jobs (queue, task, state, run_at, unique_key, attempts, lease_holder, lease_expires_at)
         values ('twin.rescue', 'sync', 'running', now(), 'k2', 1, 'gone', now() - interval '1 minute'),
                ('twin.rescue', 'sync', 'running', now(), null, 1, 'gone', now() - interval '1 minute'),
                ('twin.rescue', 'sync', 'available', now() + interval '1 hour', 'k2', 0, null, null)
         returning id::text`,
      );
      return result.rows.map((r: { id: string }) => r.id);
    });
    expect((await t.rota.rescueExpired()).retried).toBe(2);
    const [keyed, plain, twin] = await Promise.all(ids.map((id) => t.rota.getJob(id)));
    expect(keyed?.state).toBe("available");
    expect(keyed?.unique_key).toBeNull();
    expect(plain?.state).toBe("available");
    expect(twin?.unique_key).toBe("k2");

    // A stopping worker's buffered job, with its key queued again meanwhile.
    const { worker, release } = await busyWorker("twin.release", {
      prefetch: 1,
      gracefulStopMs: 5_000,
      tasks: { keyed: async () => {} },
    });
    const buffered = await t.rota.enqueue("keyed", {}, { queue: "twin.release", uniqueKey: "k3" });
    await claimed(buffered.id);
    const again = await t.rota.enqueue(
      "keyed",
      {},
      { queue: "twin.release", uniqueKey: "k3", delayMs: 3_600_000 },
    );
    const stopping = worker.stop();
    release();
    await stopping;
    const released = await t.rota.getJob(buffered.id);
    expect(released?.state).toBe("available");
    expect(released?.unique_key).toBeNull();
    expect((await t.rota.getJob(again.id))?.unique_key).toBe("k3");
  });

  it("replay puts back one failed job per key, the last to fail", async () => {
    const s = `"${t.schema}"`;
    const ids = await withClient(async (c) => {
      const result = await c.query(
        `insert into ${s}.jobs (queue, task, state, run_at, unique_key, attempts, finished_at)
         values ('twin.replay', 'sync', 'failed', now(), 'k4', 1, now() - interval '2 minutes'),
                ('twin.replay', 'sync', 'failed', now(), 'k4', 1, now() - interval '1 minute'),
                ('twin.replay', 'sync', 'failed', now(), null, 1, now())
         returning id::text`,
      );
      return result.rows.map((r: { id: string }) => r.id);
    });
    const replayed = await t.rota.replayFailed({ queue: "twin.replay" });
    expect(replayed.sort()).toEqual([ids[1], ids[2]].sort());
    expect((await t.rota.getJob(ids[0] as string))?.state).toBe("failed");
  });
});

describe("two jobs with one unique key, both running (the second enqueued while the first ran)", () => {
  it("go back to the queue together in a rescue: one keeps the key, and every other job is rescued too", async () => {
    const s = `"${t.schema}"`;
    const ids = await withClient(async (c) => {
      const result = await c.query(
        `insert into ${s}.jobs (queue, task, state, run_at, unique_key, attempts, lease_holder, lease_expires_at)
         values ('both.rescue', 'sync', 'running', now(), 'both', 1, 'gone-a', now() - interval '2 minutes'),
                ('both.rescue', 'sync', 'running', now(), 'both', 1, 'gone-b', now() - interval '1 minute'),
                ('both.rescue', 'sync', 'running', now(), null, 1, 'gone-b', now() - interval '1 minute')
         returning id::text`,
      );
      return result.rows.map((r: { id: string }) => r.id);
    });
    expect((await t.rota.rescueExpired()).retried).toBe(3);
    const jobs = await Promise.all(ids.map((id) => t.rota.getJob(id)));
    expect(jobs.map((j) => j?.state)).toEqual(["available", "available", "available"]);
    expect(jobs.map((j) => j?.unique_key)).toEqual(["both", null, null]);
  });

  it("go back together from a stopping worker's buffer", async () => {
    const { worker, release } = await busyWorker("both.release", {
      prefetch: 3,
      tasks: { keyed: async () => {} },
    });
    const first = await t.rota.enqueue("keyed", {}, { queue: "both.release", uniqueKey: "both2" });
    await claimed(first.id);
    const second = await t.rota.enqueue("keyed", {}, { queue: "both.release", uniqueKey: "both2" });
    expect(second.inserted).toBe(true);
    worker.wake();
    await claimed(second.id);
    const stopping = worker.stop();
    release();
    await stopping;
    const [a, b] = await Promise.all([t.rota.getJob(first.id), t.rota.getJob(second.id)]);
    expect([a?.state, b?.state]).toEqual(["available", "available"]);
    expect([a?.unique_key, b?.unique_key]).toEqual(["both2", null]);
  });
});

describe("outcomes written again", () => {
  it("a passing refusal (a lock timeout) is tried again until written, never given up on", async () => {
    const s = `"${t.schema}"`;
    const { id } = await t.rota.enqueue("passing", {}, { queue: "passing", maxAttempts: 1 });
    await withClient((c) =>
      c.query(`
        create table ${s}.refusing (on_ boolean);
        insert into ${s}.refusing values (true);
        create function ${s}.refuse_for_now() returns trigger language plpgsql as $$
        begin
          if new.id = ${id} and new.state <> 'running' and exists (select 1 from ${s}.refusing) then
            raise exception 'lock timeout, as it were' using errcode = '55P03';
          end if;
          return new;
        end $$;
        create trigger refuse_for_now before update on ${s}.jobs
          for each row execute function ${s}.refuse_for_now();`),
    );
    const codes: string[] = [];
    const off = t.rota.events.on("worker:error", (e) => {
      codes.push((e.error as { code?: string }).code ?? "?");
    });
    try {
      await startWorker({
        queues: ["passing"],
        retention: { succeededMs: 3_600_000 },
        tasks: { passing: async () => {} },
      });
      // More tries than a refusal gets before it is given up on.
      await expect.poll(() => codes.length, { timeout: 10_000 }).toBeGreaterThanOrEqual(4);
      await withClient((c) => c.query(`delete from ${s}.refusing`));
      await expect.poll(async () => (await t.rota.getJob(id))?.state).toBe("succeeded");
      expect(codes).not.toContain("OUTCOME_NOT_WRITTEN");
    } finally {
      off();
      await withClient((c) =>
        c.query(`drop trigger refuse_for_now on ${s}.jobs; drop table ${s}.refusing`),
      );
    }
  });

  it("a cancel request the worker missed is written, and announced, as a cancel", async () => {
    const started = deferred();
    const release = deferred();
    const seen: string[] = [];
    const offs = [
      t.rota.events.on("job:cancelled", () => void seen.push("cancelled")),
      t.rota.events.on("job:run:retry", () => void seen.push("retry")),
      t.rota.events.on("job:failed", () => void seen.push("failed")),
    ];
    try {
      await startWorker({
        queues: ["missed.cancel"],
        leaseMs: 180_000,
        heartbeatMs: 60_000,
        tasks: {
          unaware: async () => {
            started.resolve();
            await release.promise;
            throw new Error("failed without hearing the cancel");
          },
        },
      });
      const { id } = await t.rota.enqueue("unaware", {}, { queue: "missed.cancel" });
      await started.promise;
      // A cancel request with no wake-up, as if its NOTIFY were lost.
      await withClient((c) =>
        c.query(`update "${t.schema}".jobs set cancel_requested_at = now() where id = $1`, [id]),
      );
      release.resolve();
      expect((await finalState(id, ["cancelled"]))?.state).toBe("cancelled");
      await expect.poll(() => seen).toEqual(["cancelled"]);
    } finally {
      for (const off of offs) off();
    }
  });
});

describe("cancel", () => {
  it("reaches a job still waiting in the worker's buffer: it never starts and ends cancelled", async () => {
    let victimRuns = 0;
    const { worker, release } = await busyWorker("cancel.buffer", {
      prefetch: 1,
      tasks: {
        victim: async () => {
          victimRuns++;
        },
      },
    });
    const victim = await t.rota.enqueue("victim", {}, { queue: "cancel.buffer" });
    await claimed(victim.id);
    await t.rota.cancel(victim.id);
    expect((await finalState(victim.id, ["cancelled"]))?.state).toBe("cancelled");
    release();
    // The slot frees and nothing else is buffered: the victim never ran.
    await expect.poll(() => worker.held).toBe(0);
    expect(victimRuns).toBe(0);
  });
});

describe("outcomes the database will not take", () => {
  it("are given up on after a few refusals, the rest are written, and stop() ends", async () => {
    const s = `"${t.schema}"`;
    const refused = await t.rota.enqueue("doomed", {}, { queue: "refused", maxAttempts: 1 });
    await withClient((c) =>
      c.query(`
        create function ${s}.refuse_outcome() returns trigger language plpgsql as $$
        begin
          if new.id = ${refused.id} and new.state <> 'running' then
            raise exception 'this outcome is refused';
          end if;
          return new;
        end $$;
        create trigger refuse_outcome before update on ${s}.jobs
          for each row execute function ${s}.refuse_outcome();`),
    );
    const errors: string[] = [];
    const off = t.rota.events.on("worker:error", (e) => {
      const code = (e.error as { code?: string }).code;
      if (code) errors.push(code);
    });
    try {
      const worker = await startWorker({
        queues: ["refused"],
        tasks: {
          doomed: async () => {
            throw new Error("fails, and its failure cannot be written");
          },
          fine: async () => {
            throw new Error("fails, and is written");
          },
        },
      });
      const fine = await t.rota.enqueue("fine", {}, { queue: "refused", maxAttempts: 1 });
      expect((await finalState(fine.id))?.state).toBe("failed");
      await expect.poll(() => errors, { timeout: 10_000 }).toContain("OUTCOME_NOT_WRITTEN");
      // Left running, for a rescue once its lease expires.
      expect((await t.rota.getJob(refused.id))?.state).toBe("running");
      await expect.poll(() => worker.held).toBe(0);
      await worker.stop();
    } finally {
      off();
      await withClient((c) => c.query(`drop trigger refuse_outcome on ${s}.jobs`));
    }
  });
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
    const claimed = await t.db.run<{ id: string; state: string }>(q.Claim, [
      ["passed.over"],
      ["tick"],
      10,
      "w",
      60_000,
      10,
      [passedOver],
    ]);
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

describe("stop when the database does not answer", () => {
  it("ends anyway, after its bounded waits", async () => {
    const errors: string[] = [];
    const off = t.rota.events.on("worker:error", (e) => void errors.push(e.during));
    try {
      await withClient(async (locker) => {
        const worker = await startWorker({ queues: ["locked"], tasks: { noop: async () => {} } });
        await expect.poll(() => worker.idle).toBe(true);
        // Every statement on the jobs table now waits: the next claim hangs.
        await locker.query("begin");
        await locker.query(`lock table "${t.schema}".jobs in access exclusive mode`);
        try {
          worker.wake();
          await expect.poll(() => worker.idle).toBe(false);
          await worker.stop();
          expect(errors).toContain("stop");
        } finally {
          await locker.query("rollback");
        }
      });
    } finally {
      off();
    }
  }, 30_000);
});

describe("stop", () => {
  it("during start leaves no timers behind on closed pools", async () => {
    const errors: unknown[] = [];
    const off = t.rota.events.on("worker:error", (e) => void errors.push(e.error));
    try {
      const worker = t.rota.worker({
        logger: silentLogger,
        queues: ["stop.early"],
        tasks: { noop: async () => {} },
        rescueIntervalMs: 20,
        heartbeatMs: 20,
      });
      const starting = worker.start();
      await worker.stop();
      await starting;
      // Several rescue and heartbeat periods.
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(errors).toEqual([]);
    } finally {
      off();
    }
  });
});
