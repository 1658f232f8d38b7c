// `rota worker --orchestrate`: worker processes that also run an orchestrator.
// One leads; the schedule keeps firing beyond its one materialized execution,
// each occurrence once.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collect, startCli, waitForOutput, withoutDatabaseUrl } from "../helpers/cli.js";
import { migratedSchema, type TestSchema } from "../helpers/database.js";
import { createSideTable, SIDE_TASKS, sideCounts } from "../helpers/side-table.js";

let t: TestSchema;
beforeAll(async () => {
  t = await migratedSchema();
  await createSideTable(t.schema);
});
afterAll(() => t.drop());

describe("rota worker --orchestrate", () => {
  it("two processes: one leads, a per-second schedule fires each occurrence once", {
    timeout: 60_000,
  }, async () => {
    // Horizon 1: without an orchestrator only the first execution would exist.
    await t.rota.schedules.upsert({
      name: "every-second",
      task: "record",
      cron: "* * * * * *",
      horizon: 1,
    });
    const env = { ...withoutDatabaseUrl(), DATABASE_URL: t.url, ROTA_TEST_SCHEMA: t.schema };
    const children = Array.from({ length: 2 }, () =>
      startCli(["worker", "--schema", t.schema, "--tasks", SIDE_TASKS, "--orchestrate"], { env }),
    );
    const exits = children.map(collect);
    await Promise.all(children.map((child) => waitForOutput(child, "running")));
    await expect
      .poll(async () => (await sideCounts(t.schema)).runs, { timeout: 30_000, interval: 250 })
      .toBeGreaterThanOrEqual(5);
    for (const child of children) child.kill("SIGTERM");
    const results = await Promise.all(exits);
    for (const result of results) expect(result.code, result.stderr).toBe(0);
    const leaders = results.filter((r) => /became the leader .*"epoch":\d+/.test(r.stderr));
    expect(leaders).toHaveLength(1);
    const counts = await sideCounts(t.schema);
    expect(counts.distinct).toBe(counts.runs);
    const history = await t.rota.schedules.history("every-second", { limit: 100 });
    const occurrences = history
      .filter((e) => e.state === "succeeded")
      .map((e) => e.occurrenceAt?.getTime());
    expect(new Set(occurrences).size).toBe(occurrences.length);
  });
});
