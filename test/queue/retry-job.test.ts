// rota.retryJob(id): one failed or cancelled job back in its queue with a
// fresh set of attempts; anything else is refused and left as it was.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { migratedSchema, type TestSchema } from "../helpers/database.js";

let t: TestSchema;
beforeAll(async () => {
  t = await migratedSchema();
});
afterAll(() => t.drop());

/** Ends a queued job as a worker would after its last attempt failed. */
async function failForGood(id: string): Promise<void> {
  await t.db.pool.query(
    `update "${t.schema}".jobs
     set state = 'failed', attempts = max_attempts, finished_at = now(),
         last_error = '{"message": "boom"}'
     where id = $1`,
    [id],
  );
}

describe("retryJob", () => {
  it("puts a failed job back, available now with fresh attempts", async () => {
    const { id } = await t.rota.enqueue("retry.me", {}, { maxAttempts: 3 });
    await failForGood(id);
    expect(await t.rota.retryJob(id)).toEqual({ id, previousState: "failed" });
    const job = await t.rota.getJob(id);
    expect(job).toMatchObject({ state: "available", attempts: 0, finished_at: null });
    expect(job?.run_at.getTime()).toBeLessThanOrEqual((await t.rota.clock.now()).getTime());
  });

  it("puts a cancelled job back, its cancel request gone", async () => {
    const { id } = await t.rota.enqueue("retry.me", {}, { delayMs: 3_600_000 });
    await t.rota.cancel(id);
    expect(await t.rota.retryJob(Number(id))).toEqual({ id, previousState: "cancelled" });
    expect(await t.rota.getJob(id)).toMatchObject({
      state: "available",
      cancel_requested_at: null,
      finished_at: null,
    });
  });

  it("refuses an unknown id, and a job in any other state, changing nothing", async () => {
    await expect(t.rota.retryJob("987654321")).rejects.toMatchObject({ code: "JOB_NOT_FOUND" });
    await expect(t.rota.retryJob("not-an-id")).rejects.toMatchObject({ code: "JOB_NOT_FOUND" });

    const queued = await t.rota.enqueue("retry.me", {});
    await expect(t.rota.retryJob(queued.id)).rejects.toMatchObject({
      code: "JOB_NOT_RETRYABLE",
      details: { id: queued.id, state: "available" },
      message: expect.stringContaining("queued already"),
    });
    await t.db.pool.query(
      `update "${t.schema}".jobs set state = 'running', attempts = 1, lease_holder = 'w',
         lease_expires_at = now() + interval '1 minute' where id = $1`,
      [queued.id],
    );
    await expect(t.rota.retryJob(queued.id)).rejects.toMatchObject({
      code: "JOB_NOT_RETRYABLE",
      details: { state: "running" },
    });
    expect(await t.rota.getJob(queued.id)).toMatchObject({ state: "running", attempts: 1 });
  });

  it("refuses a job whose unique key another queued job holds now", async () => {
    const { id } = await t.rota.enqueue("retry.me", {}, { uniqueKey: "retry:k" });
    await failForGood(id);
    const twin = await t.rota.enqueue("retry.me", {}, { uniqueKey: "retry:k" });
    expect(twin.id).not.toBe(id);
    await expect(t.rota.retryJob(id)).rejects.toMatchObject({
      code: "JOB_NOT_RETRYABLE",
      details: { state: "failed", uniqueKey: "retry:k" },
    });
    expect((await t.rota.getJob(id))?.state).toBe("failed");
  });

  it("a cancelled member of an open batch takes its cancellation back: the batch finishes once, when it ends again", async () => {
    const batch = await t.rota.batches.enqueue(
      [
        { task: "retry.member", payload: {} },
        { task: "retry.member", payload: {} },
      ],
      { onComplete: { task: "retry.done" } },
    );
    const [a, b] = batch.jobs.map((j) => j.id) as [string, string];
    await t.rota.cancel(a);
    expect(await t.rota.batches.get(batch.id)).toMatchObject({ cancelled: 1, state: "open" });
    expect((await t.rota.retryJob(a)).previousState).toBe("cancelled");
    expect(await t.rota.batches.get(batch.id)).toMatchObject({ cancelled: 0, pending: 2 });

    await t.rota.cancel(b);
    // Without the take-back, a's first cancellation and b's would make the total.
    expect((await t.rota.batches.get(batch.id))?.state).toBe("open");
    await t.rota.cancel(a);
    const finished = await t.rota.batches.get(batch.id);
    expect(finished).toMatchObject({ state: "finished", cancelled: 2, failed: 0 });
    const callbacks = await t.db.pool.query(
      `select count(*)::int as n from "${t.schema}".jobs where task = 'retry.done'`,
    );
    expect(callbacks.rows[0].n).toBe(1);
  });
});
