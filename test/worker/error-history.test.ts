// A job keeps each failed attempt's error (the last 20), not only its last:
// written on the failure paths only (a failed attempt, a rescue).
import { describe, expect, it } from "vitest";
import { defineTask } from "../../src/task.js";
import type { TestSchema } from "../helpers/database.js";
import { useWorkerHarness } from "../helpers/worker-harness.js";

let t: TestSchema;
const { startWorker, finalState } = useWorkerHarness((schema) => {
  t = schema;
});

describe("a job's error history", () => {
  it("keeps every failed attempt's message, stack, attempt and worker, oldest first", async () => {
    await startWorker({
      queues: ["history"],
      tasks: [
        defineTask({
          name: "flaky",
          retryDelay: () => 0,
          handler: async (_payload, ctx) => {
            throw new Error(`attempt ${ctx.attempt} failed`);
          },
        }),
      ],
    });
    const job = await t.rota.enqueue("flaky", {}, { queue: "history", maxAttempts: 3 });
    const record = await finalState(job.id);
    expect(record?.state).toBe("failed");
    expect(record?.errors.map((e) => [e.attempt, e.message])).toEqual([
      [1, "attempt 1 failed"],
      [2, "attempt 2 failed"],
      [3, "attempt 3 failed"],
    ]);
    for (const error of record?.errors ?? []) {
      expect(error.stack).toContain(`Error: ${error.message}`);
      expect(error.worker).toBeTypeOf("string");
      expect(Number.isNaN(Date.parse(error.at as string))).toBe(false);
    }
    expect(record?.last_error?.message).toBe("attempt 3 failed");
  });

  it("a rescue adds its own entry after the attempts' errors", async () => {
    const job = await t.rota.enqueue("stuck", {}, { queue: "rescued", maxAttempts: 3 });
    const client = t.db.pool;
    // Claimed by a worker that died: started, its lease long expired.
    await client.query(
      `update "${t.schema}".jobs set state = 'running', attempts = 1, lease_holder = 'gone:1',
              started_at = now(), lease_expires_at = now() - interval '1 minute',
              error_history = '[{"message": "earlier", "attempt": 0}]'
        where id = $1`,
      [job.id],
    );
    await t.rota.rescueExpired();
    const record = await t.rota.getJob(job.id);
    expect(record?.errors.map((e) => e.message)).toEqual([
      "earlier",
      "lease expired: worker gone:1 stopped renewing it (crashed, hung, or lost the database)",
    ]);
    expect(record?.errors[1]?.rescued).toBe(true);
  });

  it("keeps the last 20, and shows the last error of a job failed before the history was kept", async () => {
    const appended = await t.db.pool.query(
      `select "${t.schema}".append_error(
                (select jsonb_agg(jsonb_build_object('message', 'e' || i)) from generate_series(1, 20) as i),
                '{"message": "e21"}') as history`,
    );
    const history = appended.rows[0].history as { message: string }[];
    expect(history).toHaveLength(20);
    expect(history[0]?.message).toBe("e2");
    expect(history[19]?.message).toBe("e21");
    const old = await t.rota.enqueue("legacy", {}, { queue: "legacy" });
    await t.db.pool.query(
      `update "${t.schema}".jobs set state = 'failed', finished_at = now(),
              last_error = '{"message": "from before"}', error_history = null where id = $1`,
      [old.id],
    );
    expect((await t.rota.getJob(old.id))?.errors).toEqual([{ message: "from before" }]);
  });
});
