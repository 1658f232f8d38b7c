// 10,000 jobs across 4 worker processes: each runs exactly once when nothing crashes.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collect, startCli, waitForOutput, withoutDatabaseUrl } from "../helpers/cli.js";
import { migratedSchema, type TestSchema, withClient } from "../helpers/database.js";
import { createSideTable, SIDE_TASKS, sideCounts } from "../helpers/side-table.js";

let t: TestSchema;
beforeAll(async () => {
  t = await migratedSchema();
  await createSideTable(t.schema);
});
afterAll(() => t.drop());

describe("4 worker processes, 10,000 jobs", () => {
  it("every job runs exactly once, spread over the processes", { timeout: 180_000 }, async () => {
    const env = { ...withoutDatabaseUrl(), DATABASE_URL: t.url, ROTA_TEST_SCHEMA: t.schema };
    const children = Array.from({ length: 4 }, () =>
      startCli(["worker", "--schema", t.schema, "--tasks", SIDE_TASKS, "--concurrency", "10"], {
        env,
      }),
    );
    const exits = children.map(collect);
    await Promise.all(children.map((child) => waitForOutput(child, "running")));

    const total = 10_000;
    for (let start = 0; start < total; start += 2_000) {
      await t.rota.enqueueMany(
        Array.from({ length: 2_000 }, (_, i) => ({ task: "record", payload: { n: start + i } })),
      );
    }
    await expect
      .poll(async () => (await sideCounts(t.schema)).runs, { timeout: 150_000, interval: 500 })
      .toBe(total);

    for (const child of children) child.kill("SIGTERM");
    const results = await Promise.all(exits);
    for (const result of results) expect(result.code).toBe(0);

    const counts = await sideCounts(t.schema);
    expect(counts).toMatchObject({ runs: total, distinct: total });
    expect(counts.pids).toBeGreaterThan(1);
    const left = await withClient(
      async (c) => (await c.query(`select count(*)::int as n from "${t.schema}".jobs`)).rows[0].n,
    );
    expect(left).toBe(0);
  });
});
