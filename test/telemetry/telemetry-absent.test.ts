// Without the telemetry option rota loads nothing of OpenTelemetry and writes
// no trace context: not by a single enqueue, a grouped one, enqueueMany by
// INSERT or by COPY, nor a batch's members; and its workers run jobs as
// before. (A file of its own: each test file runs in its own process, so
// nothing else here has loaded the API.)
import { createRequire } from "node:module";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../src/logger.js";
import { defineTask } from "../../src/task.js";
import { migratedSchema, type TestSchema } from "../helpers/database.js";
import { events } from "../helpers/events.js";

let t: TestSchema;
beforeAll(async () => {
  t = await migratedSchema();
});
afterAll(() => t.drop());

const loadedOpenTelemetry = () =>
  Object.keys(createRequire(import.meta.url).cache).filter((path) =>
    path.includes("@opentelemetry"),
  );

describe("without telemetry", () => {
  it("writes no trace context, loads no OpenTelemetry module, and runs jobs", async () => {
    const { rota } = t;
    const single = await rota.enqueue("quiet.idle", { n: 0 }, { queue: "quiet.idle" });
    const grouped = await Promise.all(
      [1, 2, 3].map((n) => rota.enqueue("quiet.idle", { n }, { queue: "quiet.idle" })),
    );
    const inserted = await rota.enqueueMany(
      [1, 2].map((n) => ({ task: "quiet.idle", payload: { n }, options: { queue: "quiet.idle" } })),
    );
    const copied = await rota.enqueueMany(
      Array.from({ length: 500 }, (_, n) => ({
        task: "quiet.idle",
        payload: { n },
        options: { queue: "quiet.idle" },
      })),
    );
    const batch = await rota.batches.enqueue(
      [{ task: "quiet.idle", payload: {}, options: { queue: "quiet.idle" } }],
      { onComplete: { task: "quiet.idle", payload: {}, queue: "quiet.idle" } },
    );
    const ids = [single, ...grouped, ...inserted, ...copied, ...batch.jobs].map((j) => j.id);
    const counts = await t.db.pool.query(
      `select count(*)::int as jobs, count(trace_context)::int as traced
       from "${t.schema}".jobs where id = any($1::bigint[])`,
      [ids],
    );
    expect(counts.rows[0]).toEqual({ jobs: 507, traced: 0 });

    const done = events(rota.events, "job:run:success", 2, (e) => e.task === "quiet.run");
    const worker = rota.worker({
      tasks: [defineTask({ name: "quiet.run", queue: "quiet", handler: async () => {} })],
      logger: silentLogger,
      rescueIntervalMs: 0,
    });
    await worker.start();
    await rota.enqueue("quiet.run", {}, { queue: "quiet" });
    await rota.enqueueMany([{ task: "quiet.run", payload: {}, options: { queue: "quiet" } }]);
    await done;
    await worker.stop();

    expect(loadedOpenTelemetry()).toEqual([]);
  });
});
