// Workers report themselves and their outcomes per queue and minute
// (migration 0018): rota.workers.list and rota.queues.throughput read those
// reports. Each test stops its workers before it reads the counts: stop()
// writes every outcome, then the last report, so the totals are final.
import { hostname } from "node:os";
import { describe, expect, it } from "vitest";
import type { QueueMinute } from "../../src/capacity/queues.js";
import { isRotaError } from "../../src/errors.js";
import { defineTask } from "../../src/task.js";
import type { TestSchema } from "../helpers/database.js";
import { deferred, events, nextEvent } from "../helpers/events.js";
import { useWorkerHarness } from "../helpers/worker-harness.js";

let t: TestSchema;
const { startWorker } = useWorkerHarness((schema) => {
  t = schema;
});

/** A queue's outcomes summed over the minutes (a test may straddle two). */
async function totals(queue: string) {
  const rows = await t.rota.queues.throughput({ queue });
  const sum = { succeeded: 0, failed: 0, retried: 0, cancelled: 0 };
  for (const row of rows) {
    expect(row.queue).toBe(queue);
    for (const key of Object.keys(sum) as (keyof typeof sum)[]) sum[key] += row[key];
  }
  return sum;
}

/** Resolves when the worker's report of itself has moved on `times` times. */
async function reports(workerId: string, times: number): Promise<void> {
  const seen = async () =>
    (await t.rota.workers.list()).find((w) => w.id === workerId)?.lastSeenAt.getTime() ?? 0;
  let last = await seen();
  for (let i = 0; i < times; i++) {
    const before = last;
    await expect.poll(async () => (last = await seen())).toBeGreaterThan(before);
  }
}

describe("workers report themselves", () => {
  it("a started worker is listed at once with its queues, tasks and concurrency, and its running jobs", async () => {
    const gate = deferred();
    const started = deferred();
    const worker = await startWorker({
      workerId: "stats-listed",
      queues: ["stats.listed", "stats.listed2"],
      concurrency: 3,
      statsIntervalMs: 50,
      tasks: {
        hold: async () => {
          started.resolve();
          await gate.promise;
        },
      },
    });
    // The first report is written before start() resolves: an idle worker is seen.
    const [info] = (await t.rota.workers.list()).filter((w) => w.id === "stats-listed");
    expect(info).toMatchObject({
      id: "stats-listed",
      host: hostname(),
      pid: process.pid,
      queues: ["stats.listed", "stats.listed2"],
      tasks: ["hold"],
      concurrency: 3,
      stoppedAt: null,
      running: 0,
    });
    // Seen since its start (a report every 50 ms may already have followed
    // the first one on a loaded machine: not the same time, then).
    expect(info?.lastSeenAt.getTime()).toBeGreaterThanOrEqual(info?.startedAt.getTime() ?? 0);

    await t.rota.enqueue("hold", {}, { queue: "stats.listed" });
    await started.promise;
    await expect
      .poll(async () => (await t.rota.workers.list()).find((w) => w.id === worker.id)?.running)
      .toBe(1);
    gate.resolve();
    await expect
      .poll(async () => (await t.rota.workers.list()).find((w) => w.id === worker.id)?.running)
      .toBe(0);
  });

  it("a stopped worker has stoppedAt, and is listed while it was seen within the window", async () => {
    const worker = await startWorker({
      workerId: "stats-stopped",
      queues: ["stats.stopped"],
      statsIntervalMs: 50,
      tasks: { noop: async () => {} },
    });
    await worker.stop();
    const info = (await t.rota.workers.list()).find((w) => w.id === "stats-stopped");
    expect(info?.stoppedAt).toBeInstanceOf(Date);
    expect(info?.stoppedAt?.getTime()).toBe(info?.lastSeenAt.getTime());
    try {
      await t.rota.clock.shift(120_000);
      expect((await t.rota.workers.list()).map((w) => w.id)).not.toContain("stats-stopped");
      const wider = await t.rota.workers.list({ seenWithinMs: 180_000 });
      expect(wider.map((w) => w.id)).toContain("stats-stopped");
    } finally {
      await t.rota.clock.reset();
    }
  });

  it("newest seen first", async () => {
    await startWorker({
      workerId: "stats-order-a",
      queues: ["stats.order"],
      statsIntervalMs: 60_000,
      tasks: { noop: async () => {} },
    });
    await t.rota.clock.shift(1_000);
    try {
      await startWorker({
        workerId: "stats-order-b",
        queues: ["stats.order"],
        statsIntervalMs: 60_000,
        tasks: { noop: async () => {} },
      });
      const ids = (await t.rota.workers.list())
        .map((w) => w.id)
        .filter((id) => id.startsWith("stats-order"));
      expect(ids).toEqual(["stats-order-b", "stats-order-a"]);
    } finally {
      await t.rota.clock.reset();
    }
  });

  it("statsIntervalMs 0 reports nothing; a bad value is refused naming the field", async () => {
    await startWorker({
      workerId: "stats-silent",
      queues: ["stats.silent"],
      statsIntervalMs: 0,
      tasks: { noop: async () => {} },
    });
    expect((await t.rota.workers.list()).map((w) => w.id)).not.toContain("stats-silent");
    for (const statsIntervalMs of [-1, 1.5, Number.NaN]) {
      let thrown: unknown;
      try {
        t.rota.worker({ tasks: { noop: async () => {} }, statsIntervalMs });
      } catch (error) {
        thrown = error;
      }
      expect(isRotaError(thrown, "INVALID_OPTION")).toBe(true);
      expect((thrown as { details: { field: string } }).details.field).toBe("statsIntervalMs");
    }
  });

  it("list and throughput refuse bad options", async () => {
    for (const minutes of [0, 1441, 2.5]) {
      await expect(t.rota.queues.throughput({ minutes })).rejects.toMatchObject({
        code: "INVALID_OPTION",
        details: { field: "minutes" },
      });
    }
    await expect(t.rota.queues.throughput({ queue: "no spaces" })).rejects.toMatchObject({
      code: "INVALID_QUEUE_NAME",
    });
    await expect(t.rota.workers.list({ seenWithinMs: 0 })).rejects.toMatchObject({
      code: "INVALID_OPTION",
      details: { field: "seenWithinMs" },
    });
  });
});

