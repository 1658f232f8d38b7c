import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.js";
import { migratedSchema, type TestSchema, withClient } from "../helpers/database.js";

let t: TestSchema;
const cli = (...args: string[]) => runCli([...args, "--schema", t.schema, "--database-url", t.url]);
beforeAll(async () => {
  t = await migratedSchema();
});
afterAll(() => t.drop());

describe("rota jobs", () => {
  it("list --json prints the jobs, filtered", async () => {
    const a = await t.rota.enqueue("cli.a", { n: 1 }, { queue: "q1" });
    await t.rota.enqueue("cli.b", { n: 2 }, { queue: "q2" });
    const result = await cli("jobs", "list", "--queue", "q1", "--json");
    expect(result.code).toBe(0);
    const rows = JSON.parse(result.stdout);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ id: a.id, queue: "q1", task: "cli.a", state: "available" });
    const text = await cli("jobs", "list");
    expect(text.stdout).toContain("cli.b");
  });

  it("cancel and get", async () => {
    const { id } = await t.rota.enqueue("cli.c", {}, { queue: "q3" });
    const cancelled = await cli("jobs", "cancel", id, "--json");
    expect(JSON.parse(cancelled.stdout)).toMatchObject({ id, state: "cancelled" });
    const got = await cli("jobs", "get", id, "--json");
    expect(JSON.parse(got.stdout)).toMatchObject({ id, state: "cancelled" });
    const missing = await cli("jobs", "get", "987654321");
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("JOB_NOT_FOUND");
  });

  it("replay puts failed jobs of a queue back", async () => {
    const { id } = await t.rota.enqueue("cli.d", {}, { queue: "q4" });
    await withClient((c) =>
      c.query(
        `update "${t.schema}".jobs set state = 'failed', attempts = 3, finished_at = now() where id = $1`,
        [id],
      ),
    );
    const result = await cli("jobs", "replay", "--queue", "q4", "--json");
    expect(JSON.parse(result.stdout)).toEqual({ replayed: 1, ids: [id] });
    expect(await t.rota.getJob(id)).toMatchObject({ state: "available", attempts: 0 });
    const bad = await cli("jobs", "replay", "--from", "yesterday");
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("INVALID_OPTION");
  });
});
