// A unique key queued again while its job ran: a retry, a rescue, a hand-back
// or a replay must keep one queued job per key and never block the others.
import { describe, expect, it } from "vitest";
import { type TestSchema, withClient } from "../helpers/database.js";
import { deferred } from "../helpers/events.js";
import { useWorkerHarness } from "../helpers/worker-harness.js";

let t: TestSchema;
const { startWorker, busyWorker, claimed, finalState } = useWorkerHarness((schema) => {
  t = schema;
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
  it("a replay of thousands goes 1,000 a statement, keeps one per key across them, and reports its progress", async () => {
    const s = `"${t.schema}"`;
    // 2,500 failed jobs, two of them with key k5, in different statements'
    // thousands: the one that failed last comes first, and is the one back.
    const ids = await withClient(async (c) => {
      const result = await c.query(
        `insert into ${s}.jobs (queue, task, state, run_at, unique_key, attempts, finished_at)
         select 'bulk.replay', 'sync', 'failed', now(), case when i % 1000 = 0 then 'k5' end, 1,
                now() - make_interval(secs => i)
           from generate_series(1, 2500) as i
         returning id::text, unique_key, finished_at`,
      );
      return result.rows as { id: string; unique_key: string | null; finished_at: Date }[];
    });
    const progress: number[] = [];
    const replayed = await t.rota.replayFailed(
      { queue: "bulk.replay" },
      { onProgress: (n) => progress.push(n) },
    );
    const keyed = ids.filter((row) => row.unique_key === "k5");
    expect(keyed).toHaveLength(2);
    // Of k5's two failed jobs only the last to fail (the smaller offset) is back.
    const lastToFail = keyed.sort((a, b) => b.finished_at.getTime() - a.finished_at.getTime())[0];
    expect(replayed).toHaveLength(2_500 - 1);
    expect(replayed).toContain(lastToFail?.id);
    expect(progress.length).toBeGreaterThanOrEqual(3);
    expect(progress.at(-1)).toBe(2_499);
    expect(progress).toEqual([...progress].sort((a, b) => a - b));
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