describe("throughput per queue and minute", () => {
  it("counts exactly what succeeded, failed for good, was retried and was cancelled", async () => {
    const queue = "stats.mixed";
    const worker = await startWorker({
      queues: [queue],
      concurrency: 8,
      statsIntervalMs: 50,
      tasks: [
        defineTask({ name: "ok", queue, handler: async () => {} }),
        defineTask({
          name: "boom",
          queue,
          handler: async () => {
            throw new Error("boom");
          },
        }),
        defineTask({
          name: "flaky",
          queue,
          retryDelay: () => 0,
          handler: async (_payload, ctx) => {
            if (ctx.attempt === 1) throw new Error("first attempt fails");
          },
        }),
        defineTask({
          name: "slow",
          queue,
          handler: (_payload, ctx) =>
            new Promise((_, reject) => {
              ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason));
            }),
        }),
      ],
    });
    const settled = events(t.rota.events, "job:run:success", 5 + 3);
    const failed = events(t.rota.events, "job:failed", 2);
    const retried = events(t.rota.events, "job:run:retry", 3);
    // Listened for before the enqueues: a slow job may start before its
    // enqueue's promise is answered.
    const running = events(t.rota.events, "job:run:start", 2, (e) => e.task === "slow");
    for (let i = 0; i < 5; i++) await t.rota.enqueue("ok", {}, { queue });
    for (let i = 0; i < 2; i++) await t.rota.enqueue("boom", {}, { queue, maxAttempts: 1 });
    for (let i = 0; i < 3; i++) await t.rota.enqueue("flaky", {}, { queue, maxAttempts: 2 });
    const slow = [];
    for (let i = 0; i < 2; i++) slow.push(await t.rota.enqueue("slow", {}, { queue }));
    await running;
    const cancelled = events(t.rota.events, "job:cancelled", 2);
    for (const { id } of slow) await t.rota.cancel(id);
    await Promise.all([settled, failed, retried, cancelled]);
    await worker.stop();

    expect(await totals(queue)).toEqual({ succeeded: 8, failed: 2, retried: 3, cancelled: 2 });
    const rows: QueueMinute[] = await t.rota.queues.throughput({ queue, minutes: 5 });
    for (const row of rows) expect(row.minute.getUTCSeconds()).toBe(0);
  });

  it("the counts of two workers add up", async () => {
    const queue = "stats.two";
    const a = await startWorker({
      queues: [queue],
      statsIntervalMs: 50,
      tasks: [defineTask({ name: "two.a", queue, handler: async () => {} })],
    });
    const b = await startWorker({
      queues: [queue],
      statsIntervalMs: 50,
      tasks: [defineTask({ name: "two.b", queue, handler: async () => {} })],
    });
    const done = events(t.rota.events, "job:run:success", 7 + 4);
    await t.rota.enqueueMany([
      ...Array.from({ length: 7 }, () => ({ task: "two.a", payload: {}, options: { queue } })),
      ...Array.from({ length: 4 }, () => ({ task: "two.b", payload: {}, options: { queue } })),
    ]);
    await done;
    await Promise.all([a.stop(), b.stop()]);
    expect(await totals(queue)).toEqual({ succeeded: 11, failed: 0, retried: 0, cancelled: 0 });
  });

  it("a report that fails keeps its counts, and a later one writes them once", async () => {
    const queue = "stats.flaky";
    const errors: unknown[] = [];
    const off = t.rota.events.on("worker:error", (e) => {
      if (e.during === "stats") errors.push(e.error);
    });
    try {
      const worker = await startWorker({
        workerId: "stats-flaky",
        queues: [queue],
        statsIntervalMs: 30,
        tasks: [defineTask({ name: "flaky.ok", queue, handler: async () => {} })],
      });
      // Every write to queue_minutes is refused until the constraint goes;
      // the report is one statement, so the worker's row is not written either.
      await t.db.pool.query(
        `alter table "${t.schema}".queue_minutes add constraint refuse_all check (false) not valid`,
      );
      const done = events(t.rota.events, "job:run:success", 3);
      for (let i = 0; i < 3; i++) await t.rota.enqueue("flaky.ok", {}, { queue });
      await done;
      // Two reports failed after the jobs were written: one of them carried their counts.
      const failedBefore = errors.length;
      await expect.poll(() => errors.length).toBeGreaterThanOrEqual(failedBefore + 2);
      expect(await t.rota.queues.throughput({ queue })).toEqual([]);

      await t.db.pool.query(`alter table "${t.schema}".queue_minutes drop constraint refuse_all`);
      await expect.poll(async () => (await totals(queue)).succeeded).toBe(3);
      // More reports come and go: the counts are not added again.
      await reports("stats-flaky", 3);
      expect(await totals(queue)).toEqual({ succeeded: 3, failed: 0, retried: 0, cancelled: 0 });
      await worker.stop();
      expect(await totals(queue)).toEqual({ succeeded: 3, failed: 0, retried: 0, cancelled: 0 });
    } finally {
      off();
      await t.db.pool.query(
        `alter table "${t.schema}".queue_minutes drop constraint if exists refuse_all`,
      );
    }
  });

  it("minutes are read back within the window asked for, by queue then minute", async () => {
    const now = await t.rota.clock.now();
    const minute = (ago: number) =>
      new Date(Math.floor(now.getTime() / 60_000) * 60_000 - ago * 60_000);
    await t.db.pool.query(
      `insert into "${t.schema}".queue_minutes (queue, minute, succeeded, failed, retried, cancelled)
       select q, m, 1, 2, 3, 4 from unnest($1::text[]) as q, unnest($2::timestamptz[]) as m`,
      [
        ["stats.window.b", "stats.window.a"],
        [minute(0), minute(9), minute(10), minute(2000)],
      ],
    );
    const rows = (await t.rota.queues.throughput({ minutes: 10 })).filter((r) =>
      r.queue.startsWith("stats.window"),
    );
    expect(rows.map((r) => [r.queue, r.minute.getTime()])).toEqual([
      ["stats.window.a", minute(9).getTime()],
      ["stats.window.a", minute(0).getTime()],
      ["stats.window.b", minute(9).getTime()],
      ["stats.window.b", minute(0).getTime()],
    ]);
    expect(rows[0]).toMatchObject({ succeeded: 1, failed: 2, retried: 3, cancelled: 4 });
    const one = await t.rota.queues.throughput({ minutes: 1, queue: "stats.window.b" });
    expect(one.map((r) => r.minute.getTime())).toEqual([minute(0).getTime()]);
  });

  it("pruning deletes minutes and stopped or unseen workers a day old", async () => {
    const worker = await startWorker({
      workerId: "stats-pruned",
      queues: ["stats.pruned"],
      statsIntervalMs: 50,
      tasks: [defineTask({ name: "pruned.ok", queue: "stats.pruned", handler: async () => {} })],
    });
    const done = nextEvent(t.rota.events, "job:run:success");
    await t.rota.enqueue("pruned.ok", {}, { queue: "stats.pruned" });
    await done;
    await worker.stop();
    expect((await totals("stats.pruned")).succeeded).toBe(1);
    const count = async (table: string) =>
      Number((await t.db.pool.query(`select count(*) as n from "${t.schema}".${table}`)).rows[0].n);
    try {
      await t.rota.clock.shift(23 * 3_600_000);
      await t.rota.prune();
      expect(await count("queue_minutes")).toBeGreaterThan(0);
      expect(await count("workers")).toBeGreaterThan(0);
      await t.rota.clock.shift(2 * 3_600_000);
      await t.rota.prune();
      expect(await count("queue_minutes")).toBe(0);
      expect(await count("workers")).toBe(0);
    } finally {
      await t.rota.clock.reset();
    }
  });
});
