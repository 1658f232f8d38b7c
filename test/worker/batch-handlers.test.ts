// Batch tasks: the worker hands a batch handler up to `size` claimed jobs of
// the task at once, waits up to `waitMs` for a partial batch to fill, and
// records each job's outcome on its own.
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { RotaError } from "../../src/errors.js";
import { type BatchJob, defineBatchTask, defineTask } from "../../src/task.js";
import type { TestSchema } from "../helpers/database.js";
import { withClient } from "../helpers/database.js";
import { deferred } from "../helpers/events.js";
import { useWorkerHarness } from "../helpers/worker-harness.js";

let t: TestSchema;
const { startWorker, finalState } = useWorkerHarness((schema) => {
  t = schema;
});

/** Enqueues `n` jobs of `task` in one statement; their ids in order. */
async function enqueueN(task: string, queue: string, n: number, maxAttempts = 1) {
  const jobs = Array.from({ length: n }, (_, i) => ({
    task,
    payload: { i },
    options: { queue, maxAttempts },
  }));
  return (await t.rota.enqueueMany(jobs)).map((j) => j.id);
}

async function states(ids: readonly string[]) {
  return Promise.all(ids.map(async (id) => (await finalState(id))?.state));
}

describe("batch handlers", () => {
  it("hands up to `size` jobs to one call, and every job is recorded succeeded", async () => {
    const calls: number[] = [];
    const ids = await enqueueN("sync.all", "batch.full", 25);
    await startWorker({
      queues: ["batch.full"],
      concurrency: 1,
      retention: { succeededMs: 60_000 },
      tasks: [
        defineBatchTask({
          name: "sync.all",
          batch: { size: 10 },
          batchHandler: async (jobs) => void calls.push(jobs.length),
        }),
      ],
    });
    expect(await states(ids)).toEqual(ids.map(() => "succeeded"));
    // All 25 were waiting when the worker started: full batches, then the rest.
    expect(calls).toEqual([10, 10, 5]);
  });

  it("records each job's own outcome: one { ok: false } is retried alone", async () => {
    const seen: { i: number; attempt: number }[] = [];
    const ids = await enqueueN("sync.mixed", "batch.mixed", 4, 2);
    await startWorker({
      queues: ["batch.mixed"],
      retention: { succeededMs: 60_000 },
      tasks: [
        defineBatchTask<{ i: number }>({
          name: "sync.mixed",
          batch: { size: 4 },
          retryDelay: () => 0,
          batchHandler: async (jobs) =>
            jobs.map(({ payload, job }) => {
              seen.push({ i: payload.i, attempt: job.attempt });
              return payload.i === 2 && job.attempt === 1
                ? { ok: false, error: new Error("rejected by the remote API") }
                : { ok: true };
            }),
        }),
      ],
    });
    expect(await states(ids)).toEqual(["succeeded", "succeeded", "succeeded", "succeeded"]);
    // Job 2 ran twice; the others once.
    expect(seen.filter((s) => s.i === 2).map((s) => s.attempt)).toEqual([1, 2]);
    expect(seen.filter((s) => s.i !== 2).every((s) => s.attempt === 1)).toBe(true);
    const retried = await t.rota.getJob(ids[2] as string);
    expect(retried?.attempts).toBe(2);
  });

  it("a throw fails every job of the call, each with the error", async () => {
    const ids = await enqueueN("sync.throws", "batch.throws", 3);
    await startWorker({
      queues: ["batch.throws"],
      tasks: [
        defineBatchTask({
          name: "sync.throws",
          batch: { size: 3 },
          batchHandler: async () => {
            throw new Error("the remote API is down");
          },
        }),
      ],
    });
    expect(await states(ids)).toEqual(["failed", "failed", "failed"]);
    for (const id of ids) {
      expect((await t.rota.getJob(id))?.last_error?.message).toBe("the remote API is down");
    }
  });

  it("a return that is not one outcome per job fails every job with BATCH_RESULT_INVALID", async () => {
    const ids = await enqueueN("sync.short", "batch.short", 2);
    await startWorker({
      queues: ["batch.short"],
      tasks: [
        defineBatchTask({
          name: "sync.short",
          batch: { size: 2, waitMs: 60_000 },
          batchHandler: async () => [{ ok: true as const }],
        }),
      ],
    });
    expect(await states(ids)).toEqual(["failed", "failed"]);
    const error = (await t.rota.getJob(ids[0] as string))?.last_error?.message;
    expect(error).toContain("returned 1 outcome(s) for 2 job(s)");
  });

  it("a partial batch waits for more jobs, up to waitMs, then runs with what it has", async () => {
    const calls: { task: string; ids: string[] }[] = [];
    const batchTask = (name: string, waitMs: number) =>
      defineBatchTask({
        name,
        batch: { size: 3, waitMs },
        batchHandler: async (jobs) => void calls.push({ task: name, ids: jobs.map((j) => j.id) }),
      });
    await startWorker({
      queues: ["batch.wait"],
      concurrency: 2,
      // sync.fill waits a minute: a loaded machine's pauses between the
      // enqueues below cannot start it early; sync.wait's 300 ms is timed.
      tasks: [batchTask("sync.fill", 60_000), batchTask("sync.wait", 300)],
    });
    // Three jobs one by one, each claimed on its own: one call, once the batch is full.
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      ids.push((await t.rota.enqueue("sync.fill", { i }, { queue: "batch.wait" })).id);
    }
    await expect.poll(() => calls.length, { timeout: 10_000 }).toBe(1);
    // In the order claimed: a job claimed by id may come before those claimed as a batch.
    expect(calls[0]?.task).toBe("sync.fill");
    expect([...(calls[0]?.ids ?? [])].sort()).toEqual([...ids].sort());
    // A lone job waits out waitMs, then runs alone.
    const before = performance.now();
    const lone = await t.rota.enqueue("sync.wait", {}, { queue: "batch.wait" });
    await expect.poll(() => calls.length, { timeout: 10_000 }).toBe(2);
    expect(calls[1]).toEqual({ task: "sync.wait", ids: [lone.id] });
    expect(performance.now() - before).toBeGreaterThanOrEqual(290);
  });

  it("a job whose payload fails the schema is refused alone; the others run", async () => {
    const received: unknown[] = [];
    const task = defineBatchTask({
      name: "sync.typed",
      queue: "batch.typed",
      schema: z.object({ n: z.coerce.number() }),
      batch: { size: 3, waitMs: 60_000 },
      batchHandler: async (jobs) => void received.push(...jobs.map((j) => j.payload)),
    });
    const ids = await withClient(async (c) => {
      // Written behind rota's back: one row no longer matches the schema.
      const r = await c.query(
        `insert into "${t.schema}".jobs (queue, task, payload, run_at, max_attempts)
         select 'batch.typed', 'sync.typed', p::jsonb, now(), 3
           from unnest(array['{"n":"1"}', '{"n":"abc"}', '{"n":"3"}']) with ordinality as u(p, o)
          order by o
         returning id::text`,
      );
      return r.rows.map((row) => row.id as string);
    });
    await startWorker({ tasks: [task], retention: { succeededMs: 60_000 } });
    expect(await states(ids)).toEqual(["succeeded", "failed", "succeeded"]);
    expect(received).toEqual([{ n: 1 }, { n: 3 }]);
    const refused = await t.rota.getJob(ids[1] as string);
    expect(refused?.attempts).toBe(1);
    expect(refused?.last_error?.message).toContain("does not match its schema");
  });

  it("cancelling one job of a running batch aborts its signal alone and records it cancelled", async () => {
    const started = deferred<BatchJob<unknown>[]>();
    const release = deferred();
    let batchSignal: AbortSignal | undefined;
    const ids = await enqueueN("sync.cancel", "batch.cancel", 2);
    await startWorker({
      queues: ["batch.cancel"],
      retention: { succeededMs: 60_000 },
      tasks: [
        defineBatchTask({
          name: "sync.cancel",
          batch: { size: 2, waitMs: 60_000 },
          batchHandler: async (jobs, context) => {
            batchSignal = context.signal;
            started.resolve(jobs);
            await release.promise;
            // As a handler should: a job whose signal was aborted did not succeed.
            return jobs.map((job) =>
              job.signal.aborted ? { ok: false, error: job.signal.reason } : { ok: true },
            );
          },
        }),
      ],
    });
    const jobs = await started.promise;
    await t.rota.cancel(ids[0] as string);
    await expect.poll(() => jobs[0]?.signal.aborted, { timeout: 10_000 }).toBe(true);
    expect(jobs[1]?.signal.aborted).toBe(false);
    expect(batchSignal?.aborted).toBe(false);
    release.resolve();
    expect(await states(ids)).toEqual(["cancelled", "succeeded"]);
  });

  it("times the whole call out: every job is recorded timed out, and the slot stays taken until it returns", async () => {
    const release = deferred();
    let calls = 0;
    let singleRan = false;
    const ids = await enqueueN("sync.slow", "batch.slow", 2);
    await startWorker({
      queues: ["batch.slow"],
      concurrency: 1,
      retention: { succeededMs: 60_000 },
      tasks: [
        defineBatchTask({
          name: "sync.slow",
          batch: { size: 2, waitMs: 60_000 },
          timeoutMs: 200,
          batchHandler: async (_jobs, context) => {
            calls++;
            await new Promise((resolve) => context.signal.addEventListener("abort", resolve));
            await release.promise;
          },
        }),
        defineTask({
          name: "single",
          handler: () => {
            singleRan = true;
          },
        }),
      ],
    });
    expect(await states(ids)).toEqual(["failed", "failed"]);
    expect((await t.rota.getJob(ids[0] as string))?.last_error?.message).toContain(
      "timed out after 200 ms",
    );
    // The handler has not returned: the one slot is still taken.
    const single = await t.rota.enqueue("single", {}, { queue: "batch.slow" });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(singleRan).toBe(false);
    release.resolve();
    expect((await finalState(single.id))?.state).toBe("succeeded");
    expect(calls).toBe(1);
  });

  it("a batch call takes one of the worker's slots: with concurrency 1 calls never overlap", async () => {
    let running = 0;
    let most = 0;
    let jobsSeen = 0;
    const ids = await enqueueN("sync.one", "batch.one", 12);
    await startWorker({
      queues: ["batch.one"],
      concurrency: 1,
      retention: { succeededMs: 60_000 },
      tasks: [
        defineBatchTask({
          name: "sync.one",
          batch: { size: 5 },
          batchHandler: async (jobs) => {
            running++;
            most = Math.max(most, running);
            jobsSeen += jobs.length;
            await new Promise((resolve) => setTimeout(resolve, 20));
            running--;
          },
        }),
      ],
    });
    await states(ids);
    expect(jobsSeen).toBe(12);
    expect(most).toBe(1);
  });
});

describe("batch task definitions", () => {
  it("refuses a bad size or wait, and a handler of the wrong kind, naming the field", () => {
    const batchHandler = async () => {};
    for (const batch of [{ size: 0 }, { size: 1.5 }, { size: 1_001 }, { size: 2, waitMs: -1 }]) {
      expect(() => defineBatchTask({ name: "b", batch, batchHandler })).toThrow(
        expect.objectContaining({
          code: "INVALID_OPTION",
          details: expect.objectContaining({ field: "tasks.b.batch" }),
        }),
      );
    }
    const withHandler = { name: "b", batch: { size: 2 }, handler: async () => {} };
    expect(() => t.rota.worker({ tasks: [withHandler as never] })).toThrow(
      /needs batchHandler\(jobs, context\) in place of handler/,
    );
    const noBatch = { name: "b", batchHandler };
    expect(() => t.rota.worker({ tasks: [noBatch as never] })).toThrow(RotaError);
  });
});
